/* RAM pre-copy: KVM's dirty log per memory slot, preferably with manual
 * clearing (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 + INITIALLY_SET: enabling is
 * cheap and pages are write-protected only when we are about to send
 * them), and the page walk that turns a dirty bitmap into RAM records,
 * skipping zero pages and pages written again since the round began.
 * Slot i is guest_mem region i (src/vm.c).  Pages devices write
 * (gm_mark_dirty) are merged in too: KVM sees only what vCPUs write. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "ferry/log.h"
#include "ferry/migrate.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

#define BITS_PER_WORD 64
#define MIG_PEEK_PAGES 4096             /* 16 MiB between looks at KVM's log */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)

struct mig_ram {
	struct vm *vm;
	struct gm_dirty *dev;           /* published in vm->mem.dev_dirty */
	bool manual;                    /* manual dirty-log clearing */
	bool logging;
	int nr;
	uint64_t npages[GM_MAX_REGIONS];
	uint64_t *dirty[GM_MAX_REGIONS];        /* pages to send next */
	uint64_t *tmp;                          /* KVM_GET_DIRTY_LOG target */
	int pagemap_fd;                         /* vm->mem's; not ours */
};

static size_t words(uint64_t npages)
{
	return (npages + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

int mig_ram_create(struct vm *vm, struct mig_ram **out, struct ferr *e)
{
	struct mig_ram *r = calloc(1, sizeof(*r));
	size_t maxw = 0;

	if (!r)
		return ferr_set(e, -ENOMEM, "out of memory");
	r->vm = vm;
	r->nr = vm->mem.nr_regions;
	for (int i = 0; i < r->nr; i++) {
		r->npages[i] = vm->mem.regions[i].size / MIG_PAGE_SIZE;
		r->dirty[i] = calloc(words(r->npages[i]), sizeof(uint64_t));
		maxw = MAX(maxw, words(r->npages[i]));
		if (!r->dirty[i])
			goto oom;
	}
	r->tmp = calloc(maxw, sizeof(uint64_t));
	r->dev = calloc(1, sizeof(*r->dev));
	if (!r->tmp || !r->dev)
		goto oom;
	for (int i = 0; i < r->nr; i++) {
		r->dev->bits[i] = calloc(words(r->npages[i]), sizeof(uint64_t));
		if (!r->dev->bits[i])
			goto oom;
	}
	/* Pages never touched are zero: /proc/self/pagemap says which, far
	 * faster than reading them. */
	r->pagemap_fd = vm->mem.pagemap_fd;
	*out = r;
	return 0;
oom:
	mig_ram_destroy(r);
	return ferr_set(e, -ENOMEM, "out of memory for the dirty bitmaps");
}

void mig_ram_destroy(struct mig_ram *r)
{
	if (!r)
		return;
	mig_ram_log_stop(r);
	for (int i = 0; i < r->nr; i++) {
		free(r->dirty[i]);
		if (r->dev)
			free(r->dev->bits[i]);
	}
	free(r->dev);
	free(r->tmp);
	free(r);
}

int mig_ram_log_start(struct mig_ram *r, struct ferr *e)
{
	struct vm *vm = r->vm;
	int caps = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	uint64_t want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
	int ret;

	r->manual = false;
	if (caps > 0 && ((uint64_t)caps & want) == want) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = { want },
		};

		r->manual = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	ret = vm_set_dirty_log(vm, true);
	if (ret < 0)
		return ferr_errno(e, ret, "cannot turn on KVM's dirty logging");
	r->logging = true;
	__atomic_store_n(&vm->mem.dev_dirty, r->dev, __ATOMIC_RELEASE);
	/* The first pass looks at every page. */
	for (int i = 0; i < r->nr; i++) {
		memset(r->dirty[i], 0xff, words(r->npages[i]) * sizeof(uint64_t));
		if (r->npages[i] % BITS_PER_WORD)
			r->dirty[i][words(r->npages[i]) - 1] =
				(1ULL << (r->npages[i] % BITS_PER_WORD)) - 1;
	}
	log_info("migration: dirty logging on (%s clearing)", r->manual ? "manual" : "automatic");
	return 0;
}

void mig_ram_log_stop(struct mig_ram *r)
{
	int ret;

	if (!r->logging)
		return;
	__atomic_store_n(&r->vm->mem.dev_dirty, NULL, __ATOMIC_RELEASE);
	/* Markers run under their device's lock: once each lock has been
	 * free, none holds the bitmap any more (mig_ram_destroy frees it). */
	for (unsigned int i = 0; i < r->vm->nr_virtio; i++) {
		pthread_mutex_lock(&r->vm->virtio[i]->lock);
		pthread_mutex_unlock(&r->vm->virtio[i]->lock);
	}
	ret = vm_set_dirty_log(r->vm, false);
	if (ret < 0)
		log_warn("migration: cannot turn off dirty logging: %s", strerror(-ret));
	r->logging = false;
}

int64_t mig_ram_sync(struct mig_ram *r, struct ferr *e)
{
	int64_t n = 0;

	for (int i = 0; i < r->nr; i++) {
		struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = r->tmp };
		size_t nw = words(r->npages[i]);

		if (ioctl(r->vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return ferr_errno(e, -errno, "cannot read KVM's dirty log (slot %d)", i);
		for (size_t w = 0; w < nw; w++) {
			r->dirty[i][w] |= r->tmp[w] |
					  __atomic_exchange_n(&r->dev->bits[i][w], 0, __ATOMIC_ACQ_REL);
			n += __builtin_popcountll(r->dirty[i][w]);
		}
	}
	return n;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (unsigned int i = 0; i < MIG_PAGE_SIZE / 8; i += 4)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3])
			return false;
	return true;
}

