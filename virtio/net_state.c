/* virtio-net live migration: quiesce and resume, the device state beyond
 * the queues (MAC, config status, active queue pairs), the hand-over of the
 * host tap between the two ferries, and the RARP announce for guests that
 * cannot announce themselves.
 *
 * The tap moves by name: the source closes its fds when it quiesces, the
 * destination opens it when the state arrives (a single-queue tap admits one
 * opener at a time, so it cannot open it before), and the source opens it
 * again if the migration fails.  So the tap must outlive its last fd: a VM
 * on a tap that is not persistent (one ferry created) is refused up front.
 * Reopening after start-up needs no capability if the tap belongs to
 * ferry's user (ip tuntap add NAME mode tap user USER). */
#include <errno.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <libfdt.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "net.h"

#define NET_ETH_P_RARP 0x8035

/* Give back receive buffers popped for a frame that is not complete: the
 * guest was told nothing about them, so they go back to the avail ring as
 * if never taken (net_rx pops them in ring order, nothing else pops this
 * queue), and the frame is dropped as a wire would drop it. */
static void net_unpop_rx(struct net_pair *p)
{
	struct virtio_dev *d = &p->n->dev;
	unsigned int q = NET_RXQ(p->idx);
	struct vq *vq = &d->vqs[q];

	if (p->rx_len)
		p->n->rx_dropped++;
	if (p->rx_nused && q < d->num_queues && d->vq_ready[q]) {
		for (unsigned int i = 0; i < p->rx_nused; i++)
			if (p->rx_used[i].head < vq->size)
				vq->inflight[p->rx_used[i].head] = UINT32_MAX;
		vq->last_avail_idx -= (uint16_t)p->rx_nused;
	}
	p->rx_len = p->rx_off = p->rx_nused = 0;
	p->nb_ptr[0] = p->nb_ptr[1] = NULL;
}

static void net_tap_close(struct net_dev *n)
{
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		if (p->tap_fd < 0)
			continue;
		if (n->loop)
			loop_del(n->loop, p->tap_fd);
		close(p->tap_fd);
		p->tap_fd = -1;
		p->polling = false;
	}
}

/* Open the tap's queues and put them in the state the driver negotiated:
 * offloads, attached pairs.  EPOLLIN comes with the next RX kick. */
int net_tap_attach(struct net_dev *n, struct ferr *e)
{
	struct virtio_dev *d = &n->dev;
	int fds[NET_MAX_PAIRS], ret;
	unsigned int off = 0;

	ret = tap_open(n->tap, n->max_pairs, fds, e);
	if (ret < 0)
		return ret;
	if ((d->status & VIRTIO_STATUS_DRIVER_OK) && !(d->status & VIRTIO_STATUS_NEEDS_RESET))
		off = net_offloads(d);
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		p->tap_fd = fds[i];
		p->polling = false;
		p->attached = true;
		p->read_err_logged = p->write_err_logged = false;
	}
	for (unsigned int i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];

		if (!p->rx_buf)
			p->rx_buf = malloc(NET_RX_BUF);
		ret = p->rx_buf ? 0 : -ENOMEM;
		if (!ret && off)
			ret = tap_set_offload(p->tap_fd, off);
		if (!ret)
			ret = loop_add(n->loop, p->tap_fd, 0, net_on_tap, p);
		if (ret < 0) {
			ferr_errno(e, ret, "%s: tap %s queue %u", d->name, n->tap, i);
			/* Not yet on the loop from here on: close, not del. */
			for (unsigned int j = i; j < n->max_pairs; j++) {
				close(n->pairs[j].tap_fd);
				n->pairs[j].tap_fd = -1;
			}
			net_tap_close(n);
			return ret;
		}
	}
	if (n->active_pairs)
		net_set_pairs(n, n->active_pairs);
	n->tap_released = false;
	return 0;
}

/* Called by virtio_net_create() while ferry still may ask (before
 * privileges and system calls are narrowed): whether the tap outlives its
 * last fd, which the hand-over needs. */
void net_tap_note_persistent(struct net_dev *n)
{
	struct ifreq ifr = { 0 };

	n->tap_persistent = n->pairs[0].tap_fd >= 0 &&
			    ioctl(n->pairs[0].tap_fd, TUNGETIFF, &ifr) == 0 &&
			    (ifr.ifr_flags & IFF_PERSIST);
}

