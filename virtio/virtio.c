/* The transport-independent glue between virtio devices and transports:
 * common initialisation, "used buffers are ready" notification, failure
 * (NEEDS_RESET), teardown, and the common part of migration (quiesce and
 * resume, status, features and queue indexes).  Transports own the
 * registers; devices own their queues' contents; this file owns neither. */
#include <errno.h>
#include <string.h>

#include <libfdt.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/virtio_dev.h"

#define VIRTIO_FAIL_LOG_MAX	8

void virtio_dev_init(struct virtio_dev *d, const char *name, uint16_t device_id,
		     unsigned int num_queues, uint16_t queue_max_size,
		     uint32_t config_len, const struct virtio_dev_ops *ops, void *priv)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->name = name;
	d->device_id = device_id;
	/* A device asking for more is a ferry bug; clamp rather than let a
	 * transport index past vqs[]. */
	d->num_queues = num_queues <= VIRTIO_MAX_QUEUES ? num_queues : VIRTIO_MAX_QUEUES;
	d->queue_max_size = queue_max_size;
	d->config_len = config_len;
	d->ops = ops;
	d->priv = priv;
}

void virtio_queue_done(struct virtio_dev *d, unsigned int q)
{
	if (q >= d->num_queues || !d->vq_ready[q] || !d->t_ops)
		return;
	if (vq_needs_notify(&d->vqs[q]))
		d->t_ops->notify_queue(d, q);
}

void virtio_queue_requeue(struct virtio_dev *d, unsigned int q)
{
	if (q < d->num_queues && d->t_ops && d->t_ops->requeue)
		d->t_ops->requeue(d, q);
}

void virtio_dev_fail(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	/* Once per failure (the guest may keep kicking a broken queue), and
	 * only the first few: a guest that resets and breaks the device in a
	 * loop must not flood the log. */
	if (d->errors < VIRTIO_FAIL_LOG_MAX)
		log_error("%s: %s; the device stops until the driver resets it%s", d->name,
			  why, d->errors + 1 == VIRTIO_FAIL_LOG_MAX ?
			  " (further failures are counted, not logged)" : "");
	d->status |= VIRTIO_STATUS_NEEDS_RESET;
	d->errors++;
	/* Only a driver past DRIVER_OK listens for the config interrupt; an
	 * earlier one reads the status byte itself. */
	if (d->t_ops && (d->status & VIRTIO_STATUS_DRIVER_OK))
		d->t_ops->notify_config(d);
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	if (!d)
		return;
	/* Transport first: after remove() no register access or queue kick
	 * reaches the device. */
	if (d->t_ops && d->t_ops->remove)
		d->t_ops->remove(d);
	d->t_ops = NULL;
	pthread_mutex_lock(&d->lock);
	/* reset() waits for host I/O that still points at guest memory,
	 * which must end before guest RAM is unmapped. */
	if (d->status && d->ops->reset)
		d->ops->reset(d);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		vq_destroy(&d->vqs[q]);
		d->vq_ready[q] = false;
	}
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_destroy(&d->lock);
	if (d->ops->destroy)
		d->ops->destroy(d);
}

/* ---- live migration ---- */

#define VQ_STATE_WORDS		4	/* last_avail, used, signalled, flags */
#define VQ_STATE_SIGNALLED	1u
#define VQ_STATE_BROKEN		2u

bool virtio_dev_migratable(const struct virtio_dev *d)
{
	return d->ops->quiesce && d->t_ops && d->t_ops->save && d->t_ops->load;
}

int virtio_dev_quiesce(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->quiesced = true;
	pthread_mutex_unlock(&d->lock);
	return d->ops->quiesce ? d->ops->quiesce(d) : -EOPNOTSUPP;
}

void virtio_dev_resume(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->quiesced = false;
	if (d->ops->resume)
		d->ops->resume(d);
	/* Kicks that came while quiesced were dropped, and a destination
	 * never saw the source's: look at every live queue once. */
	if (d->status & VIRTIO_STATUS_DRIVER_OK)
		for (unsigned int q = 0; q < d->num_queues; q++)
			if (d->vq_ready[q])
				virtio_queue_requeue(d, q);
	pthread_mutex_unlock(&d->lock);
}

