/* Unit tests for devices/rtc.c, driven through a real port bus. */
#include <stdlib.h>
#include <time.h>

#include "ferry/devices.h"
#include "ferry/util.h"
#include "tap.h"

struct fixture {
	struct bus pio;
	struct rtc *r;
};

static void setup(struct fixture *f, uint64_t ram)
{
	bus_init(&f->pio, "pio");
	f->r = rtc_create(&f->pio, (struct irq_line){ 0 }, ram);
	if (!f->r)
		abort();
}

static void teardown(struct fixture *f)
{
	rtc_destroy(f->r);
	CHECK_EQ(f->pio.nr, 0);
	bus_destroy(&f->pio);
}

static uint8_t cmos_read(struct fixture *f, uint8_t idx)
{
	uint8_t v = idx | 0x80;		/* NMI mask bit, as Linux sets it */

	CHECK(bus_access(&f->pio, 0x70, &v, 1, true));
	CHECK(bus_access(&f->pio, 0x71, &v, 1, false));
	return v;
}

static void cmos_write(struct fixture *f, uint8_t idx, uint8_t v)
{
	CHECK(bus_access(&f->pio, 0x70, &idx, 1, true));
	CHECK(bus_access(&f->pio, 0x71, &v, 1, true));
}

static int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

struct rtc_time {
	int sec, min, hour, wday, mday, mon, year, century;
};

/* Reads the clock within one host second; *t gets that second. */
static void read_clock(struct fixture *f, struct rtc_time *rt, int (*dec)(uint8_t),
		       time_t *t)
{
	time_t t0, t1;

	do {
		t0 = time(NULL);
		rt->sec = dec(cmos_read(f, 0x00));
		rt->min = dec(cmos_read(f, 0x02));
		rt->hour = cmos_read(f, 0x04);
		rt->wday = dec(cmos_read(f, 0x06));
		rt->mday = dec(cmos_read(f, 0x07));
		rt->mon = dec(cmos_read(f, 0x08));
		rt->year = dec(cmos_read(f, 0x09));
		rt->century = dec(cmos_read(f, 0x32));
		t1 = time(NULL);
	} while (t0 != t1);
	*t = t0;
}

static int bin(uint8_t v)
{
	return v;
}

static void check_against(const struct rtc_time *rt, time_t t, int hour)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	CHECK_EQ(rt->sec, tm.tm_sec);
	CHECK_EQ(rt->min, tm.tm_min);
	CHECK_EQ(hour, tm.tm_hour);
	CHECK_EQ(rt->wday, tm.tm_wday + 1);
	CHECK_EQ(rt->mday, tm.tm_mday);
	CHECK_EQ(rt->mon, tm.tm_mon + 1);
	CHECK_EQ(rt->year, (tm.tm_year + 1900) % 100);
	CHECK_EQ(rt->century, (tm.tm_year + 1900) / 100);
}

TEST(bcd_24h_default)
{
	struct fixture f;
	struct rtc_time rt;
	time_t t;

	setup(&f, 256 * MiB);
	CHECK_EQ(cmos_read(&f, 0x0b) & 0x06, 0x02);
	read_clock(&f, &rt, bcd, &t);
	check_against(&rt, t, bcd(rt.hour));
	teardown(&f);
}

TEST(binary_and_12h)
{
	struct fixture f;
	struct rtc_time rt;
	time_t t;
	int h;

	setup(&f, 256 * MiB);
	cmos_write(&f, 0x0b, 0x06);		/* binary, 24h */
	read_clock(&f, &rt, bin, &t);
	check_against(&rt, t, rt.hour);
	cmos_write(&f, 0x0b, 0x04);		/* binary, 12h */
	read_clock(&f, &rt, bin, &t);
	h = rt.hour & 0x7f;
	CHECK(h >= 1 && h <= 12);
	check_against(&rt, t, h % 12 + ((rt.hour & 0x80) ? 12 : 0));
	teardown(&f);
}

TEST(set_time)
{
	struct fixture f;
	struct rtc_time rt;
	time_t t;

	setup(&f, 256 * MiB);
	/* As Linux does it: SET, all fields, clear SET.  31 Jan then
	 * month 3 must not pass through "31 Feb". */
	cmos_write(&f, 0x0b, 0x82);
	cmos_write(&f, 0x00, 0x06);
	cmos_write(&f, 0x02, 0x05);
	cmos_write(&f, 0x04, 0x04);
	cmos_write(&f, 0x07, 0x31);
	cmos_write(&f, 0x08, 0x03);
	cmos_write(&f, 0x09, 0x01);
	cmos_write(&f, 0x32, 0x20);
	/* Frozen while SET is on. */
	CHECK_EQ(cmos_read(&f, 0x08), 0x03);
	cmos_write(&f, 0x0b, 0x02);
	read_clock(&f, &rt, bcd, &t);
	CHECK_EQ(rt.century, 20);
	CHECK_EQ(rt.year, 1);
	CHECK_EQ(rt.mon, 3);
	CHECK_EQ(rt.mday, 31);
	CHECK_EQ(bcd(rt.hour), 4);
	CHECK_EQ(rt.min, 5);
	CHECK_EQ(rt.wday, 7);		/* 2001-03-31 was a Saturday */
	/* A single-field write without SET moves the clock too. */
	cmos_write(&f, 0x09, 0x02);
	CHECK_EQ(cmos_read(&f, 0x09), 0x02);
	/* Garbage BCD is refused. */
	cmos_write(&f, 0x08, 0x1f);
	CHECK_EQ(cmos_read(&f, 0x08), 0x03);
	teardown(&f);
}

