/* virtio-pci modern transport (virtio 1.2 §4.1): the PCI function, its
 * capabilities, the registers behind its BARs (common config, ISR, device
 * config, notifications), queue kicks as ioeventfds on the event loop.
 * Interrupts (MSI-X irqfds, the shared INTx line) live in pci_irq.c, the
 * layout and state both share in pci_priv.h.
 *
 * ferry boots without firmware, so this file also does what firmware would:
 * it places the BARs in the PCI MMIO window, enables memory decoding and
 * writes the interrupt line.  The guest may move the BARs later.
 *
 * BAR 0 (32-bit memory, 16 KiB)        BAR 1 (32-bit memory, 4 KiB)
 *   0x0000 common configuration          0x000 MSI-X table (num_queues + 1)
 *   0x1000 ISR status                    0x800 MSI-X PBA
 *   0x2000 device configuration
 *   0x3000 notifications, 4 bytes per queue (queue_notify_off = queue index)
 * The MSI-X structures get their own BAR (as in QEMU) so that they sit in a
 * page of their own, as the PCI spec asks.  There is no PCI_CFG capability
 * (the alternative access window): Linux does not use it, and pci.c serves
 * capability reads from cfg[] without asking the device.
 *
 * Threads and locks: register accesses come from vCPU threads and take
 * d->lock; config space writes and BAR moves come from pci.c with its bus
 * lock held, and take d->lock inside it (never the other way round).  Queue
 * kicks arrive as eventfds on the event loop.  Interrupt plumbing (vm_irq_*,
 * vm_msi_route_*) is called under d->lock and takes vm->irq_lock inside. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "pci_priv.h"

static uint64_t vp_offered(struct virtio_dev *d)
{
	uint64_t f = d->ops->features ? d->ops->features(d) : 0;

	/* ACCESS_PLATFORM stays off: ferry has no IOMMU. */
	f &= ~(1ULL << VIRTIO_F_ACCESS_PLATFORM);
	return f | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_RING_F_INDIRECT_DESC |
	       1ULL << VIRTIO_RING_F_EVENT_IDX;
}

/* --- queue kicks --- */

static void vp_kick(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vp_queue *vq = opaque;
	struct virtio_dev *d = vq->vp->d;
	eventfd_t cnt;

	(void)l;
	(void)events;
	if (eventfd_read(fd, &cnt) < 0)
		return;         /* EAGAIN: someone else drained it */
	pthread_mutex_lock(&d->lock);
	/* Quiesced for migration: virtio_dev_resume() looks again. */
	if ((d->status & VIRTIO_STATUS_DRIVER_OK) && !d->quiesced &&
	    !(d->status & VIRTIO_STATUS_NEEDS_RESET) && d->vq_ready[vq->index])
		d->ops->queue_notify(d, vq->index);
	pthread_mutex_unlock(&d->lock);
}

void vp_ioeventfds(struct virtio_pci *vp, bool assign)
{
	for (unsigned int q = 0; q < vp->d->num_queues; q++) {
		struct vp_queue *vq = &vp->queues[q];
		uint64_t addr = vp->bar_addr[0] + VP_NOTIFY_OFF + VP_NOTIFY_MULT * q;
		int ret;

		if (!assign) {
			if (vq->ioeventfd)
				vm_ioeventfd(vp->vm, vq->efd, vq->notify_addr, 2, false, -1, false);
			vq->ioeventfd = false;
			continue;
		}
		/* Linux writes the 16-bit queue index; other access sizes
		 * still work, through vp_notify_write(). */
		ret = vm_ioeventfd(vp->vm, vq->efd, addr, 2, false, -1, true);
		if (ret < 0) {
			if (vp_warn_once(vp, VP_WARN_IOEVENTFD))
				log_warn("%s: cannot register queue %u's doorbell at 0x%" PRIx64
					 " with KVM: %s (kicks will exit to userspace)",
					 vp->d->name, q, addr, strerror(-ret));
			continue;
		}
		vq->ioeventfd = true;
		vq->notify_addr = addr;
	}
}

