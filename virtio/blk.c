/* virtio-blk (virtio 1.2 §5.2): parses the driver's requests, checks them
 * against the disk, hands them to a block backend (include/ferry/blk.h) and
 * completes them on the event loop.  --disk is parsed in blk_config.c.
 *
 * Each queue has a fixed pool of request slots (BLK_QUEUE_DEPTH): when all
 * are in flight the queue stops popping and resumes on a completion, so a
 * guest cannot make ferry allocate or queue without bound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Absent only in the fuzz build (tests/fuzz/run.sh): no io_uring/AIO there. */
#if __has_include("config.h")
#include "config.h"
#endif
#include <libfdt.h>

#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX       1
#define VIRTIO_BLK_F_SEG_MAX        2
#define VIRTIO_BLK_F_RO             5
#define VIRTIO_BLK_F_BLK_SIZE       6
#define VIRTIO_BLK_F_FLUSH          9
#define VIRTIO_BLK_F_TOPOLOGY       10
#define VIRTIO_BLK_F_MQ             12
#define VIRTIO_BLK_F_DISCARD        13
#define VIRTIO_BLK_F_WRITE_ZEROES   14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN             0
#define VIRTIO_BLK_T_OUT            1
#define VIRTIO_BLK_T_FLUSH          4
#define VIRTIO_BLK_T_GET_ID         8
#define VIRTIO_BLK_T_DISCARD        11
#define VIRTIO_BLK_T_WRITE_ZEROES   13
#define VIRTIO_BLK_S_OK             0
#define VIRTIO_BLK_S_IOERR          1
#define VIRTIO_BLK_S_UNSUPP         2
#define VIRTIO_BLK_WZ_UNMAP         1u

/* Configuration layout offsets (§5.2.4), up to write_zeroes_may_unmap. */
#define CFG_CAPACITY                0
#define CFG_SEG_MAX                 12
#define CFG_BLK_SIZE                20
#define CFG_PHYS_BLOCK_EXP          24
#define CFG_MIN_IO_SIZE             26
#define CFG_OPT_IO_SIZE             28
#define CFG_NUM_QUEUES              34
#define CFG_MAX_DISCARD_SECTORS     36
#define CFG_MAX_DISCARD_SEG         40
#define CFG_DISCARD_ALIGN           44
#define CFG_MAX_WZ_SECTORS          48
#define CFG_MAX_WZ_SEG              52
#define CFG_WZ_MAY_UNMAP            56
#define CFG_LEN                     60

#define BLK_QUEUE_SIZE      256
#define BLK_QUEUE_DEPTH     VIRTIO_BLK_QUEUE_DEPTH
/* Data segments per request: the header and the status byte take the
 * other two of VQ_ELEM_MAX_IOV. */
#define BLK_SEG_MAX         (VQ_ELEM_MAX_IOV - 2)
/* Per discard/write-zeroes segment, and one segment per request (as QEMU):
 * the segment is read into the slot, never into an allocation. */
#define BLK_MAX_DISCARD_SECTORS (1u << 22)
#define BLK_HDR_LEN         16

#define BLK_SEG_LEN         16

struct blk;

struct blk_slot {
	struct blk_req req;             /* first: the callback casts back */
	struct blk *blk;
	unsigned int q;
	bool busy;                      /* popped, not yet back in the pool */
	bool cancelled;                 /* reset while in the backend */
	uint8_t *status;
	uint32_t used_len;
	struct blk_slot *next_free;
	struct vq_elem elem;
};

struct blk_queue {
	struct blk_slot *slots;
	struct blk_slot *free;
	bool stalled;                   /* stopped popping: no free slot */
};

struct blk {
	struct virtio_dev dev;
	struct blk_backend *be;
	uint64_t capacity;              /* 512-byte sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	uint64_t pr_src_key;            /* incoming: the source's reservation key */
	struct blk_queue queues[VIRTIO_MAX_QUEUES];
};

struct blk_backend *virtio_blk_backend(struct virtio_dev *d)
{
	return ((struct blk *)d->priv)->be;
}

