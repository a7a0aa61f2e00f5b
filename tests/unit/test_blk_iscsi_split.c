/* virtio/blk_iscsi_split.c: a request longer than the LUN's MAXIMUM TRANSFER
 * LENGTH (UNMAP / WRITE SAME limits) is cut into parts within the limit,
 * ending on the OPTIMAL TRANSFER LENGTH GRANULARITY where the limit allows,
 * and each part's buffers are the matching slice of the request's. */
#include <stdlib.h>

#include "config.h"
#include "tap.h"

#ifdef HAVE_LIBISCSI
#include "../../virtio/blk_iscsi.h"

#define MAX_PARTS 64

struct part {
	uint64_t lba, n;
};

/* The parts of @blocks blocks at @lba, as isc_cmd_issue sends them. */
static unsigned int split(uint64_t lba, uint64_t blocks, uint64_t max, uint64_t gran,
			  struct part *out)
{
	unsigned int k = 0;
	uint64_t done = 0;

	while (done < blocks && k < MAX_PARTS) {
		uint64_t n = isc_split_next(lba + done, blocks - done, max, gran);

		CHECK(n > 0);
		CHECK(!max || n <= max);
		if (!n)
			break;
		out[k].lba = lba + done;
		out[k].n = n;
		k++;
		done += n;
	}
	CHECK_EQ(done, blocks);
	return k;
}

static void expect_parts(const struct part *got, unsigned int k, const struct part *want,
			 unsigned int nwant)
{
	CHECK_EQ(k, nwant);
	for (unsigned int i = 0; i < k && i < nwant; i++) {
		CHECK_EQ(got[i].lba, want[i].lba);
		CHECK_EQ(got[i].n, want[i].n);
	}
}

TEST(no_limit)
{
	struct part p[MAX_PARTS];
	static const struct part want[] = { { 0, 2560 } };      /* 1280 KiB, 512-byte blocks */

	expect_parts(p, split(0, 2560, 0, 0, p), want, 1);
	expect_parts(p, split(0, 2560, 0, 8, p), want, 1);
}

TEST(one_block_limit)
{
	struct part p[MAX_PARTS];
	static const struct part want[] = { { 5, 1 }, { 6, 1 }, { 7, 1 }, { 8, 1 } };

	expect_parts(p, split(5, 4, 1, 0, p), want, 4);
	expect_parts(p, split(5, 4, 1, 8, p), want, 4);        /* granularity above the limit */
}

TEST(at_the_limit)
{
	struct part p[MAX_PARTS];
	static const struct part exact[] = { { 32, 16 } };
	static const struct part over[] = { { 32, 16 }, { 48, 1 } };

	expect_parts(p, split(32, 16, 16, 0, p), exact, 1);
	expect_parts(p, split(32, 16, 16, 8, p), exact, 1);
	expect_parts(p, split(32, 17, 16, 0, p), over, 2);
	expect_parts(p, split(32, 17, 16, 8, p), over, 2);
	/* One block short of the limit: one part. */
	CHECK_EQ(isc_split_next(32, 15, 16, 8), 15);
}

TEST(granularity)
{
	struct part p[MAX_PARTS];
	/* From LBA 3, limit 16, granularity 8: the first part ends on 16,
	 * the later ones start aligned. */
	static const struct part want[] = { { 3, 13 }, { 16, 16 }, { 32, 11 } };
	/* Without a granularity: plain cuts at the limit. */
	static const struct part plain[] = { { 3, 16 }, { 19, 16 }, { 35, 8 } };
	/* A limit that is no multiple of the granularity: each part ends on
	 * a multiple of 4 (10 -> 8). */
	static const struct part odd[] = { { 0, 8 }, { 8, 8 }, { 16, 4 } };

	expect_parts(p, split(3, 40, 16, 8, p), want, 3);
	expect_parts(p, split(3, 40, 16, 0, p), plain, 3);
	expect_parts(p, split(3, 40, 16, 1, p), plain, 3);
	expect_parts(p, split(0, 20, 10, 4, p), odd, 3);
}

TEST(blocks_4k)
{
	struct part p[MAX_PARTS];
	/* 1280 KiB at 4096-byte block 7 against a 256 KiB limit (64 blocks)
	 * with an 8-block granularity. */
	static const struct part want[] = { { 7, 57 }, { 64, 64 }, { 128, 64 }, { 192, 64 },
					    { 256, 64 }, { 320, 7 } };

	expect_parts(p, split(7, 320, 64, 8, p), want, 6);
}