/* One pending run of pages of one kind (data or zero). */
struct run {
	uint64_t gpa;
	const uint8_t *hva;
	uint32_t n;
	bool zero;
};

static int run_flush(struct mig_writer *w, struct run *run, struct mig_ram_round *st)
{
	int ret = 0;

	if (!run->n)
		return 0;
	if (run->zero) {
		ret = mig_put_zero(w, run->gpa, run->n);
		st->zero_pages += run->n;
	} else {
		ret = mig_put_ram(w, run->gpa, run->hva, run->n);
		st->pages += run->n;
	}
	run->n = 0;
	return ret;
}

static int run_add(struct mig_writer *w, struct run *run, uint64_t gpa, const uint8_t *hva,
		   bool zero, struct mig_ram_round *st)
{
	int ret;

	if (run->n && (run->zero != zero || run->gpa + run->n * (uint64_t)MIG_PAGE_SIZE != gpa ||
		       (!zero && run->n == MIG_RAM_MAX_PAGES) || run->n == UINT32_MAX)) {
		ret = run_flush(w, run, st);
		if (ret < 0)
			return ret;
	}
	if (!run->n) {
		run->gpa = gpa;
		run->hva = hva;
		run->zero = zero;
	}
	run->n++;
	return 0;
}

/* pagemap entries for @n pages from @hva; false if unavailable. */
static bool pagemap_read(struct mig_ram *r, const uint8_t *hva, uint64_t *ent, size_t n)
{
	off_t off = (uintptr_t)hva / MIG_PAGE_SIZE * sizeof(uint64_t);

	if (r->pagemap_fd < 0)
		return false;
	return pread(r->pagemap_fd, ent, n * sizeof(uint64_t), off) == (ssize_t)(n * sizeof(uint64_t));
}

/* KVM's log of slot @i as it stands (into r->tmp); with manual clearing
 * reading it changes nothing, so the next sync still sees every bit. */
static bool peek_log(struct mig_ram *r, int i)
{
	struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = r->tmp };

	return ioctl(r->vm->vm_fd, KVM_GET_DIRTY_LOG, &log) == 0;
}

static int send_slot(struct mig_ram *r, int i, struct mig_writer *w, bool first,
		     struct mig_ram_round *st, struct ferr *e)
{
	const struct mem_region *reg = &r->vm->mem.regions[i];
	uint64_t *bm = r->dirty[i], pm[BITS_PER_WORD];
	size_t nw = words(r->npages[i]);
	struct run run = { 0 };
	unsigned int since_peek = 0;
	bool have_peek = false;
	int ret;

	if (r->manual) {
		struct kvm_clear_dirty_log c = {
			.slot = i, .first_page = 0, .num_pages = r->npages[i],
			.dirty_bitmap = bm,
		};

		/* Write-protect what we send before reading it: a write
		 * after this lands in the next round. */
		if (ioctl(r->vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
			return ferr_errno(e, -errno, "cannot clear KVM's dirty log (slot %d)", i);
	}
	for (size_t wi = 0; wi < nw; wi++) {
		uint64_t bits = bm[wi];
		bool have_pm;

		if (!bits)
			continue;
		bm[wi] = 0;
		/* Pages the guest wrote again since this round began are
		 * in KVM's log for the next round: sending them now would
		 * be wasted.  Look at the log every MIG_PEEK_PAGES pages. */
		if (r->manual && since_peek >= MIG_PEEK_PAGES) {
			since_peek = 0;
			have_peek = peek_log(r, i);
		}
		if (have_peek)
			bits &= ~r->tmp[wi];
		since_peek += __builtin_popcountll(bits);
		have_pm = first && pagemap_read(r, reg->hva + wi * BITS_PER_WORD * MIG_PAGE_SIZE, pm,
						MIN((uint64_t)BITS_PER_WORD,
						    r->npages[i] - wi * BITS_PER_WORD));
		while (bits) {
			unsigned int b = __builtin_ctzll(bits);
			uint64_t page = wi * BITS_PER_WORD + b;
			const uint8_t *hva = reg->hva + page * MIG_PAGE_SIZE;
			bool zero;

			bits &= bits - 1;
			if (have_pm && !(pm[b] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))) {
				st->zero_pages++;       /* never touched */
				continue;
			}
			zero = page_is_zero(hva);
			if (zero && first) {
				st->zero_pages++;       /* the destination starts zeroed */
				continue;
			}
			ret = run_add(w, &run, reg->gpa + page * MIG_PAGE_SIZE, hva, zero, st);
			if (ret < 0)
				return ferr_errno(e, ret, "cannot send guest RAM");
		}
	}
	ret = run_flush(w, &run, st);
	return ret < 0 ? ferr_errno(e, ret, "cannot send guest RAM") : 0;
}

int mig_ram_send(struct mig_ram *r, struct mig_writer *w, bool first,
		 struct mig_ram_round *out, struct ferr *e)
{
	uint64_t t0 = now_ns(), b0 = w->bytes;
	struct mig_ram_round st = { 0 };
	int ret;

	for (int i = 0; i < r->nr; i++) {
		ret = send_slot(r, i, w, first, &st, e);
		if (ret < 0)
			return ret;
	}
	ret = mig_put_section(w);
	if (ret < 0)
		return ferr_errno(e, ret, "cannot send guest RAM");
	st.bytes = w->bytes - b0;
	st.ns = now_ns() - t0;
	*out = st;
	return 0;
}
