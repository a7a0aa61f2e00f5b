/* virtio-pci migration state: the PCI function (config space image, BAR
 * addresses, MSI-X table and PBA), the common configuration registers and
 * each queue's configuration.  Loading re-creates what KVM holds for the
 * device (BAR mappings, doorbell ioeventfds, MSI routes and irqfds, the
 * INTx level) and sets up the rings the driver had enabled. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <libfdt.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "pci_priv.h"

/* Per queue in "vp-queues": size, msix vector, enabled, then desc, avail
 * and used as 64-bit values (two cells each). */
#define VPQ_WORDS 9

static void put64(fdt32_t *w, uint64_t v)
{
	w[0] = cpu_to_fdt32((uint32_t)(v >> 32));
	w[1] = cpu_to_fdt32((uint32_t)v);
}

static uint64_t get64(const fdt32_t *w)
{
	return (uint64_t)fdt32_ld(&w[0]) << 32 | fdt32_ld(&w[1]);
}

int vp_save(struct virtio_dev *d, void *fdt)
{
	struct virtio_pci *vp = d->transport;
	fdt32_t q[VIRTIO_MAX_QUEUES * VPQ_WORDS], bars[4];
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	for (unsigned int i = 0; i < d->num_queues; i++) {
		const struct vp_queue *vq = &vp->queues[i];
		fdt32_t *w = &q[i * VPQ_WORDS];

		w[0] = cpu_to_fdt32(vq->size);
		w[1] = cpu_to_fdt32(vq->msix_vector);
		w[2] = cpu_to_fdt32(vq->enabled);
		put64(w + 3, vq->desc);
		put64(w + 5, vq->avail);
		put64(w + 7, vq->used);
	}
	put64(bars, vp->bar_addr[0]);
	put64(bars + 2, vp->bar_addr[1]);
	/* The config space belongs to pci.c's lock, but only vCPUs write it,
	 * and they are paused. */
	ret |= fdt_property(fdt, "pci-config", vp->pci.cfg, sizeof(vp->pci.cfg));
	ret |= fdt_property(fdt, "pci-bars", bars, sizeof(bars));
	ret |= fdt_property(fdt, "msix-table", vp->msix_table, 16 * vp->nr_vectors);
	ret |= fdt_property(fdt, "msix-pba", vp->msix_pba, sizeof(vp->msix_pba));
	ret |= fdt_property_u32(fdt, "dfselect", vp->dfselect);
	ret |= fdt_property_u32(fdt, "gfselect", vp->gfselect);
	ret |= fdt_property_u64(fdt, "staged-features", vp->driver_features);
	ret |= fdt_property_u32(fdt, "msix-config", vp->msix_config);
	ret |= fdt_property_u32(fdt, "queue-select", vp->queue_select);
	ret |= fdt_property_u32(fdt, "config-generation", vp->config_generation);
	ret |= fdt_property_u32(fdt, "isr", vp->isr);
	ret |= fdt_property(fdt, "vp-queues", q, d->num_queues * VPQ_WORDS * sizeof(fdt32_t));
	pthread_mutex_unlock(&d->lock);
	return ret ? -ENOSPC : 0;
}

