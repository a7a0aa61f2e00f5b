/* 16550A UART on the port bus: registers, 16-byte RX FIFO, interrupt
 * identification, loopback, and the host side (output fd, bounded input
 * buffer).  Transmission is instantaneous: THR is always empty again by the
 * time the guest looks. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/util.h"

#define UART_NR_REGS	8

/* Register offsets (DLAB picks DLL/DLM at 0/1). */
#define UART_RBR	0	/* read: receive buffer; write: THR */
#define UART_IER	1
#define UART_IIR	2	/* read: IIR; write: FCR */
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_MSR	6
#define UART_SCR	7

#define UART_IER_RDI	0x01
#define UART_IER_THRI	0x02
#define UART_IER_RLSI	0x04
#define UART_IER_MSI	0x08
#define UART_IER_MASK	0x0f

#define UART_IIR_NO_INT	0x01
#define UART_IIR_MSI	0x00
#define UART_IIR_THRI	0x02
#define UART_IIR_RDI	0x04
#define UART_IIR_RLSI	0x06
#define UART_IIR_TIMEOUT 0x0c
#define UART_IIR_FIFO	0xc0

#define UART_FCR_ENABLE	0x01
#define UART_FCR_CLR_RX	0x02
#define UART_FCR_CLR_TX	0x04
#define UART_FCR_TRIG(v) (((v) >> 6) & 3)

#define UART_LCR_DLAB	0x80

#define UART_MCR_DTR	0x01
#define UART_MCR_RTS	0x02
#define UART_MCR_OUT1	0x04
#define UART_MCR_OUT2	0x08
#define UART_MCR_LOOP	0x10
#define UART_MCR_MASK	0x1f

#define UART_LSR_DR	0x01
#define UART_LSR_OE	0x02
#define UART_LSR_ERRS	0x1e	/* OE, PE, FE, BI: cleared by reading LSR */
#define UART_LSR_THRE	0x20
#define UART_LSR_TEMT	0x40

#define UART_MSR_DCTS	0x01
#define UART_MSR_DDSR	0x02
#define UART_MSR_TERI	0x04
#define UART_MSR_DDCD	0x08
#define UART_MSR_CTS	0x10
#define UART_MSR_DSR	0x20
#define UART_MSR_RI	0x40
#define UART_MSR_DCD	0x80

#define UART_FIFO_SIZE	16
#define UART_HOST_BUF	4096	/* power of two */
/* How long a THR write may wait for a slow reader of out_fd before the byte
 * is dropped; after one such timeout we stop waiting until it drains. */
#define UART_OUT_WAIT_MS 100

static const uint8_t uart_trig_levels[4] = { 1, 4, 8, 14 };

struct uart {
	pthread_mutex_t lock;
	struct bus *pio;
	uint16_t base;
	struct irq_line irq;
	int irq_level;
	int out_fd;
	bool out_stalled;
	uint64_t out_dropped;
	/* Written under lock, read lock-free by uart_get_stats(). */
	uint64_t tx_bytes, rx_bytes;

	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t lsr_err;	/* sticky OE/PE/FE/BI */
	uint8_t msr_delta;	/* DCTS/DDSR/TERI/DDCD */
	bool fifo_enabled;
	uint8_t rx_trigger;
	bool thr_pending;	/* THRE interrupt not yet acknowledged */

	uint8_t rx[UART_FIFO_SIZE];
	unsigned int rx_head, rx_count;

	/* Bytes from the host waiting for room in the RX FIFO. */
	uint8_t host[UART_HOST_BUF];
	unsigned int host_head, host_count;
};

static unsigned int uart_rx_capacity(const struct uart *u)
{
	/* Without the FIFO the 16550 behaves as an 8250: one holding register. */
	return u->fifo_enabled ? UART_FIFO_SIZE : 1;
}

/* Returns false (overrun) when the FIFO is full. */
static bool uart_rx_push(struct uart *u, uint8_t b)
{
	if (u->rx_count >= uart_rx_capacity(u))
		return false;
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = b;
	u->rx_count++;
	return true;
}

/* Move host bytes into the FIFO.  In loopback the serial input is
 * disconnected, so host bytes wait. */
static void uart_rx_refill(struct uart *u)
{
	if (u->mcr & UART_MCR_LOOP)
		return;
	while (u->host_count && uart_rx_push(u, u->host[u->host_head])) {
		u->host_head = (u->host_head + 1) % UART_HOST_BUF;
		u->host_count--;
	}
}

static void uart_rx_clear(struct uart *u)
{
	u->rx_head = u->rx_count = 0;
}

