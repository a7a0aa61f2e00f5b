/* libFuzzer target for the migration state loaders that need no KVM fd:
 * mig_machine_check (migrate/state.c) against a fake 64 MiB, 1-vCPU VM,
 * and the platform devices' X_load (devices/) on the nodes under
 * /devices, after the same fdt_check_full the destination does.  A loaded
 * device must then serve the guest's port reads without going past its
 * buffers (ASan watches).
 *
 * Input: an FDT blob, as the STATE or MACHINE record carries it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "ferry/bus.h"
#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/migrate.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/vm.h"

#define UART_BASE 0x3f8

static struct bus pio;
static struct uart *uart;
static struct i8042 *kbd;
static struct rtc *rtc;
static struct pm *pm;
static struct vm fake_vm;

static void setup(void)
{
	log_set_level(LOG_ERROR);
	bus_init(&pio, "pio");
	uart = uart_create(&pio, UART_BASE, (struct irq_line){ 0 }, -1);
	kbd = i8042_create(&pio, (struct dev_event){ 0 });
	rtc = rtc_create(&pio, (struct irq_line){ 0 }, 64 * MiB);
	pm = pm_create(&pio, (struct irq_line){ 0 }, (struct dev_event){ 0 });
	if (!uart || !kbd || !rtc || !pm)
		abort();
	gm_layout(64 * MiB, &fake_vm.mem);
	fake_vm.nr_vcpus = 1;
}

static void io(uint16_t port, uint8_t len, bool write, uint32_t val)
{
	uint8_t d[4];

	bus_put(d, len, val);
	bus_access(&pio, port, d, len, write);
}

/* What a guest does right after the switchover: drain the UART, read the
 * CMOS and the PM block. */
static void poke(void)
{
	for (int i = 0; i < 80; i++) {
		io(UART_BASE + 5, 1, false, 0);         /* LSR */
		io(UART_BASE + 2, 1, false, 0);         /* IIR */
		io(UART_BASE, 1, false, 0);             /* RBR */
	}
	for (int i = 0; i < 8; i++)
		io(UART_BASE + i, 1, false, 0);
	for (unsigned int i = 0; i < 0x80; i += 7) {
		io(PLAT_RTC_PORT, 1, true, i);
		io(PLAT_RTC_PORT + 1, 1, false, 0);
	}
	io(PLAT_RTC_PORT + 1, 1, false, 0);     /* at the loaded index */
	io(PLAT_PM1_EVT_PORT, 4, false, 0);
	io(PLAT_PM1_CNT_PORT, 2, false, 0);
	io(PLAT_PM_TMR_PORT, 4, false, 0);
	io(PLAT_I8042_CMD_PORT, 1, false, 0);
	io(PLAT_I8042_DATA_PORT, 1, false, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	struct ferr e;
	void *fdt;
	int devs, node;

	if (!ready) {
		setup();
		ready = true;
	}
	if (len < sizeof(struct fdt_header) || len > MIG_STATE_MAX)
		return 0;
	/* An aligned copy of exactly @len bytes, as mig_rx_blob hands it. */
	fdt = malloc(len);
	if (!fdt)
		return 0;
	memcpy(fdt, data, len);
	/* Any verdict is fine; it must only not crash or leak. */
	mig_machine_check(&fake_vm, fdt, len, &e);
	/* libfdt 1.6.1's fdt_check_full dereferences NULL on a version < 16
	 * tree: ferry writes version 17 and must refuse the rest first (the
	 * destination's st_check in migrate/state.c). */
	if (fdt_totalsize(fdt) != len || fdt_version(fdt) < 17 ||
	    mig_fdt_walkable(fdt, len) || fdt_check_full(fdt, len))
		goto out;
	devs = fdt_subnode_offset(fdt, 0, "devices");
	if (devs < 0)
		goto out;
	if ((node = fdt_subnode_offset(fdt, devs, "uart")) >= 0)
		uart_load(uart, fdt, node);
	if ((node = fdt_subnode_offset(fdt, devs, "i8042")) >= 0)
		i8042_load(kbd, fdt, node);
	if ((node = fdt_subnode_offset(fdt, devs, "rtc")) >= 0)
		rtc_load(rtc, fdt, node);
	if ((node = fdt_subnode_offset(fdt, devs, "pm")) >= 0)
		pm_load(pm, fdt, node);
	poke();
out:
	free(fdt);
	return 0;
}