static uint64_t blk_features(struct virtio_dev *d)
{
	struct blk *blk = d->priv;
	uint64_t f = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		     1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_TOPOLOGY;

	if (blk->be->readonly)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	if (d->num_queues > 1)
		f |= 1ULL << VIRTIO_BLK_F_MQ;
	if (!blk->be->readonly && blk->be->can_discard)
		f |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (!blk->be->readonly && blk->be->can_write_zeroes)
		f |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void blk_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct blk *blk = d->priv;
	uint32_t bs = blk->be->block_size, sectors_per_block = bs / 512;
	uint8_t cfg[CFG_LEN] = { 0 };

	put32(cfg + CFG_CAPACITY, (uint32_t)blk->capacity);
	put32(cfg + CFG_CAPACITY + 4, (uint32_t)(blk->capacity >> 32));
	put32(cfg + CFG_SEG_MAX, BLK_SEG_MAX);
	put32(cfg + CFG_BLK_SIZE, bs);
	/* Topology, in logical blocks: physical = logical, no preference. */
	cfg[CFG_PHYS_BLOCK_EXP] = 0;
	put16(cfg + CFG_MIN_IO_SIZE, 1);
	put32(cfg + CFG_OPT_IO_SIZE, 0);
	put16(cfg + CFG_NUM_QUEUES, (uint16_t)d->num_queues);
	put32(cfg + CFG_MAX_DISCARD_SECTORS, BLK_MAX_DISCARD_SECTORS);
	put32(cfg + CFG_MAX_DISCARD_SEG, 1);
	put32(cfg + CFG_DISCARD_ALIGN, sectors_per_block);
	put32(cfg + CFG_MAX_WZ_SECTORS, BLK_MAX_DISCARD_SECTORS);
	put32(cfg + CFG_MAX_WZ_SEG, 1);
	cfg[CFG_WZ_MAY_UNMAP] = 1;
	/* The transport checked off/len against config_len. */
	if (off < CFG_LEN && len <= CFG_LEN - off)
		memcpy(data, cfg + off, len);
}

static void blk_config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	/* Nothing is writable without CONFIG_WCE, which is not offered. */
	(void)d;
	(void)off;
	(void)data;
	(void)len;
}

/* ---- request slots ------------------------------------------------------ */

static struct blk_slot *slot_get(struct blk_queue *bq)
{
	struct blk_slot *s = bq->free;

	if (s) {
		bq->free = s->next_free;
		s->busy = true;
		s->cancelled = false;
	}
	return s;
}

static void slot_put(struct blk_queue *bq, struct blk_slot *s)
{
	s->busy = false;
	s->next_free = bq->free;
	bq->free = s;
}

/* Copy @len bytes at @skip into the buffers' readable part. */
static uint32_t iov_read(const struct iovec *iov, unsigned int cnt, uint32_t skip,
			 void *buf, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		n = MIN(iov[i].iov_len - skip, (size_t)(len - done));
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, n);
		done += n;
		skip = 0;
	}
	return done;
}

static uint32_t iov_write(struct iovec *iov, unsigned int cnt, const void *buf, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t n = MIN(iov[i].iov_len, (size_t)(len - done));

		memcpy(iov[i].iov_base, (const uint8_t *)buf + done, n);
		done += n;
	}
	return done;
}