static void vp_notify_write(struct virtio_pci *vp, uint64_t off)
{
	unsigned int q = off / VP_NOTIFY_MULT;

	if (q < vp->d->num_queues && eventfd_write(vp->queues[q].efd, 1) < 0)
		log_warn("%s: cannot signal queue %u: %s", vp->d->name, q, strerror(errno));
}

/* --- common configuration --- */

static void vp_queue_defaults(struct virtio_pci *vp)
{
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct vp_queue *vq = &vp->queues[q];

		vq->size = vp->d->queue_max_size;
		vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
		vq->enabled = false;
		vq->desc = vq->avail = vq->used = 0;
	}
}

/* Status 0: back to the state after power-on.  MSI-X table and PCI config
 * are the PCI function's, not the virtio device's, and survive. */
static void vp_reset(struct virtio_pci *vp)
{
	struct virtio_dev *d = vp->d;

	if (d->ops->reset)
		d->ops->reset(d);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		vq_destroy(&d->vqs[q]);
		d->vq_ready[q] = false;
	}
	d->status = 0;
	d->driver_features = 0;
	vp->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->queue_select = 0;
	vp_queue_defaults(vp);
	vp->isr = 0;
	memset(vp->msix_pba, 0, sizeof(vp->msix_pba));
	vp_update_intx(vp);
}

static int vp_queue_start(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_dev *d = vp->d;
	struct vp_queue *vq = &vp->queues[q];
	char why[128];
	int ret;

	ret = vq_init(&d->vqs[q], d->gm, vq->size, vq->desc, vq->avail, vq->used,
		      d->driver_features);
	if (ret < 0) {
		snprintf(why, sizeof(why), "queue %u: rings at 0x%" PRIx64 "/0x%" PRIx64
			 "/0x%" PRIx64 " (size %u) are not in RAM or misaligned", q,
			 vq->desc, vq->avail, vq->used, vq->size);
		virtio_dev_fail(d, why);
		return ret;
	}
	d->vq_ready[q] = true;
	return 0;
}

static void vp_driver_ok(struct virtio_pci *vp)
{
	struct virtio_dev *d = vp->d;
	char why[96];
	int ret;

	if (!(d->status & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_dev_fail(d, "driver set DRIVER_OK before FEATURES_OK");
		return;
	}
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (vp->queues[q].enabled && vp_queue_start(vp, q) < 0)
			return;
	ret = d->ops->activate ? d->ops->activate(d) : 0;
	if (ret < 0) {
		snprintf(why, sizeof(why), "cannot start: %s", strerror(-ret));
		virtio_dev_fail(d, why);
		return;
	}
	/* Buffers a driver queued (and kicked) before DRIVER_OK were dropped
	 * by vp_kick(): look at every queue once.  A kick on an empty queue
	 * costs the device one empty pop. */
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (d->vq_ready[q])
			vp_notify_write(vp, VP_NOTIFY_MULT * q);
}

static void vp_status_write(struct virtio_pci *vp, uint8_t val)
{
	struct virtio_dev *d = vp->d;
	uint8_t old = d->status;
	uint64_t offered;

	if (val == 0) {
		vp_reset(vp);
		return;
	}
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		offered = vp_offered(d);
		if ((vp->driver_features & ~offered) ||
		    !(vp->driver_features & (1ULL << VIRTIO_F_VERSION_1))) {
			if (vp_warn_once(vp, VP_WARN_FEATURES))
				log_warn("%s: driver accepted features 0x%" PRIx64 " of 0x%"
					 PRIx64 " offered (VERSION_1 is required): refusing"
					 " FEATURES_OK", d->name, vp->driver_features, offered);
			val &= ~VIRTIO_STATUS_FEATURES_OK;
		} else {
			d->driver_features = vp->driver_features;
		}
	}
	/* NEEDS_RESET is the device's to set and only a reset clears it; the
	 * driver cannot clear the other bits without a reset either. */
	d->status = val | (old & VIRTIO_STATUS_NEEDS_RESET);
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
		vp_driver_ok(vp);
}

