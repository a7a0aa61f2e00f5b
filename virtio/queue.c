/* Split virtqueues (virtio 1.2 §2.7): validate what the guest put in its
 * rings and turn each descriptor chain into host iovecs, or mark the queue
 * broken.  The guest is hostile and writes its rings concurrently with us:
 * every guest value is read once into a local, checked, then used. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "ferry/util.h"
#include "ferry/virtio.h"

#define VQ_DESC_F_NEXT     1
#define VQ_DESC_F_WRITE    2
#define VQ_DESC_F_INDIRECT 4

#define VQ_INFLIGHT_NONE UINT32_MAX

/* Guest layout (little-endian, as in the spec). */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vq_desc) == 16, "virtq_desc is 16 bytes");

/* Offsets inside the avail ring: flags, idx, ring[size], used_event. */
#define AVAIL_FLAGS     0
#define AVAIL_IDX       2
#define AVAIL_RING(i)   (4 + 2 * (size_t)(i))
/* Inside the used ring: flags, idx, ring[size] of {id, len}, avail_event. */
#define USED_IDX        2
#define USED_RING(i)    (4 + 8 * (size_t)(i))

static bool has_feature(const struct vq *vq, int bit)
{
	return vq->features & (1ULL << bit);
}

/* 16-bit ring fields are naturally aligned (vq_init checks the ring bases),
 * so a single atomic access sees either the old or the new guest value. */
static uint16_t ring_load16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, order));
}

static void ring_store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)p, htole16(v), order);
}

