/* ACPI fixed hardware in I/O space: PM1a event block (status/enable), PM1a
 * control (SLP_TYP/SLP_EN -> power off), the PM timer, and the power button
 * and its SCI.  The chipset reset control register at 0xcf9 belongs to the
 * host bridge (pci.c).
 *
 * Not modelled: the PM timer overflow event (TMR_STS) and sleep states other
 * than S5 (a request for them is logged and ignored). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/platform.h"
#include "ferry/util.h"

/* Offsets inside the one block registered at PLAT_ACPI_PM_PORT. */
#define PM_STS_OFF	(PLAT_PM1_EVT_PORT - PLAT_ACPI_PM_PORT)
#define PM_EN_OFF	(PM_STS_OFF + 2)
#define PM_CNT_OFF	(PLAT_PM1_CNT_PORT - PLAT_ACPI_PM_PORT)
#define PM_TMR_OFF	(PLAT_PM_TMR_PORT - PLAT_ACPI_PM_PORT)
#define PM_BLOCK_LEN	(PM_TMR_OFF + 4)

_Static_assert(PM_STS_OFF % 2 == 0 && PM_CNT_OFF % 2 == 0 && PM_TMR_OFF % 4 == 0,
	       "PM registers must be naturally aligned");
_Static_assert(PM_EN_OFF + 2 <= PM_CNT_OFF && PM_CNT_OFF + 2 <= PM_TMR_OFF,
	       "PM registers overlap");

#define PM1_TMR_STS	0x0001
#define PM1_GBL_STS	0x0020
#define PM1_PWRBTN_STS	0x0100
#define PM1_SLPBTN_STS	0x0200
#define PM1_RTC_STS	0x0400
#define PM1_WAK_STS	0x8000
/* Bits the guest clears by writing 1 (BM_STS and others read as 0 here). */
#define PM1_STS_W1C	(PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | \
			 PM1_SLPBTN_STS | PM1_RTC_STS | PM1_WAK_STS)
/* Enable bits exist for TMR, GBL, PWRBTN, SLPBTN, RTC. */
#define PM1_EN_MASK	(PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | \
			 PM1_SLPBTN_STS | PM1_RTC_STS)

#define PM1_CNT_SCI_EN	0x0001
#define PM1_CNT_BM_RLD	0x0002
#define PM1_CNT_SLP_TYP	0x1c00
#define PM1_CNT_SLP_EN	0x2000	/* write-only: triggers the transition */
#define PM1_CNT_STORED	(PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP)

#define PM_TMR_HZ	3579545ULL
#define PM_TMR_MASK	0xffffffu

enum pm_action { PM_NONE, PM_POWEROFF };

struct pm {
	pthread_mutex_t lock;
	struct bus *pio;
	struct irq_line sci;
	int sci_level;
	struct dev_event poweroff;
	uint16_t sts, en, cnt;
	uint64_t tmr_base_ns;
	bool warned_sleep;
};

static void pm_update_sci(struct pm *pm)
{
	int level = (pm->sts & pm->en & PM1_EN_MASK) != 0;

	if (level != pm->sci_level) {
		pm->sci_level = level;
		irq_line_set(&pm->sci, level);
	}
}

static uint32_t pm_timer(const struct pm *pm)
{
	uint64_t ns = now_ns() - pm->tmr_base_ns;
	uint64_t ticks = ns / 1000000000ULL * PM_TMR_HZ +
			 ns % 1000000000ULL * PM_TMR_HZ / 1000000000ULL;

	return (uint32_t)ticks & PM_TMR_MASK;
}

static void pm_evt_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pm *pm = opaque;
	uint8_t regs[PM_BLOCK_LEN] = { 0 };
	uint32_t tmr;

	pthread_mutex_lock(&pm->lock);
	regs[PM_STS_OFF] = (uint8_t)pm->sts;
	regs[PM_STS_OFF + 1] = (uint8_t)(pm->sts >> 8);
	regs[PM_EN_OFF] = (uint8_t)pm->en;
	regs[PM_EN_OFF + 1] = (uint8_t)(pm->en >> 8);
	/* ACPI is always on: there is no legacy mode to switch from. */
	regs[PM_CNT_OFF] = (uint8_t)(pm->cnt | PM1_CNT_SCI_EN);
	regs[PM_CNT_OFF + 1] = (uint8_t)(pm->cnt >> 8);
	pthread_mutex_unlock(&pm->lock);
	tmr = pm_timer(pm);
	for (int i = 0; i < 4; i++)
		regs[PM_TMR_OFF + i] = (uint8_t)(tmr >> (8 * i));
	for (uint32_t i = 0; i < len; i++)
		data[i] = off + i < PM_BLOCK_LEN ? regs[off + i] : 0xff;
}

/* The bytes of a write that land in the 16-bit register at @reg: their value
 * and a mask of which bytes were written. */
