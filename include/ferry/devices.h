/* Platform devices (devices/): 16550A UART, i8042 (reset only), CMOS RTC,
 * ACPI PM1 block, PCI host bridge + reset control (0xcf9), debug port.
 *
 * Each device registers its ports on the bus it is given and keeps its own
 * lock: callbacks run on vCPU threads; host-side entry points (uart_input,
 * pm_power_button) run on the event loop thread. */
#ifndef FERRY_DEVICES_H
#define FERRY_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include <libfdt.h>

#include "ferry/bus.h"
#include "ferry/irq.h"

/* Migration state.  X_save() adds properties to the FDT node being written
 * (libfdt sequential write) while the vCPUs are paused; X_load() reads
 * them from @node of an FDT already checked with fdt_check_full(), before
 * the vCPUs run.  A missing property keeps the reset value, so a newer
 * ferry reads an older stream.  Both return 0 or a negative errno. */
static inline uint32_t dev_state_u32(const void *fdt, int node, const char *name,
				     uint32_t def)
{
	int len;
	const fdt32_t *p = (const fdt32_t *)fdt_getprop(fdt, node, name, &len);

	return p && len == 4 ? fdt32_to_cpu(*p) : def;
}

/* Something a device asks of the machine: power off, reset. */
struct dev_event {
	void (*fn)(void *ctx);
	void *ctx;
};

static inline void dev_event_fire(const struct dev_event *ev)
{
	if (ev && ev->fn)
		ev->fn(ev->ctx);
}

/* --- 16550A UART --- */
struct uart;
/* Output bytes go to @out_fd (-1: discarded). */
struct uart *uart_create(struct bus *pio, uint16_t base, struct irq_line irq,
			 int out_fd);
/* Queue bytes from the host for the guest to read.  Returns how many were
 * accepted (the receive buffer is bounded); the rest should be offered again
 * later. */
size_t uart_input(struct uart *u, const uint8_t *buf, size_t len);
/* Counters for stats; safe from any thread (relaxed loads, no lock). */
struct uart_stats {
	uint64_t tx_bytes;         /* written by the guest and sent to out_fd */
	uint64_t tx_dropped;       /* written by the guest, out_fd not accepting */
	uint64_t rx_bytes;         /* accepted from the host by uart_input */
};
void uart_get_stats(const struct uart *u, struct uart_stats *out);
int uart_save(struct uart *u, void *fdt);
int uart_load(struct uart *u, const void *fdt, int node);
void uart_destroy(struct uart *u);

/* --- i8042: only what guests use to reset the machine --- */
struct i8042;
struct i8042 *i8042_create(struct bus *pio, struct dev_event reset);
void i8042_destroy(struct i8042 *k);
int i8042_save(struct i8042 *k, void *fdt);
int i8042_load(struct i8042 *k, const void *fdt, int node);

/* --- CMOS RTC with the host's real time, and the CMOS bytes firmware reads
 * for the RAM size (0x30/0x31, 0x34/0x35, 0x5b-0x5d) --- */
struct rtc;
struct rtc *rtc_create(struct bus *pio, struct irq_line irq, uint64_t ram_size);
void rtc_destroy(struct rtc *r);
int rtc_save(struct rtc *r, void *fdt);
int rtc_load(struct rtc *r, const void *fdt, int node);

/* --- ACPI PM1a event/control blocks and PM timer.  Writing SLP_EN with
 * SLP_TYP == PLAT_S5_SLP_TYP fires @poweroff. --- */
struct pm;
struct pm *pm_create(struct bus *pio, struct irq_line sci, struct dev_event poweroff);
/* Press the power button: sets PWRBTN_STS and raises the SCI if enabled. */
void pm_power_button(struct pm *pm);
void pm_destroy(struct pm *pm);
int pm_save(struct pm *pm, void *fdt);
int pm_load(struct pm *pm, const void *fdt, int node);

/* --- PCI host bridge: type-1 configuration access at 0xcf8/0xcfc.  Bus 0,
 * with the host bridge at 00:00.0; other devices are added by their
 * transports.  The bridge also holds the chipset's reset control register
 * (a byte at 0xcf9, inside CONFIG_ADDRESS's dword): writing it with the
 * reset bit (RST_CPU) set fires @reset. --- */
struct pci_dev;
struct pci_bus;

struct pci_dev_ops {
	/* Config space accesses outside what pci.c handles itself (the
	 * device may also leave these NULL and let pci.c serve cfg[]). */
	void (*cfg_write)(struct pci_dev *d, uint32_t off, uint32_t val, uint32_t len);
	/* A BAR was (re)programmed by the guest: move the device's range. */
	void (*bar_moved)(struct pci_dev *d, int bar, uint64_t old_addr, uint64_t new_addr);
};

struct pci_dev {
	uint8_t cfg[256];          /* config space image */
	uint32_t bar_size[6];      /* 0: BAR unused; power of two */
	uint8_t bar_is_io[6];
	uint8_t devfn;             /* slot << 3 | function */
	const struct pci_dev_ops *ops;
	void *opaque;
};

struct pci_bus *pci_create(struct bus *pio, struct dev_event reset);
/* Add a device; its devfn picks the slot.  -EEXIST if taken. */
int pci_add(struct pci_bus *pb, struct pci_dev *d);
void pci_destroy(struct pci_bus *pb);

/* --- Debug port 0x402: bytes the guest writes go to the log at info level,
 * a line at a time. --- */
struct debugport;
struct debugport *debugport_create(struct bus *pio);
void debugport_destroy(struct debugport *d);

#endif
