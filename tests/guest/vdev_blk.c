/* virtio-blk commands: `blk` (config, writes and reads at the first,
 * middle and last sectors in chains of several segments and an indirect
 * one, FLUSH, GET_ID, DISCARD, WRITE_ZEROES, a read past the end; or with
 * testguest.blk=ro, the read-only behaviour; with testguest.blk=ioerr, a
 * write the host cannot store) and `blkbench:<mode>`
 * (rand4k-qd1, rand4k-qd32, seq128k, seq1m: reads for 3 s, used ring polled). */
#include "virtio.h"

#define NOINIT __attribute__((section(".bss.noinit")))

#define BLK_F_SIZE_MAX          1
#define BLK_F_SEG_MAX           2
#define BLK_F_RO                5
#define BLK_F_BLK_SIZE          6
#define BLK_F_FLUSH             9
#define BLK_F_DISCARD           13
#define BLK_F_WRITE_ZEROES      14

#define BLK_T_IN                0
#define BLK_T_OUT               1
#define BLK_T_FLUSH             4
#define BLK_T_GET_ID            8
#define BLK_T_DISCARD           11
#define BLK_T_WRITE_ZEROES      13

#define BLK_S_OK                0
#define BLK_S_IOERR             1
#define BLK_S_UNSUPP            2

#define CHUNK 4096                      /* bytes per test write: 8 sectors */

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct blk_range {
	uint64_t sector;
	uint32_t num, flags;
};

static struct blk_hdr hdr;
static volatile uint8_t status;
static struct blk_range range;
static uint8_t wbuf[CHUNK] __attribute__((aligned(4096)));
static uint8_t rbuf[CHUNK] __attribute__((aligned(4096)));
static uint32_t seg_max = VQ_INDIRECT - 2, size_max = 1u << 20;

/* One request; the data (if any) in `segs` pieces.  Returns NULL with the
 * device's status in *st, or why the request itself failed. */
static const char *blk_req(struct vdev *d, uint32_t type, uint64_t sector, void *buf,
			   uint32_t len, int segs, bool indirect, uint8_t *st)
{
	struct vbuf b[VQ_INDIRECT];
	bool in = type == BLK_T_IN || type == BLK_T_GET_ID;
	int n = 0;
	const char *why;

	if (segs < 1)
		segs = 1;
	if ((uint32_t)segs > seg_max)
		segs = seg_max;
	hdr = (struct blk_hdr){ type, 0, sector };
	b[n++] = (struct vbuf){ &hdr, sizeof(hdr), false };
	for (int i = 0; len && i < segs; i++) {
		uint32_t piece = i + 1 < segs ? len / segs : len - len / segs * (segs - 1);

		b[n++] = (struct vbuf){ (uint8_t *)buf + len / segs * i, piece, in };
	}
	status = 0xff;
	b[n++] = (struct vbuf){ (void *)&status, 1, true };
	why = vq_run(&d->vq[0], b, n, indirect, NULL, 5000);
	*st = status;
	return why;
}

/* A request that must end in `want`. */
static const char *blk_expect(struct vdev *d, const char *what, uint32_t type, uint64_t sector,
			      void *buf, uint32_t len, int segs, bool indirect, uint8_t want)
{
	uint8_t st;
	const char *why = blk_req(d, type, sector, buf, len, segs, indirect, &st);

	if (why)
		return test_fail("%s at sector %lu: %s", what, sector, why);
	if (st != want)
		return test_fail("%s at sector %lu: status %u, expected %u", what, sector, st, want);
	return NULL;
}

static void pattern(uint8_t *p, uint64_t sector, uint64_t seed)
{
	for (uint32_t i = 0; i < CHUNK; i += 8) {
		uint64_t v = (sector * 512 + i) * 0x9e3779b97f4a7c15ULL ^ seed;

		memcpy(p + i, &v, 8);
	}
}

