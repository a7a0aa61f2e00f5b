/* The small virtio commands: rng (entropy reads), console (virtio-console
 * port 0 without MULTIPORT: transmitq out, one line in through receiveq)
 * and virtio-bad (malformed queues on virtio-rng must end in NEEDS_RESET,
 * and a reset must bring the device back). */
#include "virtio.h"

#define NOINIT __attribute__((section(".bss.noinit")))
#define RNG_BYTES 4096

static uint8_t rng_buf[2][RNG_BYTES] __attribute__((aligned(4096))) NOINIT;

/* Fill buf with RNG_BYTES from the device; it may give less per request. */
static const char *rng_read(struct vdev *d, uint8_t *buf)
{
	uint32_t got = 0;

	for (int tries = 0; got < RNG_BYTES && tries < 64; tries++) {
		struct vbuf b = { buf + got, RNG_BYTES - got, true };
		uint32_t len;
		const char *why = vq_run(&d->vq[0], &b, 1, false, &len, 2000);

		if (why)
			return why;
		if (len > RNG_BYTES - got)
			return test_fail("the device claims %u bytes in a %u-byte buffer",
					 len, RNG_BYTES - got);
		got += len;
	}
	if (got < RNG_BYTES)
		return test_fail("only %u of %u bytes after 64 requests", got, RNG_BYTES);
	return NULL;
}

static const char *rng_check(struct vdev *d)
{
	const char *why;
	uint32_t same = 0;

	memset(rng_buf, 0, sizeof(rng_buf));
	if ((why = rng_read(d, rng_buf[0])) || (why = rng_read(d, rng_buf[1])))
		return why;
	for (uint32_t i = 1; i < RNG_BYTES; i++)
		same += rng_buf[0][i] == rng_buf[0][0];
	if (same == RNG_BYTES - 1)
		return test_fail("all %u bytes are 0x%02x", RNG_BYTES, rng_buf[0][0]);
	if (!memcmp(rng_buf[0], rng_buf[1], RNG_BYTES))
		return "two reads returned the same bytes";
	return NULL;
}

static const char *rng_open(struct vdev *d, uint64_t want)
{
	static char why[120];

	if (virtio_find(VIRTIO_ID_RNG, d, why, sizeof(why)) < 0)
		return why;
	return vdev_start(d, want, 1, 0);
}

void cmd_rng(void)
{
	struct vdev d;
	const char *why = rng_open(&d, BIT(VF_EVENT_IDX) | BIT(VF_INDIRECT_DESC));

	if (!why)
		why = rng_check(&d);
	if (!why) {
		kprintf("TESTGUEST INFO rng: %u interrupts, %u notifies\n",
			vq_irqs(&d.vq[0]), d.vq[0].kicks);
		if (!vq_irqs(&d.vq[0]))
			why = "no interrupt from the device (the used ring was polled)";
	}
	if (!why)
		vdev_reset(&d);
	test_report("rng", why);
}

/* ---- console ---- */

#define CON_RXBUFS 8
#define CON_RXLEN  64
static uint8_t con_rx[CON_RXBUFS][CON_RXLEN] __attribute__((aligned(64)));
static char con_tx[64];

void cmd_console(void)
{
	static char why_buf[120];
	struct vdev d;
	const char *why = NULL;
	char line[200];
	size_t n = 0;
	struct vq *rx, *tx;
	uint64_t dl;

	if (virtio_find(VIRTIO_ID_CONSOLE, &d, why_buf, sizeof(why_buf)) < 0) {
		test_report("console", why_buf);
		return;
	}
	/* No MULTIPORT: port 0 only, on queues 0 (receive) and 1 (transmit). */
	why = vdev_start(&d, BIT(VF_EVENT_IDX), 2, 0);
	if (why)
		goto out;
	rx = &d.vq[0];
	tx = &d.vq[1];
	for (uint32_t i = 0; i < CON_RXBUFS; i++) {
		struct vbuf b = { con_rx[i], CON_RXLEN, true };

		vq_add(rx, &b, 1, false, i);
	}
	vq_kick(rx);

	n = format(con_tx, sizeof(con_tx), "TESTGUEST CONSOLE hello\n");
	struct vbuf b = { con_tx, (uint32_t)n, false };
	if ((why = vq_run(tx, &b, 1, false, NULL, 2000)))
		goto out;

	n = 0;
	dl = deadline_ms(10000);
	for (;;) {
		uint32_t tok, len;
		bool done = false;

		if (!vq_wait(rx, dl)) {
			why = test_fail("no complete line on the receiveq within 10 s (%zu bytes so far)", n);
			goto out;
		}
		while (vq_get(rx, &tok, &len)) {
			if (tok >= CON_RXBUFS || len > CON_RXLEN) {
				why = "bad used entry on the receiveq";
				goto out;
			}
			for (uint32_t i = 0; i < len && !done; i++) {
				char c = con_rx[tok][i];

				if ((c == '\n' || c == '\r') && n)
					done = true;
				else if (c >= 0x20 && c < 0x7f && n < sizeof(line) - 1)
					line[n++] = c;
			}
			struct vbuf rb = { con_rx[tok], CON_RXLEN, true };
			vq_add(rx, &rb, 1, false, tok);
		}
		vq_kick(rx);
		if (done)
			break;
	}
	line[n] = 0;
	kprintf("TESTGUEST CONSOLE GOT %s\n", line);
	kprintf("TESTGUEST INFO console: %u interrupts\n", virqs[rx->slot].count);
	vdev_reset(&d);
out:
	test_report("console", why);
}