/* The common configuration as the driver reads it: built whole, so that any
 * offset and width reads consistently. */
static void vp_common_image(struct virtio_pci *vp, uint8_t *img)
{
	struct virtio_dev *d = vp->d;
	uint64_t offered = vp_offered(d);

	memset(img, 0, VP_COMMON_LEN);
	vp_put32(img + CC_DFSELECT, vp->dfselect);
	if (vp->dfselect < 2)
		vp_put32(img + CC_DF, (uint32_t)(offered >> (32 * vp->dfselect)));
	vp_put32(img + CC_GFSELECT, vp->gfselect);
	if (vp->gfselect < 2)
		vp_put32(img + CC_GF, (uint32_t)(vp->driver_features >> (32 * vp->gfselect)));
	vp_put16(img + CC_MSIX_CONFIG, vp->msix_config);
	vp_put16(img + CC_NUM_QUEUES, (uint16_t)d->num_queues);
	img[CC_STATUS] = d->status;
	img[CC_CFG_GENERATION] = vp->config_generation;
	vp_put16(img + CC_Q_SELECT, vp->queue_select);
	if (vp->queue_select < d->num_queues) {
		struct vp_queue *vq = &vp->queues[vp->queue_select];

		vp_put16(img + CC_Q_SIZE, vq->size);
		vp_put16(img + CC_Q_MSIX, vq->msix_vector);
		vp_put16(img + CC_Q_ENABLE, vq->enabled);
		vp_put16(img + CC_Q_NOFF, (uint16_t)vp->queue_select);
		vp_put32(img + CC_Q_DESC, (uint32_t)vq->desc);
		vp_put32(img + CC_Q_DESC + 4, (uint32_t)(vq->desc >> 32));
		vp_put32(img + CC_Q_AVAIL, (uint32_t)vq->avail);
		vp_put32(img + CC_Q_AVAIL + 4, (uint32_t)(vq->avail >> 32));
		vp_put32(img + CC_Q_USED, (uint32_t)vq->used);
		vp_put32(img + CC_Q_USED + 4, (uint32_t)(vq->used >> 32));
	}
}

/* Write part of a 64-bit queue address: the whole of it, or either 32-bit
 * half (§4.1.3.1 allows both). */
static void vp_addr_write(uint64_t *addr, uint64_t off, uint64_t val, uint32_t len)
{
	if (len == 8 && off == 0)
		*addr = val;
	else if (len == 4 && off == 0)
		*addr = (*addr & ~0xffffffffULL) | (uint32_t)val;
	else if (len == 4 && off == 4)
		*addr = (*addr & 0xffffffffULL) | val << 32;
}

static uint16_t vp_vector_check(struct virtio_pci *vp, uint64_t val)
{
	/* A vector the device cannot map reads back as NO_VECTOR, which is
	 * how the driver learns it (§4.1.5.1.2). */
	return val < vp->nr_vectors ? (uint16_t)val : VIRTIO_MSI_NO_VECTOR;
}

static void vp_queue_write(struct virtio_pci *vp, uint64_t off, uint64_t val, uint32_t len)
{
	struct virtio_dev *d = vp->d;
	struct vp_queue *vq;

	if (vp->queue_select >= d->num_queues)
		return;
	vq = &vp->queues[vp->queue_select];
	if (off == CC_Q_MSIX && len == 2) {
		vq->msix_vector = vp_vector_check(vp, val);
		return;
	}
	/* The ring's shape is fixed once the driver enabled it. */
	if (vq->enabled)
		return;
	if (off == CC_Q_SIZE && len == 2) {
		/* The driver may only shrink it, to a power of 2. */
		if (val && !(val & (val - 1)) && val <= d->queue_max_size)
			vq->size = (uint16_t)val;
	} else if (off == CC_Q_ENABLE && len == 2) {
		if (val != 1)
			return;  /* 0 is for queue reset, which is not offered */
		vq->enabled = true;
		if (d->status & VIRTIO_STATUS_DRIVER_OK)
			vp_queue_start(vp, vp->queue_select);
	} else if (off >= CC_Q_DESC && off < CC_Q_AVAIL) {
		vp_addr_write(&vq->desc, off - CC_Q_DESC, val, len);
	} else if (off >= CC_Q_AVAIL && off < CC_Q_USED) {
		vp_addr_write(&vq->avail, off - CC_Q_AVAIL, val, len);
	} else if (off >= CC_Q_USED && off < VP_COMMON_LEN) {
		vp_addr_write(&vq->used, off - CC_Q_USED, val, len);
	}
}