/* Modem status inputs: in loopback they are the MCR outputs; otherwise a
 * modem that is always ready. */
static uint8_t uart_msr_lines(const struct uart *u)
{
	uint8_t m = 0;

	if (!(u->mcr & UART_MCR_LOOP))
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	if (u->mcr & UART_MCR_RTS)
		m |= UART_MSR_CTS;
	if (u->mcr & UART_MCR_DTR)
		m |= UART_MSR_DSR;
	if (u->mcr & UART_MCR_OUT1)
		m |= UART_MSR_RI;
	if (u->mcr & UART_MCR_OUT2)
		m |= UART_MSR_DCD;
	return m;
}

static uint8_t uart_lsr(const struct uart *u)
{
	uint8_t lsr = UART_LSR_THRE | UART_LSR_TEMT | u->lsr_err;

	if (u->rx_count)
		lsr |= UART_LSR_DR;
	return lsr;
}

/* The highest-priority pending interrupt, as IIR bits 3:0. */
static uint8_t uart_iir_id(const struct uart *u)
{
	if ((u->ier & UART_IER_RLSI) && u->lsr_err)
		return UART_IIR_RLSI;
	if ((u->ier & UART_IER_RDI) && u->rx_count) {
		/* No timer models the 4-character timeout: once the FIFO
		 * holds fewer bytes than the trigger level, everything the
		 * host had is already in it, so the timeout has in effect
		 * expired. */
		if (!u->fifo_enabled || u->rx_count >= u->rx_trigger)
			return UART_IIR_RDI;
		return UART_IIR_TIMEOUT;
	}
	if ((u->ier & UART_IER_THRI) && u->thr_pending)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_MSI) && u->msr_delta)
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* On PCs OUT2 gates the UART's interrupt onto the ISA line, and loopback
 * disconnects OUT2 from its pin, so no IRQ reaches the guest then. */
static void uart_update_irq(struct uart *u)
{
	int level = uart_iir_id(u) != UART_IIR_NO_INT &&
		    (u->mcr & (UART_MCR_OUT2 | UART_MCR_LOOP)) == UART_MCR_OUT2;

	if (level != u->irq_level) {
		u->irq_level = level;
		irq_line_set(&u->irq, level);
	}
}

static void uart_emit(struct uart *u, uint8_t b)
{
	struct pollfd pfd = { .fd = u->out_fd, .events = POLLOUT };
	int n;

	if (u->out_fd < 0)
		return;
	/* out_fd may be a blocking pipe whose reader went away or stalled:
	 * the vCPU must not hang in write(), so wait a bounded time for room
	 * (and not at all once a wait has timed out, until it drains). */
	n = poll(&pfd, 1, u->out_stalled ? 0 : UART_OUT_WAIT_MS);
	if (n == 1 && (pfd.revents & POLLOUT) &&
	    !(pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) &&
	    write_all(u->out_fd, &b, 1) == 0) {
		u->out_stalled = false;
		__atomic_store_n(&u->tx_bytes, u->tx_bytes + 1, __ATOMIC_RELAXED);
		return;
	}
	if (n == 0)
		u->out_stalled = true;
	__atomic_store_n(&u->out_dropped, u->out_dropped + 1, __ATOMIC_RELAXED);
	if (u->out_dropped == 1)
		log_warn("uart 0x%x: output fd %d is not accepting bytes; dropping output",
			 u->base, u->out_fd);
}

static uint8_t uart_read_reg(struct uart *u, unsigned int reg)
{
	uint8_t v, id;

	switch (reg) {
	case UART_RBR:
		if (u->lcr & UART_LCR_DLAB)
			return u->dll;
		if (!u->rx_count)
			return 0;
		v = u->rx[u->rx_head];
		u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
		u->rx_count--;
		uart_rx_refill(u);
		return v;
	case UART_IER:
		if (u->lcr & UART_LCR_DLAB)
			return u->dlm;
		return u->ier;
	case UART_IIR:
		id = uart_iir_id(u);
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if (id == UART_IIR_THRI)
			u->thr_pending = false;
		return id | (u->fifo_enabled ? UART_IIR_FIFO : 0);
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		v = uart_lsr(u);
		u->lsr_err = 0;
		return v;
	case UART_MSR:
		v = uart_msr_lines(u) | u->msr_delta;
		u->msr_delta = 0;
		return v;
	case UART_SCR:
		return u->scr;
	}
	return 0xff;
}

