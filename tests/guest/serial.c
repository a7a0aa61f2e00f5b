/* COM1: polled output (kprintf), and interrupt-driven input through the
 * IOAPIC into a ring that the CPL3 code drains.  Only the BSP prints and
 * only the BSP takes the UART interrupt, so neither side needs a lock. */
#include "guest.h"

#define COM1    0x3f8
#define RBR     0       /* receive buffer / transmit holding */
#define IER     1
#define IIR     2       /* read: interrupt id; write: FIFO control */
#define LCR     3
#define MCR     4
#define LSR     5
#define MSR     6

#define IER_RDI  0x01   /* received data available */
#define IER_THRI 0x02   /* transmit holding register empty */
#define LSR_DR   0x01
#define LSR_THRE 0x20

#define RX_RING  1024   /* power of two */

volatile uint32_t serial_thre_irqs;
volatile uint32_t serial_rx_head;       /* written by the handler */
static uint32_t rx_tail;                /* written by the CPL3 reader */
static char rx_ring[RX_RING];
static uint8_t ier;

/* 115200 8N1.  The FIFOs stay off: enabling them clears the receiver, and
 * with a piped stdin QEMU may have handed us a byte already (it holds the
 * rest back while the one-byte holding register is full, so nothing is lost
 * without a FIFO). */
void serial_init(void)
{
	outb(COM1 + IER, 0);
	outb(COM1 + LCR, 0x80);         /* DLAB: divisor 1 = 115200 baud */
	outb(COM1 + 0, 1);
	outb(COM1 + 1, 0);
	outb(COM1 + LCR, 0x03);         /* 8N1 */
	outb(COM1 + MCR, 0x0b);         /* DTR, RTS, OUT2 (gates the IRQ on PCs) */
	ier = 0;
}

void serial_putc(char c)
{
	/* Bounded: a UART that never drains must not hang the guest. */
	for (int i = 0; i < 100000 && !(inb(COM1 + LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(COM1 + RBR, c);
}

void serial_enable_rx_irq(void)
{
	ier |= IER_RDI;
	outb(COM1 + IER, ier);
}

void serial_set_thre_irq(bool on)
{
	ier = on ? ier | IER_THRI : ier & ~IER_THRI;
	outb(COM1 + IER, ier);
}

/* CPL0, from VEC_UART.  Serve every pending cause (reading IIR clears a THRE
 * one); with an edge-triggered pin a cause left pending would never fire
 * again. */
void serial_irq(void)
{
	for (int i = 0; i < 64; i++) {
		uint8_t iir = inb(COM1 + IIR);

		if (iir & 1)
			return;         /* nothing pending */
		switch (iir & 0x0e) {
		case 0x02:
			serial_thre_irqs++;
			break;
		case 0x04:
		case 0x0c:
			while (inb(COM1 + LSR) & LSR_DR) {
				char c = inb(COM1 + RBR);

				if (serial_rx_head - rx_tail < RX_RING) {
					rx_ring[serial_rx_head % RX_RING] = c;
					barrier();
					serial_rx_head++;
				}
			}
			break;
		case 0x06:
			inb(COM1 + LSR);
			break;
		default:
			inb(COM1 + MSR);
			break;
		}
	}
}

/* The next received byte, if any.  Without the UART interrupt (no IOAPIC),
 * poll the receiver instead. */
bool serial_getc(char *c)
{
	if (rx_tail != serial_rx_head) {
		barrier();
		*c = rx_ring[rx_tail % RX_RING];
		barrier();
		rx_tail++;
		return true;
	}
	if (!(ier & IER_RDI) && (inb(COM1 + LSR) & LSR_DR)) {
		*c = inb(COM1 + RBR);
		return true;
	}
	return false;
}

void kprintf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vformat(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (const char *p = buf; *p; p++)
		serial_putc(*p);
}