static const char *blk_verify(struct vdev *d, uint64_t sector, uint64_t seed, int segs)
{
	const char *why;

	memset(rbuf, 0xee, CHUNK);
	if ((why = blk_expect(d, "read", BLK_T_IN, sector, rbuf, CHUNK, segs, false, BLK_S_OK)))
		return why;
	if (seed == 0) {
		for (uint32_t i = 0; i < CHUNK; i++)
			if (rbuf[i])
				return test_fail("sector %lu: byte %u is 0x%02x after WRITE_ZEROES",
						 sector + i / 512, i, rbuf[i]);
		return NULL;
	}
	pattern(wbuf, sector, seed);
	for (uint32_t i = 0; i < CHUNK; i++)
		if (rbuf[i] != wbuf[i])
			return test_fail("sector %lu: byte %u read 0x%02x, wrote 0x%02x",
					 sector + i / 512, i, rbuf[i], wbuf[i]);
	return NULL;
}

static const char *blk_get_id(struct vdev *d)
{
	static char id[21];
	uint8_t st;
	const char *why;

	memset(id, 0, sizeof(id));
	if ((why = blk_req(d, BLK_T_GET_ID, 0, id, 20, 1, false, &st)))
		return test_fail("GET_ID: %s", why);
	if (st == BLK_S_UNSUPP) {
		kprintf("TESTGUEST INFO blk: GET_ID unsupported\n");
		return NULL;
	}
	if (st != BLK_S_OK)
		return test_fail("GET_ID: status %u", st);
	for (int i = 0; i < 20; i++)
		if (id[i] && (id[i] < 0x20 || id[i] >= 0x7f))
			id[i] = '?';
	kprintf("TESTGUEST INFO blk serial=%s\n", id);
	return NULL;
}

static uint64_t want_features(void)
{
	return BIT(BLK_F_SIZE_MAX) | BIT(BLK_F_SEG_MAX) | BIT(BLK_F_RO) | BIT(BLK_F_BLK_SIZE) |
	       BIT(BLK_F_FLUSH) | BIT(BLK_F_DISCARD) | BIT(BLK_F_WRITE_ZEROES) |
	       BIT(VF_INDIRECT_DESC) | BIT(VF_EVENT_IDX);
}

static const char *blk_open(struct vdev *d, int flags, uint64_t *cap)
{
	static char why[120];
	const char *w;

	if (virtio_find(VIRTIO_ID_BLK, d, why, sizeof(why)) < 0)
		return why;
	if ((w = vdev_start(d, want_features(), 1, flags)))
		return w;
	*cap = vcfg64(d, 0);
	seg_max = VQ_INDIRECT - 2;
	if (vdev_has(d, BLK_F_SEG_MAX) && vcfg32(d, 12) && vcfg32(d, 12) < seg_max)
		seg_max = vcfg32(d, 12);
	size_max = 1u << 20;
	if (vdev_has(d, BLK_F_SIZE_MAX) && vcfg32(d, 8))
		size_max = vcfg32(d, 8);
	kprintf("TESTGUEST INFO blk: capacity=%lu sectors, blk_size=%u, seg_max=%u, size_max=%u%s\n",
		*cap, vdev_has(d, BLK_F_BLK_SIZE) ? vcfg32(d, 20) : 512, seg_max, size_max,
		vdev_has(d, BLK_F_RO) ? ", read-only" : "");
	return NULL;
}

static const char *blk_ro(struct vdev *d, uint64_t cap)
{
	const char *why;

	if (!vdev_has(d, BLK_F_RO))
		return "testguest.blk=ro, but the device does not offer VIRTIO_BLK_F_RO";
	pattern(wbuf, 0, rdtsc());
	if ((why = blk_expect(d, "write to a read-only disk", BLK_T_OUT, 0, wbuf, CHUNK, 1, false,
			      BLK_S_IOERR)) ||
	    (why = blk_expect(d, "read", BLK_T_IN, 0, rbuf, CHUNK, 2, false, BLK_S_OK)) ||
	    (why = blk_expect(d, "read", BLK_T_IN, cap - 8, rbuf, CHUNK, 1, false, BLK_S_OK)) ||
	    (why = blk_get_id(d)))
		return why;
	return blk_expect(d, "read past the end", BLK_T_IN, cap, rbuf, 512, 1, false, BLK_S_IOERR);
}

/* testguest.blk=ioerr: the host's backing store refuses writes (a full
 * file system under the disk file).  The device must answer IOERR, and keep
 * serving requests after it. */
