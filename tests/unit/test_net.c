/* virtio-net: --net parsing, the control queue, transmit checks, receive into
 * mergeable buffers (staged frames, no tap), and a real tap both ways (root
 * and /dev/net/tun needed; skipped with the reason otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "ferry/util.h"
#include "ferry/vm.h"
#include "../../virtio/net.h"
#include "tap.h"

#define RAM   (16 * MiB)
#define QSTEP 0x4000ULL         /* queue q's rings at q * QSTEP */
#define DESC  0x0000ULL
#define AVAIL 0x1000ULL
#define USED  0x2000ULL
#define QSZ   16
#define DATA  0x100000ULL

static struct guest_mem gm;
static int irqs[16], cfg_irqs;

static void fake_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	irqs[q]++;
}

static void fake_notify_config(struct virtio_dev *d)
{
	(void)d;
	cfg_irqs++;
}

static const struct virtio_transport_ops fake_ops = {
	.notify_queue = fake_notify_queue,
	.notify_config = fake_notify_config,
};

/* Driver side of one queue. */
struct drvq { uint16_t avail_idx, used_seen, next_desc; };
static struct drvq dq[16];

static void gw(uint64_t gpa, const void *p, size_t n) { CHECK_EQ(gm_write(&gm, gpa, p, n), 0); }
static uint16_t gr16(uint64_t gpa) { uint16_t v = 0; CHECK_EQ(gm_read(&gm, gpa, &v, 2), 0); return v; }
static uint32_t gr32(uint64_t gpa) { uint32_t v = 0; CHECK_EQ(gm_read(&gm, gpa, &v, 4), 0); return v; }

/* Offer a chain of @n buffers (@wr: device-writable from index @first_in). */
static uint16_t offer_chain(unsigned int q, const uint64_t *addr, const uint32_t *len,
			    unsigned int n, unsigned int first_in)
{
	uint64_t base = q * QSTEP;
	uint16_t head = dq[q].next_desc % QSZ;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (head + i) % QSZ;
		struct { uint64_t a; uint32_t l; uint16_t f, nx; } d = {
			addr[i], len[i],
			(uint16_t)((i + 1 < n ? 1 : 0) | (i >= first_in ? 2 : 0)),
			(uint16_t)((idx + 1) % QSZ),
		};
		gw(base + DESC + 16 * idx, &d, 16);
	}
	dq[q].next_desc += n;
	gw(base + AVAIL + 4 + 2 * (dq[q].avail_idx % QSZ), &head, 2);
	dq[q].avail_idx++;
	gw(base + AVAIL + 2, &dq[q].avail_idx, 2);
	return head;
}

static uint16_t offer1(unsigned int q, uint64_t addr, uint32_t len, bool writable)
{
	return offer_chain(q, &addr, &len, 1, writable ? 0 : 1);
}

/* Next used entry of queue @q: 1 and its id/len, or 0. */
static int used_next(unsigned int q, uint32_t *id, uint32_t *len)
{
	uint64_t base = q * QSTEP;

	if (gr16(base + USED + 2) == dq[q].used_seen)
		return 0;
	*id = gr32(base + USED + 4 + 8 * (dq[q].used_seen % QSZ));
	*len = gr32(base + USED + 8 + 8 * (dq[q].used_seen % QSZ));
	dq[q].used_seen++;
	return 1;
}

/* Bring @d to DRIVER_OK with @features and all queues live, as a
 * transport would. */
static void start(struct virtio_dev *d, uint64_t features)
{
	memset(dq, 0, sizeof(dq));
	memset(irqs, 0, sizeof(irqs));
	cfg_irqs = 0;
	memset(gm_ptr(&gm, 0, DATA), 0, DATA);
	d->gm = &gm;
	d->t_ops = &fake_ops;
	d->driver_features = features | (1ULL << VIRTIO_F_VERSION_1);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		CHECK_EQ(vq_init(&d->vqs[q], &gm, QSZ, q * QSTEP + DESC, q * QSTEP + AVAIL,
				 q * QSTEP + USED, d->driver_features), 0);
		d->vq_ready[q] = true;
	}
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	CHECK_EQ(d->ops->activate(d), 0);
}

