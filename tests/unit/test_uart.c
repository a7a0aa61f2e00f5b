/* Unit tests for devices/uart8250.c, driven through a real port bus. */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ferry/devices.h"
#include "ferry/util.h"
#include "tap.h"

#define BASE 0x3f8

struct irq_rec {
	int level;
	int changes;
};

static void irq_rec_set(void *ctx, unsigned int gsi, int level)
{
	struct irq_rec *r = ctx;

	(void)gsi;
	r->level = level;
	r->changes++;
}

struct fixture {
	struct bus pio;
	struct irq_rec irq;
	struct uart *u;
	int pipe[2];
};

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	bus_init(&f->pio, "pio");
	if (pipe(f->pipe) < 0)
		abort();
	fcntl(f->pipe[0], F_SETFL, O_NONBLOCK);
	f->u = uart_create(&f->pio, BASE, (struct irq_line){ irq_rec_set, &f->irq, 4 },
			   f->pipe[1]);
	if (!f->u)
		abort();
}

static void teardown(struct fixture *f)
{
	uart_destroy(f->u);
	close(f->pipe[0]);
	close(f->pipe[1]);
	CHECK_EQ(f->pio.nr, 0);
	bus_destroy(&f->pio);
}

static uint8_t rd(struct fixture *f, unsigned int reg)
{
	uint8_t v = 0;

	CHECK(bus_access(&f->pio, BASE + reg, &v, 1, false));
	return v;
}

static void wr(struct fixture *f, unsigned int reg, uint8_t v)
{
	CHECK(bus_access(&f->pio, BASE + reg, &v, 1, true));
}

TEST(thr_goes_to_fd)
{
	struct fixture f;
	char buf[16];

	setup(&f);
	wr(&f, 0, 'h');
	wr(&f, 0, 'i');
	CHECK_EQ(read(f.pipe[0], buf, sizeof(buf)), 2);
	CHECK(buf[0] == 'h' && buf[1] == 'i');
	/* THR empty and transmitter idle right after. */
	CHECK_EQ(rd(&f, 5) & 0x61, 0x60);
	teardown(&f);
}

TEST(dlab_divisor_roundtrip)
{
	struct fixture f;
	char buf[4];

	setup(&f);
	wr(&f, 3, 0x83);
	wr(&f, 0, 0x01);
	wr(&f, 1, 0x02);
	CHECK_EQ(rd(&f, 0), 0x01);
	CHECK_EQ(rd(&f, 1), 0x02);
	wr(&f, 3, 0x03);
	/* DLL writes are not output, and IER kept its own value. */
	CHECK_EQ(read(f.pipe[0], buf, sizeof(buf)), -1);
	CHECK_EQ(rd(&f, 1), 0);
	CHECK_EQ(rd(&f, 3), 0x03);
	wr(&f, 3, 0x83);
	CHECK_EQ(rd(&f, 0), 0x01);
	teardown(&f);
}

TEST(ier_and_scratch)
{
	struct fixture f;

	setup(&f);
	/* Linux's existence test: IER keeps exactly the low four bits. */
	wr(&f, 1, 0xff);
	CHECK_EQ(rd(&f, 1), 0x0f);
	wr(&f, 1, 0);
	CHECK_EQ(rd(&f, 1), 0);
	wr(&f, 7, 0xa5);
	CHECK_EQ(rd(&f, 7), 0xa5);
	teardown(&f);
}

TEST(rx_fifo_and_irq)
{
	struct fixture f;

	setup(&f);
	wr(&f, 4, 0x0b);		/* DTR RTS OUT2 */
	wr(&f, 2, 0xc7);		/* FIFO on, clear, trigger 14 */
	CHECK_EQ(rd(&f, 2), 0xc1);	/* FIFO bits, no interrupt */
	wr(&f, 1, 0x01);		/* RDI */
	CHECK_EQ(f.irq.level, 0);
	CHECK_EQ(uart_input(f.u, (const uint8_t *)"abc", 3), 3);
	CHECK_EQ(rd(&f, 5) & 0x01, 0x01);
	/* Below the trigger level: character timeout. */
	CHECK_EQ(rd(&f, 2), 0xcc);
	CHECK_EQ(f.irq.level, 1);
	CHECK_EQ(rd(&f, 0), 'a');
	CHECK_EQ(rd(&f, 0), 'b');
	CHECK_EQ(rd(&f, 0), 'c');
	CHECK_EQ(rd(&f, 5) & 0x01, 0);
	CHECK_EQ(rd(&f, 2), 0xc1);
	CHECK_EQ(f.irq.level, 0);

	/* At the trigger level: data available. */
	CHECK_EQ(uart_input(f.u, (const uint8_t *)"0123456789abcdefXYZ", 19), 19);
	CHECK_EQ(rd(&f, 2), 0xc4);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(rd(&f, 0), (uint8_t)"0123456789abcdef"[i]);
	/* The host buffer refilled the FIFO as it drained. */
	CHECK_EQ(rd(&f, 0), 'X');
	CHECK_EQ(rd(&f, 0), 'Y');
	CHECK_EQ(rd(&f, 0), 'Z');
	CHECK_EQ(rd(&f, 5) & 0x01, 0);
	CHECK_EQ(f.irq.level, 0);
	teardown(&f);
}

