/* virtio-net (virtio 1.2 §5.1) on a host tap: transmit chains go to the tap
 * as they are (12-byte header + frame), received frames are staged and
 * copied into the guest's (mergeable) receive buffers, and a minimal control
 * queue answers announce/RX-mode/MAC/MQ commands.  One tap fd per queue
 * pair; all of it runs on the event loop under dev->lock. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/tap.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "net.h"

static uint64_t net_features(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	uint64_t f = NET_BIT(VIRTIO_NET_F_CSUM) | NET_BIT(VIRTIO_NET_F_GUEST_CSUM) |
		     NET_BIT(VIRTIO_NET_F_MAC) | NET_BIT(VIRTIO_NET_F_GUEST_TSO4) |
		     NET_BIT(VIRTIO_NET_F_GUEST_TSO6) | NET_BIT(VIRTIO_NET_F_GUEST_ECN) |
		     NET_BIT(VIRTIO_NET_F_HOST_TSO4) | NET_BIT(VIRTIO_NET_F_HOST_TSO6) |
		     NET_BIT(VIRTIO_NET_F_HOST_ECN) | NET_BIT(VIRTIO_NET_F_MRG_RXBUF) |
		     NET_BIT(VIRTIO_NET_F_STATUS) | NET_BIT(VIRTIO_NET_F_CTRL_VQ) |
		     NET_BIT(VIRTIO_NET_F_CTRL_RX) | NET_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);

	if (n->max_pairs > 1)
		f |= NET_BIT(VIRTIO_NET_F_MQ);
	return f;
}

static void net_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct net_dev *n = d->priv;
	uint8_t cfg[NET_CONFIG_LEN];
	uint16_t v;

	memcpy(cfg, n->mac, 6);
	v = htole16(n->status);
	memcpy(cfg + 6, &v, 2);
	v = htole16(n->max_pairs);
	memcpy(cfg + 8, &v, 2);
	memcpy(data, cfg + off, len);
}

static void net_config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data,
			     uint32_t len)
{
	struct net_dev *n = d->priv;

	/* Legacy drivers set the MAC through config space; keep that. */
	if (off < 6 && len <= 6 - off)
		memcpy(n->mac + off, data, len);
}

/* Turn a pair's EPOLLIN on or off; loop thread only. */
static void net_poll(struct net_pair *p, bool on)
{
	if (p->polling == on)
		return;
	if (p->tap_fd < 0 || !p->n->loop) {
		p->polling = on;
		return;
	}
	if (loop_mod(p->n->loop, p->tap_fd, on ? EPOLLIN : 0) == 0)
		p->polling = on;
}

/* Pop, re-checking once after asking for a kick (EVENT_IDX), so that a
 * buffer added meanwhile is not missed.  1, 0 (empty) or -errno. */
static int net_pop(struct vq *vq, struct vq_elem *e)
{
	int ret = vq_pop(vq, e);

	if (ret != 0)
		return ret;
	vq_set_avail_event(vq);
	return vq_pop(vq, e);
}

static bool net_queue_live(const struct virtio_dev *d, unsigned int q)
{
	/* Quiesced (migration): nothing may be popped until resume. */
	return (d->status & VIRTIO_STATUS_DRIVER_OK) && !d->quiesced &&
	       !(d->status & VIRTIO_STATUS_NEEDS_RESET) && q < d->num_queues && d->vq_ready[q];
}

/* Copy @len bytes of @src into @iov from byte @off on; returns the bytes
 * copied (less if the iovecs end). */
static size_t net_iov_from_buf(const struct iovec *iov, unsigned int cnt, const uint8_t *src,
			       size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t k = MIN(iov[i].iov_len, len - done);

		memcpy(iov[i].iov_base, src + done, k);
		done += k;
	}
	return done;
}

/* Remember where num_buffers (header bytes 10 and 11) landed in the first
 * buffer: it is known only when the frame is complete. */
