/* MC146818 CMOS RTC at 0x70/0x71: the time of day from the host clock (plus
 * whatever offset the guest sets), registers A-D, and 128 bytes of CMOS RAM
 * preloaded with the memory-size bytes that firmware reads.
 *
 * Not modelled (yet): periodic, alarm and update-ended interrupts; register C
 * reads as 0 and the IRQ line is kept for when they are. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/mem.h"
#include "ferry/platform.h"
#include "ferry/util.h"

#define RTC_SECONDS	0x00
#define RTC_MINUTES	0x02
#define RTC_HOURS	0x04
#define RTC_WDAY	0x06
#define RTC_MDAY	0x07
#define RTC_MONTH	0x08
#define RTC_YEAR	0x09
#define RTC_REG_A	0x0a
#define RTC_REG_B	0x0b
#define RTC_REG_C	0x0c
#define RTC_REG_D	0x0d
#define RTC_CENTURY	0x32

#define RTC_A_UIP	0x80
#define RTC_B_SET	0x80	/* guest is setting the time: freeze it */
#define RTC_B_DM	0x04	/* binary (else BCD) */
#define RTC_B_24H	0x02
#define RTC_D_VRT	0x80	/* battery good */
#define RTC_HOUR_PM	0x80

/* Memory-size bytes (as QEMU and SeaBIOS use them). */
#define CMOS_BASE_MEM_LO	0x15
#define CMOS_BASE_MEM_HI	0x16
#define CMOS_EXT_MEM_LO		0x17
#define CMOS_EXT_MEM_HI		0x18
#define CMOS_EXT_MEM2_LO	0x30
#define CMOS_EXT_MEM2_HI	0x31
#define CMOS_MEM_16M_LO		0x34
#define CMOS_MEM_16M_HI		0x35
#define CMOS_MEM_4G_0		0x5b
#define CMOS_MEM_4G_1		0x5c
#define CMOS_MEM_4G_2		0x5d

#define CMOS_SIZE	128

struct rtc {
	pthread_mutex_t lock;
	struct bus *pio;
	struct irq_line irq;	/* unused until interrupts are modelled */
	uint8_t index;
	uint8_t cmos[CMOS_SIZE];
	/* Guest time = host UTC + offset; while register B's SET bit is on,
	 * the clock is frozen in @set_tm and the guest edits it. */
	int64_t offset;
	struct tm set_tm;
};

static bool rtc_is_time_reg(unsigned int reg)
{
	switch (reg) {
	case RTC_SECONDS: case RTC_MINUTES: case RTC_HOURS: case RTC_WDAY:
	case RTC_MDAY: case RTC_MONTH: case RTC_YEAR: case RTC_CENTURY:
		return true;
	}
	return false;
}

static void rtc_now(const struct rtc *r, struct tm *tm)
{
	time_t t = time(NULL) + r->offset;

	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm));
}

static uint8_t rtc_encode(const struct rtc *r, unsigned int v)
{
	v %= 100;
	if (r->cmos[RTC_REG_B] & RTC_B_DM)
		return v;
	return (uint8_t)((v / 10) << 4 | (v % 10));
}

/* Returns -1 for a value that is not valid in the current mode. */
static int rtc_decode(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_DM)
		return v < 100 ? v : -1;
	if ((v >> 4) > 9 || (v & 0xf) > 9)
		return -1;
	return (v >> 4) * 10 + (v & 0xf);
}

static uint8_t rtc_read_time(const struct rtc *r, unsigned int reg)
{
	struct tm tm;
	int h;

	if (r->cmos[RTC_REG_B] & RTC_B_SET)
		tm = r->set_tm;
	else
		rtc_now(r, &tm);
	switch (reg) {
	case RTC_SECONDS:
		return rtc_encode(r, MIN(tm.tm_sec, 59));
	case RTC_MINUTES:
		return rtc_encode(r, tm.tm_min);
	case RTC_HOURS:
		if (r->cmos[RTC_REG_B] & RTC_B_24H)
			return rtc_encode(r, tm.tm_hour);
		h = tm.tm_hour % 12;
		return rtc_encode(r, h ? h : 12) | (tm.tm_hour >= 12 ? RTC_HOUR_PM : 0);
	case RTC_WDAY:
		return rtc_encode(r, tm.tm_wday + 1);
	case RTC_MDAY:
		return rtc_encode(r, tm.tm_mday);
	case RTC_MONTH:
		return rtc_encode(r, tm.tm_mon + 1);
	case RTC_YEAR:
		return rtc_encode(r, (unsigned int)(tm.tm_year + 1900) % 100);
	case RTC_CENTURY:
		return rtc_encode(r, (unsigned int)(tm.tm_year + 1900) / 100);
	}
	return 0;
}

