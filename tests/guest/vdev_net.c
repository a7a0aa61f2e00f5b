/* virtio-net commands: `net` (32 frames of ethertype 0x88b5 out, frames
 * "HOST NET <seq>" in from tests/guest/hostnet.py on the host side) and
 * `netbench` (full-size frames out for 3 s, used ring polled).  One queue
 * pair, mergeable receive buffers when offered. */
#include "virtio.h"

#define NET_F_MAC               5
#define NET_F_MRG_RXBUF         15
#define NET_F_STATUS            16

#define NET_HDR         12              /* virtio_net_hdr with num_buffers (1.0+) */
#define ETH_TYPE_TEST   0x88b5
#define RX_BUFS         64
#define RX_LEN          2048            /* >= 1514 + NET_HDR: no GSO taken */
#define TX_BUFS         64
#define TX_LEN          (NET_HDR + 1514)
#define NET_FRAMES      32
#define NET_MIN_RX      8

static uint8_t rx_buf[RX_BUFS][RX_LEN] __attribute__((aligned(4096)));
static uint8_t tx_buf[TX_BUFS][2048] __attribute__((aligned(4096)));
static uint8_t tx_hdr[NET_HDR];
static uint8_t mac[6];

static const char *net_open(struct vdev *d, int flags)
{
	static char why[120];
	const char *w;

	if (virtio_find(VIRTIO_ID_NET, d, why, sizeof(why)) < 0)
		return why;
	w = vdev_start(d, BIT(NET_F_MAC) | BIT(NET_F_MRG_RXBUF) | BIT(NET_F_STATUS) |
		       BIT(VF_EVENT_IDX), 2, flags);
	if (w)
		return w;
	if (vdev_has(d, NET_F_MAC)) {
		for (int i = 0; i < 6; i++)
			mac[i] = vcfg8(d, i);
	} else {
		static const uint8_t local[6] = { 0x52, 0x54, 0x00, 0x7e, 0x57, 0x01 };

		memcpy(mac, local, 6);
	}
	kprintf("TESTGUEST INFO net: mac %02x:%02x:%02x:%02x:%02x:%02x%s%s\n",
		mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
		vdev_has(d, NET_F_MRG_RXBUF) ? ", mergeable rx buffers" : "",
		vdev_has(d, NET_F_STATUS) ? (vcfg16(d, 6) & 1 ? ", link up" : ", link down") : "");
	return NULL;
}

/* A broadcast frame from us with the test ethertype; returns its length. */
static uint32_t make_frame(uint8_t *f, const char *payload, uint32_t min_len)
{
	uint32_t n = strlen(payload), len = 14 + n;

	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = ETH_TYPE_TEST >> 8;
	f[13] = ETH_TYPE_TEST & 0xff;
	memcpy(f + 14, payload, n);
	if (len < min_len) {
		memset(f + len, 0, min_len - len);
		len = min_len;
	}
	return len;
}

static void rx_post(struct vq *rx, uint32_t i)
{
	struct vbuf b = { rx_buf[i], RX_LEN, true };

	vq_add(rx, &b, 1, false, i);
}

/* Take what arrived; count the host's test frames. */
static const char *rx_drain(struct vdev *d, uint32_t *received, uint32_t *other)
{
	struct vq *rx = &d->vq[0];
	uint32_t tok, len, extra = 0;

	while (vq_get(rx, &tok, &len)) {
		const uint8_t *f = rx_buf[tok] + NET_HDR;

		if (tok >= RX_BUFS || len > RX_LEN)
			return "bad used entry on the receive queue";
		if (extra) {
			extra--;                /* a continuation buffer: not ours to parse */
		} else if (len >= NET_HDR + 14) {
			uint16_t nbuf = rx_buf[tok][10] | rx_buf[tok][11] << 8;

			if (vdev_has(d, NET_F_MRG_RXBUF) && nbuf > 1)
				extra = nbuf - 1;
			if (f[12] == ETH_TYPE_TEST >> 8 && f[13] == (ETH_TYPE_TEST & 0xff) &&
			    len >= NET_HDR + 14 + 9 && !memcmp(f + 14, "HOST NET ", 9))
				(*received)++;
			else
				(*other)++;
		}
		rx_post(rx, tok);
	}
	vq_kick(rx);
	return NULL;
}

