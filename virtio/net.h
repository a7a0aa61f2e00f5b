/* virtio-net internals shared by virtio/net.c, its unit test and its fuzz
 * target (not a contract: the rest of ferry uses virtio_dev.h). */
#ifndef FERRY_VIRTIO_NET_PRIV_H
#define FERRY_VIRTIO_NET_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/loop.h"
#include "ferry/tap.h"
#include "ferry/virtio_dev.h"

/* Feature bits (§5.1.3). */
#define VIRTIO_NET_F_CSUM            0
#define VIRTIO_NET_F_GUEST_CSUM      1
#define VIRTIO_NET_F_MAC             5
#define VIRTIO_NET_F_GUEST_TSO4      7
#define VIRTIO_NET_F_GUEST_TSO6      8
#define VIRTIO_NET_F_GUEST_ECN       9
#define VIRTIO_NET_F_HOST_TSO4       11
#define VIRTIO_NET_F_HOST_TSO6       12
#define VIRTIO_NET_F_HOST_ECN        13
#define VIRTIO_NET_F_MRG_RXBUF       15
#define VIRTIO_NET_F_STATUS          16
#define VIRTIO_NET_F_CTRL_VQ         17
#define VIRTIO_NET_F_CTRL_RX         18
#define VIRTIO_NET_F_GUEST_ANNOUNCE  21
#define VIRTIO_NET_F_MQ              22
#define NET_BIT(b) (1ULL << (b))

/* Config status bits. */
#define NET_S_LINK_UP   1
#define NET_S_ANNOUNCE  2

/* Control queue (§5.1.6.5): classes, commands, acks. */
#define NET_CTRL_RX             0
#define NET_CTRL_MAC            1
#define NET_CTRL_MAC_TABLE_SET  0
#define NET_CTRL_MAC_ADDR_SET   1
#define NET_CTRL_ANNOUNCE       3
#define NET_CTRL_ANNOUNCE_ACK   0
#define NET_CTRL_MQ             4
#define NET_CTRL_MQ_VQ_PAIRS_SET 0
#define NET_OK                  0
#define NET_ERR                 1

#define NET_MAX_PAIRS   7       /* 2 * 7 + ctrl fits VIRTIO_MAX_QUEUES */
#define NET_QUEUE_SIZE  256
#define NET_CONFIG_LEN  10      /* mac, status, max_virtqueue_pairs */
/* Largest frame either way: a 64 KiB GSO packet plus Ethernet and VLAN. */
#define NET_MAX_FRAME   (65536 + 14 + 4)
#define NET_RX_BUF      (TAP_VNET_HDR_LEN + NET_MAX_FRAME)
#define NET_RX_BUDGET   64      /* frames per wake-up, for fairness */

#define NET_RXQ(pair)   (2 * (pair))
#define NET_TXQ(pair)   (2 * (pair) + 1)
#define NET_CTRLQ(n)    (2 * (n)->max_pairs)

struct net_dev;

struct net_pair {
	struct net_dev *n;
	unsigned int idx;
	int tap_fd;
	bool polling;           /* EPOLLIN on tap_fd */
	bool attached;          /* multi-queue: the tap sends to this fd */
	bool read_err_logged, write_err_logged;
	/* A frame read from the tap (header included) and how much of it
	 * reached guest buffers so far. */
	uint8_t *rx_buf;
	uint32_t rx_len, rx_off;
	/* Buffers filled for the frame, pushed together when it is whole. */
	struct { uint16_t head; uint32_t len; } rx_used[NET_QUEUE_SIZE];
	unsigned int rx_nused;
	uint8_t *nb_ptr[2];     /* num_buffers bytes in the first buffer */
};

struct net_dev {
	struct virtio_dev dev;
	char name[16];
	char tap[16];
	struct loop *loop;
	uint8_t mac[6];
	uint16_t status;
	unsigned int max_pairs, active_pairs;
	struct net_pair pairs[NET_MAX_PAIRS];
	struct vq_elem elem;
	uint64_t tx_frames, tx_bytes, tx_dropped;
	uint64_t rx_frames, rx_bytes, rx_dropped;
	uint64_t ctrl_cmds, ctrl_errors;
	/* Migration (net_state.c): the tap's fds are closed, handed over to
	 * the other ferry (or, on a destination, not taken yet); whether the
	 * tap outlives its last fd (a hand-over needs that). */
	bool tap_released;
	bool tap_persistent;
	bool tap_handover;      /* a live migration: let go at the quiesce */
};

/* A device without a tap (every pair's fd -1, TX frames counted, not
 * sent): what virtio_net_create() builds on, and what tests drive. */
struct net_dev *net_dev_alloc(const struct net_config *cfg, struct ferr *e);
int net_rx_deliver(struct net_pair *p);
void net_tx_one(struct net_pair *p, const struct vq_elem *e);
void net_ctrl(struct net_dev *n);
void net_set_pairs(struct net_dev *n, unsigned int pairs);
void net_default_mac(const char *tap, uint8_t mac[6]);
void net_on_tap(struct loop *l, int fd, uint32_t events, void *opaque);
unsigned int net_offloads(const struct virtio_dev *d);

/* Migration (net_state.c): the device ops, and the tap taken over at the
 * switchover. */
int net_quiesce(struct virtio_dev *d);
void net_resume(struct virtio_dev *d);
int net_save(struct virtio_dev *d, void *fdt);
int net_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e);
int net_tap_attach(struct net_dev *n, struct ferr *e);
void net_tap_note_persistent(struct net_dev *n);
void net_send_rarp(struct net_dev *n);

#endif