static void net_note_num_buffers(struct net_pair *p, const struct iovec *iov, unsigned int cnt)
{
	size_t pos = 0;

	p->nb_ptr[0] = p->nb_ptr[1] = NULL;
	for (unsigned int i = 0; i < cnt; i++) {
		for (unsigned int b = 0; b < 2; b++) {
			size_t want = 10 + b;

			if (want >= pos && want < pos + iov[i].iov_len)
				p->nb_ptr[b] = (uint8_t *)iov[i].iov_base + (want - pos);
		}
		pos += iov[i].iov_len;
	}
}

/* Deliver the staged frame.  1 when delivered (or dropped), 0 when the guest
 * ran out of buffers (the state is kept for the next kick), -errno when the
 * queue is broken. */
int net_rx_deliver(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	struct vq *vq = &d->vqs[NET_RXQ(p->idx)];
	bool mrg = virtio_has_feature(d, VIRTIO_NET_F_MRG_RXBUF);
	struct vq_elem *e = &p->n->elem;
	int ret;

	while (p->rx_off < p->rx_len) {
		size_t k;

		if (p->rx_nused >= vq->size || p->rx_nused >= NET_QUEUE_SIZE) {
			/* Cannot happen with a conforming driver (every
			 * buffer holds at least the header): drop the frame. */
			ret = -ENOSPC;
			goto drop;
		}
		ret = net_pop(vq, e);
		if (ret <= 0)
			return ret;
		if (e->in_len < (p->rx_nused ? 1 : TAP_VNET_HDR_LEN) ||
		    (!mrg && e->in_len < p->rx_len)) {
			/* Too small for the header, or without mergeable
			 * buffers too small for the frame: give the buffer
			 * back empty (Linux counts it as a length error). */
			vq_push(vq, e->head, 0);
			virtio_queue_done(d, NET_RXQ(p->idx));
			ret = -EMSGSIZE;
			goto drop;
		}
		if (!p->rx_nused)
			net_note_num_buffers(p, vq_elem_in(e), e->in_num);
		k = net_iov_from_buf(vq_elem_in(e), e->in_num, p->rx_buf + p->rx_off,
				     p->rx_len - p->rx_off);
		p->rx_used[p->rx_nused].head = e->head;
		p->rx_used[p->rx_nused].len = k;
		p->rx_nused++;
		p->rx_off += k;
	}
	/* Complete: num_buffers, then every used entry at once. */
	if (p->nb_ptr[0])
		*p->nb_ptr[0] = p->rx_nused & 0xff;
	if (p->nb_ptr[1])
		*p->nb_ptr[1] = p->rx_nused >> 8;
	for (unsigned int i = 0; i < p->rx_nused; i++)
		vq_push(vq, p->rx_used[i].head, p->rx_used[i].len);
	p->n->rx_frames++;
	p->n->rx_bytes += p->rx_len - TAP_VNET_HDR_LEN;
	p->rx_len = p->rx_off = p->rx_nused = 0;
	return 1;
drop:
	/* Buffers already filled go back empty-handed: Linux drops such a
	 * frame (bad num_buffers) instead of delivering half of it. */
	for (unsigned int i = 0; i < p->rx_nused; i++)
		vq_push(vq, p->rx_used[i].head, 0);
	p->n->rx_dropped++;
	d->errors++;
	p->rx_len = p->rx_off = p->rx_nused = 0;
	return 1;
}

/* Receive on pair @p: what is staged first, then up to a budget of frames
 * from the tap.  Stops polling the tap while the guest has no buffers. */