/* Writes must use each field's natural width (§4.1.3.1); others are
 * dropped. */
static void vp_common_write(struct virtio_pci *vp, uint64_t off, uint64_t val, uint32_t len)
{
	struct virtio_dev *d = vp->d;

	switch (off) {
	case CC_DFSELECT:
		if (len == 4)
			vp->dfselect = (uint32_t)val;
		return;
	case CC_GFSELECT:
		if (len == 4)
			vp->gfselect = (uint32_t)val;
		return;
	case CC_GF:
		/* Features are fixed once FEATURES_OK is set. */
		if (len == 4 && vp->gfselect < 2 && !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned int shift = 32 * vp->gfselect;

			vp->driver_features &= ~(0xffffffffULL << shift);
			vp->driver_features |= (val & 0xffffffffULL) << shift;
		}
		return;
	case CC_MSIX_CONFIG:
		if (len == 2)
			vp->msix_config = vp_vector_check(vp, val);
		return;
	case CC_STATUS:
		if (len == 1)
			vp_status_write(vp, (uint8_t)val);
		return;
	case CC_Q_SELECT:
		if (len == 2)
			vp->queue_select = (uint16_t)val;
		return;
	default:
		if (off >= CC_Q_SIZE && off < VP_COMMON_LEN)
			vp_queue_write(vp, off, val, len);
		return;
	}
}

/* --- BAR 0 --- */

static void vp_bar0_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *d = vp->d;
	uint8_t img[VP_COMMON_LEN];

	memset(data, 0, len);
	pthread_mutex_lock(&d->lock);
	if (off < VP_COMMON_OFF + VP_COMMON_LEN) {
		vp_common_image(vp, img);
		memcpy(data, img + off, MIN((uint64_t)len, VP_COMMON_LEN - off));
	} else if (off == VP_ISR_OFF) {
		/* Reading acknowledges the interrupt (§4.1.4.5). */
		data[0] = vp->isr;
		vp->isr = 0;
		vp_update_intx(vp);
	} else if (off >= VP_DEVCFG_OFF && off < VP_DEVCFG_OFF + VP_DEVCFG_MAX) {
		uint64_t o = off - VP_DEVCFG_OFF;

		if (o + len <= d->config_len && d->ops->config_read)
			d->ops->config_read(d, (uint32_t)o, data, len);
	}
	pthread_mutex_unlock(&d->lock);
}

static void vp_bar0_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *d = vp->d;

	if (off >= VP_NOTIFY_OFF) {
		/* A kick KVM did not catch (another width, or no ioeventfd):
		 * the same path, through the event loop. */
		vp_notify_write(vp, off - VP_NOTIFY_OFF);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off < VP_COMMON_OFF + VP_COMMON_LEN) {
		vp_common_write(vp, off, bus_get(data, len), len);
	} else if (off >= VP_DEVCFG_OFF && off < VP_DEVCFG_OFF + VP_DEVCFG_MAX) {
		uint64_t o = off - VP_DEVCFG_OFF;

		if (o + len <= d->config_len && d->ops->config_write)
			d->ops->config_write(d, (uint32_t)o, data, len);
	}
	pthread_mutex_unlock(&d->lock);
}

static const struct bus_ops vp_bar0_ops = {
	.read = vp_bar0_read,
	.write = vp_bar0_write,
};

/* --- PCI config space --- */

