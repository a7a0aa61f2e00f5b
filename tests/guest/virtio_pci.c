/* virtio over PCI (virtio 1.2, 4.1): bus 0 enumeration through ports
 * 0xcf8/0xcfc, the vendor capabilities (common, notify, ISR, device
 * config), BARs as the firmware or VMM assigned them, and MSI-X, else INTx
 * through the IOAPIC.  All CPL3: the TSS bitmap grants the ports. */
#include "virtio.h"

#define PCI_VENDOR_VIRTIO       0x1af4
#define PCI_CAP_VENDOR          0x09
#define PCI_CAP_MSIX            0x11
#define CAP_COMMON              1
#define CAP_NOTIFY              2
#define CAP_ISR                 3
#define CAP_DEVICE              4
#define MSI_NO_VECTOR           0xffff

/* Common configuration (4.1.4.3). */
#define CC_DFSELECT     0x00
#define CC_DF           0x04
#define CC_GFSELECT     0x08
#define CC_GF           0x0c
#define CC_MSIX         0x10
#define CC_NUMQ         0x12
#define CC_STATUS       0x14
#define CC_CFGGEN       0x15
#define CC_Q_SELECT     0x16
#define CC_Q_SIZE       0x18
#define CC_Q_MSIX       0x1a
#define CC_Q_ENABLE     0x1c
#define CC_Q_NOFF       0x1e
#define CC_Q_DESC       0x20
#define CC_Q_DRIVER     0x28
#define CC_Q_DEVICE     0x30

static uint32_t cfg_addr(uint32_t bdf, uint32_t off)
{
	return 0x80000000u | bdf << 8 | (off & 0xfc);
}

static uint32_t pci_read32(uint32_t bdf, uint32_t off)
{
	outl(0xcf8, cfg_addr(bdf, off));
	return inl(0xcfc);
}

static uint16_t pci_read16(uint32_t bdf, uint32_t off)
{
	return pci_read32(bdf, off) >> ((off & 2) * 8);
}

static uint8_t pci_read8(uint32_t bdf, uint32_t off)
{
	return pci_read32(bdf, off) >> ((off & 3) * 8);
}

static void pci_write16(uint32_t bdf, uint32_t off, uint16_t v)
{
	outl(0xcf8, cfg_addr(bdf, off));
	outw(0xcfc + (off & 2), v);
}

/* The memory address of BAR `bar`, 0 if it is unassigned or I/O. */
static uint64_t pci_bar(uint32_t bdf, uint8_t bar)
{
	uint32_t lo;
	uint64_t a;

	if (bar > 5)
		return 0;
	lo = pci_read32(bdf, 0x10 + 4 * bar);
	if (lo & 1)
		return 0;
	a = lo & ~0xfULL;
	if (((lo >> 1) & 3) == 2 && bar < 5)
		a |= (uint64_t)pci_read32(bdf, 0x14 + 4 * bar) << 32;
	return a;
}

static uint16_t pci_virtio_type(uint32_t bdf)
{
	uint16_t dev = pci_read16(bdf, 2);

	if (pci_read16(bdf, 0) != PCI_VENDOR_VIRTIO)
		return 0;
	if (dev >= 0x1040 && dev <= 0x107f)
		return dev - 0x1040;
	if (dev >= 0x1000 && dev <= 0x103f)     /* transitional: subsystem id */
		return pci_read16(bdf, 0x2e);
	return 0;
}

