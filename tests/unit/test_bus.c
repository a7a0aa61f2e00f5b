/* Bus registration and dispatch. */
#include <errno.h>

#include "ferry/bus.h"
#include "tap.h"

struct probe {
	uint64_t last_off;
	uint64_t last_val;
	int reads, writes;
};

static void probe_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct probe *p = opaque;

	p->reads++;
	p->last_off = off;
	bus_put(data, len, 0x1122334455667788ULL);
}

static void probe_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct probe *p = opaque;

	p->writes++;
	p->last_off = off;
	p->last_val = bus_get(data, len);
}

static const struct bus_ops probe_ops = { probe_read, probe_write };

TEST(register_rejects_overlap)
{
	struct bus b;
	struct probe p = { 0 };

	bus_init(&b, "test");
	CHECK_EQ(bus_register(&b, 0x100, 0x10, &probe_ops, &p, "a"), 0);
	CHECK_EQ(bus_register(&b, 0x10f, 1, &probe_ops, &p, "b"), -EEXIST);
	CHECK_EQ(bus_register(&b, 0xf8, 0x9, &probe_ops, &p, "c"), -EEXIST);
	CHECK_EQ(bus_register(&b, 0xf8, 0x8, &probe_ops, &p, "d"), 0);
	CHECK_EQ(bus_register(&b, 0x110, 0x10, &probe_ops, &p, "e"), 0);
	CHECK_EQ(bus_register(&b, 0x200, 0, &probe_ops, &p, "f"), -EINVAL);
	CHECK_EQ(bus_register(&b, UINT64_MAX, 2, &probe_ops, &p, "g"), -EINVAL);
	bus_destroy(&b);
}

TEST(dispatch_offsets_and_unhandled)
{
	struct bus b;
	struct probe p = { 0 };
	uint8_t data[8];

	bus_init(&b, "test");
	CHECK_EQ(bus_register(&b, 0x3f8, 8, &probe_ops, &p, "uart"), 0);
	bus_put(data, 1, 0x41);
	CHECK(bus_access(&b, 0x3f8, data, 1, true));
	CHECK_EQ(p.writes, 1);
	CHECK_EQ(p.last_off, 0);
	CHECK_EQ(p.last_val, 0x41);
	CHECK(bus_access(&b, 0x3fd, data, 1, false));
	CHECK_EQ(p.last_off, 5);
	CHECK_EQ(data[0], 0x88);
	/* Straddling the end of the range is not the device's access. */
	CHECK(!bus_access(&b, 0x3fe, data, 4, false));
	CHECK_EQ(bus_get(data, 4), 0xffffffff);
	CHECK(!bus_access(&b, 0x80, data, 2, false));
	CHECK_EQ(bus_get(data, 2), 0xffff);
	CHECK(!bus_access(&b, 0x80, data, 2, true));
	CHECK_EQ(b.unhandled, 3);
	CHECK_EQ(bus_unregister(&b, 0x3f8, &p), 0);
	CHECK(!bus_access(&b, 0x3f8, data, 1, true));
	CHECK_EQ(bus_unregister(&b, 0x3f8, &p), -ENOENT);
	bus_destroy(&b);
}

TEST(many_ranges_stay_sorted)
{
	struct bus b;
	struct probe p[40] = { 0 };
	uint8_t data[4];

	bus_init(&b, "test");
	for (int i = 39; i >= 0; i--)
		CHECK_EQ(bus_register(&b, 0x1000 + i * 0x10, 0x10, &probe_ops, &p[i], "r"), 0);
	for (int i = 0; i < 40; i++) {
		CHECK(bus_access(&b, 0x1000 + i * 0x10 + 4, data, 4, false));
		CHECK_EQ(p[i].reads, 1);
		CHECK_EQ(p[i].last_off, 4);
	}
	bus_destroy(&b);
}

int main(void)
{
	RUN(register_rejects_overlap);
	RUN(dispatch_offsets_and_unhandled);
	RUN(many_ranges_stay_sorted);
	return tap_done();
}
