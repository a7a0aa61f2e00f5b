/* Workloads that keep a virtio device busy forever, for live migration:
 * `blkloop` (the migration issue's "blk" workload: `blk` itself is the
 * one-shot device test) writes a rotating set of sectors, reads each back
 * into a ring of buffers only the device writes, checks the buffer of an
 * older round again (after a migration, a page the device wrote but the
 * source did not resend reads stale), and reads the oldest slot from the
 * disk again (what the source wrote must be on the disk the destination
 * reads: a write lost at the switchover shows), printing
 * `TESTGUEST BLKLOOP <n> ok` every few rounds;
 * `rngloop` reads entropy, printing `TESTGUEST RNGLOOP <n> ok`.  A failure
 * prints TESTGUEST FAIL and stops. */
#include "virtio.h"

#define LOOP_BYTES      4096            /* per request: 8 sectors */
#define LOOP_SLOTS      64              /* rotating sectors: 64 * 8 */
#define LOOP_PER_LINE   8               /* rounds per printed line */
#define LOOP_BUFS       32              /* read buffers, one per round */

struct loop_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static struct loop_hdr lhdr;
static volatile uint8_t lstatus;
static uint8_t lw[LOOP_BYTES] __attribute__((aligned(4096)));
static uint8_t lr[LOOP_BUFS][LOOP_BYTES] __attribute__((aligned(4096)));
static uint8_t lx[LOOP_BYTES];
static uint8_t lo[LOOP_BYTES] __attribute__((aligned(4096)));

static void loop_pattern(uint8_t *p, uint64_t sector, uint64_t round)
{
	for (uint32_t i = 0; i < LOOP_BYTES; i += 8) {
		uint64_t v = (sector * 512 + i) * 0x9e3779b97f4a7c15ULL ^ (round + 1);

		memcpy(p + i, &v, 8);
	}
}

/* One read (type 0) or write (type 1) of LOOP_BYTES at @sector. */
static const char *loop_rw(struct vdev *d, uint32_t type, uint64_t sector, uint8_t *buf)
{
	struct vbuf b[3];
	const char *why;

	lhdr = (struct loop_hdr){ type, 0, sector };
	lstatus = 0xff;
	b[0] = (struct vbuf){ &lhdr, sizeof(lhdr), false };
	b[1] = (struct vbuf){ buf, LOOP_BYTES, type == 0 };
	b[2] = (struct vbuf){ (void *)&lstatus, 1, true };
	why = vq_run(&d->vq[0], b, 3, false, NULL, 5000);
	if (why)
		return why;
	if (lstatus != 0)
		return test_fail("%s at sector %lu: status %u", type ? "write" : "read", sector,
				 lstatus);
	return NULL;
}

/* @buf (the buffer of @round unless given) holds what was written in that
 * round. */
static const char *loop_check(uint64_t round, const uint8_t *buf, const char *when)
{
	uint64_t sector = (round % LOOP_SLOTS) * (LOOP_BYTES / 512);

	if (!buf)
		buf = lr[round % LOOP_BUFS];

	loop_pattern(lx, sector, round);
	for (uint32_t i = 0; i < LOOP_BYTES; i++)
		if (buf[i] != lx[i])
			return test_fail("round %lu (%s): sector %lu byte %u reads 0x%02x, wrote 0x%02x",
					 round, when, sector + i / 512, i, buf[i], lx[i]);
	return NULL;
}

void cmd_blkloop(void)
{
	static char err[120];
	struct vdev d;
	const char *why = NULL;

	if (virtio_find(VIRTIO_ID_BLK, &d, err, sizeof(err)) < 0)
		why = err;
	if (!why)
		why = vdev_start(&d, BIT(VF_INDIRECT_DESC) | BIT(VF_EVENT_IDX), 1, 0);
	for (uint64_t round = 0; !why; round++) {
		uint64_t sector = (round % LOOP_SLOTS) * (LOOP_BYTES / 512);

		loop_pattern(lw, sector, round);
		why = loop_rw(&d, 1, sector, lw);
		/* No memset: only the device writes lr. */
		if (!why)
			why = loop_rw(&d, 0, sector, lr[round % LOOP_BUFS]);
		if (!why)
			why = loop_check(round, NULL, "just read");
		if (!why && round >= LOOP_BUFS - 1)
			why = loop_check(round - (LOOP_BUFS - 1), NULL, "read earlier");
		/* The slot written LOOP_SLOTS - 1 rounds ago, rewritten next. */
		if (!why && round >= LOOP_SLOTS - 1) {
			uint64_t old = round - (LOOP_SLOTS - 1);

			why = loop_rw(&d, 0, (old % LOOP_SLOTS) * (LOOP_BYTES / 512), lo);
			if (!why)
				why = loop_check(old, lo, "on the disk");
		}
		if (!why && round % LOOP_PER_LINE == LOOP_PER_LINE - 1)
			kprintf("TESTGUEST BLKLOOP %lu ok\n", round / LOOP_PER_LINE);
	}
	test_report("blkloop", why);
}

#define RNG_LOOP_BYTES 256
static uint8_t rl[RNG_LOOP_BYTES] __attribute__((aligned(64)));

void cmd_rngloop(void)
{
	static char err[120];
	struct vdev d;
	const char *why = NULL;

	if (virtio_find(VIRTIO_ID_RNG, &d, err, sizeof(err)) < 0)
		why = err;
	if (!why)
		why = vdev_start(&d, BIT(VF_INDIRECT_DESC) | BIT(VF_EVENT_IDX), 1, 0);
	for (uint64_t round = 0; !why; round++) {
		struct vbuf b = { rl, sizeof(rl), true };
		uint32_t len = 0, same = 0;

		memset(rl, 0, sizeof(rl));
		why = vq_run(&d.vq[0], &b, 1, false, &len, 5000);
		if (!why && (len == 0 || len > sizeof(rl)))
			why = test_fail("round %lu: the device claims %u bytes", round, len);
		for (uint32_t i = 1; !why && i < len; i++)
			same += rl[i] == rl[0];
		if (!why && len > 16 && same == len - 1)
			why = test_fail("round %lu: all %u bytes are 0x%02x", round, len, rl[0]);
		if (!why && round % 64 == 63)
			kprintf("TESTGUEST RNGLOOP %lu ok\n", round / 64);
	}
	test_report("rngloop", why);
}