/* Capability writes, under pci.c's lock: only the MSI-X enable and
 * function-mask bits are writable; everything else is restored. */
static void vp_cfg_write(struct pci_dev *pd, uint32_t off, uint32_t val, uint32_t len)
{
	struct virtio_pci *vp = pd->opaque;
	uint16_t ctrl;

	(void)val;
	for (uint32_t i = off; i < off + len && i < sizeof(pd->cfg); i++) {
		if (i == MSIX_CTRL + 1)
			pd->cfg[i] = (vp->cfg_template[i] & 0x3f) | (pd->cfg[i] & 0xc0);
		else
			pd->cfg[i] = vp->cfg_template[i];
	}
	if (off > MSIX_CTRL + 1 || off + len <= MSIX_CTRL)
		return;
	ctrl = pd->cfg[MSIX_CTRL] | pd->cfg[MSIX_CTRL + 1] << 8;
	pthread_mutex_lock(&vp->d->lock);
	vp_msix_control(vp, ctrl);
	pthread_mutex_unlock(&vp->d->lock);
}

void vp_map_bar(struct virtio_pci *vp, int bar, uint64_t addr)
{
	static const struct bus_ops *const ops[2] = { &vp_bar0_ops, &vp_msix_ops };
	static const uint32_t size[2] = { VP_BAR0_SIZE, VP_BAR1_SIZE };
	int ret;

	if (vp->bar_mapped[bar])
		bus_unregister(&vp->vm->mmio, vp->bar_addr[bar], vp);
	vp->bar_mapped[bar] = false;
	vp->bar_addr[bar] = addr;
	/* Both BARs register with the transport as opaque: the base tells
	 * them apart for bus_unregister(). */
	ret = bus_register(&vp->vm->mmio, addr, size[bar], ops[bar], vp, vp->d->name);
	if (ret < 0) {
		if (vp_warn_once(vp, VP_WARN_OVERLAP))
			log_warn("%s: BAR %d at 0x%" PRIx64 " overlaps another device: %s "
				 "(unreachable until the guest moves it)", vp->d->name, bar,
				 addr, strerror(-ret));
		return;
	}
	vp->bar_mapped[bar] = true;
}

static void vp_bar_moved(struct pci_dev *pd, int bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *vp = pd->opaque;

	(void)old_addr;
	if (bar != 0 && bar != 1)
		return;
	pthread_mutex_lock(&vp->d->lock);
	if (bar == 0)
		vp_ioeventfds(vp, false);
	vp_map_bar(vp, bar, new_addr);
	if (bar == 0 && vp->bar_mapped[0])
		vp_ioeventfds(vp, true);
	pthread_mutex_unlock(&vp->d->lock);
}

static const struct pci_dev_ops vp_pci_ops = {
	.cfg_write = vp_cfg_write,
	.bar_moved = vp_bar_moved,
};

static uint8_t vp_cap(uint8_t *cfg, uint8_t at, uint8_t next, uint8_t len, uint8_t type,
		      uint32_t off, uint32_t size)
{
	cfg[at] = PCI_CAP_ID_VNDR;
	cfg[at + 1] = next;
	cfg[at + 2] = len;
	cfg[at + 3] = type;
	cfg[at + 4] = 0;                /* BAR 0 */
	vp_put32(cfg + at + 8, off);
	vp_put32(cfg + at + 12, size);
	return at;
}

static uint32_t vp_class(uint16_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:     return 0x020000;        /* ethernet */
	case VIRTIO_ID_BLOCK:   return 0x010000;        /* SCSI storage (as QEMU) */
	case VIRTIO_ID_CONSOLE: return 0x078000;        /* other communication */
	default:                return 0x00ff00;        /* unclassified */
	}
}