/* Read the capabilities of a virtio device; NULL or what is missing. */
static const char *pci_parse_caps(struct vdev *d)
{
	uint32_t bdf = d->bdf;
	uint8_t ptr = pci_read8(bdf, 0x34) & 0xfc;
	bool have[5] = { false };

	if (!(pci_read16(bdf, 6) & 0x10))
		return "no capability list";
	for (int n = 0; ptr && n < 48; n++, ptr = pci_read8(bdf, ptr + 1) & 0xfc) {
		uint8_t id = pci_read8(bdf, ptr), type, bar;
		uint64_t base, addr;
		uint32_t off, len;

		if (id == PCI_CAP_MSIX) {
			d->msix_cap = ptr;
			continue;
		}
		if (id != PCI_CAP_VENDOR)
			continue;
		type = pci_read8(bdf, ptr + 3);
		bar = pci_read8(bdf, ptr + 4);
		off = pci_read32(bdf, ptr + 8);
		len = pci_read32(bdf, ptr + 12);
		if (type < CAP_COMMON || type > CAP_DEVICE || have[type])
			continue;       /* the first of each type is the preferred one */
		base = pci_bar(bdf, bar);
		if (!base)
			continue;
		addr = base + off;
		if (map_mmio(addr, len ? len : 1) < 0)
			return "BAR outside what the guest can map";
		have[type] = true;
		switch (type) {
		case CAP_COMMON:
			d->base = addr;
			break;
		case CAP_NOTIFY:
			d->notify_base = addr;
			d->notify_mult = pci_read32(bdf, ptr + 16);
			break;
		case CAP_ISR:
			d->isr = addr;
			break;
		case CAP_DEVICE:
			d->devcfg = addr;
			break;
		}
	}
	if (!have[CAP_COMMON] || !have[CAP_NOTIFY] || !have[CAP_ISR])
		return "missing common, notify or ISR capability (or its BAR is unassigned)";
	return NULL;
}

/* The first virtio device of `type` on bus 0; 0 if found, -1 if none. */
int virtio_pci_find(uint16_t type, struct vdev *d)
{
	for (uint32_t dev = 0; dev < 32; dev++)
		for (uint32_t fn = 0; fn < 8; fn++) {
			uint32_t bdf = dev << 3 | fn;
			const char *why;

			if (pci_read16(bdf, 0) == 0xffff) {
				if (!fn)
					break;
				continue;
			}
			if (pci_virtio_type(bdf) == type) {
				memset(d, 0, sizeof(*d));
				d->t = &virtio_pci_transport;
				d->type = type;
				d->bdf = bdf;
				format(d->where, sizeof(d->where), "pci 00:%02x.%x", dev, fn);
				why = pci_parse_caps(d);
				if (why) {
					kprintf("TESTGUEST INFO %s: %s\n", d->where, why);
					continue;
				}
				/* Memory decode and bus master on, INTx left enabled. */
				pci_write16(bdf, 4, (pci_read16(bdf, 4) | 0x6) & ~0x400);
				return 0;
			}
			if (!fn && !(pci_read8(bdf, 0x0e) & 0x80))
				break;  /* not multi-function */
		}
	return -1;
}

static uint8_t pci_get_status(struct vdev *d)
{
	return mmio_read8(d->base + CC_STATUS);
}

static void pci_set_status(struct vdev *d, uint8_t s)
{
	mmio_write8(d->base + CC_STATUS, s);
}

static uint64_t pci_get_features(struct vdev *d)
{
	uint64_t f;

	mmio_write32(d->base + CC_DFSELECT, 0);
	f = mmio_read32(d->base + CC_DF);
	mmio_write32(d->base + CC_DFSELECT, 1);
	return f | (uint64_t)mmio_read32(d->base + CC_DF) << 32;
}

static void pci_set_features(struct vdev *d, uint64_t f)
{
	mmio_write32(d->base + CC_GFSELECT, 0);
	mmio_write32(d->base + CC_GF, (uint32_t)f);
	mmio_write32(d->base + CC_GFSELECT, 1);
	mmio_write32(d->base + CC_GF, f >> 32);
}

static uint8_t pci_config_gen(struct vdev *d)
{
	return mmio_read8(d->base + CC_CFGGEN);
}

static void write64(uint64_t a, uint64_t v)
{
	mmio_write32(a, (uint32_t)v);
	mmio_write32(a + 4, v >> 32);
}

static const char *pci_queue_size(struct vdev *d, struct vq *q, uint16_t max)
{
	uint64_t c = d->base;
	uint16_t size;

	mmio_write16(c + CC_Q_SELECT, q->index);
	size = mmio_read16(c + CC_Q_SIZE);
	if (!size)
		return "queue not available (size 0)";
	if (mmio_read16(c + CC_Q_ENABLE))
		return "queue already enabled after reset";
	if (size > max) {
		size = max;
		mmio_write16(c + CC_Q_SIZE, size);
	}
	q->size = size;
	return NULL;
}

