/* virtio-pci interrupts: the INTx line (level, shared, following the ISR
 * byte while MSI-X is off) and MSI-X (table and PBA in BAR 1, one KVM MSI
 * route and irqfd per vector, made when the vector is first unmasked and
 * repointed afterwards, so a guest cannot grow KVM's routing table). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/vm.h"
#include "pci_priv.h"

void vp_update_intx(struct virtio_pci *vp)
{
	bool level = vp->isr && !vp->msix_enabled;

	if (level == vp->intx_level)
		return;
	vp->intx_level = level;
	vm_irq_shared_set(vp->vm, vp->gsi, vp->irq_source, level);
}

static bool vp_vector_masked(const struct virtio_pci *vp, unsigned int v)
{
	return vp->msix_masked || (vp->msix_table[16 * v + 12] & 1);
}

/* The vector's route follows the table entry; called when the vector may
 * fire (MSI-X on, unmasked).  A route is made once per vector and then
 * repointed, so a guest cannot grow the routing table. */
static int vp_vector_route(struct virtio_pci *vp, unsigned int v)
{
	struct vp_vector *vec = &vp->vectors[v];
	const uint8_t *ent = &vp->msix_table[16 * v];
	uint64_t addr = vp_get32(ent) | (uint64_t)vp_get32(ent + 4) << 32;
	uint32_t data = vp_get32(ent + 8);
	int ret;

	if (vec->efd < 0) {
		vec->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vec->efd < 0)
			return -errno;
	}
	if (vec->gsi < 0) {
		ret = vm_msi_route_add(vp->vm, addr, data);
		if (ret < 0)
			return ret;
		vec->gsi = ret;
	} else {
		ret = vm_msi_route_set(vp->vm, vec->gsi, addr, data);
		if (ret < 0)
			return ret;
	}
	if (!vec->irqfd) {
		ret = vm_irqfd(vp->vm, vec->efd, vec->gsi, true);
		if (ret < 0)
			return ret;
		vec->irqfd = true;
	}
	return 0;
}

/* True the first time @what happens on this device. */
bool vp_warn_once(struct virtio_pci *vp, uint32_t what)
{
	bool first = !(vp->warned & what);

	vp->warned |= what;
	return first;
}

static void vp_route_error(struct virtio_pci *vp, unsigned int v, int err)
{
	if (!vp_warn_once(vp, VP_WARN_ROUTE))
		return;
	log_error("%s: cannot route MSI-X vector %u: %s (its interrupts are lost)",
		  vp->d->name, v, strerror(-err));
}

static void vp_vector_fire(struct virtio_pci *vp, unsigned int v)
{
	struct vp_vector *vec = &vp->vectors[v];

	if (!vec->irqfd)
		return;
	if (eventfd_write(vec->efd, 1) < 0)
		log_warn("%s: cannot signal MSI-X vector %u: %s", vp->d->name, v,
			 strerror(errno));
}

/* Re-evaluate vector @v after its entry, mask or MSI-X enable changed:
 * route it if it may fire, and deliver what was held back. */
static void vp_vector_update(struct virtio_pci *vp, unsigned int v)
{
	int ret;

	if (!vp->msix_enabled || vp_vector_masked(vp, v))
		return;
	ret = vp_vector_route(vp, v);
	if (ret < 0) {
		vp_route_error(vp, v, ret);
		return;
	}
	if (vp->msix_pba[v / 8] & (1u << (v % 8))) {
		vp->msix_pba[v / 8] &= ~(1u << (v % 8));
		vp_vector_fire(vp, v);
	}
}

static void vp_signal(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (!vp->msix_enabled) {
		vp->isr |= isr_bit;
		vp_update_intx(vp);
		return;
	}
	if (vector >= vp->nr_vectors)
		return;         /* VIRTIO_MSI_NO_VECTOR: the driver wants none */
	if (vp_vector_masked(vp, vector)) {
		vp->msix_pba[vector / 8] |= 1u << (vector % 8);
		return;
	}
	vp_vector_fire(vp, vector);
}

void vp_notify_queue(struct virtio_dev *d, unsigned int q)
{
	struct virtio_pci *vp = d->transport;

	if (q < d->num_queues)
		vp_signal(vp, vp->queues[q].msix_vector, ISR_QUEUE);
}

void vp_notify_config(struct virtio_dev *d)
{
	struct virtio_pci *vp = d->transport;

	/* The driver re-reads device config around a generation change. */
	vp->config_generation++;
	vp_signal(vp, vp->msix_config, ISR_CONFIG);
}

void vp_msix_init(struct virtio_pci *vp)
{
	for (unsigned int v = 0; v < VP_MSIX_MAX; v++) {
		vp->vectors[v] = (struct vp_vector){ .efd = -1, .gsi = -1, .irqfd = false };
		vp->msix_table[16 * v + 12] = 1;        /* masked at reset */
	}
}

void vp_msix_control(struct virtio_pci *vp, uint16_t ctrl)
{
	bool was_enabled = vp->msix_enabled;

	vp->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
	vp->msix_masked = ctrl & MSIX_CTRL_MASKALL;
	if (was_enabled != vp->msix_enabled)
		vp_update_intx(vp);
	for (unsigned int v = 0; v < vp->nr_vectors; v++)
		vp_vector_update(vp, v);
}

void vp_irq_free(struct virtio_pci *vp)
{
	for (unsigned int v = 0; v < vp->nr_vectors; v++) {
		struct vp_vector *vec = &vp->vectors[v];

		if (vec->irqfd)
			vm_irqfd(vp->vm, vec->efd, vec->gsi, false);
		vec->irqfd = false;
		if (vec->efd >= 0)
			close(vec->efd);
		vec->efd = -1;
	}
	vp->isr = 0;
	vp_update_intx(vp);
}

/* --- BAR 1: MSI-X table and PBA --- */

static void vp_bar1_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint64_t tlen = 16ULL * vp->nr_vectors;

	memset(data, 0, len);
	pthread_mutex_lock(&vp->d->lock);
	if (off + len <= VP_MSIX_TABLE_OFF + tlen)
		memcpy(data, &vp->msix_table[off - VP_MSIX_TABLE_OFF], len);
	else if (off >= VP_MSIX_PBA_OFF && off + len <= VP_MSIX_PBA_OFF + sizeof(vp->msix_pba))
		memcpy(data, &vp->msix_pba[off - VP_MSIX_PBA_OFF], len);
	pthread_mutex_unlock(&vp->d->lock);
}

static void vp_bar1_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint64_t tlen = 16ULL * vp->nr_vectors;
	unsigned int first, last;

	/* The PBA is read-only. */
	_Static_assert(VP_MSIX_TABLE_OFF == 0, "the table starts BAR 1");
	if (off + len > tlen)
		return;
	off -= VP_MSIX_TABLE_OFF;
	first = off / 16;
	last = (off + len - 1) / 16;
	pthread_mutex_lock(&vp->d->lock);
	memcpy(&vp->msix_table[off], data, len);
	for (unsigned int v = first; v <= last; v++) {
		uint8_t *ent = &vp->msix_table[16 * v];

		/* Only the mask bit of vector control is writable. */
		vp_put32(ent + 12, vp_get32(ent + 12) & 1);
		vp_vector_update(vp, v);
	}
	pthread_mutex_unlock(&vp->d->lock);
}

const struct bus_ops vp_msix_ops = {
	.read = vp_bar1_read,
	.write = vp_bar1_write,
};