static void vp_build_config(struct virtio_pci *vp, unsigned int slot)
{
	struct virtio_dev *d = vp->d;
	uint8_t *cfg = vp->pci.cfg;
	uint8_t next;

	vp_put16(cfg + 0x00, VP_VENDOR);
	vp_put16(cfg + 0x02, VP_DEVICE_BASE + d->device_id);
	vp_put16(cfg + PCI_COMMAND, PCI_COMMAND_MEMORY);
	vp_put16(cfg + PCI_STATUS, PCI_STATUS_CAP_LIST);
	vp_put32(cfg + 0x08, vp_class(d->device_id) << 8 | VP_REVISION);
	cfg[0x0e] = 0;                  /* header type 0, single function */
	vp_put32(cfg + PCI_BAR0, (uint32_t)vp->bar_addr[0]);
	vp_put32(cfg + PCI_BAR0 + 4, (uint32_t)vp->bar_addr[1]);
	vp_put16(cfg + 0x2c, VP_VENDOR);
	vp_put16(cfg + 0x2e, d->device_id);
	cfg[PCI_CAP_PTR] = CAP_MSIX;
	cfg[PCI_INTERRUPT_LINE] = (uint8_t)vp->gsi;
	cfg[PCI_INTERRUPT_PIN] = 1;     /* INTA# */

	/* Built from the end of the list backwards. */
	next = 0;
	if (d->config_len)
		next = vp_cap(cfg, CAP_DEVICE, next, 16, VIRTIO_PCI_CAP_DEVICE_CFG,
			      VP_DEVCFG_OFF, d->config_len);
	next = vp_cap(cfg, CAP_NOTIFY, next, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, VP_NOTIFY_OFF,
		      VP_NOTIFY_MULT * d->num_queues);
	vp_put32(cfg + CAP_NOTIFY + 16, VP_NOTIFY_MULT);
	next = vp_cap(cfg, CAP_ISR, next, 16, VIRTIO_PCI_CAP_ISR_CFG, VP_ISR_OFF, VP_ISR_LEN);
	next = vp_cap(cfg, CAP_COMMON, next, 16, VIRTIO_PCI_CAP_COMMON_CFG, VP_COMMON_OFF,
		      VP_COMMON_LEN);
	cfg[CAP_MSIX] = PCI_CAP_ID_MSIX;
	cfg[CAP_MSIX + 1] = next;
	vp_put16(cfg + MSIX_CTRL, (uint16_t)(vp->nr_vectors - 1));
	vp_put32(cfg + CAP_MSIX + 4, VP_MSIX_TABLE_OFF | 1);       /* BIR 1 */
	vp_put32(cfg + CAP_MSIX + 8, VP_MSIX_PBA_OFF | 1);
	memcpy(vp->cfg_template, cfg, sizeof(vp->cfg_template));
	vp->pci.devfn = (uint8_t)(slot << 3);
	vp->pci.bar_size[0] = VP_BAR0_SIZE;
	vp->pci.bar_size[1] = VP_BAR1_SIZE;
	vp->pci.ops = &vp_pci_ops;
	vp->pci.opaque = vp;
}

/* --- lifetime --- */

static void vp_free(struct virtio_pci *vp)
{
	struct virtio_dev *d = vp->d;

	pthread_mutex_lock(&d->lock);
	vp_ioeventfds(vp, false);
	for (int bar = 0; bar < 2; bar++) {
		if (vp->bar_mapped[bar])
			bus_unregister(&vp->vm->mmio, vp->bar_addr[bar], vp);
		vp->bar_mapped[bar] = false;
	}
	for (unsigned int q = 0; q < d->num_queues; q++) {
		if (vp->queues[q].efd < 0)
			continue;
		loop_del(vp->vm->loop, vp->queues[q].efd);
		close(vp->queues[q].efd);
	}
	vp_irq_free(vp);
	d->t_ops = NULL;
	d->transport = NULL;
	pthread_mutex_unlock(&d->lock);
	free(vp);
}

static void vp_remove(struct virtio_dev *d)
{
	if (d->transport)
		vp_free(d->transport);
}

static void vp_requeue(struct virtio_dev *d, unsigned int q)
{
	vp_notify_write(d->transport, (uint64_t)q * VP_NOTIFY_MULT);
}