/* Store one guest-written time field into @tm; false if out of range. */
static bool rtc_set_field(const struct rtc *r, struct tm *tm, unsigned int reg, uint8_t v)
{
	int n, pm = 0;

	if (reg == RTC_HOURS && !(r->cmos[RTC_REG_B] & RTC_B_24H)) {
		pm = v & RTC_HOUR_PM;
		v &= ~RTC_HOUR_PM;
	}
	n = rtc_decode(r, v);
	switch (reg) {
	case RTC_SECONDS:
		if (n < 0 || n > 59)
			return false;
		tm->tm_sec = n;
		return true;
	case RTC_MINUTES:
		if (n < 0 || n > 59)
			return false;
		tm->tm_min = n;
		return true;
	case RTC_HOURS:
		if (!(r->cmos[RTC_REG_B] & RTC_B_24H)) {
			if (n < 1 || n > 12)
				return false;
			n = n % 12 + (pm ? 12 : 0);
		}
		if (n < 0 || n > 23)
			return false;
		tm->tm_hour = n;
		return true;
	case RTC_MDAY:
		if (n < 1 || n > 31)
			return false;
		tm->tm_mday = n;
		return true;
	case RTC_MONTH:
		if (n < 1 || n > 12)
			return false;
		tm->tm_mon = n - 1;
		return true;
	case RTC_YEAR:
		if (n < 0)
			return false;
		tm->tm_year = (tm->tm_year + 1900) / 100 * 100 + n - 1900;
		return true;
	case RTC_CENTURY:
		if (n < 19)
			return false;
		tm->tm_year = n * 100 + (tm->tm_year + 1900) % 100 - 1900;
		return true;
	}
	/* Day of week: derived from the date, writes are dropped. */
	return false;
}

static void rtc_apply_tm(struct rtc *r, struct tm *tm)
{
	time_t t = timegm(tm);

	if (t == (time_t)-1)
		return;
	r->offset = (int64_t)t - (int64_t)time(NULL);
}

static void rtc_write_time(struct rtc *r, unsigned int reg, uint8_t v)
{
	struct tm tm;

	/* While SET is on the guest writes all fields one by one; they are
	 * applied together when it clears SET, so that an intermediate date
	 * (31 February) is never normalised. */
	if (r->cmos[RTC_REG_B] & RTC_B_SET) {
		rtc_set_field(r, &r->set_tm, reg, v);
		return;
	}
	rtc_now(r, &tm);
	if (rtc_set_field(r, &tm, reg, v))
		rtc_apply_tm(r, &tm);
}

static void rtc_write_reg_b(struct rtc *r, uint8_t v)
{
	uint8_t old = r->cmos[RTC_REG_B];

	if (!(old & RTC_B_SET) && (v & RTC_B_SET))
		rtc_now(r, &r->set_tm);
	r->cmos[RTC_REG_B] = v;
	if ((old & RTC_B_SET) && !(v & RTC_B_SET))
		rtc_apply_tm(r, &r->set_tm);
}

static uint8_t rtc_read_data(struct rtc *r)
{
	unsigned int reg = r->index;

	if (rtc_is_time_reg(reg))
		return rtc_read_time(r, reg);
	switch (reg) {
	case RTC_REG_A:
		/* UIP stays low: reads are never torn by an update. */
		return r->cmos[reg] & ~RTC_A_UIP;
	case RTC_REG_C:
		return 0;
	case RTC_REG_D:
		return RTC_D_VRT;
	}
	return r->cmos[reg];
}

static void rtc_write_data(struct rtc *r, uint8_t v)
{
	unsigned int reg = r->index;

	if (rtc_is_time_reg(reg)) {
		rtc_write_time(r, reg, v);
		return;
	}
	switch (reg) {
	case RTC_REG_A:
		r->cmos[reg] = v & ~RTC_A_UIP;
		break;
	case RTC_REG_B:
		rtc_write_reg_b(r, v);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break;		/* read-only */
	default:
		r->cmos[reg] = v;
		break;
	}
}

static void rtc_pio_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct rtc *r = opaque;

	memset(data, 0xff, len);
	pthread_mutex_lock(&r->lock);
	/* Byte cycles: an inw at 0x70 reads the (write-only) index port and
	 * then the data port. */
	for (uint32_t i = 0; i < len; i++)
		if (off + i == 1)
			data[i] = rtc_read_data(r);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_pio_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct rtc *r = opaque;

	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (off + i == 0)
			r->index = data[i] & 0x7f;	/* bit 7: NMI mask, ignored */
		else if (off + i == 1)
			rtc_write_data(r, data[i]);
	}
	pthread_mutex_unlock(&r->lock);
}