TEST(fcr_clear_and_non_fifo_mode)
{
	struct fixture f;

	setup(&f);
	wr(&f, 2, 0x01);
	CHECK_EQ(uart_input(f.u, (const uint8_t *)"xyz", 3), 3);
	wr(&f, 2, 0x03);		/* clear RX: drops x..z held in the FIFO */
	CHECK_EQ(rd(&f, 5) & 0x01, 0);
	/* Non-FIFO mode: one holding register, IIR without FIFO bits. */
	wr(&f, 2, 0x00);
	CHECK_EQ(rd(&f, 2), 0x01);
	CHECK_EQ(uart_input(f.u, (const uint8_t *)"pq", 2), 2);
	wr(&f, 1, 0x01);
	CHECK_EQ(rd(&f, 2), 0x04);
	CHECK_EQ(rd(&f, 0), 'p');
	CHECK_EQ(rd(&f, 0), 'q');
	CHECK_EQ(rd(&f, 2), 0x01);
	teardown(&f);
}

TEST(thre_interrupt_semantics)
{
	struct fixture f;
	char buf[4];

	setup(&f);
	wr(&f, 4, 0x08);
	/* Linux's start-up THRE test: enabling THRI raises THRE, reading IIR
	 * clears it, and re-enabling raises it again. */
	wr(&f, 1, 0x02);
	CHECK_EQ(f.irq.level, 1);
	CHECK_EQ(rd(&f, 2), 0x02);
	CHECK_EQ(f.irq.level, 0);
	CHECK_EQ(rd(&f, 2), 0x01);
	wr(&f, 1, 0x00);
	wr(&f, 1, 0x02);
	CHECK_EQ(rd(&f, 2), 0x02);
	CHECK_EQ(rd(&f, 2), 0x01);
	/* A THR write re-arms it (the byte left at once). */
	wr(&f, 0, 'z');
	CHECK_EQ(f.irq.level, 1);
	CHECK_EQ(rd(&f, 2), 0x02);
	/* Disabling THRI drops a pending THRE. */
	wr(&f, 0, 'z');
	wr(&f, 1, 0x00);
	CHECK_EQ(f.irq.level, 0);
	CHECK_EQ(rd(&f, 2), 0x01);
	CHECK_EQ(read(f.pipe[0], buf, sizeof(buf)), 2);
	teardown(&f);
}

TEST(iir_priorities)
{
	struct fixture f;

	setup(&f);
	wr(&f, 4, 0x18);		/* loopback (to make an overrun) + OUT2 */
	wr(&f, 2, 0x01);
	wr(&f, 1, 0x0f);		/* everything */
	/* MCR write changed DCD in loopback: modem status pending. */
	for (int i = 0; i < 17; i++)
		wr(&f, 0, (uint8_t)i);	/* 16 fit, the 17th overruns */
	/* Line status first... */
	CHECK_EQ(rd(&f, 2), 0xc6);
	CHECK_EQ(rd(&f, 5) & 0x03, 0x03);	/* DR and OE; read clears OE */
	CHECK_EQ(rd(&f, 5) & 0x02, 0);
	/* ...then received data... */
	CHECK_EQ(rd(&f, 2), 0xc4);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(rd(&f, 0), i);
	/* ...then THRE (reading IIR acknowledges it)... */
	CHECK_EQ(rd(&f, 2), 0xc2);
	/* ...then modem status, until MSR is read. */
	CHECK_EQ(rd(&f, 2), 0xc0);
	CHECK_EQ(rd(&f, 6), 0x83);	/* DCD; CTS and DSR dropped */
	CHECK_EQ(rd(&f, 2), 0xc1);
	teardown(&f);
}

