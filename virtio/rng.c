/* virtio-rng (virtio 1.2 §5.4): one queue of device-writable buffers that
 * ferry fills from the host's getrandom().  No configuration, no features,
 * nothing in flight between kicks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ferry/log.h"
#include "ferry/virtio_dev.h"

#define RNG_QUEUE_SIZE  256
/* Bytes given per request at most: the guest asks again for more, and one
 * kick cannot keep the event loop busy for long. */
#define RNG_REQ_MAX     (64 * 1024)

struct rng {
	struct virtio_dev dev;
	struct vq_elem elem;
};

static uint64_t rng_features(struct virtio_dev *d)
{
	(void)d;
	return 0;
}

/* Fill up to RNG_REQ_MAX bytes of the element's writable buffers; returns
 * the bytes written or a negative errno. */
static int64_t rng_fill(struct vq_elem *elem)
{
	struct iovec *iov = vq_elem_in(elem);
	uint32_t total = 0;

	for (unsigned int i = 0; i < elem->in_num && total < RNG_REQ_MAX; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		if (left > RNG_REQ_MAX - total)
			left = RNG_REQ_MAX - total;
		while (left) {
			ssize_t n = getrandom(p, left, 0);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			p += n;
			left -= (size_t)n;
			total += (uint32_t)n;
		}
	}
	return total;
}

static void rng_queue_notify(struct virtio_dev *d, unsigned int q)
{
	struct rng *r = d->priv;
	struct vq *vq = &d->vqs[q];
	bool pushed = false;
	int64_t n;
	int ret;

	for (;;) {
		ret = vq_pop(vq, &r->elem);
		if (ret == 0) {
			/* Idle: re-arm the kick, then look once more for a
			 * request that raced with it. */
			vq_set_avail_event(vq);
			ret = vq_pop(vq, &r->elem);
			if (ret == 0)
				break;
		}
		if (ret < 0) {
			virtio_dev_fail(d, "request queue broken by the driver");
			return;
		}
		n = rng_fill(&r->elem);
		if (n < 0) {
			log_warn("%s: getrandom: %s", d->name, strerror((int)-n));
			d->errors++;
			n = 0;
		}
		vq_push(vq, r->elem.head, (uint32_t)n);
		pushed = true;
		d->requests++;
		d->bytes += (uint64_t)n;
	}
	if (pushed)
		virtio_queue_done(d, q);
}

static int rng_activate(struct virtio_dev *d)
{
	(void)d;
	return 0;
}

static void rng_reset(struct virtio_dev *d)
{
	(void)d;        /* requests complete within a kick: nothing in flight */
}

static int rng_quiesce(struct virtio_dev *d)
{
	(void)d;        /* as for reset: nothing is ever in flight */
	return 0;
}

static void rng_destroy(struct virtio_dev *d)
{
	free(d->priv);
}

static const struct virtio_dev_ops rng_ops = {
	.features = rng_features,
	.activate = rng_activate,
	.queue_notify = rng_queue_notify,
	.reset = rng_reset,
	.destroy = rng_destroy,
	.quiesce = rng_quiesce,
};

struct virtio_dev *virtio_rng_create(struct ferr *e)
{
	struct rng *r = calloc(1, sizeof(*r));

	if (!r) {
		ferr_set(e, -ENOMEM, "virtio-rng: out of memory");
		return NULL;
	}
	virtio_dev_init(&r->dev, "rng0", VIRTIO_ID_RNG, 1, RNG_QUEUE_SIZE, 0, &rng_ops, r);
	return &r->dev;
}