static const struct virtio_transport_ops vp_transport_ops = {
	.requeue = vp_requeue,
	.notify_queue = vp_notify_queue,
	.notify_config = vp_notify_config,
	.remove = vp_remove,
	.save = vp_save,
	.load = vp_load,
};

int virtio_pci_add(struct vm *vm, struct virtio_dev *d, struct ferr *e)
{
	struct virtio_pci *vp;
	unsigned int slot = vm->next_pci_slot;
	uint64_t bar0, bar1;
	int ret;

	if (!d->num_queues || d->config_len > VP_DEVCFG_MAX || !d->queue_max_size ||
	    (d->queue_max_size & (d->queue_max_size - 1)) || !d->ops->queue_notify)
		return ferr_set(e, -EINVAL, "%s: device description not usable by virtio-pci",
				d->name);
	if (slot >= 32)
		return ferr_set(e, -ENOSPC, "%s: no free PCI slot (at most 31 devices)", d->name);
	bar0 = ALIGN_UP(vm->next_pci_mmio, VP_BAR0_SIZE);
	bar1 = ALIGN_UP(bar0 + VP_BAR0_SIZE, VP_BAR1_SIZE);
	if (bar1 + VP_BAR1_SIZE > PLAT_PCI_MMIO_GPA + PLAT_PCI_MMIO_SIZE)
		return ferr_set(e, -ENOSPC, "%s: the PCI MMIO window is full", d->name);

	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return ferr_set(e, -ENOMEM, "%s: out of memory", d->name);
	vp->d = d;
	vp->vm = vm;
	vp->gsi = PLAT_PCI_INTX_GSI(slot, 0);
	vp->nr_vectors = d->num_queues + 1;
	vp->bar_addr[0] = bar0;
	vp->bar_addr[1] = bar1;
	vp_msix_init(vp);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->queues[q] = (struct vp_queue){ .vp = vp, .index = q, .efd = -1 };
	d->gm = &vm->mem;
	d->loop = vm->loop;
	d->transport = vp;
	d->t_ops = &vp_transport_ops;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp_queue_defaults(vp);

	vp->irq_source = vm_irq_source_alloc(vm);
	if (vp->irq_source < 0) {
		ret = ferr_set(e, vp->irq_source, "%s: too many devices share interrupt lines",
			       d->name);
		goto err;
	}
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct vp_queue *vq = &vp->queues[q];

		vq->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vq->efd < 0) {
			ret = ferr_errno(e, -errno, "%s: cannot create an eventfd", d->name);
			goto err;
		}
		ret = loop_add(vm->loop, vq->efd, EPOLLIN, vp_kick, vq);
		if (ret < 0) {
			ferr_errno(e, ret, "%s: cannot watch queue %u's eventfd", d->name, q);
			close(vq->efd);
			vq->efd = -1;
			goto err;
		}
	}
	vp_build_config(vp, slot);
	pthread_mutex_lock(&d->lock);
	vp_map_bar(vp, 0, bar0);
	vp_map_bar(vp, 1, bar1);
	ret = vp->bar_mapped[0] && vp->bar_mapped[1] ? 0 : -EEXIST;
	if (ret == 0)
		vp_ioeventfds(vp, true);
	pthread_mutex_unlock(&d->lock);
	if (ret < 0) {
		ferr_set(e, ret, "%s: BARs at 0x%" PRIx64 " overlap another device", d->name, bar0);
		goto err;
	}
	ret = pci_add(vm->pci, &vp->pci);
	if (ret < 0) {
		ferr_errno(e, ret, "%s: cannot add PCI device 00:%02x.0", d->name, slot);
		goto err;
	}
	vm->next_pci_slot = slot + 1;
	vm->next_pci_mmio = bar1 + VP_BAR1_SIZE;
	log_debug("%s: virtio-pci at 00:%02x.0, BARs 0x%" PRIx64 " 0x%" PRIx64 ", INTx GSI %u",
		  d->name, slot, bar0, bar1, vp->gsi);
	return 0;
err:
	vp_free(vp);
	return ret;
}