TEST(status_registers)
{
	struct fixture f;

	setup(&f, 256 * MiB);
	CHECK_EQ(cmos_read(&f, 0x0a) & 0x80, 0);	/* UIP low */
	cmos_write(&f, 0x0a, 0xa6);
	CHECK_EQ(cmos_read(&f, 0x0a), 0x26);
	CHECK_EQ(cmos_read(&f, 0x0c), 0);
	CHECK_EQ(cmos_read(&f, 0x0d), 0x80);
	cmos_write(&f, 0x0d, 0);
	CHECK_EQ(cmos_read(&f, 0x0d), 0x80);
	teardown(&f);
}

TEST(memory_256m)
{
	struct fixture f;

	setup(&f, 256 * MiB);
	CHECK_EQ(cmos_read(&f, 0x15) | cmos_read(&f, 0x16) << 8, 640);
	CHECK_EQ(cmos_read(&f, 0x17) | cmos_read(&f, 0x18) << 8, 0xffff);
	CHECK_EQ(cmos_read(&f, 0x30) | cmos_read(&f, 0x31) << 8, 0xffff);
	CHECK_EQ(cmos_read(&f, 0x34) | cmos_read(&f, 0x35) << 8, (256 - 16) * 16);
	CHECK_EQ(cmos_read(&f, 0x5b) | cmos_read(&f, 0x5c) | cmos_read(&f, 0x5d), 0);
	teardown(&f);
}

TEST(memory_small)
{
	struct fixture f;

	setup(&f, 32 * MiB);
	CHECK_EQ(cmos_read(&f, 0x30) | cmos_read(&f, 0x31) << 8, 31 * 1024);
	CHECK_EQ(cmos_read(&f, 0x34) | cmos_read(&f, 0x35) << 8, 16 * 16);
	teardown(&f);
}

TEST(memory_4g)
{
	struct fixture f;

	setup(&f, 4 * GiB);
	/* 3 GiB below the hole, 1 GiB above 4 GiB. */
	CHECK_EQ(cmos_read(&f, 0x34) | cmos_read(&f, 0x35) << 8, (3072 - 16) * 16);
	CHECK_EQ(cmos_read(&f, 0x5b), 0x00);
	CHECK_EQ(cmos_read(&f, 0x5c), 0x40);
	CHECK_EQ(cmos_read(&f, 0x5d), 0x00);
	teardown(&f);
}

TEST(memory_8g)
{
	struct fixture f;

	setup(&f, 8 * GiB);
	CHECK_EQ(cmos_read(&f, 0x34) | cmos_read(&f, 0x35) << 8, 0xbf00);
	/* 5 GiB above 4 GiB = 0x14000 units of 64 KiB. */
	CHECK_EQ(cmos_read(&f, 0x5b), 0x00);
	CHECK_EQ(cmos_read(&f, 0x5c), 0x40);
	CHECK_EQ(cmos_read(&f, 0x5d), 0x01);
	teardown(&f);
}

TEST(nvram_and_hostile)
{
	struct fixture f;
	uint8_t d[2] = { 0x40, 0x99 };

	setup(&f, 256 * MiB);
	cmos_write(&f, 0x40, 0x5a);
	cmos_write(&f, 0x7f, 0xa5);
	CHECK_EQ(cmos_read(&f, 0x40), 0x5a);
	CHECK_EQ(cmos_read(&f, 0x7f), 0xa5);
	/* A word write at 0x70 is index then data. */
	CHECK(bus_access(&f.pio, 0x70, d, 2, true));
	CHECK_EQ(cmos_read(&f, 0x40), 0x99);
	CHECK(bus_access(&f.pio, 0x70, d, 2, false));
	CHECK_EQ(d[0], 0xff);
	CHECK_EQ(d[1], 0x99);
	CHECK(!bus_access(&f.pio, 0x71, d, 2, false));
	/* Every index, with and without the NMI bit, any value. */
	for (unsigned int i = 0; i < 256; i++) {
		if ((i & 0x7f) == 0x0b)
			continue;
		cmos_write(&f, (uint8_t)i, (uint8_t)(i * 7));
		cmos_read(&f, (uint8_t)i);
	}
	teardown(&f);
}

int main(void)
{
	RUN(bcd_24h_default);
	RUN(binary_and_12h);
	RUN(set_time);
	RUN(status_registers);
	RUN(memory_256m);
	RUN(memory_small);
	RUN(memory_4g);
	RUN(memory_8g);
	RUN(nvram_and_hostile);
	return tap_done();
}
