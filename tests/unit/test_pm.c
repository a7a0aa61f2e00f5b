/* Unit tests for devices/pm.c, driven through a real port bus. */
#include <stdlib.h>
#include <time.h>

#include "ferry/devices.h"
#include "ferry/platform.h"
#include "tap.h"

struct fixture {
	struct bus pio;
	struct pm *pm;
	int poweroffs;
	int sci_level, sci_changes;
};

static void on_poweroff(void *ctx)
{
	((struct fixture *)ctx)->poweroffs++;
}

static void on_sci(void *ctx, unsigned int gsi, int level)
{
	struct fixture *f = ctx;

	CHECK_EQ(gsi, PLAT_ACPI_SCI_IRQ);
	f->sci_level = level;
	f->sci_changes++;
}

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	bus_init(&f->pio, "pio");
	f->pm = pm_create(&f->pio, (struct irq_line){ on_sci, f, PLAT_ACPI_SCI_IRQ },
			  (struct dev_event){ on_poweroff, f });
	if (!f->pm)
		abort();
}

static void teardown(struct fixture *f)
{
	pm_destroy(f->pm);
	CHECK_EQ(f->pio.nr, 0);
	bus_destroy(&f->pio);
}

static uint32_t in(struct fixture *f, uint16_t port, uint32_t len)
{
	uint8_t d[4] = { 0 };

	CHECK(bus_access(&f->pio, port, d, len, false));
	return (uint32_t)bus_get(d, len);
}

static void out(struct fixture *f, uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t d[4];

	bus_put(d, len, v);
	CHECK(bus_access(&f->pio, port, d, len, true));
}

TEST(s5_powers_off)
{
	struct fixture f;

	setup(&f);
	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	out(&f, PLAT_PM1_CNT_PORT, 2, PLAT_S5_SLP_TYP << 10);
	CHECK_EQ(f.poweroffs, 0);
	out(&f, PLAT_PM1_CNT_PORT, 2, PLAT_S5_SLP_TYP << 10 | 0x2000);
	CHECK_EQ(f.poweroffs, 1);
	/* SLP_EN is write-only. */
	CHECK_EQ(in(&f, PLAT_PM1_CNT_PORT, 2) & 0x2000, 0);
	teardown(&f);
}

TEST(other_sleep_types_ignored)
{
	struct fixture f;

	setup(&f);
	for (uint32_t typ = 0; typ < 8; typ++) {
		if (typ == PLAT_S5_SLP_TYP)
			continue;
		out(&f, PLAT_PM1_CNT_PORT, 2, typ << 10 | 0x2000);
		CHECK_EQ(in(&f, PLAT_PM1_CNT_PORT, 2) & 0x1c00, typ << 10);
	}
	CHECK_EQ(f.poweroffs, 0);
	/* A byte write of the high half alone also counts (SLP_TYP from
	 * what is stored is replaced by the written byte). */
	out(&f, PLAT_PM1_CNT_PORT + 1, 1, (PLAT_S5_SLP_TYP << 2) | 0x20);
	CHECK_EQ(f.poweroffs, 1);
	teardown(&f);
}

TEST(sci_en_reads_one)
{
	struct fixture f;

	setup(&f);
	CHECK_EQ(in(&f, PLAT_PM1_CNT_PORT, 2) & 1, 1);
	out(&f, PLAT_PM1_CNT_PORT, 2, 0);
	CHECK_EQ(in(&f, PLAT_PM1_CNT_PORT, 2) & 1, 1);
	teardown(&f);
}

TEST(pm_timer_counts)
{
	struct fixture f;
	struct timespec ts = { 0, 2000000 };
	uint32_t a, b;

	setup(&f);
	a = in(&f, PLAT_PM_TMR_PORT, 4);
	nanosleep(&ts, NULL);
	b = in(&f, PLAT_PM_TMR_PORT, 4);
	CHECK_EQ(a >> 24, 0);
	CHECK_EQ(b >> 24, 0);
	/* At least 2 ms is at least ~7000 ticks (modulo the 24-bit wrap). */
	CHECK(((b - a) & 0xffffff) >= 7000);
	/* Read-only. */
	out(&f, PLAT_PM_TMR_PORT, 4, 0);
	teardown(&f);
}

TEST(power_button)
{
	struct fixture f;

	setup(&f);
	/* Not enabled: status set, no SCI. */
	pm_power_button(f.pm);
	CHECK_EQ(in(&f, PLAT_PM1_EVT_PORT, 2) & 0x100, 0x100);
	CHECK_EQ(f.sci_level, 0);
	CHECK_EQ(f.sci_changes, 0);
	/* Enabling with status pending raises it. */
	out(&f, PLAT_PM1_EVT_PORT + 2, 2, 0x100);
	CHECK_EQ(in(&f, PLAT_PM1_EVT_PORT + 2, 2), 0x100);
	CHECK_EQ(f.sci_level, 1);
	/* Writing 0 changes nothing; writing 1 clears. */
	out(&f, PLAT_PM1_EVT_PORT, 2, 0);
	CHECK_EQ(f.sci_level, 1);
	out(&f, PLAT_PM1_EVT_PORT, 2, 0x100);
	CHECK_EQ(in(&f, PLAT_PM1_EVT_PORT, 2) & 0x100, 0);
	CHECK_EQ(f.sci_level, 0);
	/* Enabled: the press raises the SCI, once. */
	pm_power_button(f.pm);
	pm_power_button(f.pm);
	CHECK_EQ(f.sci_level, 1);
	CHECK_EQ(f.sci_changes, 3);
	/* A 4-byte write covering STS and EN: clear status, keep enable. */
	out(&f, PLAT_PM1_EVT_PORT, 4, 0x01000100);
	CHECK_EQ(f.sci_level, 0);
	CHECK_EQ(in(&f, PLAT_PM1_EVT_PORT, 4), 0x01000000);
	CHECK_EQ(f.poweroffs, 0);
	teardown(&f);
}

TEST(hostile_accesses)
{
	struct fixture f;
	uint8_t d[8];

	setup(&f);
	memset(d, 0xff, sizeof(d));
	/* Every offset and size that fits in the block; SLP_EN with
	 * S5 is the only thing that may fire. */
	for (uint32_t len = 1; len <= 8; len *= 2)
		for (uint16_t p = PLAT_ACPI_PM_PORT; p < PLAT_ACPI_PM_PORT + 16; p++) {
			bus_access(&f.pio, p, d, len, false);
			memset(d, 0x00, sizeof(d));
			bus_access(&f.pio, p, d, len, true);
		}
	/* The reset control register at 0xcf9 is the host bridge's (pci.c). */
	CHECK(!bus_access(&f.pio, PLAT_RESET_PORT, d, 1, true));
	teardown(&f);
}

int main(void)
{
	RUN(s5_powers_off);
	RUN(other_sleep_types_ignored);
	RUN(sci_en_reads_one);
	RUN(pm_timer_counts);
	RUN(power_button);
	RUN(hostile_accesses);
	return tap_done();
}
