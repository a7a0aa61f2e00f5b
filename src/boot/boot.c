/* boot_load(): recognise the kernel format, then place what every format
 * shares (command line, initrd, e820 map) and the entry structure the
 * kernel expects: PVH start_info, or the Linux zero page plus identity page
 * tables for a 64-bit entry. */
#include <errno.h>
#include <string.h>

#include "ferry/log.h"
#include "ferry/platform.h"
#include "ferry/util.h"

#include "boot_priv.h"

#define PAGE_SIZE      0x1000ULL
#define PTE_PRESENT    (1ULL << 0)
#define PTE_WRITE      (1ULL << 1)
#define PTE_HUGE       (1ULL << 7)  /* PS: 2 MiB page in a PD entry */

int e820_build(const struct guest_mem *gm, struct e820_entry *map, int max)
{
	int n = 0;

#define E820_ADD(a, s, t) do {                                            \
	if (n < max)                                                      \
		map[n++] = (struct e820_entry){ .addr = (a), .size = (s), .type = (t) }; \
} while (0)

	for (int i = 0; i < gm->nr_regions; i++) {
		const struct mem_region *r = &gm->regions[i];

		if (!r->size)
			continue;
		if (r->gpa != 0) {
			E820_ADD(r->gpa, r->size, E820_RAM);
			continue;
		}
		/* Region 0 holds the PC's legacy hole: the EBDA, VGA window
		 * and BIOS area (our ACPI tables) up to 1 MiB are not RAM to
		 * the guest, though they are backed by it. */
		E820_ADD(0, MIN(r->size, PLAT_EBDA_GPA), E820_RAM);
		if (r->size > PLAT_EBDA_GPA)
			E820_ADD(PLAT_EBDA_GPA, MIN(r->size, 1 * MiB) - PLAT_EBDA_GPA,
				 E820_RESERVED);
		if (r->size > 1 * MiB)
			E820_ADD(1 * MiB, r->size - 1 * MiB, E820_RAM);
	}
#undef E820_ADD
	return n;
}

int boot_setup_page_tables(struct guest_mem *gm)
{
	uint64_t *pml4 = gm_ptr(gm, PLAT_PML4_GPA, PAGE_SIZE);
	uint64_t *pdpt = gm_ptr(gm, PLAT_PDPT_GPA, PAGE_SIZE);
	uint64_t *pd = gm_ptr(gm, PLAT_PD_GPA, 4 * PAGE_SIZE);

	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	pml4[0] = PLAT_PDPT_GPA | PTE_PRESENT | PTE_WRITE;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (PLAT_PD_GPA + i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
	/* 4 PD pages x 512 entries x 2 MiB = 4 GiB, identity mapped. */
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i * 2 * MiB) | PTE_PRESENT | PTE_WRITE | PTE_HUGE;
	return 0;
}

static int boot_write_cmdline(struct guest_mem *gm, const struct boot_config *cfg,
			      const struct boot_image *img, struct ferr *e)
{
	const char *s = cfg->cmdline ? cfg->cmdline : "";
	size_t n = strlen(s) + 1;

	if (n > img->cmdline_max || n > PLAT_CMDLINE_MAX)
		return ferr_set(e, -E2BIG,
				"command line too long (%zu bytes, the kernel takes at most %llu)",
				n - 1, (unsigned long long)MIN(img->cmdline_max, PLAT_CMDLINE_MAX) - 1);
	if (gm_write(gm, PLAT_CMDLINE_GPA, s, n))
		return ferr_set(e, -ENOMEM, "no RAM for the command line at 0x%llx",
				(unsigned long long)PLAT_CMDLINE_GPA);
	return 0;
}

/* The initrd goes as high as the kernel allows, below the 32-bit hole, so
 * that it stays clear of where the kernel decompresses and allocates. */
static int boot_place_initrd(struct guest_mem *gm, const struct boot_config *cfg,
			     const struct boot_image *img, uint64_t *gpa,
			     struct ferr *e)
{
	uint64_t top = MIN(img->initrd_limit, gm_low_end(gm));
	uint64_t len = cfg->initrd_len;
	uint64_t addr;

	*gpa = 0;
	if (!cfg->initrd || !len)
		return 0;
	if (len > top || ALIGN_DOWN(top - len, PAGE_SIZE) < img->kernel_end)
		return ferr_set(e, -E2BIG,
				"initrd too big: %llu bytes do not fit between the kernel's end 0x%llx and 0x%llx",
				(unsigned long long)len,
				(unsigned long long)img->kernel_end,
				(unsigned long long)top);
	addr = ALIGN_DOWN(top - len, PAGE_SIZE);
	if (gm_write(gm, addr, cfg->initrd, len))
		return ferr_set(e, -ENOMEM, "initrd at 0x%llx is outside guest RAM",
				(unsigned long long)addr);
	*gpa = addr;
	return 0;
}

