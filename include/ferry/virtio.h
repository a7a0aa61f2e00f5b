/* virtio: split virtqueues (virtio 1.2 §2.7), the trust boundary between a
 * guest driver and ferry's devices.  Everything a device gets from vq_pop() has
 * been checked against guest RAM; after it, a device may trust the iovecs. */
#ifndef FERRY_VIRTIO_H
#define FERRY_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ferry/mem.h"

/* Ring feature bits (bit numbers, as in the spec and <linux/virtio_ring.h>). */
#ifndef VIRTIO_RING_F_INDIRECT_DESC
#define VIRTIO_RING_F_INDIRECT_DESC 28
#endif
#ifndef VIRTIO_RING_F_EVENT_IDX
#define VIRTIO_RING_F_EVENT_IDX 29
#endif
#ifndef VRING_AVAIL_F_NO_INTERRUPT
#define VRING_AVAIL_F_NO_INTERRUPT 1
#endif
#ifndef VRING_USED_F_NO_NOTIFY
#define VRING_USED_F_NO_NOTIFY 1
#endif

#define VQ_MAX_SIZE      32768  /* split rings: power of 2, at most 2^15 */
/* One element holds at most this many (non-empty) buffers.  A longer chain is
 * refused as a broken queue: ferry never allocates on the guest's behalf, so
 * devices must advertise limits below this (virtio-blk seg_max <= 254). */
#define VQ_ELEM_MAX_IOV  256
/* Largest indirect table accepted, in descriptors (16 bytes each). */
#define VQ_INDIRECT_MAX  1024

/* One request taken from the avail ring.  iov[0 .. out_num) are the buffers
 * the device reads (driver -> device), iov[out_num .. out_num + in_num) those
 * it writes (vq_elem_in()).  Zero-length descriptors are left out. */
struct vq_elem {
	uint16_t head;          /* give this back to vq_push() */
	unsigned int out_num, in_num;
	uint32_t out_len, in_len;       /* byte totals of each part */
	struct iovec iov[VQ_ELEM_MAX_IOV];
};

static inline struct iovec *vq_elem_in(struct vq_elem *elem)
{
	return elem->iov + elem->out_num;
}

struct vq {
	const struct guest_mem *gm;
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint64_t features;      /* only the ring bits above are kept */
	/* Host views of the rings, from gm_ptr() over each whole ring at init. */
	uint8_t *desc, *avail, *used;
	/* Device-side indexes: ferry's own copies, never read back from the
	 * guest, so the guest cannot move them.  Saved on migration (devices
	 * drain first, so nothing is in flight then). */
	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t signalled_used;        /* used_idx at the last notify decision */
	bool signalled_valid;
	bool broken;            /* guest broke the rules: device needs reset */
	/* inflight[head] = writable bytes of the chain popped at head, or
	 * UINT32_MAX when head is not in the device's hands. */
	uint32_t *inflight;
};

/* Check the rings ([desc, +16*size), [avail, +6+2*size), [used, +6+8*size)
 * lie in RAM and are aligned (16, 2, 4), size is a power of 2 <= 32768, and
 * set up @vq.  -EINVAL / -EFAULT / -ENOMEM.  Release with vq_destroy(). */
int vq_init(struct vq *vq, const struct guest_mem *gm, uint16_t size,
	    uint64_t desc, uint64_t avail, uint64_t used, uint64_t features);
void vq_destroy(struct vq *vq);

/* Take the next available chain: 1 with @elem filled, 0 if the ring is empty,
 * or a negative errno if the guest broke the rules (vq->broken is then set,
 * logged once, and every later call fails with -EIO). */
int vq_pop(struct vq *vq, struct vq_elem *elem);

/* Return chain @head with @len bytes written (clamped to the chain's writable
 * total) to the used ring.  -EINVAL if @head was not popped (device bug). */
int vq_push(struct vq *vq, uint16_t head, uint32_t len);

/* After pushing: should the device interrupt the driver?  Honours used_event
 * with EVENT_IDX, else VRING_AVAIL_F_NO_INTERRUPT. */
bool vq_needs_notify(struct vq *vq);

/* With EVENT_IDX, ask for a kick when the driver adds past last_avail_idx.
 * Call before going idle, then vq_pop() once more: a request added between
 * the last pop and this write would otherwise be missed. */
void vq_set_avail_event(struct vq *vq);

#endif