static void net_rx(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	unsigned int q = NET_RXQ(p->idx);
	unsigned int budget = NET_RX_BUDGET;
	bool pushed = false;
	ssize_t len;
	int ret;

	if (!net_queue_live(d, q)) {
		net_poll(p, false);
		return;
	}
	while (budget--) {
		if (!p->rx_len) {
			if (p->tap_fd < 0)
				break;
			len = read(p->tap_fd, p->rx_buf, NET_RX_BUF);
			if (len < 0) {
				if (errno != EAGAIN && errno != EINTR && !p->read_err_logged) {
					log_warn("%s: reading tap %s: %s", d->name, p->n->tap,
						 strerror(errno));
					p->read_err_logged = true;
				}
				break;
			}
			if (len <= TAP_VNET_HDR_LEN) {
				p->n->rx_dropped++;
				continue;
			}
			p->rx_len = len;
			p->rx_off = 0;
			p->rx_nused = 0;
		}
		ret = net_rx_deliver(p);
		if (ret < 0) {
			virtio_dev_fail(d, "receive queue broken");
			net_poll(p, false);
			return;
		}
		if (ret == 0) {
			/* The frame waits in rx_buf; the guest's next RX
			 * kick brings us back. */
			if (pushed)
				virtio_queue_done(d, q);
			net_poll(p, false);
			return;
		}
		pushed = true;
	}
	if (pushed)
		virtio_queue_done(d, q);
	net_poll(p, true);
}

void net_on_tap(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct net_pair *p = opaque;

	(void)l;
	(void)fd;
	(void)events;
	pthread_mutex_lock(&p->n->dev.lock);
	net_rx(p);
	pthread_mutex_unlock(&p->n->dev.lock);
}

/* Transmit one chain: header and frame go to the tap as one writev. */
void net_tx_one(struct net_pair *p, const struct vq_elem *e)
{
	struct net_dev *n = p->n;
	ssize_t w;

	if (e->out_len <= TAP_VNET_HDR_LEN || e->out_len > TAP_VNET_HDR_LEN + NET_MAX_FRAME) {
		n->tx_dropped++;
		n->dev.errors++;
		return;
	}
	if (p->tap_fd < 0) {
		w = e->out_len;         /* fuzzing and tests: no tap */
	} else {
		do
			w = writev(p->tap_fd, e->iov, e->out_num);
		while (w < 0 && errno == EINTR);
	}
	if (w < 0) {
		/* A full or down tap drops, as a wire would; a frame the
		 * kernel refuses (bad GSO header) is the guest's error. */
		n->tx_dropped++;
		if (errno != EAGAIN && errno != ENOBUFS && errno != EIO && !p->write_err_logged) {
			log_warn("%s: tap %s refused a frame: %s", n->dev.name, n->tap,
				 strerror(errno));
			p->write_err_logged = true;
		}
		return;
	}
	n->tx_frames++;
	n->tx_bytes += e->out_len - TAP_VNET_HDR_LEN;
}

static void net_tx(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	unsigned int q = NET_TXQ(p->idx);
	struct vq_elem *e = &p->n->elem;
	bool pushed = false;
	int ret;

	if (!net_queue_live(d, q))
		return;
	/* The ring bounds one round's work: a chain is popped once.  What
	 * the driver added meanwhile is handled on the next round: it may
	 * not kick for it (EVENT_IDX), so ask the transport to come back. */
	for (unsigned int i = 0;; i++) {
		if (i == d->vqs[q].size) {
			virtio_queue_requeue(d, q);
			break;
		}
		ret = net_pop(&d->vqs[q], e);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_dev_fail(d, "transmit queue broken");
			return;
		}
		net_tx_one(p, e);
		vq_push(&d->vqs[q], e->head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_queue_done(d, q);
}

static void net_queue_notify(struct virtio_dev *d, unsigned int q)
{
	struct net_dev *n = d->priv;

	if (q == NET_CTRLQ(n))
		net_ctrl(n);
	else if (q / 2 < n->max_pairs && (q & 1))
		net_tx(&n->pairs[q / 2]);
	else if (q / 2 < n->max_pairs)
		net_rx(&n->pairs[q / 2]);
}

unsigned int net_offloads(const struct virtio_dev *d)
{
	unsigned int off = 0;

	if (!virtio_has_feature(d, VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	off |= TAP_OFFLOAD_CSUM;
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO4))
		off |= TAP_OFFLOAD_TSO4;
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO6))
		off |= TAP_OFFLOAD_TSO6;
	if ((off & (TAP_OFFLOAD_TSO4 | TAP_OFFLOAD_TSO6)) &&
	    virtio_has_feature(d, VIRTIO_NET_F_GUEST_ECN))
		off |= TAP_OFFLOAD_TSO_ECN;
	return off;
}