int virtio_dev_save(struct virtio_dev *d, void *fdt)
{
	fdt32_t st[VIRTIO_MAX_QUEUES * VQ_STATE_WORDS];
	int ret = 0;

	if (!virtio_dev_migratable(d))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct vq *vq = &d->vqs[q];
		fdt32_t *w = &st[q * VQ_STATE_WORDS];

		/* Quiesced means drained: a chain still in the device's hands
		 * could not be finished on the destination. */
		for (unsigned int h = 0; d->vq_ready[q] && h < vq->size; h++)
			if (vq->inflight[h] != UINT32_MAX) {
				log_error("%s: queue %u still has request %u in flight after quiesce",
					  d->name, q, h);
				ret = -EBUSY;
			}
		w[0] = cpu_to_fdt32(vq->last_avail_idx);
		w[1] = cpu_to_fdt32(vq->used_idx);
		w[2] = cpu_to_fdt32(vq->signalled_used);
		w[3] = cpu_to_fdt32((vq->signalled_valid ? VQ_STATE_SIGNALLED : 0) |
				    (vq->broken ? VQ_STATE_BROKEN : 0));
	}
	if (!ret && (fdt_property_u32(fdt, "status", d->status) ||
		     fdt_property_u64(fdt, "driver-features", d->driver_features) ||
		     fdt_property_u32(fdt, "num-queues", d->num_queues) ||
		     fdt_property(fdt, "vq-state", st,
				  d->num_queues * VQ_STATE_WORDS * sizeof(fdt32_t))))
		ret = -ENOSPC;
	if (!ret && d->ops->save)
		ret = d->ops->save(d, fdt);
	pthread_mutex_unlock(&d->lock);
	if (!ret)
		ret = d->t_ops->save(d, fdt);
	return ret;
}

int virtio_dev_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e)
{
	const fdt32_t *st;
	const fdt64_t *f;
	int len, ret;

	if (!virtio_dev_migratable(d))
		return ferr_set(e, -EOPNOTSUPP, "%s: this transport or device cannot load migration state",
				d->name);
	if (dev_state_u32(fdt, node, "num-queues", 0) != d->num_queues)
		return ferr_set(e, -EINVAL, "%s: the source has %u queues, this one %u (give the same queues=)",
				d->name, dev_state_u32(fdt, node, "num-queues", 0), d->num_queues);
	st = fdt_getprop(fdt, node, "vq-state", &len);
	f = fdt_getprop(fdt, node, "driver-features", &ret);
	if (!st || len != (int)(d->num_queues * VQ_STATE_WORDS * sizeof(fdt32_t)) || !f || ret != 8)
		return ferr_set(e, -EPROTO, "%s: queue state missing or malformed", d->name);
	pthread_mutex_lock(&d->lock);
	d->quiesced = true;
	d->status = (uint8_t)dev_state_u32(fdt, node, "status", 0);
	d->driver_features = fdt64_ld(f);
	pthread_mutex_unlock(&d->lock);
	ret = d->t_ops->load(d, fdt, node, e);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct vq *vq = &d->vqs[q];
		const fdt32_t *w = &st[q * VQ_STATE_WORDS];
		uint32_t flags = fdt32_ld(&w[3]);

		if (!d->vq_ready[q])
			continue;
		/* Saved drained: every chain taken was used, so the indexes
		 * agree.  Apart, the first kick would take chains the driver
		 * never offered, and with the rings overlapping loop forever
		 * (found by tests/fuzz/fuzz_devstate). */
		if (fdt32_ld(&w[0]) != fdt32_ld(&w[1])) {
			pthread_mutex_unlock(&d->lock);
			return ferr_set(e, -EPROTO, "%s: queue %u was saved with %u chains taken and %u used (a drained queue has them equal)",
					d->name, q, fdt32_ld(&w[0]), fdt32_ld(&w[1]));
		}
		vq->last_avail_idx = (uint16_t)fdt32_ld(&w[0]);
		vq->used_idx = (uint16_t)fdt32_ld(&w[1]);
		vq->signalled_used = (uint16_t)fdt32_ld(&w[2]);
		vq->signalled_valid = flags & VQ_STATE_SIGNALLED;
		vq->broken = flags & VQ_STATE_BROKEN;
	}
	ret = d->ops->load ? d->ops->load(d, fdt, node, e) : 0;
	pthread_mutex_unlock(&d->lock);
	return ret < 0 ? ret : 0;
}
