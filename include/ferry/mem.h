/* Guest physical memory: a few RAM regions (below the 32-bit MMIO hole and
 * above 4 GiB) backed by one host mapping each.  Every device reaches guest
 * memory through gm_ptr(), the one checked translation. */
#ifndef FERRY_MEM_H
#define FERRY_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/err.h"

/* Layout: RAM from 0 up to the 32-bit hole, then from 4 GiB. */
#define MEM_HOLE_START  0xC0000000ULL   /* 3 GiB: PCI MMIO, IOAPIC, LAPIC, ... */
#define MEM_HOLE_END    0x100000000ULL  /* 4 GiB */

#define GM_MAX_REGIONS 4

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

enum gm_backing { GM_BACKING_ANON, GM_BACKING_MEMFD };

struct gm_config {
	uint64_t size;          /* total RAM in bytes, multiple of 2 MiB */
	bool hugepages;         /* back with 2 MiB huge pages */
	enum gm_backing backing;
	bool prealloc;          /* fault all of it in at start-up */
};

/* Pages devices wrote while a migration runs, which KVM's dirty log (vCPU
 * writes only) misses: one bit per 4 KiB page of each region, set and
 * taken atomically.  migrate/ram.c allocates it and publishes it in
 * guest_mem.dev_dirty for as long as it logs. */
struct gm_dirty {
	uint64_t *bits[GM_MAX_REGIONS];
};

struct guest_mem {
	struct mem_region regions[GM_MAX_REGIONS];
	int nr_regions;
	uint64_t ram_size;
	int memfd;              /* -1 unless backing is memfd */
	/* /proc/self/pagemap, opened with the RAM (before privileges drop,
	 * after which it can no longer be opened): migration skips pages
	 * that were never touched.  -1 for a memfd or when unavailable. */
	int pagemap_fd;
	struct gm_dirty *dev_dirty;     /* NULL unless a migration runs */
};

/* Compute the region layout for @size bytes (no allocation). */
void gm_layout(uint64_t size, struct guest_mem *gm);

/* Allocate and map guest RAM (and fault it all in if @cfg->prealloc).
 * On failure fills @e. */
int gm_init(struct guest_mem *gm, const struct gm_config *cfg, struct ferr *e);
void gm_destroy(struct guest_mem *gm);

/* Fault in [@p, @p+@len) writable: MADV_POPULATE_WRITE, or a write per
 * 4 KiB page where the kernel lacks it (before 5.14).  0, -ENOMEM when
 * the host cannot back it, or another -errno. */
int gm_prefault(void *p, uint64_t len);

/* The checked translation: host pointer for [gpa, gpa+len) if the whole range
 * lies inside one RAM region, else NULL.  len 0 is allowed for gpa in RAM. */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copy helpers over gm_ptr(); return -EFAULT if the range is not RAM. */
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);

/* A device wrote [gpa, gpa+len): log it for a migration, if one runs.
 * Callers hold the writing device's lock (see mig_ram_log_stop()). */
static inline void gm_mark_dirty(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	struct gm_dirty *dd = __atomic_load_n(&gm->dev_dirty, __ATOMIC_ACQUIRE);

	if (!dd || !len)
		return;
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct mem_region *r = &gm->regions[i];
		uint64_t off = gpa - r->gpa, end;

		if (gpa < r->gpa || off >= r->size)
			continue;
		end = len > r->size - off ? r->size : off + len;
		for (uint64_t p = off / 4096; p <= (end - 1) / 4096; p++)
			__atomic_fetch_or(&dd->bits[i][p / 64], 1ULL << (p % 64), __ATOMIC_RELEASE);
		return;
	}
}

/* Top of RAM below 4 GiB (end of region 0). */
uint64_t gm_low_end(const struct guest_mem *gm);

#endif