static void notify(struct virtio_dev *d, unsigned int q)
{
	pthread_mutex_lock(&d->lock);
	d->ops->queue_notify(d, q);
	pthread_mutex_unlock(&d->lock);
}

static struct net_dev *alloc_dev(const char *spec)
{
	struct net_config cfg;
	struct ferr e;

	CHECK_EQ(net_config_parse(spec, &cfg, &e), 0);
	return net_dev_alloc(&cfg, &e);
}

TEST(config_parse)
{
	struct net_config c;
	struct ferr e;

	CHECK_EQ(net_config_parse("tap=tap0", &c, &e), 0);
	CHECK_STR(c.tap, "tap0");
	CHECK(!c.has_mac);
	CHECK_EQ(c.queues, 1);
	CHECK_EQ(net_config_parse("tap=t1,mac=52:54:00:ab:CD:01,queues=4", &c, &e), 0);
	CHECK(c.has_mac);
	CHECK_EQ(c.mac[4], 0xcd);
	CHECK_EQ(c.queues, 4);
	CHECK_EQ(net_config_parse("mac=52:54:00:ab:cd:01", &c, &e), -EINVAL);
	CHECK(strstr(e.msg, "--net") && strstr(e.msg, "tap"));
	CHECK_EQ(net_config_parse("tap=t,mac=01:00:5e:00:00:01", &c, &e), -EINVAL);
	CHECK(strstr(e.msg, "mac="));
	CHECK_EQ(net_config_parse("tap=t,mac=52:54:00:ab:cd", &c, &e), -EINVAL);
	CHECK_EQ(net_config_parse("tap=t,queues=0", &c, &e), -EINVAL);
	CHECK(strstr(e.msg, "queues="));
	CHECK_EQ(net_config_parse("tap=t,queues=8", &c, &e), -EINVAL);
	CHECK_EQ(net_config_parse("tap=a/b", &c, &e), -EINVAL);
	CHECK_EQ(net_config_parse("tap=0123456789abcdef", &c, &e), -EINVAL);
	CHECK_EQ(net_config_parse("tap=t,speed=10", &c, &e), -EINVAL);
	CHECK(strstr(e.msg, "speed"));
	CHECK_EQ(net_config_parse("tap", &c, &e), -EINVAL);
}

TEST(default_mac_and_config_space)
{
	struct net_dev *n = alloc_dev("tap=ferrytest0,queues=2");
	uint8_t a[6], b[6], cfg[NET_CONFIG_LEN];

	net_default_mac("ferrytest0", a);
	net_default_mac("ferrytest1", b);
	CHECK(memcmp(a, b, 6) != 0);
	CHECK_EQ(a[0], 0x52);
	CHECK(!memcmp(n->mac, a, 6));
	CHECK_EQ(n->dev.num_queues, 5);
	CHECK(n->dev.ops->features(&n->dev) & NET_BIT(VIRTIO_NET_F_MQ));
	n->dev.ops->config_read(&n->dev, 0, cfg, sizeof(cfg));
	CHECK(!memcmp(cfg, a, 6));
	CHECK_EQ(cfg[6], NET_S_LINK_UP);
	CHECK_EQ(cfg[8], 2);
	virtio_dev_destroy(&n->dev);
}

/* Send one control command; returns the ack byte (0xee: none written). */
static uint8_t ctrl(struct net_dev *n, const uint8_t *cmd, uint32_t len)
{
	unsigned int q = NET_CTRLQ(n);
	uint64_t addr[2] = { DATA + 0x8000, DATA + 0x9000 };
	uint32_t lens[2] = { len, 1 }, id, ulen;
	uint8_t ack = 0xee;

	gw(addr[0], cmd, len);
	gw(addr[1], &ack, 1);
	offer_chain(q, addr, lens, 2, 1);
	notify(&n->dev, q);
	CHECK_EQ(used_next(q, &id, &ulen), 1);
	CHECK_EQ(gm_read(&gm, addr[1], &ack, 1), 0);
	return ack;
}