static const char *blk_ioerr(struct vdev *d, uint64_t cap)
{
	const char *why;

	if (vdev_has(d, BLK_F_RO))
		return "testguest.blk=ioerr needs a writable disk";
	pattern(wbuf, (cap / 2) & ~7ULL, rdtsc());
	if ((why = blk_expect(d, "write to a full backing store", BLK_T_OUT, (cap / 2) & ~7ULL,
			      wbuf, CHUNK, 1, false, BLK_S_IOERR)))
		return why;
	kprintf("TESTGUEST INFO blk: the failed write came back as IOERR\n");
	return blk_expect(d, "read after an I/O error", BLK_T_IN, 0, rbuf, CHUNK, 1, false,
			  BLK_S_OK);
}

static const char *blk_rw(struct vdev *d, uint64_t cap)
{
	uint64_t seed = rdtsc() | 1;
	uint64_t where[4] = { 0, (cap / 2) & ~7ULL, cap - 8, 8 };
	int segs[4] = { 1, 4, 8, 8 };
	bool ind = vdev_has(d, VF_INDIRECT_DESC);
	const char *why;

	if (vdev_has(d, BLK_F_RO))
		return "the device is read-only (VIRTIO_BLK_F_RO) without testguest.blk=ro";
	for (int i = 0; i < 4; i++) {
		bool indirect = i == 3 && ind;

		pattern(wbuf, where[i], seed);
		if ((why = blk_expect(d, indirect ? "indirect write" : "write", BLK_T_OUT, where[i],
				      wbuf, CHUNK, segs[i], indirect, BLK_S_OK)))
			return why;
	}
	if (vdev_has(d, BLK_F_FLUSH) &&
	    (why = blk_expect(d, "flush", BLK_T_FLUSH, 0, NULL, 0, 0, false, BLK_S_OK)))
		return why;
	for (int i = 0; i < 4; i++)
		if ((why = blk_verify(d, where[i], seed, 2)))
			return why;
	kprintf("TESTGUEST INFO blk: wrote and read back sectors 0, 8, %lu, %lu%s%s\n",
		where[1], where[2], ind ? " (8 through an indirect table)" : "",
		vdev_has(d, BLK_F_FLUSH) ? ", flushed" : "");
	if ((why = blk_get_id(d)))
		return why;
	if (vdev_has(d, BLK_F_DISCARD)) {
		range = (struct blk_range){ where[1], 8, 0 };
		if ((why = blk_expect(d, "discard", BLK_T_DISCARD, 0, &range, sizeof(range), 1,
				      false, BLK_S_OK)))
			return why;
		kprintf("TESTGUEST INFO blk: discard ok\n");
	}
	if (vdev_has(d, BLK_F_WRITE_ZEROES)) {
		range = (struct blk_range){ where[0], 8, 0 };
		if ((why = blk_expect(d, "write zeroes", BLK_T_WRITE_ZEROES, 0, &range,
				      sizeof(range), 1, false, BLK_S_OK)) ||
		    (why = blk_verify(d, where[0], 0, 1)))
			return why;
		kprintf("TESTGUEST INFO blk: write zeroes ok\n");
	}
	return blk_expect(d, "read past the end", BLK_T_IN, cap, rbuf, 512, 1, false, BLK_S_IOERR);
}

void cmd_blk(void)
{
	struct vdev d;
	uint64_t cap = 0;
	char opt[16];
	bool have_opt = cmdline_value("testguest.blk", opt, sizeof(opt));
	bool ro = have_opt && !strcmp(opt, "ro");
	bool ioerr = have_opt && !strcmp(opt, "ioerr");
	const char *why = blk_open(&d, 0, &cap);

	if (!why && cap < 64)
		why = test_fail("capacity %lu sectors: too small to test (64 at least)", cap);
	if (!why)
		why = ro ? blk_ro(&d, cap) : ioerr ? blk_ioerr(&d, cap) : blk_rw(&d, cap);
	if (!why) {
		kprintf("TESTGUEST INFO blk: %u interrupts, %u notifies\n",
			vq_irqs(&d.vq[0]), d.vq[0].kicks);
		if (!vq_irqs(&d.vq[0]))
			why = "no interrupt from the device (the used ring was polled)";
	}
	if (!why)
		vdev_reset(&d);
	test_report("blk", why);
}

/* ---- blkbench ---- */

#define BENCH_MS        3000
#define BENCH_MAX_QD    32
#define BENCH_BUF       (4u << 20)

