/* Guest RAM: one host mapping split into guest-physical regions around the
 * 32-bit MMIO hole, and gm_ptr(), the only way devices reach guest memory. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/memfd.h>

#include "ferry/mem.h"
#include "ferry/util.h"

void gm_layout(uint64_t size, struct guest_mem *gm)
{
	uint64_t low = MIN(size, MEM_HOLE_START);

	memset(gm, 0, sizeof(*gm));
	gm->memfd = -1;
	gm->pagemap_fd = -1;
	gm->ram_size = size;
	gm->regions[0] = (struct mem_region){ .gpa = 0, .size = low };
	gm->nr_regions = 1;
	if (size > low) {
		gm->regions[1] = (struct mem_region){
			.gpa = MEM_HOLE_END, .size = size - low,
		};
		gm->nr_regions = 2;
	}
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int gm_prefault(void *p, uint64_t len)
{
	volatile uint8_t *b = p;

	if (!madvise(p, len, MADV_POPULATE_WRITE))
		return 0;
	/* EINVAL: a kernel before 5.14.  Anything else is the answer: a
	 * write loop would only turn ENOMEM into the OOM killer. */
	if (errno != EINVAL)
		return errno == EFAULT || errno == EHWPOISON ? -ENOMEM : -errno;
	/* Writing back the byte that is there keeps the contents (a memfd
	 * may hold some already) and still allocates the page. */
	for (uint64_t off = 0; off < len; off += 4096)
		b[off] = b[off];
	return 0;
}

int gm_init(struct guest_mem *gm, const struct gm_config *cfg, struct ferr *e)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	uint8_t *base;
	uint64_t off = 0;
	int fd = -1;

	gm_layout(cfg->size, gm);
	if (cfg->backing == GM_BACKING_MEMFD) {
		unsigned int mfd = MFD_CLOEXEC;

		if (cfg->hugepages)
			mfd |= MFD_HUGETLB | MFD_HUGE_2MB;
		fd = memfd_create("ferry-ram", mfd);
		if (fd < 0)
			return ferr_errno(e, -errno, "cannot create the memfd for guest RAM");
		if (ftruncate(fd, cfg->size) < 0) {
			int err = -errno;
			close(fd);
			return ferr_errno(e, err, "cannot size guest RAM to %llu MiB",
					  (unsigned long long)(cfg->size / MiB));
		}
		flags = MAP_SHARED;
	} else if (cfg->hugepages) {
		flags |= MAP_HUGETLB;
	}

	base = mmap(NULL, cfg->size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (base == MAP_FAILED) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		if (cfg->hugepages)
			return ferr_errno(e, err,
				"cannot allocate %llu MiB of guest RAM in huge pages (reserve them in /proc/sys/vm/nr_hugepages)",
				(unsigned long long)(cfg->size / MiB));
		return ferr_errno(e, err, "cannot allocate %llu MiB of guest RAM",
				  (unsigned long long)(cfg->size / MiB));
	}
	/* Guest RAM in a core dump of ferry is noise, and may be secret. */
	madvise(base, cfg->size, MADV_DONTDUMP);
	/* Where THP is opt-in (madvise mode), ask for it: with 4 KiB pages a
	 * 1 MiB guest buffer is 256 host segments, and every large O_DIRECT
	 * transfer is split in two by the host's disk (bench/blk). */
	if (!cfg->hugepages)
		madvise(base, cfg->size, MADV_HUGEPAGE);
	for (int i = 0; i < gm->nr_regions; i++) {
		gm->regions[i].hva = base + off;
		off += gm->regions[i].size;
	}
	gm->memfd = fd;
	/* After MADV_HUGEPAGE, so that the faults take huge pages. */
	if (cfg->prealloc) {
		int err = gm_prefault(base, cfg->size);

		if (err < 0) {
			gm_destroy(gm);
			return ferr_errno(e, err,
				"cannot pre-allocate %llu MiB of guest RAM (free host memory, or drop prealloc=on)",
				(unsigned long long)(cfg->size / MiB));
		}
	}
	/* A memfd page may exist without being mapped here: only anonymous
	 * memory can be judged by its pagemap. */
	if (fd < 0)
		gm->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return 0;
}

void gm_destroy(struct guest_mem *gm)
{
	if (gm->nr_regions && gm->regions[0].hva)
		munmap(gm->regions[0].hva, gm->ram_size);
	if (gm->memfd >= 0)
		close(gm->memfd);
	if (gm->pagemap_fd >= 0)
		close(gm->pagemap_fd);
	memset(gm, 0, sizeof(*gm));
	gm->memfd = -1;
	gm->pagemap_fd = -1;
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct mem_region *r = &gm->regions[i];

		/* Written so that no addition can overflow. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return r->hva ? r->hva + (gpa - r->gpa) : NULL;
	}
	return NULL;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

uint64_t gm_low_end(const struct guest_mem *gm)
{
	return gm->nr_regions ? gm->regions[0].gpa + gm->regions[0].size : 0;
}