TEST(control_queue)
{
	struct net_dev *n = alloc_dev("tap=t");
	uint8_t promisc[] = { NET_CTRL_RX, 0, 1 };
	uint8_t announce[] = { NET_CTRL_ANNOUNCE, NET_CTRL_ANNOUNCE_ACK };
	uint8_t mq[] = { NET_CTRL_MQ, 0, 1, 0 };
	uint8_t table[] = { NET_CTRL_MAC, NET_CTRL_MAC_TABLE_SET, 0, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t bogus[] = { 77, 1 };

	start(&n->dev, NET_BIT(VIRTIO_NET_F_CTRL_VQ) | NET_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE));
	CHECK_EQ(ctrl(n, promisc, sizeof(promisc)), NET_OK);
	CHECK_EQ(ctrl(n, table, sizeof(table)), NET_OK);
	CHECK_EQ(ctrl(n, bogus, sizeof(bogus)), NET_ERR);
	CHECK_EQ(ctrl(n, mq, sizeof(mq)), NET_ERR);      /* MQ not negotiated */
	CHECK_EQ(ctrl(n, bogus, 1), NET_ERR);            /* truncated header */
	virtio_net_announce(&n->dev);
	CHECK_EQ(cfg_irqs, 1);
	CHECK(n->status & NET_S_ANNOUNCE);
	CHECK_EQ(ctrl(n, announce, sizeof(announce)), NET_OK);
	CHECK(!(n->status & NET_S_ANNOUNCE));
	CHECK(irqs[NET_CTRLQ(n)] > 0);
	/* A command without a writable byte is answered without an ack. */
	uint32_t id, len;
	offer1(NET_CTRLQ(n), DATA, 2, false);
	notify(&n->dev, NET_CTRLQ(n));
	CHECK_EQ(used_next(NET_CTRLQ(n), &id, &len), 1);
	CHECK_EQ(len, 0);
	CHECK(!(n->dev.status & VIRTIO_STATUS_NEEDS_RESET));
	virtio_dev_destroy(&n->dev);
}

TEST(transmit_checks)
{
	struct net_dev *n = alloc_dev("tap=t");
	uint32_t id, len;

	start(&n->dev, 0);
	offer1(NET_TXQ(0), DATA, 12 + 60, false);
	offer1(NET_TXQ(0), DATA, 12, false);                 /* header only */
	offer1(NET_TXQ(0), DATA, 100000, false);             /* above 64 KiB */
	notify(&n->dev, NET_TXQ(0));
	for (int i = 0; i < 3; i++)
		CHECK_EQ(used_next(NET_TXQ(0), &id, &len), 1);
	CHECK_EQ(n->tx_frames, 1);
	CHECK_EQ(n->tx_bytes, 60);
	CHECK_EQ(n->tx_dropped, 2);
	CHECK_EQ(irqs[NET_TXQ(0)], 1);
	virtio_dev_destroy(&n->dev);
}

/* Stage a frame of @len payload bytes (after the 12-byte header) on pair 0. */
static void stage(struct net_dev *n, uint32_t len)
{
	struct net_pair *p = &n->pairs[0];

	memset(p->rx_buf, 0, TAP_VNET_HDR_LEN);
	for (uint32_t i = 0; i < len; i++)
		p->rx_buf[TAP_VNET_HDR_LEN + i] = (uint8_t)(i * 7);
	p->rx_len = TAP_VNET_HDR_LEN + len;
	p->rx_off = p->rx_nused = 0;
}