TEST(loopback)
{
	struct fixture f;
	char buf[4];

	setup(&f);
	/* Linux's probe: MCR = LOOP|OUT2|RTS must read MSR & 0xf0 == 0x90. */
	wr(&f, 4, 0x1a);
	CHECK_EQ(rd(&f, 6) & 0xf0, 0x90);
	wr(&f, 4, 0x1f);
	CHECK_EQ(rd(&f, 6) & 0xf0, 0xf0);
	/* Bytes loop back to RBR, not to the fd; host input waits. */
	CHECK_EQ(uart_input(f.u, (const uint8_t *)"H", 1), 1);
	wr(&f, 0, 'L');
	CHECK_EQ(read(f.pipe[0], buf, sizeof(buf)), -1);
	CHECK_EQ(rd(&f, 0), 'L');
	CHECK_EQ(rd(&f, 5) & 0x01, 0);
	/* No IRQ while in loopback, even with OUT2 and RDI. */
	wr(&f, 1, 0x01);
	wr(&f, 0, 'M');
	CHECK_EQ(rd(&f, 2) & 0x0f, 0x04);
	CHECK_EQ(f.irq.level, 0);
	CHECK_EQ(rd(&f, 0), 'M');
	/* Leaving loopback: the modem looks always ready, host data arrives. */
	wr(&f, 4, 0x0b);
	CHECK_EQ(rd(&f, 6) & 0xf0, 0xb0);
	CHECK_EQ(rd(&f, 0), 'H');
	teardown(&f);
}

TEST(out2_gates_irq)
{
	struct fixture f;

	setup(&f);
	wr(&f, 1, 0x01);
	CHECK_EQ(uart_input(f.u, (const uint8_t *)"q", 1), 1);
	CHECK_EQ(rd(&f, 2) & 0x0f, 0x04);
	CHECK_EQ(f.irq.level, 0);
	CHECK_EQ(f.irq.changes, 0);
	wr(&f, 4, 0x08);
	CHECK_EQ(f.irq.level, 1);
	CHECK_EQ(f.irq.changes, 1);
	/* Raised once, not on every access. */
	rd(&f, 5);
	wr(&f, 7, 0);
	CHECK_EQ(f.irq.changes, 1);
	wr(&f, 4, 0x00);
	CHECK_EQ(f.irq.level, 0);
	CHECK_EQ(f.irq.changes, 2);
	teardown(&f);
}

TEST(input_is_bounded)
{
	struct fixture f;
	static uint8_t big[10000];
	size_t n;

	setup(&f);
	wr(&f, 2, 0x01);
	/* 4 KiB of host buffer plus the 16-byte FIFO, then nothing more. */
	n = uart_input(f.u, big, sizeof(big));
	CHECK_EQ(n, 4096 + 16);
	CHECK_EQ(uart_input(f.u, big, 10), 0);
	CHECK_EQ(rd(&f, 0), 0);
	CHECK_EQ(uart_input(f.u, big, 10), 1);
	CHECK_EQ(uart_input(f.u, NULL, 10), 0);
	teardown(&f);
}

TEST(stalled_pipe_does_not_block)
{
	struct fixture f;
	struct timespec t0, t1;
	char buf[4];
	int sz;

	setup(&f);
	/* A blocking pipe nobody reads: fill it, then keep writing. */
	sz = fcntl(f.pipe[1], F_SETPIPE_SZ, 4096);
	CHECK(sz > 0);
	for (int i = 0; i < sz; i++)
		wr(&f, 0, 'a');
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++)
		wr(&f, 0, 'b');
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Only the first stalled byte may wait (100 ms), not all 1000.  A
	 * generous bound: this proves it did not block, not a speed. */
	CHECK(t1.tv_sec - t0.tv_sec < 30);
	/* The reader recovers: output flows again. */
	while (read(f.pipe[0], buf, 1) == 1)
		;
	wr(&f, 0, 'c');
	CHECK_EQ(read(f.pipe[0], buf, 1), 1);
	CHECK_EQ(buf[0], 'c');
	/* A closed reader: writes are dropped, no SIGPIPE, no error. */
	close(f.pipe[0]);
	f.pipe[0] = open("/dev/null", O_RDONLY);
	wr(&f, 0, 'd');
	CHECK_EQ(rd(&f, 5) & 0x60, 0x60);
	teardown(&f);
}