int vq_init(struct vq *vq, const struct guest_mem *gm, uint16_t size,
	    uint64_t desc, uint64_t avail, uint64_t used, uint64_t features)
{
	memset(vq, 0, sizeof(*vq));
	if (size == 0 || size > VQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	/* Alignments from §2.7 "Virtqueue Part Alignment"; they also make the
	 * atomic 16/32-bit ring accesses above legal. */
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -EINVAL;
	/* Whole rings, event fields included (§2.7 sizes), must be RAM: then
	 * no ring index below size can reach outside the mapping. */
	vq->desc = gm_ptr(gm, desc, 16 * (uint64_t)size);
	vq->avail = gm_ptr(gm, avail, 6 + 2 * (uint64_t)size);
	vq->used = gm_ptr(gm, used, 6 + 8 * (uint64_t)size);
	if (!vq->desc || !vq->avail || !vq->used) {
		memset(vq, 0, sizeof(*vq));
		return -EFAULT;
	}
	vq->inflight = malloc(size * sizeof(*vq->inflight));
	if (!vq->inflight) {
		memset(vq, 0, sizeof(*vq));
		return -ENOMEM;
	}
	memset(vq->inflight, 0xff, size * sizeof(*vq->inflight));
	vq->gm = gm;
	vq->size = size;
	vq->desc_gpa = desc;
	vq->avail_gpa = avail;
	vq->used_gpa = used;
	vq->features = features & ((1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
				   (1ULL << VIRTIO_RING_F_EVENT_IDX));
	return 0;
}

void vq_destroy(struct vq *vq)
{
	free(vq->inflight);
	memset(vq, 0, sizeof(*vq));
}

/* Mark the queue unusable and say why, once: after this the device reports
 * NEEDS_RESET and ferry touches the rings no more. */
static int vq_break(struct vq *vq, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int vq_break(struct vq *vq, int err, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (!vq->broken) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		log_warn("virtqueue (desc 0x%" PRIx64 ", size %u): %s; the device needs a reset",
			 vq->desc_gpa, vq->size, why);
	}
	vq->broken = true;
	return err;
}

/* Append one buffer of the chain to @elem. */
static int elem_add(struct vq *vq, struct vq_elem *elem, const struct vq_desc *d,
		    uint64_t *out_total, uint64_t *in_total)
{
	uint64_t addr = le64toh(d->addr);
	uint32_t len = le32toh(d->len);
	bool write = le16toh(d->flags) & VQ_DESC_F_WRITE;
	void *hva;

	/* A zero-length buffer carries nothing; skipping it keeps iov free of
	 * entries a device would have to special-case. */
	if (len == 0)
		return 0;
	/* §2.7.4.2: readable descriptors come before all writable ones. */
	if (!write && elem->in_num)
		return vq_break(vq, -EINVAL, "head %u: readable buffer after a writable one",
				elem->head);
	if (elem->out_num + elem->in_num >= VQ_ELEM_MAX_IOV)
		return vq_break(vq, -E2BIG, "head %u: more than %d buffers in one chain",
				elem->head, VQ_ELEM_MAX_IOV);
	hva = gm_ptr(vq->gm, addr, len);
	if (!hva)
		return vq_break(vq, -EFAULT, "head %u: buffer 0x%" PRIx64 "+%u is not guest RAM",
				elem->head, addr, len);
	/* Used lengths are 32-bit: a chain larger than that cannot be
	 * completed honestly.  Sums of <= 256 u32 values cannot wrap a u64. */
	if (*out_total + *in_total + len > UINT32_MAX)
		return vq_break(vq, -EINVAL, "head %u: chain larger than 4 GiB", elem->head);
	elem->iov[elem->out_num + elem->in_num] =
		(struct iovec){ .iov_base = hva, .iov_len = len };
	if (write) {
		elem->in_num++;
		*in_total += len;
	} else {
		elem->out_num++;
		*out_total += len;
	}
	return 0;
}

/* Walk the chain at elem->head, first in the descriptor table, then maybe in
 * one indirect table (§2.7.5.3). */
static int walk_chain(struct vq *vq, struct vq_elem *elem)
{
	const uint8_t *table = vq->desc;
	uint32_t nr = vq->size;         /* entries in the current table */
	uint32_t steps = 0;             /* descriptors visited in it */
	uint64_t out_total = 0, in_total = 0;
	bool indirect = false;
	uint16_t idx = elem->head;
	struct vq_desc d;
	int ret;

	for (;;) {
		/* A chain visits each descriptor at most once, so more steps
		 * than entries means a loop (or a chain longer than the
		 * queue, which §2.7.4.2 forbids); this bounds our work. */
		if (++steps > nr)
			return vq_break(vq, -ELOOP, "head %u: chain loops or exceeds %u descriptors",
					elem->head, nr);
		/* One copy: the guest may rewrite the descriptor meanwhile,
		 * and every check below must see the values we then use. */
		memcpy(&d, table + 16 * (size_t)idx, sizeof(d));
		uint16_t flags = le16toh(d.flags);

		if (flags & VQ_DESC_F_INDIRECT) {
			uint64_t addr = le64toh(d.addr);
			uint32_t len = le32toh(d.len);

			if (!has_feature(vq, VIRTIO_RING_F_INDIRECT_DESC))
				return vq_break(vq, -EINVAL, "head %u: indirect descriptor not negotiated",
						elem->head);
			if (indirect)
				return vq_break(vq, -EINVAL, "head %u: nested indirect table",
						elem->head);
			if (flags & VQ_DESC_F_NEXT)
				return vq_break(vq, -EINVAL, "head %u: indirect descriptor with NEXT",
						elem->head);
			if (len == 0 || len % 16 || len / 16 > VQ_INDIRECT_MAX)
				return vq_break(vq, -EINVAL, "head %u: bad indirect table length %u",
						elem->head, len);
			/* The WRITE flag of this descriptor means nothing and
			 * is ignored, as the spec requires. */
			table = gm_ptr(vq->gm, addr, len);
			if (!table)
				return vq_break(vq, -EFAULT, "head %u: indirect table 0x%" PRIx64 "+%u is not guest RAM",
						elem->head, addr, len);
			indirect = true;
			nr = len / 16;
			steps = 0;
			idx = 0;
			continue;
		}
		ret = elem_add(vq, elem, &d, &out_total, &in_total);
		if (ret < 0)
			return ret;
		if (!(flags & VQ_DESC_F_NEXT))
			break;
		idx = le16toh(d.next);
		if (idx >= nr)
			return vq_break(vq, -EINVAL, "head %u: next index %u outside a table of %u",
					elem->head, idx, nr);
	}
	elem->out_len = out_total;
	elem->in_len = in_total;
	return 0;
}

int vq_pop(struct vq *vq, struct vq_elem *elem)
{
	uint16_t avail_idx, pending, head;
	int ret;

	if (vq->broken)
		return -EIO;
	/* Acquire: the ring entries and descriptors the driver wrote before
	 * bumping idx are visible once we see the new idx. */
	avail_idx = ring_load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
	pending = avail_idx - vq->last_avail_idx;
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return vq_break(vq, -EINVAL, "avail idx moved from %u to %u, more than the queue size",
				vq->last_avail_idx, avail_idx);
	head = ring_load16(vq->avail + AVAIL_RING(vq->last_avail_idx & (vq->size - 1)),
			   __ATOMIC_RELAXED);
	if (head >= vq->size)
		return vq_break(vq, -EINVAL, "head index %u >= queue size", head);
	if (vq->inflight[head] != VQ_INFLIGHT_NONE)
		return vq_break(vq, -EINVAL, "head %u offered again before it was used", head);

	elem->head = head;
	elem->out_num = elem->in_num = 0;
	ret = walk_chain(vq, elem);
	if (ret < 0)
		return ret;
	vq->inflight[head] = elem->in_len;
	vq->last_avail_idx++;
	return 1;
}

/* While a migration runs, report what the device wrote for chain @head:
 * its writable buffers, found by walking the chain again (vq_pop kept no
 * copy).  A driver that rewrote the descriptors of a chain in flight only
 * gets other pages resent, so this walk never breaks the queue; it keeps
 * vq_pop's bounds (one pass per table, one indirect level). */
static void vq_mark_chain(struct vq *vq, uint16_t head)
{
	const uint8_t *table = vq->desc;
	uint32_t nr = vq->size, steps = 0;
	bool indirect = false;
	uint16_t idx = head;
	struct vq_desc d;

	while (++steps <= nr) {
		uint16_t flags;

		memcpy(&d, table + 16 * (size_t)idx, sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VQ_DESC_F_INDIRECT) {
			uint32_t len = le32toh(d.len);

			if (indirect || len == 0 || len % 16 || len / 16 > VQ_INDIRECT_MAX)
				return;
			table = gm_ptr(vq->gm, le64toh(d.addr), len);
			if (!table)
				return;
			indirect = true;
			nr = len / 16;
			steps = 0;
			idx = 0;
			continue;
		}
		if ((flags & VQ_DESC_F_WRITE) && gm_ptr(vq->gm, le64toh(d.addr), le32toh(d.len)))
			gm_mark_dirty(vq->gm, le64toh(d.addr), le32toh(d.len));
		if (!(flags & VQ_DESC_F_NEXT))
			return;
		idx = le16toh(d.next);
		if (idx >= nr)
			return;
	}
}

int vq_push(struct vq *vq, uint16_t head, uint32_t len)
{
	uint8_t *ent;

	if (vq->broken)
		return -EIO;
	if (head >= vq->size || vq->inflight[head] == VQ_INFLIGHT_NONE)
		return -EINVAL;
	/* Never claim more bytes than the driver gave us to write. */
	len = MIN(len, vq->inflight[head]);
	vq->inflight[head] = VQ_INFLIGHT_NONE;

	ent = vq->used + USED_RING(vq->used_idx & (vq->size - 1));
	__atomic_store_n((uint32_t *)ent, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n((uint32_t *)(ent + 4), htole32(len), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the element is visible before the idx that publishes it. */
	ring_store16(vq->used + USED_IDX, vq->used_idx, __ATOMIC_RELEASE);
	if (__atomic_load_n(&vq->gm->dev_dirty, __ATOMIC_RELAXED)) {
		vq_mark_chain(vq, head);
		gm_mark_dirty(vq->gm, vq->used_gpa, USED_RING(vq->size));
	}
	return 0;
}

/* §2.7.10: has new_idx just passed event_idx (16-bit wrap-aware)? */
static bool vq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

bool vq_needs_notify(struct vq *vq)
{
	uint16_t old, event;
	bool valid;

	if (vq->broken)
		return false;
	/* Full barrier: our used idx store must be visible before we read the
	 * driver's suppression state, or both sides can decide to sleep. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!has_feature(vq, VIRTIO_RING_F_EVENT_IDX))
		return !(ring_load16(vq->avail + AVAIL_FLAGS, __ATOMIC_RELAXED) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	event = ring_load16(vq->avail + AVAIL_RING(vq->size), __ATOMIC_RELAXED);
	return !valid || vq_need_event(event, vq->used_idx, old);
}

void vq_set_avail_event(struct vq *vq)
{
	if (vq->broken || !has_feature(vq, VIRTIO_RING_F_EVENT_IDX))
		return;
	ring_store16(vq->used + USED_RING(vq->size), vq->last_avail_idx, __ATOMIC_RELAXED);
	gm_mark_dirty(vq->gm, vq->used_gpa + USED_RING(vq->size), 2);
	/* Publish the event before the caller re-reads avail idx. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