static const char *pci_queue_enable(struct vdev *d, struct vq *q)
{
	uint64_t c = d->base;

	mmio_write16(c + CC_Q_SELECT, q->index);
	write64(c + CC_Q_DESC, (uint64_t)q->desc);
	write64(c + CC_Q_DRIVER, (uint64_t)q->avail);
	write64(c + CC_Q_DEVICE, (uint64_t)q->used);
	if (d->msix) {
		uint16_t v = q->slot >= 0 && !q->poll ? q->msix_entry : MSI_NO_VECTOR;

		mmio_write16(c + CC_Q_MSIX, v);
		if (mmio_read16(c + CC_Q_MSIX) != v)
			return "the device refused the queue's MSI-X vector";
	}
	q->notify_addr = d->notify_base + (uint64_t)mmio_read16(c + CC_Q_NOFF) * d->notify_mult;
	if (map_mmio(q->notify_addr, 2) < 0)
		return "notify address cannot be mapped";
	mmio_write16(c + CC_Q_ENABLE, 1);
	return NULL;
}

/* MSI-X: entry 0 for config changes, entry 1 + i for queue i, each on its
 * own slot; with fewer entries (QEMU gives virtio-serial 2), all queues
 * share entry 1.  Without MSI-X, one slot on the INTx line (level) that
 * reads the ISR. */
static const char *pci_irq_setup(struct vdev *d, int nq)
{
	uint32_t bdf = d->bdf, apic = lapic_id();
	uint16_t ctrl = d->msix_cap ? pci_read16(bdf, d->msix_cap + 2) : 0;
	int entries = (ctrl & 0x7ff) + 1;

	if (d->msix_cap && entries >= 2) {
		uint32_t tab = pci_read32(bdf, d->msix_cap + 4);
		uint64_t bar = pci_bar(bdf, tab & 7), t;
		int used = entries >= nq + 1 ? nq + 1 : 2;

		if (!bar)
			return "MSI-X table BAR unassigned";
		t = bar + (tab & ~7u);
		if (map_mmio(t, 16 * used) < 0)
			return "MSI-X table cannot be mapped";
		for (int i = 0; i < used; i++) {
			int slot = virq_alloc();
			uint64_t e = t + 16 * i;

			if (slot < 0)
				return "out of interrupt slots";
			if (i == 0)
				d->cfg_slot = slot;
			for (int k = 0; k < nq; k++)
				if (i == (used == nq + 1 ? k + 1 : 1)) {
					d->vq[k].slot = slot;
					d->vq[k].msix_entry = i;
				}
			mmio_write32(e, 0xfee00000u | apic << 12);
			mmio_write32(e + 4, 0);
			mmio_write32(e + 8, VEC_VIRTIO + slot);
			mmio_write32(e + 12, 0);        /* unmasked */
		}
		pci_write16(bdf, d->msix_cap + 2, (ctrl | 0x8000) & ~0x4000);
		d->msix = true;
		mmio_write16(d->base + CC_MSIX, 0);
		if (mmio_read16(d->base + CC_MSIX) != 0)
			return "the device refused the config MSI-X vector";
		return NULL;
	}
	int slot = virq_alloc();
	uint8_t line = pci_read8(bdf, 0x3c), pin = pci_read8(bdf, 0x3d);

	if (slot < 0)
		return "out of interrupt slots";
	if (!pin || line == 0xff)
		return "no MSI-X and no INTx line";
	virqs[slot].isr_addr = d->isr;
	d->cfg_slot = slot;
	for (int i = 0; i < nq; i++)
		d->vq[i].slot = slot;
	d->gsi = line;
	/* Level-triggered; KVM's IOAPIC ignores the polarity bit, and QEMU's
	 * and ferry's tables both describe PCI links as active-high. */
	if (ioapic_route_gsi(line, VEC_VIRTIO + slot, true, false, apic) < 0)
		return "INTx line beyond the IOAPIC's pins";
	return NULL;
}

static void pci_notify(struct vq *q)
{
	mmio_write16(q->notify_addr, q->index);
}

const struct vtransport virtio_pci_transport = {
	.name = "pci",
	.get_status = pci_get_status,
	.set_status = pci_set_status,
	.get_features = pci_get_features,
	.set_features = pci_set_features,
	.config_gen = pci_config_gen,
	.queue_size = pci_queue_size,
	.queue_enable = pci_queue_enable,
	.irq_setup = pci_irq_setup,
	.notify = pci_notify,
};
