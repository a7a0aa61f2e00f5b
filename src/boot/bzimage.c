/* Linux's x86 boot protocol (Documentation/arch/x86/boot.rst): bzImage
 * loading through its 64-bit entry, and the zero page (struct boot_params)
 * that both a bzImage and a bare vmlinux receive in RSI. */
#include <errno.h>
#include <string.h>

#include "ferry/platform.h"
#include "ferry/util.h"

#include "boot_priv.h"

#define BZ_HDR_OFF        0x1f1   /* struct setup_header in the file */
#define BZ_BOOT_FLAG      0xAA55
#define BZ_HDRS_MAGIC     0x53726448 /* "HdrS" */
#define BZ_MIN_VERSION    0x020c  /* 2.12: xloadflags, the 64-bit entry */
#define BZ_LOADER_VERSION 0x020f  /* what we speak, for a vmlinux's header */
#define BZ_ENTRY64_OFF    0x200   /* startup_64 from the protected-mode start */
#define BZ_HEAP_END       0xfe00  /* setup heap: the real-mode code's default */
/* vmlinux's runtime alignment (CONFIG_PHYSICAL_ALIGN on x86-64). */
#define LINUX_KERNEL_ALIGN 0x200000

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int bzimage_load(struct guest_mem *gm, const void *file, size_t len,
		 struct boot_image *img, struct ferr *e)
{
	const uint8_t *buf = file;
	const struct setup_header *hdr;
	uint64_t setup_size, klen, load, runtime, need;
	size_t hdr_len;
	unsigned int sects;

	if (len < BZ_HDR_OFF + sizeof(*hdr))
		return ferr_set(e, -ENOEXEC,
				"truncated bzImage setup header (%zu bytes)", len);
	/* The struct is packed: a pointer into the file is fine. */
	hdr = (const struct setup_header *)(buf + BZ_HDR_OFF);
	if (hdr->boot_flag != BZ_BOOT_FLAG || hdr->header != BZ_HDRS_MAGIC)
		return ferr_set(e, -ENOEXEC, "no bzImage setup header (boot flag 0x%x)",
				hdr->boot_flag);
	if (hdr->version < BZ_MIN_VERSION)
		return ferr_set(e, -ENOEXEC,
				"boot protocol %u.%02u is too old: the 64-bit entry needs 2.12",
				hdr->version >> 8, hdr->version & 0xff);
	if (!(hdr->xloadflags & XLF_KERNEL_64))
		return ferr_set(e, -ENOEXEC,
				"kernel has no 64-bit entry point (xloadflags 0x%x)",
				hdr->xloadflags);
	if (!(hdr->loadflags & LOADED_HIGH))
		return ferr_set(e, -ENOEXEC, "zImage (loaded below 1 MiB) is not supported");

	sects = hdr->setup_sects ? hdr->setup_sects : 4;
	setup_size = (uint64_t)(sects + 1) * 512;
	if (setup_size >= len)
		return ferr_set(e, -ENOEXEC,
				"setup_sects %u puts the kernel past the end of the file (%zu bytes)",
				hdr->setup_sects, len);
	klen = len - setup_size;
	/* syssize (in 16-byte units) is how much protected-mode code the
	 * kernel was built with: less in the file means a truncated file. */
	if (klen < (uint64_t)hdr->syssize * 16)
		return ferr_set(e, -ENOEXEC,
				"truncated kernel: %llu bytes after the setup code, syssize says %llu",
				(unsigned long long)klen,
				(unsigned long long)hdr->syssize * 16);
	/* The header ends where the jump at 0x200 lands (0x202 + its byte). */
	hdr_len = MIN((size_t)0x202 + buf[0x201] - BZ_HDR_OFF, sizeof(*hdr));