TEST(mergeable_receive)
{
	struct net_dev *n = alloc_dev("tap=t");
	struct net_pair *p = &n->pairs[0];
	uint32_t id, len, total = 0;
	uint8_t buf[3000];
	uint16_t nb;

	p->rx_buf = malloc(NET_RX_BUF);
	start(&n->dev, NET_BIT(VIRTIO_NET_F_MRG_RXBUF));
	/* 2500 bytes + header into 1000-byte buffers: 3 of them, but only
	 * two are there at first. */
	stage(n, 2500);
	offer1(NET_RXQ(0), DATA, 1000, true);
	offer1(NET_RXQ(0), DATA + 0x1000, 1000, true);
	pthread_mutex_lock(&n->dev.lock);
	CHECK_EQ(net_rx_deliver(p), 0);
	pthread_mutex_unlock(&n->dev.lock);
	CHECK_EQ(used_next(NET_RXQ(0), &id, &len), 0);     /* nothing half-done */
	offer1(NET_RXQ(0), DATA + 0x2000, 1000, true);
	pthread_mutex_lock(&n->dev.lock);
	CHECK_EQ(net_rx_deliver(p), 1);
	pthread_mutex_unlock(&n->dev.lock);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(used_next(NET_RXQ(0), &id, &len), 1);
		CHECK_EQ(id, i);
		CHECK_EQ(len, i < 2 ? 1000 : 512);
		CHECK_EQ(gm_read(&gm, DATA + 0x1000 * i, buf + total, len), 0);
		total += len;
	}
	CHECK_EQ(total, 2512);
	memcpy(&nb, buf + 10, 2);
	CHECK_EQ(nb, 3);
	for (uint32_t i = 0; i < 2500; i++)
		if (buf[12 + i] != (uint8_t)(i * 7)) {
			CHECK_EQ(i, ~0u);
			break;
		}
	CHECK_EQ(n->rx_frames, 1);

	/* A first buffer smaller than the header: dropped, buffer back empty. */
	stage(n, 100);
	offer1(NET_RXQ(0), DATA, 8, true);
	pthread_mutex_lock(&n->dev.lock);
	CHECK_EQ(net_rx_deliver(p), 1);
	pthread_mutex_unlock(&n->dev.lock);
	CHECK_EQ(used_next(NET_RXQ(0), &id, &len), 1);
	CHECK_EQ(len, 0);
	CHECK_EQ(n->rx_dropped, 1);
	free(p->rx_buf);
	p->rx_buf = NULL;
	virtio_dev_destroy(&n->dev);
}

TEST(receive_without_mergeable)
{
	struct net_dev *n = alloc_dev("tap=t");
	struct net_pair *p = &n->pairs[0];
	uint32_t id, len;
	uint16_t nb = 0;

	p->rx_buf = malloc(NET_RX_BUF);
	start(&n->dev, 0);
	stage(n, 1500);
	offer1(NET_RXQ(0), DATA, 1000, true);           /* too small: dropped */
	offer1(NET_RXQ(0), DATA + 0x1000, 2000, true);
	pthread_mutex_lock(&n->dev.lock);
	CHECK_EQ(net_rx_deliver(p), 1);
	stage(n, 1500);
	CHECK_EQ(net_rx_deliver(p), 1);
	pthread_mutex_unlock(&n->dev.lock);
	CHECK_EQ(used_next(NET_RXQ(0), &id, &len), 1);
	CHECK_EQ(len, 0);
	CHECK_EQ(used_next(NET_RXQ(0), &id, &len), 1);
	CHECK_EQ(len, 1512);
	CHECK_EQ(gm_read(&gm, DATA + 0x1000 + 10, &nb, 2), 0);
	CHECK_EQ(nb, 1);
	free(p->rx_buf);
	p->rx_buf = NULL;
	virtio_dev_destroy(&n->dev);
}

/* ---- a real tap ---------------------------------------------------------- */

static int run(const char *fmt, const char *arg)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), fmt, arg, arg);
	return system(cmd);
}