int virtio_net_migrate_prepare(struct virtio_dev *d, bool live, struct ferr *e)
{
	struct net_dev *n = d->priv;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (live && !n->tap_persistent && n->pairs[0].tap_fd >= 0)
		ret = ferr_set(e, -ENOTSUP, "cannot migrate %s: its tap %s is not persistent and would vanish when this ferry lets go of it (create it first: ip tuntap add %s mode tap user USER)",
			       d->name, n->tap, n->tap);
	/* A snapshot keeps the tap: the VM goes on here. */
	n->tap_handover = live && !ret;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int net_quiesce(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	for (unsigned int i = 0; i < n->max_pairs; i++)
		net_unpop_rx(&n->pairs[i]);
	if (n->tap_released || n->pairs[0].tap_fd < 0 || !n->tap_handover)
		goto out;
	net_tap_close(n);
	n->tap_released = true;
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* Lock held.  The source after a failed migration or a snapshot takes its
 * tap back; the destination, which took it in net_load, keeps it. */
void net_resume(struct virtio_dev *d)
{
	struct net_dev *n = d->priv;
	struct ferr e = { { 0 } };

	n->tap_handover = false;
	if (n->tap_released && net_tap_attach(n, &e) < 0)
		log_error("%s: cannot take the tap back: %s; the guest's frames are dropped",
			  d->name, e.msg);
}

int net_save(struct virtio_dev *d, void *fdt)
{
	struct net_dev *n = d->priv;
	int ret = 0;

	ret |= fdt_property(fdt, "mac", n->mac, sizeof(n->mac));
	ret |= fdt_property_u32(fdt, "net-status", n->status);
	ret |= fdt_property_u32(fdt, "max-pairs", n->max_pairs);
	ret |= fdt_property_u32(fdt, "active-pairs", n->active_pairs);
	return ret ? -ENOSPC : 0;
}

int net_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e)
{
	struct net_dev *n = d->priv;
	const uint8_t *mac;
	uint32_t status, active, pairs;
	int len;

	mac = fdt_getprop(fdt, node, "mac", &len);
	status = dev_state_u32(fdt, node, "net-status", UINT32_MAX);
	pairs = dev_state_u32(fdt, node, "max-pairs", 0);
	active = dev_state_u32(fdt, node, "active-pairs", UINT32_MAX);
	if (!mac || len != 6 || status > (NET_S_LINK_UP | NET_S_ANNOUNCE) ||
	    active > n->max_pairs)
		return ferr_set(e, -EPROTO, "%s: virtio-net state missing or malformed", d->name);
	if (pairs != n->max_pairs)
		return ferr_set(e, -EINVAL, "%s: the source has %u queue pairs, this one %u (give the same queues=)",
				d->name, pairs, n->max_pairs);
	memcpy(n->mac, mac, 6);
	n->status = (uint16_t)status;
	n->active_pairs = active;
	if (n->tap_released) {
		struct ferr why = { 0 };
		int ret = net_tap_attach(n, &why);

		if (ret < 0)
			return ferr_set(e, ret, "%s: cannot take over the tap from the source: %s",
					d->name, why.msg);
	}
	/* Handed over, hence persistent: it can move on from here too. */
	n->tap_persistent = n->pairs[0].tap_fd >= 0;
	return 0;
}

/* A RARP request from the guest's MAC (what QEMU sends too): every bridge
 * and switch between here and the guest's peers learns its new port. */
void net_send_rarp(struct net_dev *n)
{
	uint8_t buf[TAP_VNET_HDR_LEN + 60] = { 0 };
	uint8_t *f = buf + TAP_VNET_HDR_LEN;
	int fd = n->pairs[0].tap_fd;

	if (fd < 0)
		return;
	memset(f, 0xff, 6);
	memcpy(f + 6, n->mac, 6);
	f[12] = NET_ETH_P_RARP >> 8;
	f[13] = NET_ETH_P_RARP & 0xff;
	f[15] = 1;                      /* hardware: Ethernet */
	f[16] = 0x08;                   /* protocol: IPv4 */
	f[18] = 6;
	f[19] = 4;
	f[21] = 3;                      /* reverse request */
	memcpy(f + 22, n->mac, 6);      /* sender */
	memcpy(f + 32, n->mac, 6);      /* target */
	if (write(fd, buf, sizeof(buf)) < 0)
		log_debug("%s: tap %s: announce not sent: %s", n->dev.name, n->tap,
			  strerror(errno));
}