/* Drop the first @n bytes of @iov[0..*cnt) in place; returns the new start. */
static struct iovec *iov_skip(struct iovec *iov, unsigned int *cnt, uint32_t n)
{
	while (*cnt && n >= iov->iov_len) {
		n -= iov->iov_len;
		iov++;
		(*cnt)--;
	}
	if (*cnt && n) {
		iov->iov_base = (uint8_t *)iov->iov_base + n;
		iov->iov_len -= n;
	}
	return iov;
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* [sector, +nsec) lies on the disk and on its logical blocks. */
static bool blk_range_ok(const struct blk *blk, uint64_t sector, uint64_t nsec)
{
	uint64_t align = blk->be->block_size / 512;

	return sector <= blk->capacity && nsec <= blk->capacity - sector &&
	       sector % align == 0 && nsec % align == 0;
}

/* ---- completion --------------------------------------------------------- */

/* Status written, chain returned; with dev->lock held. */
static void blk_finish(struct blk *blk, struct blk_slot *s, uint8_t status)
{
	struct virtio_dev *d = &blk->dev;

	*s->status = status;
	d->requests++;
	if (status != VIRTIO_BLK_S_OK)
		d->errors++;
	else if (s->req.op == BLK_OP_READ || s->req.op == BLK_OP_WRITE)
		d->bytes += s->req.len;
	vq_push(&d->vqs[s->q], s->elem.head, status == VIRTIO_BLK_S_OK ? s->used_len : 1);
	slot_put(&blk->queues[s->q], s);
}

static void blk_process(struct blk *blk, unsigned int q);

/* The backend's callback, on the loop thread with no lock held. */
static void blk_req_done(struct blk_req *req, int ret)
{
	struct blk_slot *s = (struct blk_slot *)req;
	struct blk *blk = s->blk;
	struct virtio_dev *d = &blk->dev;
	struct blk_queue *bq = &blk->queues[s->q];

	pthread_mutex_lock(&d->lock);
	if (s->cancelled) {
		/* The device was reset meanwhile: the chain is gone. */
		slot_put(bq, s);
		goto out;
	}
	if (ret)
		log_debug("%s: %s at %llu: %s", d->name, req->op == BLK_OP_READ ? "read" :
			  req->op == BLK_OP_WRITE ? "write" : "request",
			  (unsigned long long)req->offset, strerror(-ret));
	blk_finish(blk, s, ret ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	virtio_queue_done(d, s->q);
	if (bq->stalled) {
		bq->stalled = false;
		blk_process(blk, s->q);
	}
out:
	pthread_mutex_unlock(&d->lock);
}

/* ---- requests ----------------------------------------------------------- */

static uint8_t blk_rw(struct blk *blk, struct blk_slot *s, uint32_t type, uint64_t sector)
{
	struct vq_elem *el = &s->elem;
	bool in = type == VIRTIO_BLK_T_IN;
	uint64_t len;
	unsigned int cnt;
	struct iovec *iov;

	if (!in && blk->be->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (in) {
		/* Writable part minus the status byte (the last in-iovec is
		 * not empty: vq_pop drops empty buffers). */
		cnt = el->in_num;
		iov = vq_elem_in(el);
		iov[cnt - 1].iov_len--;
		if (!iov[cnt - 1].iov_len)
			cnt--;
		len = el->in_len - 1;
		s->used_len = el->in_len;
	} else {
		cnt = el->out_num;
		iov = iov_skip(el->iov, &cnt, BLK_HDR_LEN);
		len = el->out_len - BLK_HDR_LEN;
		s->used_len = 1;
	}
	if (len % 512 || !blk_range_ok(blk, sector, len / 512))
		return VIRTIO_BLK_S_IOERR;
	if (!len)
		return VIRTIO_BLK_S_OK;
	s->req.op = in ? BLK_OP_READ : BLK_OP_WRITE;
	s->req.offset = sector * 512;
	s->req.iov = iov;
	s->req.iovcnt = cnt;
	s->req.len = len;
	return 0xff;
}

static uint8_t blk_discard(struct blk *blk, struct blk_slot *s, uint32_t type)
{
	struct virtio_dev *d = &blk->dev;
	bool discard = type == VIRTIO_BLK_T_DISCARD;
	uint8_t seg[BLK_SEG_LEN];
	uint64_t sector;
	uint32_t nsec, flags;

	if (blk->be->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!virtio_has_feature(d, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
		return VIRTIO_BLK_S_UNSUPP;
	/* Exactly one segment (max_*_seg is 1). */
	if (s->elem.out_len - BLK_HDR_LEN != BLK_SEG_LEN)
		return VIRTIO_BLK_S_IOERR;
	iov_read(s->elem.iov, s->elem.out_num, BLK_HDR_LEN, seg, BLK_SEG_LEN);
	sector = le64(seg);
	nsec = le32(seg + 8);
	flags = le32(seg + 12);
	/* Unknown flags, and unmap on a discard, are unsupported (§5.2.6.2). */
	if (flags & ~VIRTIO_BLK_WZ_UNMAP || (discard && flags))
		return VIRTIO_BLK_S_UNSUPP;
	if (nsec > BLK_MAX_DISCARD_SECTORS || !blk_range_ok(blk, sector, nsec))
		return VIRTIO_BLK_S_IOERR;
	if (!nsec)
		return VIRTIO_BLK_S_OK;
	s->req.op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
	s->req.flags = flags & VIRTIO_BLK_WZ_UNMAP ? BLK_REQ_UNMAP : 0;
	s->req.offset = sector * 512;
	s->req.len = (uint64_t)nsec * 512;
	return 0xff;
}

/* Check and start one request.  Returns a status to complete it with now,
 * 0xff when it went to the backend, or -1 when the chain is malformed. */
static int blk_request(struct blk *blk, struct blk_slot *s)
{
	struct vq_elem *el = &s->elem;
	struct iovec *in = vq_elem_in(el);
	uint8_t hdr[BLK_HDR_LEN];
	uint32_t type, n;
	uint64_t sector;

	/* The driver MUST give a header and a status byte (§5.2.6.1). */
	if (el->out_len < BLK_HDR_LEN || el->in_len < 1)
		return -1;
	iov_read(el->iov, el->out_num, 0, hdr, BLK_HDR_LEN);
	type = le32(hdr);
	sector = le64(hdr + 8);
	s->status = (uint8_t *)in[el->in_num - 1].iov_base + in[el->in_num - 1].iov_len - 1;
	s->used_len = 1;
	memset(&s->req, 0, sizeof(s->req));
	s->req.done = blk_req_done;

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return blk_rw(blk, s, type, sector);
	case VIRTIO_BLK_T_FLUSH:
		if (blk->be->readonly)
			return VIRTIO_BLK_S_OK;
		s->req.op = BLK_OP_FLUSH;
		return 0xff;
	case VIRTIO_BLK_T_GET_ID:
		/* The serial, zero-padded, without the status byte. */
		n = MIN(el->in_len - 1, (uint32_t)VIRTIO_BLK_ID_BYTES);
		/* n < in_len: the status byte is not overwritten. */
		iov_write(in, el->in_num, blk->serial, n);
		s->used_len = n + 1;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_discard(blk, s, type);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* Pop and start requests on queue @q until it is empty or the slots are
 * all in flight; with dev->lock held. */
static void blk_process(struct blk *blk, unsigned int q)
{
	struct virtio_dev *d = &blk->dev;
	struct blk_queue *bq = &blk->queues[q];
	struct vq *vq = &d->vqs[q];
	bool pushed = false, submitted = false;

	while (!(d->status & VIRTIO_STATUS_NEEDS_RESET) && !d->quiesced) {
		struct blk_slot *s = slot_get(bq);
		int ret;

		if (!s) {
			bq->stalled = true;
			break;
		}
		ret = vq_pop(vq, &s->elem);
		if (ret == 0) {
			/* Idle: re-arm the kick, then look once more for a
			 * request that raced with it. */
			vq_set_avail_event(vq);
			ret = vq_pop(vq, &s->elem);
		}
		if (ret <= 0) {
			slot_put(bq, s);
			if (ret < 0)
				virtio_dev_fail(d, "request queue broken by the driver");
			break;
		}
		ret = blk_request(blk, s);
		if (ret < 0) {
			slot_put(bq, s);
			virtio_dev_fail(d, "request without a header or a status byte");
			break;
		}
		if (ret == 0xff) {
			ret = blk_submit(blk->be, &s->req);
			if (ret == 0) {
				submitted = true;
				continue;
			}
			log_debug("%s: backend refused a request: %s", d->name, strerror(-ret));
			ret = VIRTIO_BLK_S_IOERR;
		}
		blk_finish(blk, s, (uint8_t)ret);
		pushed = true;
	}
	if (submitted)
		blk_kick(blk->be);
	if (pushed)
		virtio_queue_done(d, q);
}

static void blk_queue_notify(struct virtio_dev *d, unsigned int q)
{
	if (q < d->num_queues && d->vq_ready[q])
		blk_process(d->priv, q);
}

static int blk_activate(struct virtio_dev *d)
{
	/* A driver may have queued requests before DRIVER_OK. */
	for (unsigned int q = 0; q < d->num_queues; q++)
		blk_queue_notify(d, q);
	return 0;
}

/* The backend's buffers point into guest memory: wait for the host I/O,
 * then forget the requests (their callbacks only free the slots). */
static void blk_reset(struct virtio_dev *d)
{
	struct blk *blk = d->priv;

	blk_drain(blk->be);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct blk_queue *bq = &blk->queues[q];

		for (unsigned int i = 0; i < BLK_QUEUE_DEPTH; i++)
			if (bq->slots[i].busy)
				bq->slots[i].cancelled = true;
		bq->stalled = false;
	}
}

/* Migration, on the loop without the lock: d->quiesced stops blk_process,
 * the backend finishes the host I/O in flight, and the completions run
 * here, so that every chain is pushed and the disk holds every write the
 * guest was told about before the destination opens it. */
static int blk_quiesce(struct virtio_dev *d)
{
	struct blk *blk = d->priv;
	int ret = 0;

	blk_drain(blk->be);
	blk_complete(blk->be);
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->num_queues; q++)
		for (unsigned int i = 0; i < BLK_QUEUE_DEPTH; i++)
			if (blk->queues[q].slots[i].busy)
				ret = -EBUSY;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* The iSCSI reservation key of this end ("pr-key", 8 bytes), so that the
 * destination can preempt it at the switchover (virtio/blk_iscsi_pr.c). */
static int blk_save(struct virtio_dev *d, void *fdt)
{
#ifdef HAVE_LIBISCSI
	struct blk *blk = d->priv;
	uint64_t key;
	bool holder;

	if (blk_iscsi_pr_state(blk->be, &key, &holder) == 0 && holder &&
	    fdt_property_u64(fdt, "pr-key", key))
		return -ENOSPC;
#else
	(void)d;
	(void)fdt;
#endif
	return 0;
}

static int blk_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e)
{
	struct blk *blk = d->priv;
#ifdef HAVE_LIBISCSI
	const fdt64_t *p;
	uint64_t key;
	bool holder;
	int len;

	blk->pr_src_key = 0;
	p = fdt_getprop(fdt, node, "pr-key", &len);
	if (!p)
		return 0;       /* the source held no reservation */
	if (len != 8 || !fdt64_ld(p))
		return ferr_set(e, -EPROTO, "%s: the source's reservation key is malformed (%d bytes)",
				d->name, len);
	blk->pr_src_key = fdt64_ld(p);
	/* Without one here the source would keep the reservation and
	 * every write of ours would be refused. */
	if (blk_iscsi_pr_state(blk->be, &key, &holder) < 0)
		return ferr_set(e, -EINVAL, "%s: the source holds an iSCSI reservation on this disk but here it has reservation=off (give both ends the same reservation=)",
				d->name);
#else
	/* Only iSCSI disks carry state here (a reservation key). */
	(void)blk;
	(void)fdt;
	(void)node;
	(void)e;
#endif
	return 0;
}

int virtio_blk_takeover(struct virtio_dev *d, bool from_source, struct ferr *e)
{
#ifdef HAVE_LIBISCSI
	struct blk *blk = d->priv;

	return blk_iscsi_pr_takeover(blk->be, from_source ? blk->pr_src_key : 0, e);
#else
	(void)d;
	(void)from_source;
	(void)e;
	return 0;
#endif
}

static void blk_free(struct blk *blk)
{
	blk_destroy(blk->be);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		free(blk->queues[q].slots);
	free(blk);
}

static void blk_dev_destroy(struct virtio_dev *d)
{
	blk_free(d->priv);
}

static const struct virtio_dev_ops blk_ops = {
	.features = blk_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.quiesce = blk_quiesce,
	.save = blk_save,
	.load = blk_load,
	.destroy = blk_dev_destroy,
};

struct virtio_dev *virtio_blk_create(const struct disk_config *cfg, const struct dev_env *env,
				     struct ferr *e)
{
	unsigned int queues = cfg->queues ? cfg->queues : 1;
	struct blk *blk;

	if (queues > VIRTIO_MAX_QUEUES) {
		ferr_set(e, -EINVAL, "disk %s: queues=%u, at most %u", cfg->path, queues,
			 VIRTIO_MAX_QUEUES);
		return NULL;
	}
	blk = calloc(1, sizeof(*blk));
	if (!blk) {
		ferr_set(e, -ENOMEM, "disk %s: out of memory", cfg->path);
		return NULL;
	}
	virtio_dev_init(&blk->dev, "blk0", VIRTIO_ID_BLOCK, queues, BLK_QUEUE_SIZE, CFG_LEN,
			&blk_ops, blk);
	for (unsigned int q = 0; q < queues; q++) {
		struct blk_queue *bq = &blk->queues[q];

		bq->slots = calloc(BLK_QUEUE_DEPTH, sizeof(*bq->slots));
		if (!bq->slots) {
			ferr_set(e, -ENOMEM, "disk %s: out of memory", cfg->path);
			goto fail;
		}
		for (unsigned int i = BLK_QUEUE_DEPTH; i-- > 0;) {
			bq->slots[i].blk = blk;
			bq->slots[i].q = q;
			slot_put(bq, &bq->slots[i]);
		}
	}
	if (disk_is_iscsi(cfg->path)) {
#ifdef HAVE_LIBISCSI
		blk->be = blk_iscsi_open(cfg, env, BLK_QUEUE_DEPTH * queues, e);
#else
		ferr_set(e, -ENOTSUP, "disk %s: this ferry was built without libiscsi", cfg->path);
#endif
	} else {
		blk->be = blk_file_open(cfg, env->loop, BLK_QUEUE_DEPTH * queues, e);
	}
	if (!blk->be)
		goto fail;
	blk->capacity = blk->be->size / 512;
	memcpy(blk->serial, cfg->serial, strnlen(cfg->serial, VIRTIO_BLK_ID_BYTES));
	return &blk->dev;
fail:
	pthread_mutex_destroy(&blk->dev.lock);
	blk_free(blk);
	return NULL;
}