TEST(real_tap)
{
	struct loop *loop = loop_create();
	struct virtio_dev *d;
	struct net_config cfg;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	char name[16], spec[32];
	uint8_t frame[1200], got[4096];
	struct ferr e;
	uint32_t id, len;
	int s, ifindex;
	ssize_t n;

	if (access("/dev/net/tun", R_OK | W_OK) != 0 || geteuid() != 0) {
		printf("# SKIP real_tap: needs root and /dev/net/tun\n");
		loop_destroy(loop);
		return;
	}
	snprintf(name, sizeof(name), "fyt%d", (int)getpid() % 100000);
	snprintf(spec, sizeof(spec), "tap=%s", name);
	CHECK_EQ(net_config_parse(spec, &cfg, &e), 0);
	d = virtio_net_create(&cfg, &(struct dev_env){ .loop = loop }, &e); /* creates the tap */
	if (!d) {
		printf("# SKIP real_tap: %s\n", e.msg);
		loop_destroy(loop);
		return;
	}
	run("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 >/dev/null 2>&1", name);
	CHECK_EQ(run("ip link set %s mtu 9000 up", name), 0);
	ifindex = if_nametoindex(name);
	s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
	CHECK(s >= 0);
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifindex;
	CHECK_EQ(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
	start(d, NET_BIT(VIRTIO_NET_F_MRG_RXBUF) | NET_BIT(VIRTIO_NET_F_GUEST_CSUM));

	/* Guest -> host: header + frame reach the AF_PACKET socket. */
	memset(frame, 0, sizeof(frame));
	memset(frame, 0xff, 6);                         /* broadcast */
	memcpy(frame + 6, ((struct net_dev *)d->priv)->mac, 6);
	frame[12] = 0x88; frame[13] = 0xb5;             /* local experimental */
	for (int i = 14; i < 1200; i++)
		frame[i] = i;
	gw(DATA, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
	gw(DATA + 12, frame, sizeof(frame));
	offer1(NET_TXQ(0), DATA, 12 + sizeof(frame), false);
	notify(d, NET_TXQ(0));
	CHECK_EQ(used_next(NET_TXQ(0), &id, &len), 1);
	n = -1;
	for (int i = 0; i < 200 && n != (ssize_t)sizeof(frame); i++) {
		n = recv(s, got, sizeof(got), 0);
		if (n != (ssize_t)sizeof(frame))
			usleep(5000);
	}
	CHECK_EQ(n, sizeof(frame));
	CHECK(!memcmp(got, frame, sizeof(frame)));

	/* Host -> guest: a 3000-byte frame over 1500-byte buffers. */
	static uint8_t big[3000];

	memcpy(big, frame, 14);
	memcpy(big, ((struct net_dev *)d->priv)->mac, 6);
	for (int i = 14; i < 3000; i++)
		big[i] = i * 3;
	for (int i = 0; i < 4; i++)
		offer1(NET_RXQ(0), DATA + 0x10000 + 0x1000 * i, 1500, true);
	CHECK_EQ(sendto(s, big, sizeof(big), 0, (struct sockaddr *)&sll, sizeof(sll)),
		 sizeof(big));
	/* Frames the host sent on its own may come first: walk frame by
	 * frame (num_buffers) until ours. */
	uint32_t total = 0, nbuf = 0, want = 0;
	bool found = false;
	for (int i = 0; i < 200 && !found; i++) {
		notify(d, NET_RXQ(0));
		while (!found && used_next(NET_RXQ(0), &id, &len) == 1) {
			CHECK(total + len <= sizeof(got));
			if (total + len > sizeof(got))
				break;
			CHECK_EQ(gm_read(&gm, DATA + 0x10000 + 0x1000 * id, got + total, len), 0);
			offer1(NET_RXQ(0), DATA + 0x10000 + 0x1000 * id, 1500, true);
			if (!nbuf)
				want = got[10] | got[11] << 8;
			total += len;
			if (++nbuf < want)
				continue;
			found = total == 12 + sizeof(big);
			if (!found)
				total = nbuf = 0;
		}
		if (!found)
			usleep(5000);
	}
	CHECK(found);
	CHECK_EQ(nbuf, 3);
	CHECK(!memcmp(got + 12, big, sizeof(big)));
	CHECK(irqs[NET_RXQ(0)] > 0);
	close(s);
	virtio_dev_destroy(d);
	loop_destroy(loop);
	/* ferry created it: it is gone with the fd. */
	CHECK_EQ(if_nametoindex(name), 0);
}

int main(void)
{
	struct gm_config cfg = { .size = RAM };
	struct ferr e;

	log_set_level(LOG_ERROR);
	if (gm_init(&gm, &cfg, &e) < 0) {
		printf("Bail out! %s\n", e.msg);
		return 1;
	}
	RUN(config_parse);
	RUN(default_mac_and_config_space);
	RUN(control_queue);
	RUN(transmit_checks);
	RUN(mergeable_receive);
	RUN(receive_without_mergeable);
	RUN(real_tap);
	gm_destroy(&gm);
	return tap_done();
}
