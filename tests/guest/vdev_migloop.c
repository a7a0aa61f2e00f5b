/* Workloads that keep virtio-net and virtio-console busy forever, for live
 * migration (like blkloop and rngloop in vdev_loop.c):
 * `netloop` sends "TESTGUEST NET <round>" frames (ethertype 0x88b5) one at a
 * time, waiting for each to be used, counts the host's "HOST NET" frames
 * (tests/guest/hostnet.py) and prints `TESTGUEST NETLOOP <n> ok rx=<count>`
 * every 16 rounds;
 * `consoleloop` writes `TESTGUEST CONSOLEOUT <n> ok` lines to hvc0, echoes
 * each line it receives as `TESTGUEST CONSOLEIN <line>` on the serial port
 * and prints `TESTGUEST CONSOLELOOP <n> ok` every 8 rounds.  A failure
 * prints TESTGUEST FAIL and stops. */
#include "virtio.h"

#define ML_NET_F_MAC            5
#define ML_NET_F_MRG_RXBUF      15
#define ML_NET_F_STATUS         16
#define ML_NET_HDR              12
#define ML_ETH_TYPE             0x88b5
#define ML_RX_BUFS              32
#define ML_RX_LEN               2048
#define ML_NET_PER_LINE         16

static uint8_t ml_rx[ML_RX_BUFS][ML_RX_LEN] __attribute__((aligned(4096)));
static uint8_t ml_tx[2048] __attribute__((aligned(4096)));
static uint8_t ml_hdr[ML_NET_HDR];

static void ml_rx_post(struct vq *rx, uint32_t i)
{
	struct vbuf b = { ml_rx[i], ML_RX_LEN, true };

	vq_add(rx, &b, 1, false, i);
}

/* Take what arrived, count the host's test frames, give the buffers back. */
static const char *ml_rx_drain(struct vdev *d, uint32_t *received)
{
	struct vq *rx = &d->vq[0];
	uint32_t tok, len, extra = 0;

	while (vq_get(rx, &tok, &len)) {
		const uint8_t *f;

		if (tok >= ML_RX_BUFS || len > ML_RX_LEN)
			return "bad used entry on the receive queue";
		f = ml_rx[tok] + ML_NET_HDR;
		if (extra) {
			extra--;
		} else if (len >= ML_NET_HDR + 14) {
			uint16_t nbuf = ml_rx[tok][10] | ml_rx[tok][11] << 8;

			if (vdev_has(d, ML_NET_F_MRG_RXBUF) && nbuf > 1)
				extra = nbuf - 1;
			if (f[12] == ML_ETH_TYPE >> 8 && f[13] == (ML_ETH_TYPE & 0xff) &&
			    len >= ML_NET_HDR + 14 + 9 && !memcmp(f + 14, "HOST NET ", 9))
				(*received)++;
		}
		ml_rx_post(rx, tok);
	}
	vq_kick(rx);
	return NULL;
}

void cmd_netloop(void)
{
	static char err[120];
	uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x7e, 0x57, 0x02 };
	uint32_t received = 0;
	struct vdev d;
	const char *why = NULL;

	if (virtio_find(VIRTIO_ID_NET, &d, err, sizeof(err)) < 0)
		why = err;
	if (!why)
		why = vdev_start(&d, BIT(ML_NET_F_MAC) | BIT(ML_NET_F_MRG_RXBUF) |
				 BIT(ML_NET_F_STATUS) | BIT(VF_EVENT_IDX), 2, 0);
	if (!why && vdev_has(&d, ML_NET_F_MAC))
		for (int i = 0; i < 6; i++)
			mac[i] = vcfg8(&d, i);
	if (!why) {
		for (uint32_t i = 0; i < ML_RX_BUFS && i < d.vq[0].size; i++)
			ml_rx_post(&d.vq[0], i);
		vq_kick(&d.vq[0]);
	}
	for (uint64_t round = 0; !why; round++) {
		struct vbuf b[2] = { { ml_hdr, ML_NET_HDR, false }, { ml_tx, 60, false } };
		char payload[40];
		uint32_t n;

		n = format(payload, sizeof(payload), "TESTGUEST NET %lu", round);
		memset(ml_tx, 0, 60);
		memset(ml_tx, 0xff, 6);
		memcpy(ml_tx + 6, mac, 6);
		ml_tx[12] = ML_ETH_TYPE >> 8;
		ml_tx[13] = ML_ETH_TYPE & 0xff;
		memcpy(ml_tx + 14, payload, n);
		why = vq_run(&d.vq[1], b, 2, false, NULL, 5000);
		/* Pace the rounds by the host's frames (every 50 ms). */
		if (!why)
			vq_wait(&d.vq[0], deadline_ms(50));
		if (!why)
			why = ml_rx_drain(&d, &received);
		if (!why && round % ML_NET_PER_LINE == ML_NET_PER_LINE - 1)
			kprintf("TESTGUEST NETLOOP %lu ok rx=%u\n", round / ML_NET_PER_LINE, received);
	}
	test_report("netloop", why);
}

#define ML_CON_BUFS     8
#define ML_CON_LEN      64
#define ML_CON_PER_LINE 8

static uint8_t ml_con_rx[ML_CON_BUFS][ML_CON_LEN] __attribute__((aligned(64)));
static char ml_con_tx[64];

void cmd_consoleloop(void)
{
	static char err[120];
	char line[128];
	uint32_t n = 0;
	struct vdev d;
	const char *why = NULL;

	if (virtio_find(VIRTIO_ID_CONSOLE, &d, err, sizeof(err)) < 0)
		why = err;
	if (!why)
		why = vdev_start(&d, BIT(VF_EVENT_IDX), 2, 0);
	if (!why) {
		for (uint32_t i = 0; i < ML_CON_BUFS; i++) {
			struct vbuf b = { ml_con_rx[i], ML_CON_LEN, true };

			vq_add(&d.vq[0], &b, 1, false, i);
		}
		vq_kick(&d.vq[0]);
	}
	for (uint64_t round = 0; !why; round++) {
		struct vbuf b = { ml_con_tx, 0, false };
		uint32_t tok, len;

		b.len = format(ml_con_tx, sizeof(ml_con_tx), "TESTGUEST CONSOLEOUT %lu ok\n", round);
		why = vq_run(&d.vq[1], &b, 1, false, NULL, 5000);
		if (!why)
			vq_wait(&d.vq[0], deadline_ms(50));
		while (!why && vq_get(&d.vq[0], &tok, &len)) {
			struct vbuf rb = { ml_con_rx[tok % ML_CON_BUFS], ML_CON_LEN, true };

			if (tok >= ML_CON_BUFS || len > ML_CON_LEN) {
				why = "bad used entry on the receiveq";
				break;
			}
			for (uint32_t i = 0; i < len; i++) {
				char c = ml_con_rx[tok][i];

				if ((c == '\n' || c == '\r') && n) {
					line[n] = 0;
					kprintf("TESTGUEST CONSOLEIN %s\n", line);
					n = 0;
				} else if (c >= 0x20 && c < 0x7f && n < sizeof(line) - 1) {
					line[n++] = c;
				}
			}
			vq_add(&d.vq[0], &rb, 1, false, tok);
			vq_kick(&d.vq[0]);
		}
		if (!why && round % ML_CON_PER_LINE == ML_CON_PER_LINE - 1)
			kprintf("TESTGUEST CONSOLELOOP %lu ok\n", round / ML_CON_PER_LINE);
	}
	test_report("consoleloop", why);
}