static uint16_t vp_load_vector(const struct virtio_pci *vp, uint32_t v)
{
	return v < vp->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* The queues' configuration, checked as the register writes would be. */
static int vp_load_queues(struct virtio_pci *vp, const fdt32_t *q, struct ferr *e)
{
	struct virtio_dev *d = vp->d;

	for (unsigned int i = 0; i < d->num_queues; i++) {
		struct vp_queue *vq = &vp->queues[i];
		const fdt32_t *w = &q[i * VPQ_WORDS];
		uint32_t size = fdt32_ld(&w[0]);
		int ret;

		if (!size || (size & (size - 1)) || size > d->queue_max_size)
			return ferr_set(e, -EPROTO, "%s: queue %u has size %u (at most %u here)",
					d->name, i, size, d->queue_max_size);
		vq->size = (uint16_t)size;
		vq->msix_vector = vp_load_vector(vp, fdt32_ld(&w[1]));
		vq->enabled = fdt32_ld(&w[2]) != 0;
		vq->desc = get64(w + 3);
		vq->avail = get64(w + 5);
		vq->used = get64(w + 7);
		/* A queue live from an earlier load is replaced, not leaked
		 * (found by tests/fuzz/fuzz_devstate). */
		if (d->vq_ready[i])
			vq_destroy(&d->vqs[i]);
		d->vq_ready[i] = false;
		if (!vq->enabled || !(d->status & VIRTIO_STATUS_DRIVER_OK))
			continue;
		ret = vq_init(&d->vqs[i], d->gm, vq->size, vq->desc, vq->avail, vq->used,
			      d->driver_features);
		if (ret < 0) {
			/* The source had failed the device already: so be it. */
			if (d->status & VIRTIO_STATUS_NEEDS_RESET)
				continue;
			return ferr_set(e, -EPROTO, "%s: queue %u's rings at 0x%" PRIx64
					" are not in RAM", d->name, i, vq->desc);
		}
		d->vq_ready[i] = true;
	}
	return 0;
}

int vp_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e)
{
	struct virtio_pci *vp = d->transport;
	const uint8_t *cfg, *table, *pba;
	const fdt32_t *q, *bars;
	const fdt64_t *staged;
	int cfg_len, table_len, pba_len, q_len, bars_len, staged_len, ret;
	uint16_t ctrl;

	cfg = fdt_getprop(fdt, node, "pci-config", &cfg_len);
	bars = fdt_getprop(fdt, node, "pci-bars", &bars_len);
	table = fdt_getprop(fdt, node, "msix-table", &table_len);
	pba = fdt_getprop(fdt, node, "msix-pba", &pba_len);
	q = fdt_getprop(fdt, node, "vp-queues", &q_len);
	staged = fdt_getprop(fdt, node, "staged-features", &staged_len);
	if (!cfg || cfg_len != (int)sizeof(vp->pci.cfg) || !bars || bars_len != 16 ||
	    !table || table_len != (int)(16 * vp->nr_vectors) || !pba ||
	    pba_len != (int)sizeof(vp->msix_pba) || !staged || staged_len != 8 || !q ||
	    q_len != (int)(d->num_queues * VPQ_WORDS * sizeof(fdt32_t)))
		return ferr_set(e, -EPROTO, "%s: virtio-pci state missing or malformed (not a virtio-pci device on the source?)",
				d->name);
	if (memcmp(cfg, vp->pci.cfg, 4))
		return ferr_set(e, -EINVAL, "%s: the source's PCI function is another device",
				d->name);

	pthread_mutex_lock(&d->lock);
	vp->dfselect = dev_state_u32(fdt, node, "dfselect", 0);
	vp->gfselect = dev_state_u32(fdt, node, "gfselect", 0);
	vp->driver_features = fdt64_ld(staged);
	vp->msix_config = vp_load_vector(vp, dev_state_u32(fdt, node, "msix-config",
							   VIRTIO_MSI_NO_VECTOR));
	vp->queue_select = (uint16_t)dev_state_u32(fdt, node, "queue-select", 0);
	vp->config_generation = (uint8_t)dev_state_u32(fdt, node, "config-generation", 0);
	vp->isr = (uint8_t)dev_state_u32(fdt, node, "isr", 0);
	memcpy(vp->msix_table, table, table_len);
	memcpy(vp->msix_pba, pba, pba_len);
	ret = vp_load_queues(vp, q, e);
	if (ret < 0)
		goto out;
	/* BARs where the guest left them; pci.c learns of a move the next
	 * time the guest touches the BAR, and then remaps in place. */
	for (int bar = 0; bar < 2; bar++) {
		uint64_t addr = (uint64_t)fdt32_ld(&bars[2 * bar]) << 32 |
				fdt32_ld(&bars[2 * bar + 1]);

		if (addr == vp->bar_addr[bar] && vp->bar_mapped[bar])
			continue;
		if (bar == 0)
			vp_ioeventfds(vp, false);
		vp_map_bar(vp, bar, addr);
		if (bar == 0 && vp->bar_mapped[0])
			vp_ioeventfds(vp, true);
	}
	/* Nothing runs yet: no config cycle races with this copy. */
	memcpy(vp->pci.cfg, cfg, cfg_len);
	ctrl = vp->pci.cfg[MSIX_CTRL] | vp->pci.cfg[MSIX_CTRL + 1] << 8;
	/* Routes and irqfds for the vectors the guest unmasked. */
	vp_msix_control(vp, ctrl);
	vp_update_intx(vp);
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}