TEST(hostile_accesses)
{
	struct fixture f;
	uint8_t d[8];

	setup(&f);
	/* Word and dword accesses are byte cycles; nothing crashes. */
	memset(d, 0x5a, sizeof(d));
	CHECK(bus_access(&f.pio, BASE + 6, d, 2, true));
	CHECK(bus_access(&f.pio, BASE + 4, d, 4, false));
	CHECK(bus_access(&f.pio, BASE, d, 8, false));
	CHECK(!bus_access(&f.pio, BASE + 7, d, 2, false));
	for (unsigned int reg = 0; reg < 8; reg++)
		for (unsigned int v = 0; v < 256; v += 17) {
			if (reg == 4)
				continue;	/* keep loopback off: no output */
			wr(&f, reg, (uint8_t)v);
			rd(&f, reg);
		}
	teardown(&f);
}

TEST(discarded_output)
{
	struct bus pio;
	struct uart *u;
	uint8_t v = 'x';

	bus_init(&pio, "pio");
	u = uart_create(&pio, BASE, (struct irq_line){ 0 }, -1);
	CHECK(u != NULL);
	CHECK(bus_access(&pio, BASE, &v, 1, true));
	/* A second UART on the same ports is refused. */
	CHECK(uart_create(&pio, BASE + 4, (struct irq_line){ 0 }, -1) == NULL);
	uart_destroy(u);
	bus_destroy(&pio);
}

#define STREAM_LEN 20000

static void *feeder(void *arg)
{
	struct fixture *f = arg;
	uint8_t chunk[64];
	size_t sent = 0;

	/* The event loop's side: offer bytes, re-offer what was refused. */
	while (sent < STREAM_LEN) {
		size_t n = MIN(sizeof(chunk), (size_t)(STREAM_LEN - sent));

		for (size_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)((sent + i) * 7);
		n = uart_input(f->u, chunk, n);
		sent += n;
		if (!n)
			sched_yield();
	}
	return NULL;
}

TEST(input_races_with_guest_reads)
{
	struct fixture f;
	pthread_t t;
	size_t got = 0;
	int bad = 0;

	setup(&f);
	wr(&f, 2, 0x01);
	CHECK_EQ(pthread_create(&t, NULL, feeder, &f), 0);
	/* The vCPU's side: poll LSR.DR and read, as a polled console does. */
	while (got < STREAM_LEN) {
		if (!(rd(&f, 5) & 0x01))
			continue;
		if (rd(&f, 0) != (uint8_t)(got * 7))
			bad++;
		got++;
	}
	pthread_join(t, NULL);
	CHECK_EQ(bad, 0);
	CHECK_EQ(rd(&f, 5) & 0x01, 0);
	teardown(&f);
}

/* Found by tests/fuzz/fuzz_state: a state node without "rx" (an older
 * stream, or a hostile one) loads as an empty receive buffer; it used to
 * hand memcpy a NULL source. */
TEST(load_without_rx)
{
	struct fixture f;
	char fdt[1024];
	int node;

	setup(&f);
	uart_input(f.u, (const uint8_t *)"xy", 2);
	CHECK_EQ(fdt_create(fdt, sizeof(fdt)) | fdt_finish_reservemap(fdt) |
		 fdt_begin_node(fdt, "") | fdt_begin_node(fdt, "uart") |
		 fdt_property_u32(fdt, "scr", 0x5a) | fdt_end_node(fdt) |
		 fdt_end_node(fdt) | fdt_finish(fdt), 0);
	node = fdt_subnode_offset(fdt, 0, "uart");
	CHECK(node >= 0);
	CHECK_EQ(uart_load(f.u, fdt, node), 0);
	CHECK_EQ(rd(&f, 7), 0x5a);
	CHECK_EQ(rd(&f, 5) & 0x01, 0);          /* LSR: no data ready */
	teardown(&f);
}

int main(void)
{
	RUN(thr_goes_to_fd);
	RUN(dlab_divisor_roundtrip);
	RUN(ier_and_scratch);
	RUN(rx_fifo_and_irq);
	RUN(fcr_clear_and_non_fifo_mode);
	RUN(thre_interrupt_semantics);
	RUN(iir_priorities);
	RUN(loopback);
	RUN(out2_gates_irq);
	RUN(input_is_bounded);
	RUN(input_races_with_guest_reads);
	RUN(stalled_pipe_does_not_block);
	RUN(hostile_accesses);
	RUN(discarded_output);
	RUN(load_without_rx);
	return tap_done();
}