static int net_activate(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	unsigned int off = net_offloads(d);
	int ret;

	for (unsigned int i = 0; i < n->max_pairs; i++) {
		if (n->pairs[i].tap_fd < 0)
			continue;
		ret = tap_set_offload(n->pairs[i].tap_fd, off);
		if (ret < 0) {
			log_error("%s: tap %s: cannot set offloads 0x%x: %s", d->name, n->tap,
				  off, strerror(-ret));
			return ret;
		}
	}
	/* Until VQ_PAIRS_SET, only the first pair carries traffic. */
	net_set_pairs(n, 1);
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;

	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		/* Popped buffers vanish with the queues; so does a frame
		 * half-way into them. */
		p->rx_len = p->rx_off = p->rx_nused = 0;
		if (p->tap_fd >= 0)
			tap_set_offload(p->tap_fd, 0);
	}
	n->status = NET_S_LINK_UP;
}

static void net_destroy(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;

	for (unsigned int i = 0; i < n->max_pairs; i++) {
		free(n->pairs[i].rx_buf);
		if (n->pairs[i].tap_fd < 0)
			continue;
		if (n->loop)
			loop_del(n->loop, n->pairs[i].tap_fd);
		close(n->pairs[i].tap_fd);
	}
	free(n);
}

static const struct virtio_dev_ops net_ops = {
	.features = net_features,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.queue_notify = net_queue_notify,
	.reset = net_reset,
	.destroy = net_destroy,
	.quiesce = net_quiesce,
	.resume = net_resume,
	.save = net_save,
	.load = net_load,
};

void virtio_net_announce(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;

	pthread_mutex_lock(&d->lock);
	if ((d->status & VIRTIO_STATUS_DRIVER_OK) &&
	    virtio_has_feature(d, VIRTIO_NET_F_GUEST_ANNOUNCE) && d->t_ops) {
		n->status |= NET_S_ANNOUNCE;
		d->t_ops->notify_config(d);
	} else {
		/* A driver that cannot announce itself: ferry does, once,
		 * so that switches learn the MAC's new port. */
		net_send_rarp(n);
	}
	pthread_mutex_unlock(&d->lock);
}

/* Device state without a tap (fds -1): for tests and fuzzing. */
struct net_dev *net_dev_alloc(const struct net_config *cfg, struct ferr *e)
{
	unsigned int pairs = cfg->queues ? cfg->queues : 1;
	static unsigned int next_id;
	struct net_dev *n;

	if (pairs > NET_MAX_PAIRS) {
		ferr_set(e, -EINVAL, "--net: queues=%u, at most %d", pairs, NET_MAX_PAIRS);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		ferr_errno(e, -ENOMEM, "virtio-net state");
		return NULL;
	}
	n->max_pairs = pairs;
	n->status = NET_S_LINK_UP;
	snprintf(n->tap, sizeof(n->tap), "%s", cfg->tap);
	if (cfg->has_mac)
		memcpy(n->mac, cfg->mac, 6);
	else
		net_default_mac(cfg->tap, n->mac);
	snprintf(n->name, sizeof(n->name), "net%u", __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED));
	virtio_dev_init(&n->dev, n->name, VIRTIO_ID_NET, 2 * pairs + 1, NET_QUEUE_SIZE,
			NET_CONFIG_LEN, &net_ops, n);
	for (unsigned int i = 0; i < pairs; i++) {
		n->pairs[i].n = n;
		n->pairs[i].idx = i;
		n->pairs[i].tap_fd = -1;
		n->pairs[i].attached = true;
	}
	return n;
}