static void uart_write_fcr(struct uart *u, uint8_t v)
{
	bool enable = v & UART_FCR_ENABLE;

	if (!enable) {
		u->fifo_enabled = false;
		u->rx_trigger = 1;
		uart_rx_clear(u);
		goto refill;
	}
	/* Toggling the enable bit resets both FIFOs. */
	if (!u->fifo_enabled || (v & UART_FCR_CLR_RX))
		uart_rx_clear(u);
	u->fifo_enabled = true;
	u->rx_trigger = uart_trig_levels[UART_FCR_TRIG(v)];
	/* CLR_TX: the TX FIFO is always empty here. */
refill:
	uart_rx_refill(u);
}

static void uart_write_mcr(struct uart *u, uint8_t v)
{
	uint8_t old = uart_msr_lines(u), now, diff;

	u->mcr = v & UART_MCR_MASK;
	now = uart_msr_lines(u);
	diff = old ^ now;
	if (diff & UART_MSR_CTS)
		u->msr_delta |= UART_MSR_DCTS;
	if (diff & UART_MSR_DSR)
		u->msr_delta |= UART_MSR_DDSR;
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		u->msr_delta |= UART_MSR_TERI;
	if (diff & UART_MSR_DCD)
		u->msr_delta |= UART_MSR_DDCD;
	uart_rx_refill(u);	/* leaving loopback reconnects the input */
}

static void uart_write_reg(struct uart *u, unsigned int reg, uint8_t v)
{
	uint8_t old;

	switch (reg) {
	case UART_RBR:
		if (u->lcr & UART_LCR_DLAB) {
			u->dll = v;
			break;
		}
		if (u->mcr & UART_MCR_LOOP) {
			if (!uart_rx_push(u, v))
				u->lsr_err |= UART_LSR_OE;
		} else {
			uart_emit(u, v);
		}
		/* The byte left at once: THR is empty again and, if enabled,
		 * that is a new THRE interrupt (the write acknowledged the
		 * previous one). */
		u->thr_pending = u->ier & UART_IER_THRI;
		break;
	case UART_IER:
		if (u->lcr & UART_LCR_DLAB) {
			u->dlm = v;
			break;
		}
		old = u->ier;
		u->ier = v & UART_IER_MASK;
		/* Enabling THRI while THR is empty raises THRE at once; Linux's
		 * 8250 start-up test and its start_tx() rely on this. */
		if (!(u->ier & UART_IER_THRI))
			u->thr_pending = false;
		else if (!(old & UART_IER_THRI))
			u->thr_pending = true;
		break;
	case UART_IIR:
		uart_write_fcr(u, v);
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		uart_write_mcr(u, v);
		break;
	case UART_LSR:
	case UART_MSR:
		/* Factory-test writes: ignored, as most emulations do. */
		break;
	case UART_SCR:
		u->scr = v;
		break;
	}
}