void cmd_net(void)
{
	struct vdev d;
	struct vq *rx, *tx;
	uint32_t sent = 0, received = 0, other = 0, tok;
	const char *why = net_open(&d, 0);
	uint64_t dl;

	if (why)
		goto out;
	rx = &d.vq[0];
	tx = &d.vq[1];
	for (uint32_t i = 0; i < RX_BUFS && i < rx->size; i++)
		rx_post(rx, i);
	vq_kick(rx);

	/* Header and frame in two descriptors: a chain, as Linux sends them. */
	for (uint32_t i = 0; i < NET_FRAMES; i++) {
		char payload[32];
		struct vbuf b[2] = { { tx_hdr, NET_HDR, false }, { tx_buf[i], 0, false } };

		format(payload, sizeof(payload), "TESTGUEST NET %u", i);
		b[1].len = make_frame(tx_buf[i], payload, 60);
		while (vq_add(tx, b, 2, false, i) < 0) {
			vq_kick(tx);
			if (!vq_wait(tx, deadline_ms(2000))) {
				why = "transmit queue full and nothing used for 2 s";
				goto out;
			}
			while (vq_get(tx, &tok, NULL))
				sent++;
		}
	}
	vq_kick(tx);
	dl = deadline_ms(5000);
	while (sent < NET_FRAMES && vq_wait(tx, dl))
		while (vq_get(tx, &tok, NULL))
			sent++;

	dl = deadline_ms(10000);
	while (received < NET_MIN_RX && vq_wait(rx, dl))
		if ((why = rx_drain(&d, &received, &other)))
			goto out;
	kprintf("TESTGUEST INFO net sent=%u received=%u\n", sent, received);
	kprintf("TESTGUEST INFO net: %u other frames, %u tx / %u rx interrupts\n", other,
		vq_irqs(tx), vq_irqs(rx));
	if (sent < NET_FRAMES)
		why = test_fail("only %u of %u frames sent within 5 s", sent, NET_FRAMES);
	else if (received < NET_MIN_RX)
		why = test_fail("%u of at least %u HOST NET frames within 10 s (is hostnet.py running?)",
				received, NET_MIN_RX);
	else if (!vq_irqs(rx))
		why = "no receive interrupt (the used ring was polled)";
	vdev_reset(&d);
out:
	test_report("net", why);
}

/* Full-size frames as fast as the device takes them, for 3 s. */
void cmd_netbench(void)
{
	struct vdev d;
	struct vq *tx;
	uint64_t t0, dl, frames = 0, ms;
	uint32_t inflight = 0, tok, flen = 0, next = 0;
	const char *why = net_open(&d, VDEV_POLL);

	if (why)
		goto out;
	tx = &d.vq[1];
	for (uint32_t i = 0; i < TX_BUFS; i++) {
		memset(tx_buf[i], 0, NET_HDR);
		flen = make_frame(tx_buf[i] + NET_HDR, "TESTGUEST NETBENCH", 1514);
	}
	t0 = rdtsc();
	dl = t0 + 3000 * tsc_per_ms;
	for (;;) {
		uint64_t now = rdtsc();

		while (now < dl && inflight < TX_BUFS && inflight < tx->size) {
			struct vbuf b = { tx_buf[next], NET_HDR + flen, false };

			if (vq_add(tx, &b, 1, false, next) < 0)
				break;
			next = (next + 1) % TX_BUFS;
			inflight++;
		}
		vq_kick(tx);
		if (!inflight)
			break;
		if (!vq_wait(tx, rdtsc() + 2000 * tsc_per_ms)) {
			why = "no transmit completion within 2 s";
			goto out;
		}
		while (vq_get(tx, &tok, NULL)) {
			inflight--;
			frames++;
		}
	}
	ms = (rdtsc() - t0) / tsc_per_ms;
	if (!ms)
		ms = 1;
	kprintf("TESTGUEST BENCH net fps=%lu mbps=%lu\n", frames * 1000 / ms,
		frames * flen * 8 / 1000 / ms);
	kprintf("TESTGUEST INFO netbench: %lu frames of %u bytes in %lu ms, %u notifies (mbps = 10^6 bits/s)\n",
		frames, flen, ms, tx->kicks);
	vdev_reset(&d);
out:
	test_report("netbench", why);
}
