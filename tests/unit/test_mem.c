/* Guest memory layout and the checked gpa -> host translation. */
#include <errno.h>

#include "ferry/mem.h"
#include "ferry/util.h"
#include "tap.h"

TEST(layout_small)
{
	struct guest_mem gm;

	gm_layout(256 * MiB, &gm);
	CHECK_EQ(gm.nr_regions, 1);
	CHECK_EQ(gm.regions[0].gpa, 0);
	CHECK_EQ(gm.regions[0].size, 256 * MiB);
	CHECK_EQ(gm_low_end(&gm), 256 * MiB);
}

TEST(layout_splits_around_hole)
{
	struct guest_mem gm;

	gm_layout(4 * GiB, &gm);
	CHECK_EQ(gm.nr_regions, 2);
	CHECK_EQ(gm.regions[0].size, 3 * GiB);
	CHECK_EQ(gm.regions[1].gpa, 4 * GiB);
	CHECK_EQ(gm.regions[1].size, 1 * GiB);
	gm_layout(3 * GiB, &gm);
	CHECK_EQ(gm.nr_regions, 1);
}

TEST(translation_is_checked)
{
	struct gm_config cfg = { .size = 4 * GiB };
	struct guest_mem gm;
	struct ferr e;
	uint8_t *p;

	CHECK(gm_init(&gm, &cfg, &e) == 0);
	p = gm_ptr(&gm, 0, 16);
	CHECK(p == gm.regions[0].hva);
	CHECK(gm_ptr(&gm, 3 * GiB - 16, 16) != NULL);
	CHECK(gm_ptr(&gm, 3 * GiB - 16, 17) == NULL);     /* runs into the hole */
	CHECK(gm_ptr(&gm, 3 * GiB, 1) == NULL);           /* in the hole */
	CHECK(gm_ptr(&gm, 4 * GiB, 4096) == gm.regions[1].hva);
	CHECK(gm_ptr(&gm, 5 * GiB - 1, 1) != NULL);
	CHECK(gm_ptr(&gm, 5 * GiB - 1, 2) == NULL);       /* past the end */
	CHECK(gm_ptr(&gm, 5 * GiB, 0) == NULL);
	CHECK(gm_ptr(&gm, 16, UINT64_MAX) == NULL);       /* overflow */
	CHECK(gm_ptr(&gm, UINT64_MAX, 2) == NULL);
	CHECK_EQ(gm_write(&gm, 3 * GiB, "x", 1), -EFAULT);
	CHECK_EQ(gm_write(&gm, 100, "xy", 2), 0);
	{
		char buf[2];
		CHECK_EQ(gm_read(&gm, 100, buf, 2), 0);
		CHECK(buf[0] == 'x' && buf[1] == 'y');
	}
	gm_destroy(&gm);
}

TEST(memfd_backing)
{
	struct gm_config cfg = { .size = 64 * MiB, .backing = GM_BACKING_MEMFD };
	struct guest_mem gm;
	struct ferr e;

	CHECK(gm_init(&gm, &cfg, &e) == 0);
	CHECK(gm.memfd >= 0);
	CHECK(gm_write(&gm, 64 * MiB - 4, "abcd", 4) == 0);
	gm_destroy(&gm);
}

TEST(impossible_size_fails_cleanly)
{
	struct gm_config cfg = { .size = 1ULL << 46 };  /* 64 TiB */
	struct guest_mem gm;
	struct ferr e = { "" };

	CHECK(gm_init(&gm, &cfg, &e) < 0);
	CHECK(strstr(e.msg, "cannot allocate") != NULL);
}

int main(void)
{
	RUN(layout_small);
	RUN(layout_splits_around_hole);
	RUN(translation_is_checked);
	RUN(memfd_backing);
	RUN(impossible_size_fails_cleanly);
	return tap_done();
}