static uint16_t pm_slice(uint64_t off, const uint8_t *data, uint32_t len,
			 unsigned int reg, uint16_t *mask)
{
	uint16_t v = 0;

	*mask = 0;
	for (uint32_t i = 0; i < len; i++) {
		if (off + i == reg) {
			v |= data[i];
			*mask |= 0x00ff;
		} else if (off + i == reg + 1) {
			v |= (uint16_t)data[i] << 8;
			*mask |= 0xff00;
		}
	}
	return v;
}

static enum pm_action pm_write_cnt(struct pm *pm, uint16_t v, uint16_t mask)
{
	unsigned int typ;

	v = (pm->cnt & ~mask) | (v & mask);
	pm->cnt = v & PM1_CNT_STORED;
	if (!(v & PM1_CNT_SLP_EN))
		return PM_NONE;
	typ = (v & PM1_CNT_SLP_TYP) >> 10;
	if (typ == PLAT_S5_SLP_TYP)
		return PM_POWEROFF;
	if (!pm->warned_sleep) {
		pm->warned_sleep = true;
		log_warn("pm: guest asked for sleep type %u; only S5 (%u) is supported",
			 typ, PLAT_S5_SLP_TYP);
	}
	return PM_NONE;
}

static void pm_evt_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pm *pm = opaque;
	enum pm_action act = PM_NONE;
	uint16_t v, mask;

	pthread_mutex_lock(&pm->lock);
	v = pm_slice(off, data, len, PM_STS_OFF, &mask);
	pm->sts &= ~(v & mask & PM1_STS_W1C);
	v = pm_slice(off, data, len, PM_EN_OFF, &mask);
	pm->en = (pm->en & ~mask) | (v & mask & PM1_EN_MASK);
	v = pm_slice(off, data, len, PM_CNT_OFF, &mask);
	if (mask)
		act = pm_write_cnt(pm, v, mask);
	/* The PM timer is read-only. */
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);

	/* Outside the lock: the handlers stop the VM. */
	if (act == PM_POWEROFF)
		dev_event_fire(&pm->poweroff);
}

static const struct bus_ops pm_evt_ops = {
	.read = pm_evt_read,
	.write = pm_evt_write,
};

void pm_power_button(struct pm *pm)
{
	if (!pm)
		return;
	pthread_mutex_lock(&pm->lock);
	pm->sts |= PM1_PWRBTN_STS;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

struct pm *pm_create(struct bus *pio, struct irq_line sci, struct dev_event poweroff)
{
	struct pm *pm;
	int ret;

	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	pthread_mutex_init(&pm->lock, NULL);
	pm->pio = pio;
	pm->sci = sci;
	pm->poweroff = poweroff;
	pm->tmr_base_ns = now_ns();

	ret = bus_register(pio, PLAT_ACPI_PM_PORT, PM_BLOCK_LEN, &pm_evt_ops, pm, "acpi-pm");
	if (ret < 0) {
		log_error("pm: cannot claim ports 0x%x-0x%x: %s", PLAT_ACPI_PM_PORT,
			  PLAT_ACPI_PM_PORT + PM_BLOCK_LEN - 1, strerror(-ret));
		goto err;
	}
	return pm;
err:
	pthread_mutex_destroy(&pm->lock);
	free(pm);
	errno = -ret;
	return NULL;
}

void pm_destroy(struct pm *pm)
{
	if (!pm)
		return;
	bus_unregister(pm->pio, PLAT_ACPI_PM_PORT, pm);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

/* Migration: the PM1 registers and the PM timer's count, which goes on
 * from where it was (the guest measures time with it). */
int pm_save(struct pm *pm, void *fdt)
{
	int ret = 0;

	pthread_mutex_lock(&pm->lock);
	ret |= fdt_property_u32(fdt, "sts", pm->sts);
	ret |= fdt_property_u32(fdt, "en", pm->en);
	ret |= fdt_property_u32(fdt, "cnt", pm->cnt);
	ret |= fdt_property_u32(fdt, "tmr", pm_timer(pm));
	pthread_mutex_unlock(&pm->lock);
	return ret ? -ENOSPC : 0;
}

int pm_load(struct pm *pm, const void *fdt, int node)
{
	uint32_t tmr;

	pthread_mutex_lock(&pm->lock);
	pm->sts = dev_state_u32(fdt, node, "sts", pm->sts);
	pm->en = dev_state_u32(fdt, node, "en", pm->en);
	pm->cnt = dev_state_u32(fdt, node, "cnt", pm->cnt);
	tmr = dev_state_u32(fdt, node, "tmr", 0) & PM_TMR_MASK;
	pm->tmr_base_ns = now_ns() - (uint64_t)tmr * 1000000000ULL / PM_TMR_HZ;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}