struct virtio_dev *virtio_net_create(const struct net_config *cfg, const struct dev_env *env,
				     struct ferr *e)
{
	int fds[NET_MAX_PAIRS];
	struct net_dev *n;
	int ret;

	n = net_dev_alloc(cfg, e);
	if (!n)
		return NULL;
	n->loop = env->loop;
	if (env->incoming) {
		/* The source holds the tap until it quiesces: take it over
		 * when its state arrives (net_load). */
		n->tap_released = true;
		return &n->dev;
	}
	ret = tap_open(cfg->tap, n->max_pairs, fds, e);
	if (ret < 0) {
		free(n);
		return NULL;
	}
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		p->tap_fd = fds[i];
		p->rx_buf = malloc(NET_RX_BUF);
		/* Registered idle; the first RX kick turns EPOLLIN on. */
		ret = p->rx_buf ? loop_add(n->loop, p->tap_fd, 0, net_on_tap, p) : -ENOMEM;
		if (ret < 0) {
			ferr_errno(e, ret, "--net tap=%s: queue %u", cfg->tap, i);
			for (unsigned int j = i + 1; j < n->max_pairs; j++)
				close(fds[j]);
			/* net_destroy skips the ones never added to the loop
			 * harmlessly: loop_del returns -ENOENT. */
			net_destroy(&n->dev);
			return NULL;
		}
	}
	net_tap_note_persistent(n);
	return &n->dev;
}

/* Multi-queue: the tap spreads flows over attached fds only. */
void net_set_pairs(struct net_dev *n, unsigned int pairs)
{
	n->active_pairs = pairs;
	if (n->max_pairs < 2)
		return;
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		bool on = i < pairs;
		int ret;

		if (p->tap_fd < 0 || p->attached == on)
			continue;
		ret = tap_set_queue(p->tap_fd, on);
		if (ret < 0)
			log_warn("%s: tap %s: cannot %s queue %u: %s", n->dev.name, n->tap,
				 on ? "attach" : "detach", i, strerror(-ret));
		else
			p->attached = on;
	}
}

static size_t net_iov_to_buf(const struct iovec *iov, unsigned int cnt, uint8_t *dst,
			     size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t k = MIN(iov[i].iov_len, len - done);

		memcpy(dst + done, iov[i].iov_base, k);
		done += k;
	}
	return done;
}

/* One control command: its class/command header and the first bytes of its
 * data (none of the commands answered here needs more). */
static uint8_t net_ctrl_cmd(struct net_dev *n, const struct vq_elem *e)
{
	struct virtio_dev *d = &n->dev;
	uint8_t buf[2 + 8];
	size_t len = net_iov_to_buf(e->iov, e->out_num, buf, sizeof(buf));
	size_t dlen = e->out_len - 2;   /* valid once len >= 2 */
	uint16_t pairs;

	if (len < 2)
		return NET_ERR;
	switch (buf[0]) {
	case NET_CTRL_RX:
		/* PROMISC, ALLMULTI, ...: the tap delivers everything
		 * anyway; say yes. */
		return dlen >= 1 ? NET_OK : NET_ERR;
	case NET_CTRL_MAC:
		if (buf[1] == NET_CTRL_MAC_TABLE_SET)
			return NET_OK;  /* no filtering: a superset is allowed */
		if (buf[1] == NET_CTRL_MAC_ADDR_SET && dlen >= 6) {
			memcpy(n->mac, buf + 2, 6);
			return NET_OK;
		}
		return NET_ERR;
	case NET_CTRL_ANNOUNCE:
		if (buf[1] != NET_CTRL_ANNOUNCE_ACK)
			return NET_ERR;
		n->status &= ~NET_S_ANNOUNCE;
		return NET_OK;
	case NET_CTRL_MQ:
		if (buf[1] != NET_CTRL_MQ_VQ_PAIRS_SET || dlen < 2 ||
		    !virtio_has_feature(d, VIRTIO_NET_F_MQ))
			return NET_ERR;
		pairs = buf[2] | buf[3] << 8;
		if (pairs < 1 || pairs > n->max_pairs)
			return NET_ERR;
		net_set_pairs(n, pairs);
		return NET_OK;
	}
	return NET_ERR;
}

