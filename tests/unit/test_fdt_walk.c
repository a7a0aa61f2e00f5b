/* migrate/fdt_walk.c: the tag walk that runs before libfdt on a MACHINE or
 * STATE blob.  A property length of -12 sends libfdt 1.6.1's
 * fdt_check_full() back to the same tag forever (found by
 * tests/fuzz/fuzz_devstate.c); it must be refused, and by
 * mig_machine_check() too, whose st_check runs the walk. */
#include <errno.h>
#include <stdlib.h>

#include <libfdt.h>

#include "ferry/migrate.h"
#include "ferry/util.h"
#include "ferry/vm.h"
#include "tap.h"

#define CAP 4096

static void *tree(void)
{
	void *fdt = calloc(1, CAP);

	CHECK_EQ(fdt_create(fdt, CAP), 0);
	CHECK_EQ(fdt_finish_reservemap(fdt), 0);
	CHECK_EQ(fdt_begin_node(fdt, ""), 0);
	CHECK_EQ(fdt_property_u32(fdt, "version", 1), 0);
	CHECK_EQ(fdt_begin_node(fdt, "devices"), 0);
	CHECK_EQ(fdt_property_u32(fdt, "status", 15), 0);
	CHECK_EQ(fdt_end_node(fdt), 0);
	CHECK_EQ(fdt_end_node(fdt), 0);
	CHECK_EQ(fdt_finish(fdt), 0);
	return fdt;
}

/* The length word of the first property ("version"). */
static fdt32_t *first_prop_len(void *fdt)
{
	uint8_t *b = (uint8_t *)fdt + fdt_off_dt_struct(fdt);

	/* BEGIN_NODE, "" padded to 4, then PROP, len, nameoff. */
	CHECK_EQ(fdt32_ld((fdt32_t *)b), FDT_BEGIN_NODE);
	CHECK_EQ(fdt32_ld((fdt32_t *)(b + 8)), FDT_PROP);
	return (fdt32_t *)(b + 12);
}

TEST(valid_tree_walks)
{
	void *fdt = tree();

	CHECK_EQ(mig_fdt_walkable(fdt, fdt_totalsize(fdt)), 0);
	free(fdt);
}

TEST(looping_prop_len_refused)
{
	void *fdt = tree();
	struct vm vm;
	struct ferr e = { { 0 } };

	*first_prop_len(fdt) = cpu_to_fdt32(0xfffffff4);
	CHECK_EQ(mig_fdt_walkable(fdt, fdt_totalsize(fdt)), -EPROTO);
	/* Through the destination's check: refused, not a hang. */
	memset(&vm, 0, sizeof(vm));
	gm_layout(64 * MiB, &vm.mem);
	vm.nr_vcpus = 1;
	CHECK_EQ(mig_machine_check(&vm, fdt, fdt_totalsize(fdt), &e), -EPROTO);
	CHECK(strstr(e.msg, "malformed device tree") != NULL);
	free(fdt);
}

TEST(prop_past_block_refused)
{
	void *fdt = tree();

	*first_prop_len(fdt) = cpu_to_fdt32(fdt_size_dt_struct(fdt));
	CHECK_EQ(mig_fdt_walkable(fdt, fdt_totalsize(fdt)), -EPROTO);
	free(fdt);
}

TEST(bad_headers_refused)
{
	void *fdt = tree();
	uint32_t len = fdt_totalsize(fdt);

	CHECK_EQ(mig_fdt_walkable(fdt, len - 4), -EPROTO);     /* size mismatch */
	CHECK_EQ(mig_fdt_walkable(fdt, 8), -EPROTO);
	fdt_set_size_dt_struct(fdt, len);                      /* past the blob */
	CHECK_EQ(mig_fdt_walkable(fdt, len), -EPROTO);
	free(fdt);
	fdt = tree();
	fdt_set_off_dt_struct(fdt, fdt_off_dt_struct(fdt) + 2); /* unaligned */
	CHECK_EQ(mig_fdt_walkable(fdt, len), -EPROTO);
	free(fdt);
}

TEST(unknown_tag_and_no_end_refused)
{
	void *fdt = tree();
	uint8_t *b = (uint8_t *)fdt + fdt_off_dt_struct(fdt);
	uint32_t size = fdt_size_dt_struct(fdt);

	*(fdt32_t *)(b + 8) = cpu_to_fdt32(7);
	CHECK_EQ(mig_fdt_walkable(fdt, fdt_totalsize(fdt)), -EPROTO);
	free(fdt);
	fdt = tree();
	b = (uint8_t *)fdt + fdt_off_dt_struct(fdt);
	*(fdt32_t *)(b + size - 4) = cpu_to_fdt32(FDT_NOP);     /* FDT_END gone */
	CHECK_EQ(mig_fdt_walkable(fdt, fdt_totalsize(fdt)), -EPROTO);
	free(fdt);
}

int main(void)
{
	RUN(valid_tree_walks);
	RUN(looping_prop_len_refused);
	RUN(prop_past_block_refused);
	RUN(bad_headers_refused);
	RUN(unknown_tag_and_no_end_refused);
	return tap_done();
}
