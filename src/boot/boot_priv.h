/* Shared between the boot loaders (src/boot/): what a format loader reports
 * back to boot.c, the Linux zero page builder, and the PVH start_info layout
 * (Xen's public start_info.h, restated; the ABI is fixed). */
#ifndef FERRY_BOOT_PRIV_H
#define FERRY_BOOT_PRIV_H

#include <stdint.h>

#include <asm/bootparam.h>

#include "ferry/boot.h"

/* What a format loader leaves behind after copying the kernel into RAM. */
struct boot_image {
	enum boot_mode mode;
	uint64_t entry;           /* guest-physical */
	uint64_t kernel_end;      /* first byte above everything the kernel owns */
	uint64_t initrd_limit;    /* an initrd must end at or below this gpa */
	uint64_t cmdline_max;     /* buffer size the kernel accepts, NUL included */
	/* bzImage only: the setup header as found in the file, and its length. */
	const struct setup_header *hdr;
	size_t hdr_len;
};

/* Kernels are loaded at or above 1 MiB: below lie the zero page, start_info,
 * page tables, command line and ACPI tables, written after the kernel. */
#define BOOT_KERNEL_MIN_GPA  PLAT_KERNEL_GPA

int elf_load(struct guest_mem *gm, const void *buf, size_t len,
	     struct boot_image *img, struct ferr *e);
int bzimage_load(struct guest_mem *gm, const void *buf, size_t len,
		 struct boot_image *img, struct ferr *e);

/* Fill the Linux zero page at PLAT_ZERO_PAGE_GPA from @img (its setup header
 * if it came from a bzImage, a minimal one for a vmlinux). */
int linux_build_zero_page(struct guest_mem *gm, const struct boot_image *img,
			  uint64_t cmdline_gpa, uint64_t initrd_gpa,
			  uint64_t initrd_len, uint64_t rsdp_gpa, struct ferr *e);

/* --- PVH: Xen's hvm_start_info, version 1 --- */
#define HVM_START_MAGIC 0x336ec578u
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;    /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* Where the pieces sit inside the start_info page. */
#define PVH_MODLIST_OFF  0x40
#define PVH_MEMMAP_OFF   0x80
#define PVH_MEMMAP_MAX   ((0x1000 - PVH_MEMMAP_OFF) / sizeof(struct hvm_memmap_table_entry))

#endif