TEST(part_max)
{
	struct blk_iscsi *s = calloc(1, sizeof(*s));

	CHECK(s != NULL);
	if (!s)
		return;
	s->b.block_size = 512;
	/* No limit from the LUN: still within libiscsi's 32-bit byte count. */
	CHECK_EQ(isc_part_max(s, BLK_OP_READ), UINT32_MAX / 512);
	CHECK_EQ(isc_part_max(s, BLK_OP_DISCARD), UINT32_MAX);
	CHECK_EQ(isc_part_max(s, BLK_OP_WRITE_ZEROES), UINT32_MAX);
	CHECK_EQ(isc_part_max(s, BLK_OP_FLUSH), 0);
	s->max_xfer = 256;
	s->max_unmap = 1000;
	s->max_ws = 2048;
	CHECK_EQ(isc_part_max(s, BLK_OP_READ), 256);
	CHECK_EQ(isc_part_max(s, BLK_OP_WRITE), 256);
	CHECK_EQ(isc_part_max(s, BLK_OP_DISCARD), 1000);
	CHECK_EQ(isc_part_max(s, BLK_OP_WRITE_ZEROES), 2048);
	s->b.block_size = 4096;
	s->max_xfer = UINT32_MAX;
	CHECK_EQ(isc_part_max(s, BLK_OP_WRITE), UINT32_MAX / 4096);
	free(s);
}

TEST(iov_slice)
{
	static uint8_t buf[4096];
	struct iovec iov[4] = {
		{ buf, 512 }, { buf + 512, 1024 }, { buf + 1536, 0 }, { buf + 1536, 2560 },
	};
	struct iovec out[4];
	unsigned int n;

	n = isc_iov_slice(iov, 4, 1536, 1536, out);
	CHECK_EQ(n, 1);
	CHECK(out[0].iov_base == buf + 1536);
	CHECK_EQ(out[0].iov_len, 1536);

	n = isc_iov_slice(iov, 4, 256, 1536, out);
	CHECK_EQ(n, 3);
	CHECK(out[0].iov_base == buf + 256);
	CHECK_EQ(out[0].iov_len, 256);
	CHECK(out[1].iov_base == buf + 512);
	CHECK_EQ(out[1].iov_len, 1024);
	CHECK(out[2].iov_base == buf + 1536);
	CHECK_EQ(out[2].iov_len, 256);

	n = isc_iov_slice(iov, 4, 0, 4096, out);
	CHECK_EQ(n, 3);                         /* the empty buffer is left out */
	/* Past the end: refused, not a short slice. */
	CHECK_EQ(isc_iov_slice(iov, 4, 4000, 200, out), 0);
	CHECK_EQ(isc_iov_slice(iov, 4, 4096, 512, out), 0);
}

/* Every part's slice, in order, is the request's buffer exactly once. */
TEST(slices_cover_request)
{
	static uint8_t buf[8 * 512];
	static const unsigned int lens[] = { 100, 412, 1536, 7, 1, 2040 };     /* 4096 */
	struct iovec iov[6], out[6];
	uint64_t lba = 9, blocks = 8, done = 0, pos = 0;
	unsigned int parts = 0;

	for (unsigned int i = 0; i < 6; i++) {
		iov[i].iov_base = buf + pos;
		iov[i].iov_len = lens[i];
		pos += lens[i];
	}
	CHECK_EQ(pos, sizeof(buf));
	pos = 0;
	while (done < blocks) {
		uint64_t n = isc_split_next(lba + done, blocks - done, 3, 2);
		unsigned int k = isc_iov_slice(iov, 6, done * 512, n * 512, out);
		uint64_t sum = 0;

		CHECK(k > 0);
		for (unsigned int i = 0; i < k; i++) {
			CHECK(out[i].iov_base == buf + pos);
			pos += out[i].iov_len;
			sum += out[i].iov_len;
		}
		CHECK_EQ(sum, n * 512);
		done += n;
		parts++;
		if (!n || !k)
			break;
	}
	CHECK_EQ(pos, sizeof(buf));
	CHECK_EQ(parts, 3);                     /* 9..12, 12..14 (granularity), 14..17 */
}

int main(void)
{
	RUN(no_limit);
	RUN(one_block_limit);
	RUN(at_the_limit);
	RUN(granularity);
	RUN(blocks_4k);
	RUN(part_max);
	RUN(iov_slice);
	RUN(slices_cover_request);
	return tap_done();
}
#else
TAP_SKIP_ALL("built without libiscsi")
#endif
