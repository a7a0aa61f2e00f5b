/* Unit tests for devices/i8042.c, driven through a real port bus. */
#include <stdlib.h>

#include "ferry/devices.h"
#include "ferry/platform.h"
#include "tap.h"

static int resets;

static void on_reset(void *ctx)
{
	(void)ctx;
	resets++;
}

struct fixture {
	struct bus pio;
	struct i8042 *k;
};

static void setup(struct fixture *f)
{
	bus_init(&f->pio, "pio");
	resets = 0;
	f->k = i8042_create(&f->pio, (struct dev_event){ on_reset, NULL });
	if (!f->k)
		abort();
}

static void teardown(struct fixture *f)
{
	i8042_destroy(f->k);
	CHECK_EQ(f->pio.nr, 0);
	bus_destroy(&f->pio);
}

static uint8_t inb(struct fixture *f, uint16_t port)
{
	uint8_t v = 0;

	CHECK(bus_access(&f->pio, port, &v, 1, false));
	return v;
}

static void outb(struct fixture *f, uint16_t port, uint8_t v)
{
	CHECK(bus_access(&f->pio, port, &v, 1, true));
}

TEST(status_without_keyboard)
{
	struct fixture f;
	uint8_t st;

	setup(&f);
	st = inb(&f, 0x64);
	CHECK_EQ(st & 0x01, 0);		/* output buffer empty */
	CHECK_EQ(st & 0x02, 0);		/* input buffer empty: ready */
	CHECK_EQ(st & 0x04, 0x04);	/* system flag */
	teardown(&f);
}

TEST(fe_resets)
{
	struct fixture f;

	setup(&f);
	outb(&f, 0x64, 0xfe);
	CHECK_EQ(resets, 1);
	/* 0xff pulses nothing. */
	outb(&f, 0x64, 0xff);
	CHECK_EQ(resets, 1);
	teardown(&f);
}

TEST(self_test)
{
	struct fixture f;

	setup(&f);
	outb(&f, 0x64, 0xaa);
	CHECK_EQ(inb(&f, 0x64) & 0x01, 0x01);
	CHECK_EQ(inb(&f, 0x60), 0x55);
	CHECK_EQ(inb(&f, 0x64) & 0x01, 0);
	CHECK_EQ(resets, 0);
	teardown(&f);
}

TEST(command_byte)
{
	struct fixture f;

	setup(&f);
	outb(&f, 0x64, 0x60);
	CHECK_EQ(inb(&f, 0x64) & 0x08, 0x08);
	outb(&f, 0x60, 0x47);
	CHECK_EQ(inb(&f, 0x64) & 0x08, 0);
	outb(&f, 0x64, 0x20);
	CHECK_EQ(inb(&f, 0x60), 0x47);
	/* Port disable/enable commands flip the matching CTR bits. */
	outb(&f, 0x64, 0xad);
	outb(&f, 0x64, 0xa7);
	outb(&f, 0x64, 0x20);
	CHECK_EQ(inb(&f, 0x60), 0x77);
	outb(&f, 0x64, 0xae);
	outb(&f, 0x64, 0xa8);
	outb(&f, 0x64, 0x20);
	CHECK_EQ(inb(&f, 0x60), 0x47);
	/* A keyboard byte with no command pending changes nothing. */
	outb(&f, 0x60, 0xf2);
	CHECK_EQ(inb(&f, 0x64) & 0x01, 0);
	CHECK_EQ(resets, 0);
	teardown(&f);
}

TEST(output_port_reset)
{
	struct fixture f;

	setup(&f);
	outb(&f, 0x64, 0xd1);
	outb(&f, 0x60, 0x03);		/* reset line high: nothing */
	CHECK_EQ(resets, 0);
	outb(&f, 0x64, 0xd0);
	CHECK_EQ(inb(&f, 0x60) & 0x03, 0x03);
	outb(&f, 0x64, 0xd1);
	outb(&f, 0x60, 0x02);		/* bit 0 low: reset */
	CHECK_EQ(resets, 1);
	teardown(&f);
}

TEST(hostile_accesses)
{
	struct fixture f;
	uint8_t d[4] = { 0xfe, 0xfe, 0xfe, 0xfe };

	setup(&f);
	/* Wider accesses do not fit the 1-byte ports: unclaimed. */
	CHECK(!bus_access(&f.pio, 0x64, d, 2, true));
	CHECK(!bus_access(&f.pio, 0x60, d, 4, false));
	CHECK_EQ(resets, 0);
	for (unsigned int v = 0; v < 256; v++) {
		if ((v & 0xf1) == 0xf0 || v == 0xd1)
			continue;
		outb(&f, 0x64, (uint8_t)v);
		outb(&f, 0x60, (uint8_t)v);
		inb(&f, 0x60);
		inb(&f, 0x64);
	}
	CHECK_EQ(resets, 0);
	teardown(&f);
}

int main(void)
{
	RUN(status_without_keyboard);
	RUN(fe_resets);
	RUN(self_test);
	RUN(command_byte);
	RUN(output_port_reset);
	RUN(hostile_accesses);
	return tap_done();
}