void net_ctrl(struct net_dev *n)
{
	struct virtio_dev *d = &n->dev;
	unsigned int q = NET_CTRLQ(n);
	struct vq_elem *e = &n->elem;
	bool pushed = false;
	int ret;

	if (!net_queue_live(d, q))
		return;
	for (unsigned int i = 0; i < d->vqs[q].size; i++) {
		struct iovec *ack;
		uint8_t status;

		ret = net_pop(&d->vqs[q], e);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_dev_fail(d, "control queue broken");
			return;
		}
		status = net_ctrl_cmd(n, e);
		n->ctrl_cmds++;
		if (status != NET_OK)
			n->ctrl_errors++;
		/* The ack is the last writable byte (§5.1.6.5). */
		if (e->in_num) {
			ack = &vq_elem_in(e)[e->in_num - 1];
			((uint8_t *)ack->iov_base)[ack->iov_len - 1] = status;
		}
		vq_push(&d->vqs[q], e->head, e->in_num ? 1 : 0);
		pushed = true;
	}
	if (pushed)
		virtio_queue_done(d, q);
}

/* 52:54:00 (QEMU's locally administered prefix) and three bytes of an
 * FNV-1a hash of the tap name: stable across restarts of the same VM. */
void net_default_mac(const char *tap, uint8_t mac[6])
{
	uint32_t h = 2166136261u;

	for (const char *s = tap; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = h >> 16;
	mac[4] = h >> 8;
	mac[5] = h;
}

static int net_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	int end = 0;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5], &end) != 6 || s[end] || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
	/* A multicast or all-zero address cannot be a NIC's. */
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

/* Linux's dev_valid_name(). */
static bool net_valid_ifname(const char *s, size_t len)
{
	if (len == 0 || len >= 16 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

int net_config_parse(const char *spec, struct net_config *out, struct ferr *e)
{
	char buf[256], *save = NULL, *tok;
	uint64_t v;

	memset(out, 0, sizeof(*out));
	out->queues = 1;
	if (!spec || strlen(spec) >= sizeof(buf))
		return ferr_set(e, -EINVAL, "--net: expected tap=NAME[,mac=MAC][,queues=N]");
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');

		if (!val)
			return ferr_set(e, -EINVAL, "--net: '%s' is not KEY=VALUE (keys: tap, mac, queues)",
					tok);
		*val++ = '\0';
		if (!strcmp(tok, "tap")) {
			if (!net_valid_ifname(val, strlen(val)))
				return ferr_set(e, -EINVAL, "--net: tap='%s' is not an interface name (1-15 characters, no '/', ':' or spaces)",
						val);
			snprintf(out->tap, sizeof(out->tap), "%s", val);
		} else if (!strcmp(tok, "mac")) {
			if (net_parse_mac(val, out->mac) < 0)
				return ferr_set(e, -EINVAL, "--net: mac='%s' is not a unicast MAC address like 52:54:00:12:34:56",
						val);
			out->has_mac = true;
		} else if (!strcmp(tok, "queues")) {
			if (parse_uint(val, 1, NET_MAX_PAIRS, &v) < 0)
				return ferr_set(e, -EINVAL, "--net: queues='%s' must be 1 to %d",
						val, NET_MAX_PAIRS);
			out->queues = v;
		} else {
			return ferr_set(e, -EINVAL, "--net: unknown key '%s' (keys: tap, mac, queues)",
					tok);
		}
	}
	if (!out->tap[0])
		return ferr_set(e, -EINVAL, "--net: tap=NAME is required");
	return 0;
}