static const struct bus_ops rtc_ops = {
	.read = rtc_pio_read,
	.write = rtc_pio_write,
};

static void rtc_put16(struct rtc *r, unsigned int lo, uint64_t v)
{
	v = MIN(v, 0xffffULL);
	r->cmos[lo] = (uint8_t)v;
	r->cmos[lo + 1] = (uint8_t)(v >> 8);
}

/* The RAM layout follows mem.h: RAM up to the 32-bit hole, the rest from
 * 4 GiB. */
static void rtc_set_memory(struct rtc *r, uint64_t ram_size)
{
	uint64_t below_4g = MIN(ram_size, MEM_HOLE_START);
	uint64_t above_4g = ram_size - below_4g;
	uint64_t v;

	rtc_put16(r, CMOS_BASE_MEM_LO, 640);
	v = below_4g > 1 * MiB ? (below_4g - 1 * MiB) / KiB : 0;
	rtc_put16(r, CMOS_EXT_MEM_LO, v);
	rtc_put16(r, CMOS_EXT_MEM2_LO, v);
	v = below_4g > 16 * MiB ? (below_4g - 16 * MiB) / (64 * KiB) : 0;
	rtc_put16(r, CMOS_MEM_16M_LO, v);
	v = MIN(above_4g / (64 * KiB), 0xffffffULL);
	r->cmos[CMOS_MEM_4G_0] = (uint8_t)v;
	r->cmos[CMOS_MEM_4G_1] = (uint8_t)(v >> 8);
	r->cmos[CMOS_MEM_4G_2] = (uint8_t)(v >> 16);
}

struct rtc *rtc_create(struct bus *pio, struct irq_line irq, uint64_t ram_size)
{
	struct rtc *r;
	int ret;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	r->pio = pio;
	r->irq = irq;
	r->cmos[RTC_REG_A] = 0x26;		/* 32.768 kHz base, 1024 Hz rate */
	r->cmos[RTC_REG_B] = RTC_B_24H;	/* BCD, 24-hour */
	rtc_set_memory(r, ram_size);

	ret = bus_register(pio, PLAT_RTC_PORT, 2, &rtc_ops, r, "rtc");
	if (ret < 0) {
		log_error("rtc: cannot claim ports 0x%x-0x%x: %s", PLAT_RTC_PORT,
			  PLAT_RTC_PORT + 1, strerror(-ret));
		pthread_mutex_destroy(&r->lock);
		free(r);
		errno = -ret;
		return NULL;
	}
	return r;
}

void rtc_destroy(struct rtc *r)
{
	if (!r)
		return;
	bus_unregister(r->pio, PLAT_RTC_PORT, r);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Migration: the CMOS bytes, the index register, and the guest's offset
 * from host UTC (both hosts keep UTC; the offset is what the guest set). */
int rtc_save(struct rtc *r, void *fdt)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	ret |= fdt_property(fdt, "cmos", r->cmos, sizeof(r->cmos));
	ret |= fdt_property_u32(fdt, "index", r->index);
	ret |= fdt_property_u64(fdt, "offset", (uint64_t)r->offset);
	ret |= fdt_property(fdt, "set-tm", &r->set_tm, sizeof(r->set_tm));
	pthread_mutex_unlock(&r->lock);
	return ret ? -ENOSPC : 0;
}

int rtc_load(struct rtc *r, const void *fdt, int node)
{
	const void *cmos, *tm, *off;
	int len, tlen, olen;

	cmos = fdt_getprop(fdt, node, "cmos", &len);
	tm = fdt_getprop(fdt, node, "set-tm", &tlen);
	off = fdt_getprop(fdt, node, "offset", &olen);
	if ((cmos && len != (int)sizeof(r->cmos)) || (tm && tlen != (int)sizeof(r->set_tm)) ||
	    (off && olen != 8))
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (cmos)
		memcpy(r->cmos, cmos, sizeof(r->cmos));
	if (tm)
		memcpy(&r->set_tm, tm, sizeof(r->set_tm));
	if (off) {
		fdt64_t v;

		memcpy(&v, off, sizeof(v));    /* FDT values are 4-byte aligned */
		r->offset = (int64_t)fdt64_to_cpu(v);
	}
	r->index = dev_state_u32(fdt, node, "index", r->index) % CMOS_SIZE;
	pthread_mutex_unlock(&r->lock);
	return 0;
}