	/* A relocatable kernel goes at 1 MiB; its decompressor then runs the
	 * kernel at max(aligned load address, pref_address) and needs
	 * init_size bytes there.  A fixed one must sit at pref_address. */
	if (hdr->relocatable_kernel) {
		if (!is_pow2(hdr->kernel_alignment))
			return ferr_set(e, -ENOEXEC, "kernel_alignment 0x%x is not a power of two",
					hdr->kernel_alignment);
		load = PLAT_KERNEL_GPA;
		runtime = MAX(ALIGN_UP(load, (uint64_t)hdr->kernel_alignment),
			      hdr->pref_address);
	} else {
		load = runtime = hdr->pref_address;
		if (load < PLAT_KERNEL_GPA)
			return ferr_set(e, -ENOEXEC,
					"non-relocatable kernel wants 0x%llx, below 1 MiB",
					(unsigned long long)load);
	}
	if (runtime > UINT64_MAX - hdr->init_size || load > UINT64_MAX - klen)
		return ferr_set(e, -ENOEXEC, "kernel address 0x%llx out of range",
				(unsigned long long)hdr->pref_address);
	need = MAX(load + klen, runtime + hdr->init_size);
	if (!gm_ptr(gm, load, need - load))
		return ferr_set(e, -ENOMEM,
				"kernel needs RAM [0x%llx, 0x%llx) but RAM below 4 GiB ends at 0x%llx",
				(unsigned long long)load, (unsigned long long)need,
				(unsigned long long)gm_low_end(gm));

	memcpy(gm_ptr(gm, load, klen), buf + setup_size, klen);
	memset(img, 0, sizeof(*img));
	img->mode = BOOT_LINUX64;
	img->entry = load + BZ_ENTRY64_OFF;
	img->kernel_end = need;
	img->initrd_limit = (uint64_t)hdr->initrd_addr_max + 1;
	img->cmdline_max = MIN(PLAT_CMDLINE_MAX, (uint64_t)hdr->cmdline_size + 1);
	img->hdr = hdr;
	img->hdr_len = hdr_len;
	return 0;
}

int linux_build_zero_page(struct guest_mem *gm, const struct boot_image *img,
			  uint64_t cmdline_gpa, uint64_t initrd_gpa,
			  uint64_t initrd_len, uint64_t rsdp_gpa, struct ferr *e)
{
	struct boot_params *bp = gm_ptr(gm, PLAT_ZERO_PAGE_GPA, sizeof(*bp));
	struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
	int n;

	if (!bp)
		return ferr_set(e, -ENOMEM, "no RAM for the zero page at 0x%llx",
				(unsigned long long)PLAT_ZERO_PAGE_GPA);
	memset(bp, 0, sizeof(*bp));
	if (img->hdr) {
		memcpy(&bp->hdr, img->hdr, img->hdr_len);
	} else {
		/* A vmlinux has no header of its own: give it the fields
		 * the 64-bit entry path reads. */
		bp->hdr.boot_flag = BZ_BOOT_FLAG;
		bp->hdr.header = BZ_HDRS_MAGIC;
		bp->hdr.version = BZ_LOADER_VERSION;
		bp->hdr.kernel_alignment = LINUX_KERNEL_ALIGN;
		bp->hdr.cmdline_size = img->cmdline_max - 1;
		bp->hdr.initrd_addr_max = (uint32_t)(img->initrd_limit - 1);
	}
	bp->hdr.type_of_loader = 0xff;    /* undefined loader */
	bp->hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = BZ_HEAP_END;
	bp->hdr.cmd_line_ptr = (uint32_t)cmdline_gpa;
	bp->ext_cmd_line_ptr = (uint32_t)(cmdline_gpa >> 32);
	bp->hdr.ramdisk_image = (uint32_t)initrd_gpa;
	bp->ext_ramdisk_image = (uint32_t)(initrd_gpa >> 32);
	bp->hdr.ramdisk_size = (uint32_t)initrd_len;
	bp->ext_ramdisk_size = (uint32_t)(initrd_len >> 32);
	bp->acpi_rsdp_addr = rsdp_gpa;

	n = e820_build(gm, map, E820_MAX_ENTRIES_ZEROPAGE);
	for (int i = 0; i < n; i++) {
		bp->e820_table[i].addr = map[i].addr;
		bp->e820_table[i].size = map[i].size;
		bp->e820_table[i].type = map[i].type;
	}
	bp->e820_entries = (uint8_t)n;
	return 0;
}
