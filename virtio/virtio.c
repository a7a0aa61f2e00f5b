/* The transport-independent glue between virtio devices and transports:
 * common initialisation, "used buffers are ready" notification, failure
 * (NEEDS_RESET) and teardown.  Transports own the registers; devices own
 * their queues' contents; this file owns neither. */
#include <string.h>

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