static uint8_t bench_buf[BENCH_BUF] __attribute__((aligned(4096))) NOINIT;
static struct blk_hdr bench_hdr[BENCH_MAX_QD];
static uint8_t bench_status[BENCH_MAX_QD];
static bool bench_busy[BENCH_MAX_QD];

static const char *bench_submit(struct vdev *d, uint32_t slot, uint64_t sector, uint32_t len)
{
	struct vbuf b[VQ_INDIRECT];
	uint8_t *data = bench_buf + (uint64_t)slot * len;
	uint32_t seg = size_max < len ? size_max : len;
	int n = 0;

	bench_hdr[slot] = (struct blk_hdr){ BLK_T_IN, 0, sector };
	b[n++] = (struct vbuf){ &bench_hdr[slot], sizeof(struct blk_hdr), false };
	for (uint32_t off = 0; off < len; off += seg) {
		if (n > (int)seg_max || n >= VQ_INDIRECT - 1)
			return "request needs more segments than seg_max allows";
		b[n++] = (struct vbuf){ data + off, len - off < seg ? len - off : seg, true };
	}
	bench_status[slot] = 0xff;
	b[n++] = (struct vbuf){ &bench_status[slot], 1, true };
	if (vq_add(&d->vq[0], b, n, false, slot) < 0)
		return "queue full";
	return NULL;
}

void cmd_blkbench(const char *mode)
{
	static char name[48];
	struct vdev d;
	uint64_t cap = 0, rnd = rdtsc() | 1, seq = 0, done = 0, t0, t1, dl, ms;
	uint32_t qd, len, inflight = 0;
	bool random;
	const char *why = NULL;

	format(name, sizeof(name), "blkbench:%s", mode);
	if (!strcmp(mode, "rand4k-qd1"))
		qd = 1, len = 4096, random = true;
	else if (!strcmp(mode, "rand4k-qd32"))
		qd = 32, len = 4096, random = true;
	else if (!strcmp(mode, "seq128k"))
		qd = 4, len = 128u << 10, random = false;
	else if (!strcmp(mode, "seq1m"))
		qd = 4, len = 1u << 20, random = false;
	else {
		test_report(name, "unknown mode (rand4k-qd1, rand4k-qd32, seq128k, seq1m)");
		return;
	}
	if ((why = blk_open(&d, VDEV_POLL, &cap)))
		goto out;
	if (cap < (uint64_t)qd * len / 512 * 2) {
		why = test_fail("capacity %lu sectors too small for this mode", cap);
		goto out;
	}
	t0 = rdtsc();
	dl = t0 + BENCH_MS * tsc_per_ms;
	for (;;) {
		uint32_t slot;

		while (inflight < qd && rdtsc() < dl) {
			uint64_t sector;

			if (random) {
				rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
				sector = rnd % (cap / 8) * 8;
			} else {
				if (seq + len / 512 > cap)
					seq = 0;
				sector = seq;
				seq += len / 512;
			}
			/* Completions come back in any order. */
			for (slot = 0; bench_busy[slot]; slot++)
				;
			bench_busy[slot] = true;
			if ((why = bench_submit(&d, slot, sector, len)))
				goto out;
			inflight++;
		}
		vq_kick(&d.vq[0]);
		if (!inflight)
			break;
		if (!vq_wait(&d.vq[0], rdtsc() + 2000 * tsc_per_ms)) {
			why = "no completion within 2 s";
			goto out;
		}
		while (vq_get(&d.vq[0], &slot, NULL)) {
			if (slot >= qd || !bench_busy[slot] || bench_status[slot] != BLK_S_OK) {
				why = test_fail("read failed: slot %u status %u", slot,
						slot < qd ? bench_status[slot] : 0xff);
				goto out;
			}
			bench_busy[slot] = false;
			inflight--;
			done++;
		}
	}
	t1 = rdtsc();
	ms = (t1 - t0) / tsc_per_ms;
	if (!ms)
		ms = 1;
	kprintf("TESTGUEST BENCH %s iops=%lu mbps=%lu\n", mode, done * 1000 / ms,
		done * len / 1000 / ms);
	kprintf("TESTGUEST INFO %s: %lu reads of %u bytes at qd %u in %lu ms, %u notifies (mbps = 10^6 bytes/s)\n",
		name, done, len, qd, ms, d.vq[0].kicks);
	vdev_reset(&d);
out:
	test_report(name, why);
}
