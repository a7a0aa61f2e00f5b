/* libFuzzer target for virtio/net.c: the input is a guest's memory with the
 * receive, transmit and control queues of a virtio-net device in it (and a
 * frame to receive); ferry must transmit, answer control commands and fill
 * receive buffers (mergeable or not) without touching anything outside guest
 * RAM, allocating, or crashing.  No tap: transmitted frames are counted.
 *
 * Input layout: 4 header bytes, then the first bytes of guest RAM (gpa 0):
 *   [0] bit0 MRG_RXBUF, bit1 EVENT_IDX, bit2 INDIRECT_DESC, bit3 two queue
 *       pairs + MQ, bit4 CTRL_VQ + GUEST_ANNOUNCE
 *   [1..2] length of the frame to receive (little-endian, % NET_MAX_FRAME)
 *   [3] frames to receive (% 8)
 * Queue q (rx0, tx0, [rx1, tx1,] ctrl) has size 8 at q * 0x200: desc +0,
 * avail +0x80, used +0x100.  Guest RAM: 64 KiB at 0 and 4 KiB at 0x20000
 * (heap buffers, so ASan sees any access past them). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "ferry/vm.h"
#include "fuzz_ram.h"
#include "../../virtio/net.h"

#define QSIZE      8

static void notify_queue(struct virtio_dev *d, unsigned int q) { (void)d; (void)q; }
static void notify_config(struct virtio_dev *d) { (void)d; }
static const struct virtio_transport_ops fake_ops = {
	.notify_queue = notify_queue,
	.notify_config = notify_config,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct guest_mem gm;
	struct net_config cfg = { .tap = "fuzz", .queues = 1 };
	uint64_t features = 1ULL << VIRTIO_F_VERSION_1;
	struct net_dev *n;
	struct virtio_dev *d;
	uint32_t frame_len;

	if (len < HDR)
		return 0;
	log_set_level(LOG_ERROR);       /* broken queues are expected here */
	fuzz_ram_init(&gm, data, len);
	if (data[0] & 1)
		features |= NET_BIT(VIRTIO_NET_F_MRG_RXBUF);
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	if (data[0] & 4)
		features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	if (data[0] & 8) {
		cfg.queues = 2;
		features |= NET_BIT(VIRTIO_NET_F_MQ);
	}
	if (data[0] & 16)
		features |= NET_BIT(VIRTIO_NET_F_CTRL_VQ) | NET_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);

	n = net_dev_alloc(&cfg, NULL);
	if (!n)
		abort();
	d = &n->dev;
	d->gm = &gm;
	d->t_ops = &fake_ops;
	d->driver_features = features;
	for (unsigned int q = 0; q < d->num_queues; q++) {
		if (vq_init(&d->vqs[q], &gm, QSIZE, q * 0x200, q * 0x200 + 0x80,
			    q * 0x200 + 0x100, features) != 0)
			__builtin_trap();
		d->vq_ready[q] = true;
	}
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	if (d->ops->activate(d) != 0)
		__builtin_trap();

	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->num_queues; q++)
		d->ops->queue_notify(d, q);
	/* Receive: a frame made of the input's tail, into whatever buffers
	 * the receive queue offers. */
	n->pairs[0].rx_buf = malloc(NET_RX_BUF);
	if (!n->pairs[0].rx_buf)
		abort();
	frame_len = (data[1] | data[2] << 8) % NET_MAX_FRAME + 1;
	for (unsigned int f = 0; f < data[3] % 8u; f++) {
		struct net_pair *p = &n->pairs[0];
		int r;

		memset(p->rx_buf, 0, TAP_VNET_HDR_LEN);
		memset(p->rx_buf + TAP_VNET_HDR_LEN, 0xab, frame_len);
		p->rx_len = TAP_VNET_HDR_LEN + frame_len;
		p->rx_off = p->rx_nused = 0;
		r = net_rx_deliver(p);
		if (r < 0 && !d->vqs[0].broken)
			__builtin_trap();
		if (r <= 0)
			break;
		if (p->rx_len || p->rx_nused)
			__builtin_trap();       /* delivered or dropped, not half */
	}
	pthread_mutex_unlock(&d->lock);
	virtio_net_announce(d);
	virtio_dev_destroy(d);
	fuzz_ram_free(&gm);
	return 0;
}
