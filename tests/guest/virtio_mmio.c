/* virtio over MMIO (virtio 1.2, 4.2), version 2 only: devices announced on
 * the command line as virtio_mmio.device=<size>@<base>:<irq>[:<id>] (ferry
 * appends these, and so does QEMU's microvm), one level-triggered GSI per
 * device through the IOAPIC, acknowledged at CPL0 (virtio_irq). */
#include "virtio.h"

#define MMIO_MAGIC      0x000
#define MMIO_VERSION    0x004
#define MMIO_DEVICE_ID  0x008
#define MMIO_DF         0x010
#define MMIO_DFSEL      0x014
#define MMIO_GF         0x020
#define MMIO_GFSEL      0x024
#define MMIO_Q_SEL      0x030
#define MMIO_Q_NUM_MAX  0x034
#define MMIO_Q_NUM      0x038
#define MMIO_Q_READY    0x044
#define MMIO_Q_NOTIFY   0x050
#define MMIO_INT_STATUS 0x060
#define MMIO_INT_ACK    0x064
#define MMIO_STATUS     0x070
#define MMIO_Q_DESC     0x080
#define MMIO_Q_DRIVER   0x090
#define MMIO_Q_DEVICE   0x0a0
#define MMIO_CFG_GEN    0x0fc
#define MMIO_CONFIG     0x100

#define MMIO_MAGIC_VALUE 0x74726976     /* "virt" */

/* A number as Linux's memparse reads it: 0x hex or decimal, K/M/G. */
static const char *parse_num(const char *p, uint64_t *v)
{
	unsigned int base = 10;

	*v = 0;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++) {
		unsigned int dgt;

		if (*p >= '0' && *p <= '9')
			dgt = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			dgt = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			dgt = *p - 'A' + 10;
		else
			break;
		*v = *v * base + dgt;
	}
	switch (*p) {
	case 'K': case 'k': *v <<= 10; p++; break;
	case 'M': case 'm': *v <<= 20; p++; break;
	case 'G': case 'g': *v <<= 30; p++; break;
	}
	return p;
}

/* The first version-2 virtio-mmio device of `type` on the command line. */
int virtio_mmio_find(uint16_t type, struct vdev *d)
{
	static const char key[] = "virtio_mmio.device=";
	size_t klen = sizeof(key) - 1;

	for (const char *p = plat.cmdline; *p;) {
		uint64_t size, base, irq;
		const char *q;
		uint32_t v;

		while (*p == ' ')
			p++;
		if (memcmp(p, key, klen)) {
			while (*p && *p != ' ')
				p++;
			continue;
		}
		q = parse_num(p + klen, &size);
		p = q;
		if (*q++ != '@')
			continue;
		q = parse_num(q, &base);
		p = q;
		if (*q++ != ':')
			continue;
		p = parse_num(q, &irq);
		if (!size || map_mmio(base, size) < 0)
			continue;
		if (mmio_read32(base + MMIO_MAGIC) != MMIO_MAGIC_VALUE ||
		    mmio_read32(base + MMIO_DEVICE_ID) != type)
			continue;
		v = mmio_read32(base + MMIO_VERSION);
		if (v != 2) {
			kprintf("TESTGUEST INFO mmio 0x%lx: version %u, not 2 (QEMU: -global virtio-mmio.force-legacy=false)\n",
				base, v);
			continue;
		}
		memset(d, 0, sizeof(*d));
		d->t = &virtio_mmio_transport;
		d->type = type;
		d->base = base;
		d->devcfg = base + MMIO_CONFIG;
		d->gsi = irq;
		format(d->where, sizeof(d->where), "mmio 0x%lx irq %lu", base, irq);
		return 0;
	}
	return -1;
}

static uint8_t mmio_get_status(struct vdev *d)
{
	return mmio_read32(d->base + MMIO_STATUS);
}

static void mmio_set_status(struct vdev *d, uint8_t s)
{
	mmio_write32(d->base + MMIO_STATUS, s);
}

static uint64_t mmio_get_features(struct vdev *d)
{
	uint64_t f;

	mmio_write32(d->base + MMIO_DFSEL, 0);
	f = mmio_read32(d->base + MMIO_DF);
	mmio_write32(d->base + MMIO_DFSEL, 1);
	return f | (uint64_t)mmio_read32(d->base + MMIO_DF) << 32;
}

static void mmio_set_features(struct vdev *d, uint64_t f)
{
	mmio_write32(d->base + MMIO_GFSEL, 0);
	mmio_write32(d->base + MMIO_GF, (uint32_t)f);
	mmio_write32(d->base + MMIO_GFSEL, 1);
	mmio_write32(d->base + MMIO_GF, f >> 32);
}

static uint8_t mmio_config_gen(struct vdev *d)
{
	return mmio_read32(d->base + MMIO_CFG_GEN);
}

static const char *mmio_queue_size(struct vdev *d, struct vq *q, uint16_t max)
{
	uint32_t n;

	mmio_write32(d->base + MMIO_Q_SEL, q->index);
	if (mmio_read32(d->base + MMIO_Q_READY))
		return "queue already ready after reset";
	n = mmio_read32(d->base + MMIO_Q_NUM_MAX);
	if (!n)
		return "queue not available (QueueNumMax 0)";
	q->size = n < max ? n : max;
	return NULL;
}

static void write_pair(uint64_t a, uint64_t v)
{
	mmio_write32(a, (uint32_t)v);
	mmio_write32(a + 4, v >> 32);
}

static const char *mmio_queue_enable(struct vdev *d, struct vq *q)
{
	uint64_t b = d->base;

	mmio_write32(b + MMIO_Q_SEL, q->index);
	mmio_write32(b + MMIO_Q_NUM, q->size);
	write_pair(b + MMIO_Q_DESC, (uint64_t)q->desc);
	write_pair(b + MMIO_Q_DRIVER, (uint64_t)q->avail);
	write_pair(b + MMIO_Q_DEVICE, (uint64_t)q->used);
	mmio_write32(b + MMIO_Q_READY, 1);
	q->notify_addr = b + MMIO_Q_NOTIFY;
	return NULL;
}

/* One slot for the device: its GSI, level-triggered, active-high. */
static const char *mmio_irq_setup(struct vdev *d, int nq)
{
	int slot = virq_alloc();

	if (slot < 0)
		return "out of interrupt slots";
	virqs[slot].isr_addr = d->base + MMIO_INT_STATUS;
	virqs[slot].ack_addr = d->base + MMIO_INT_ACK;
	d->cfg_slot = slot;
	for (int i = 0; i < nq; i++)
		d->vq[i].slot = slot;
	if (ioapic_route_gsi(d->gsi, VEC_VIRTIO + slot, true, false, lapic_id()) < 0)
		return "GSI beyond the IOAPIC's pins";
	return NULL;
}

static void mmio_notify(struct vq *q)
{
	mmio_write32(q->notify_addr, q->index);
}

const struct vtransport virtio_mmio_transport = {
	.name = "mmio",
	.get_status = mmio_get_status,
	.set_status = mmio_set_status,
	.get_features = mmio_get_features,
	.set_features = mmio_set_features,
	.config_gen = mmio_config_gen,
	.queue_size = mmio_queue_size,
	.queue_enable = mmio_queue_enable,
	.irq_setup = mmio_irq_setup,
	.notify = mmio_notify,
};
