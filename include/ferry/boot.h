/* Kernel loading: an ELF (PVH entry note, or a 64-bit vmlinux) or a bzImage,
 * plus initrd and command line, placed in guest memory.  The result says how
 * the boot vCPU must be set up; vcpu.c turns it into registers. */
#ifndef FERRY_BOOT_H
#define FERRY_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/err.h"
#include "ferry/mem.h"

enum boot_mode {
	BOOT_PVH,      /* 32-bit protected mode, paging off, EBX = start_info */
	BOOT_LINUX64,  /* long mode, identity page tables, RSI = boot_params */
};

struct boot_info {
	enum boot_mode mode;
	uint64_t entry;        /* guest-physical entry point */
	uint64_t arg;          /* start_info (PVH) or boot_params (LINUX64) gpa */
};

struct boot_config {
	const void *kernel;    /* the kernel file's contents */
	size_t kernel_len;
	const void *initrd;    /* may be NULL */
	size_t initrd_len;
	const char *cmdline;   /* may be NULL */
	uint64_t rsdp_gpa;     /* ACPI root pointer to hand to the guest */
};

/* Recognize and load the kernel.  -ENOEXEC with a reason in @e for a file
 * that is not a kernel we can boot (empty, truncated, wrong machine, ...),
 * -ENOMEM/-E2BIG if it does not fit in guest RAM. */
int boot_load(struct guest_mem *gm, const struct boot_config *cfg,
	      struct boot_info *out, struct ferr *e);

/* E820 map of the guest's RAM layout, for boot_params and PVH memmap. */
enum { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3 };
struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* Fills at most @max entries, returns the count. */
int e820_build(const struct guest_mem *gm, struct e820_entry *map, int max);

/* Write the identity-mapping page tables for the first 4 GiB at
 * PLAT_PML4_GPA (used for BOOT_LINUX64 entry). */
int boot_setup_page_tables(struct guest_mem *gm);

#endif