/* Wider accesses are split into byte cycles, as the ISA bus does. */
static void uart_pio_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	for (uint32_t i = 0; i < len; i++)
		data[i] = off + i < UART_NR_REGS ? uart_read_reg(u, off + i) : 0xff;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_pio_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	for (uint32_t i = 0; i < len; i++)
		if (off + i < UART_NR_REGS)
			uart_write_reg(u, off + i, data[i]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static const struct bus_ops uart_ops = {
	.read = uart_pio_read,
	.write = uart_pio_write,
};

size_t uart_input(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	if (!u || !buf)
		return 0;
	pthread_mutex_lock(&u->lock);
	/* Room is the host buffer plus whatever the FIFO can take from it. */
	for (;;) {
		size_t n = MIN(len - done, (size_t)(UART_HOST_BUF - u->host_count));

		if (!n)
			break;
		for (size_t i = 0; i < n; i++)
			u->host[(u->host_head + u->host_count + i) % UART_HOST_BUF] = buf[done + i];
		u->host_count += n;
		done += n;
		__atomic_store_n(&u->rx_bytes, u->rx_bytes + n, __ATOMIC_RELAXED);
		uart_rx_refill(u);
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return done;
}

void uart_get_stats(const struct uart *u, struct uart_stats *out)
{
	out->tx_bytes = __atomic_load_n(&u->tx_bytes, __ATOMIC_RELAXED);
	out->tx_dropped = __atomic_load_n(&u->out_dropped, __ATOMIC_RELAXED);
	out->rx_bytes = __atomic_load_n(&u->rx_bytes, __ATOMIC_RELAXED);
}

struct uart *uart_create(struct bus *pio, uint16_t base, struct irq_line irq,
			 int out_fd)
{
	struct uart *u;
	int ret;

	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	pthread_mutex_init(&u->lock, NULL);
	u->pio = pio;
	u->base = base;
	u->irq = irq;
	u->out_fd = out_fd;
	u->rx_trigger = 1;
	u->dll = 12;		/* 9600 baud, as firmware usually leaves it */
	u->lcr = 0x03;		/* 8N1 */

	ret = bus_register(pio, base, UART_NR_REGS, &uart_ops, u, "uart8250");
	if (ret < 0) {
		log_error("uart: cannot claim ports 0x%x-0x%x: %s", base,
			  base + UART_NR_REGS - 1, strerror(-ret));
		pthread_mutex_destroy(&u->lock);
		free(u);
		errno = -ret;
		return NULL;
	}
	return u;
}

void uart_destroy(struct uart *u)
{
	if (!u)
		return;
	bus_unregister(u->pio, u->base, u);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* Migration: registers and the bytes the guest has not read yet (both
 * FIFOs), so that no input is lost or repeated. */
int uart_save(struct uart *u, void *fdt)
{
	uint8_t rx[UART_FIFO_SIZE + UART_HOST_BUF];
	unsigned int n = 0;
	int ret = 0;

	pthread_mutex_lock(&u->lock);
	for (unsigned int i = 0; i < u->rx_count; i++)
		rx[n++] = u->rx[(u->rx_head + i) % UART_FIFO_SIZE];
	for (unsigned int i = 0; i < u->host_count; i++)
		rx[n++] = u->host[(u->host_head + i) % UART_HOST_BUF];
	ret |= fdt_property_u32(fdt, "ier", u->ier);
	ret |= fdt_property_u32(fdt, "lcr", u->lcr);
	ret |= fdt_property_u32(fdt, "mcr", u->mcr);
	ret |= fdt_property_u32(fdt, "scr", u->scr);
	ret |= fdt_property_u32(fdt, "dll", u->dll);
	ret |= fdt_property_u32(fdt, "dlm", u->dlm);
	ret |= fdt_property_u32(fdt, "lsr-err", u->lsr_err);
	ret |= fdt_property_u32(fdt, "msr-delta", u->msr_delta);
	ret |= fdt_property_u32(fdt, "fifo-enabled", u->fifo_enabled);
	ret |= fdt_property_u32(fdt, "rx-trigger", u->rx_trigger);
	ret |= fdt_property_u32(fdt, "thr-pending", u->thr_pending);
	ret |= fdt_property_u32(fdt, "rx-in-fifo", u->rx_count);
	ret |= fdt_property(fdt, "rx", rx, n);
	pthread_mutex_unlock(&u->lock);
	return ret ? -ENOSPC : 0;
}

int uart_load(struct uart *u, const void *fdt, int node)
{
	const uint8_t *rx;
	unsigned int in_fifo;
	int len;

	rx = fdt_getprop(fdt, node, "rx", &len);
	in_fifo = dev_state_u32(fdt, node, "rx-in-fifo", 0);
	if (!rx) {
		rx = (const uint8_t *)"";       /* memcpy wants a pointer even for 0 bytes */
		len = 0;
	}
	if (len > UART_FIFO_SIZE + UART_HOST_BUF || in_fifo > UART_FIFO_SIZE ||
	    in_fifo > (unsigned int)len)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	u->ier = dev_state_u32(fdt, node, "ier", u->ier) & 0x0f;
	u->lcr = dev_state_u32(fdt, node, "lcr", u->lcr);
	u->mcr = dev_state_u32(fdt, node, "mcr", u->mcr) & 0x1f;
	u->scr = dev_state_u32(fdt, node, "scr", u->scr);
	u->dll = dev_state_u32(fdt, node, "dll", u->dll);
	u->dlm = dev_state_u32(fdt, node, "dlm", u->dlm);
	u->lsr_err = dev_state_u32(fdt, node, "lsr-err", u->lsr_err) & 0x1e;
	u->msr_delta = dev_state_u32(fdt, node, "msr-delta", u->msr_delta) & 0x0f;
	u->fifo_enabled = dev_state_u32(fdt, node, "fifo-enabled", u->fifo_enabled) != 0;
	u->rx_trigger = dev_state_u32(fdt, node, "rx-trigger", u->rx_trigger);
	if (u->rx_trigger < 1 || u->rx_trigger > UART_FIFO_SIZE)
		u->rx_trigger = 1;
	u->thr_pending = dev_state_u32(fdt, node, "thr-pending", u->thr_pending) != 0;
	u->rx_head = u->host_head = 0;
	u->rx_count = in_fifo;
	memcpy(u->rx, rx, in_fifo);
	u->host_count = len - in_fifo;
	memcpy(u->host, rx + in_fifo, u->host_count);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