/* One page at PLAT_START_INFO_GPA: start_info, the module list (the initrd)
 * and the memory map. */
static int pvh_build_start_info(struct guest_mem *gm, const struct boot_config *cfg,
				uint64_t initrd_gpa, struct ferr *e)
{
	uint8_t *page = gm_ptr(gm, PLAT_START_INFO_GPA, PAGE_SIZE);
	struct e820_entry map[PVH_MEMMAP_MAX];
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = PLAT_CMDLINE_GPA,
		.rsdp_paddr = cfg->rsdp_gpa,
		.memmap_paddr = PLAT_START_INFO_GPA + PVH_MEMMAP_OFF,
	};
	int n;

	if (!page)
		return ferr_set(e, -ENOMEM, "no RAM for PVH start_info at 0x%llx",
				(unsigned long long)PLAT_START_INFO_GPA);
	memset(page, 0, PAGE_SIZE);
	if (initrd_gpa) {
		struct hvm_modlist_entry mod = {
			.paddr = initrd_gpa,
			.size = cfg->initrd_len,
		};

		memcpy(page + PVH_MODLIST_OFF, &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = PLAT_START_INFO_GPA + PVH_MODLIST_OFF;
	}
	n = e820_build(gm, map, (int)PVH_MEMMAP_MAX);
	for (int i = 0; i < n; i++) {
		struct hvm_memmap_table_entry me = {
			.addr = map[i].addr,
			.size = map[i].size,
			.type = map[i].type,  /* same numbering as e820 */
		};

		memcpy(page + PVH_MEMMAP_OFF + i * sizeof(me), &me, sizeof(me));
	}
	si.memmap_entries = (uint32_t)n;
	memcpy(page, &si, sizeof(si));
	return 0;
}

static bool boot_is_bzimage(const uint8_t *buf, size_t len)
{
	return len >= 0x206 && buf[0x1fe] == 0x55 && buf[0x1ff] == 0xAA &&
	       memcmp(buf + 0x202, "HdrS", 4) == 0;
}

static bool boot_is_elf(const uint8_t *buf, size_t len)
{
	return len >= 4 && memcmp(buf, "\177ELF", 4) == 0;
}

int boot_load(struct guest_mem *gm, const struct boot_config *cfg,
	      struct boot_info *out, struct ferr *e)
{
	const uint8_t *buf = cfg->kernel;
	struct boot_image img;
	uint64_t initrd_gpa, arg;
	const char *fmt;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!buf || !cfg->kernel_len)
		return ferr_set(e, -ENOEXEC, "empty kernel file");
	if (!cfg->initrd && cfg->initrd_len)
		return ferr_set(e, -EINVAL, "initrd length without initrd data");

	if (boot_is_bzimage(buf, cfg->kernel_len)) {
		fmt = "bzImage";
		ret = bzimage_load(gm, buf, cfg->kernel_len, &img, e);
	} else if (boot_is_elf(buf, cfg->kernel_len)) {
		fmt = "ELF";
		ret = elf_load(gm, buf, cfg->kernel_len, &img, e);
	} else {
		return ferr_set(e, -ENOEXEC, "not a kernel: no ELF or bzImage header");
	}
	if (ret)
		return ret;

	ret = boot_write_cmdline(gm, cfg, &img, e);
	if (ret)
		return ret;
	ret = boot_place_initrd(gm, cfg, &img, &initrd_gpa, e);
	if (ret)
		return ret;

	if (img.mode == BOOT_PVH) {
		ret = pvh_build_start_info(gm, cfg, initrd_gpa, e);
		arg = PLAT_START_INFO_GPA;
	} else {
		ret = linux_build_zero_page(gm, &img, PLAT_CMDLINE_GPA, initrd_gpa,
					    initrd_gpa ? cfg->initrd_len : 0,
					    cfg->rsdp_gpa, e);
		if (!ret && boot_setup_page_tables(gm))
			ret = ferr_set(e, -ENOMEM, "no RAM for the boot page tables at 0x%llx",
				       (unsigned long long)PLAT_PML4_GPA);
		arg = PLAT_ZERO_PAGE_GPA;
	}
	if (ret)
		return ret;

	out->mode = img.mode;
	out->entry = img.entry;
	out->arg = arg;
	log_debug("kernel: %s, %s entry at 0x%llx, ends at 0x%llx, initrd at 0x%llx",
		  fmt, img.mode == BOOT_PVH ? "PVH" : "64-bit Linux",
		  (unsigned long long)img.entry, (unsigned long long)img.kernel_end,
		  (unsigned long long)initrd_gpa);
	return 0;
}