/* ---- virtio-bad ---- */

enum bad_case { BAD_ADDR_HIGH, BAD_ADDR_HOLE, BAD_LOOP, BAD_AVAIL_IDX, BAD_CASES };
static const char *const bad_names[] = {
	"virtio-bad-addr-high", "virtio-bad-addr-hole", "virtio-bad-loop", "virtio-bad-avail-idx",
};

/* An address in the 3-4 GiB hole that no memmap entry covers and no
 * device we know of uses: 0xc0000000 unless RAM is there. */
static uint64_t hole_addr(void)
{
	uint64_t a = 0xc0000000;

	for (uint32_t i = 0; i < plat.memmap_entries; i++)
		if (a >= plat.memmap[i].addr && a - plat.memmap[i].addr < plat.memmap[i].size)
			return 0;
	return a;
}

static const char *bad_one(struct vdev *d, enum bad_case c)
{
	struct vq *q = &d->vq[0];
	uint32_t cfg0 = virqs[d->cfg_slot].count;
	uint64_t dl;
	struct vbuf b = { NULL, 4096, true };
	uint16_t h, n;
	const char *why;

	switch (c) {
	case BAD_ADDR_HIGH:
		b.addr = (void *)0xfffff0000000ULL;
		vq_add(q, &b, 1, false, 1);
		break;
	case BAD_ADDR_HOLE:
		if (!(b.addr = (void *)hole_addr()))
			return "skipped: RAM at 0xc0000000";
		vq_add(q, &b, 1, false, 1);
		break;
	case BAD_LOOP:
		h = q->free_head;
		n = q->desc[h].next;
		q->desc[h] = (struct vring_desc){ (uint64_t)rng_buf[0], 16,
			VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, n };
		q->desc[n] = (struct vring_desc){ (uint64_t)rng_buf[1], 16,
			VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, h };
		q->avail->ring[q->avail_idx % q->size] = h;
		barrier();
		*(volatile uint16_t *)&q->avail->idx = ++q->avail_idx;
		break;
	case BAD_AVAIL_IDX:
		*(volatile uint16_t *)&q->avail->idx = q->avail_idx + q->size + 5;
		break;
	default:
		return "no such case";
	}
	mb();
	d->t->notify(q);
	dl = deadline_ms(2000);
	while (!(d->t->get_status(d) & VS_NEEDS_RESET))
		if (rdtsc() >= dl)
			return test_fail("status 0x%x: no NEEDS_RESET 2 s after the notify",
					 d->t->get_status(d));
		else
			delay_ms(1);
	/* The config interrupt may trail the status bit a little. */
	wait_change(&virqs[d->cfg_slot].count, cfg0, deadline_ms(100));
	kprintf("TESTGUEST INFO %s: NEEDS_RESET, %s config interrupt (isr 0x%x)\n", bad_names[c],
		virqs[d->cfg_slot].count != cfg0 ? "with a" : "without a",
		virqs[d->cfg_slot].isr);

	virtio_alloc_reset();
	if ((why = rng_open(d, 0)) || (why = rng_check(d)))
		return test_fail("after the reset: %s", why);
	return NULL;
}

void cmd_virtio_bad(void)
{
	struct vdev d;
	const char *why = rng_open(&d, 0);
	int failed = 0;

	if (!why)
		why = rng_check(&d);
	if (why) {
		test_report("virtio-bad", test_fail("rng before the bad cases: %s", why));
		return;
	}
	for (int c = 0; c < BAD_CASES; c++) {
		why = bad_one(&d, c);
		test_report(bad_names[c], why);
		if (why) {
			failed++;
			virtio_alloc_reset();   /* start the next case clean */
			if ((why = rng_open(&d, 0))) {
				test_report("virtio-bad", test_fail("cannot restart rng: %s", why));
				return;
			}
		}
	}
	vdev_reset(&d);
	if (failed)
		test_report("virtio-bad", test_fail("%d of %d cases failed", failed, BAD_CASES));
	else
		test_report("virtio-bad", NULL);
}
