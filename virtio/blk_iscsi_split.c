/* How the iSCSI backend turns a guest request into SCSI commands within the
 * LUN's Block Limits (MAXIMUM TRANSFER LENGTH, MAXIMUM UNMAP LBA COUNT,
 * MAXIMUM WRITE SAME LENGTH): the arithmetic of the parts (pure, tested by
 * tests/unit/test_blk_iscsi_split.c) and the issue of a request's next part.
 *
 * A request longer than a limit is sent as several commands, one after the
 * other (as QEMU's block layer does), each in the same queue slot: the queue
 * depth at the target still counts one command per request, and a reconnect
 * reissues only the part that was at the target (c->done counts what the
 * target has already acknowledged). */
#include <errno.h>
#include <stdlib.h>

#include "config.h"
#include "ferry/blk.h"
#include "ferry/util.h"

#ifdef HAVE_LIBISCSI
#include "blk_iscsi.h"

static uint8_t isc_zero_block[4096];

uint64_t isc_split_next(uint64_t lba, uint64_t left, uint64_t max, uint64_t gran)
{
	uint64_t end;

	if (!max || left <= max)
		return left;
	/* End on the granularity, so that the parts after the first start
	 * aligned; a granularity above the limit cannot be honoured. */
	if (gran > 1 && gran <= max) {
		end = lba + max - (lba + max) % gran;
		if (end > lba)
			return end - lba;
	}
	return max;
}

unsigned int isc_iov_slice(const struct iovec *iov, unsigned int cnt, uint64_t skip, uint64_t len,
			   struct iovec *out)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < cnt && len; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l = MIN(l - skip, len);
		out[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[n].iov_len = l;
		n++;
		len -= l;
		skip = 0;
	}
	return len ? 0 : n;
}

uint64_t isc_part_max(const struct blk_iscsi *s, enum blk_op op)
{
	/* libiscsi takes a 32-bit byte count, and the CDBs 32-bit block
	 * counts: past those, split even where the LUN sets no limit. */
	uint64_t cap = op == BLK_OP_READ || op == BLK_OP_WRITE ? UINT32_MAX / s->b.block_size :
		       UINT32_MAX;
	uint64_t lim = 0;

	switch (op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		lim = s->max_xfer;
		break;
	case BLK_OP_DISCARD:
		lim = s->max_unmap;
		break;
	case BLK_OP_WRITE_ZEROES:
		lim = s->max_ws;
		break;
	case BLK_OP_FLUSH:
		return 0;
	}
	return lim ? MIN(lim, cap) : cap;
}

/* The buffers of @c's part at @skip bytes, @len long, in c->iov. */
static int cmd_slice(struct isc_cmd *c, uint64_t skip, uint64_t len, struct scsi_iovec **iov,
		     int *cnt)
{
	struct blk_req *req = c->req;

	if (!skip && len == req->len) {
		*iov = (struct scsi_iovec *)req->iov;
		*cnt = (int)req->iovcnt;
		return 0;
	}
	if (c->iov_cap < req->iovcnt) {
		struct iovec *v = realloc(c->iov, req->iovcnt * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->iov = v;
		c->iov_cap = req->iovcnt;
	}
	*cnt = (int)isc_iov_slice(req->iov, req->iovcnt, skip, len, c->iov);
	*iov = (struct scsi_iovec *)c->iov;
	return *cnt ? 0 : -EINVAL;
}

int isc_cmd_issue(struct blk_iscsi *s, struct isc_cmd *c)
{
	struct blk_req *req = c->req;
	uint32_t bs = s->b.block_size, lun = s->url.lun;
	uint64_t lba = req->offset / bs + c->done, left = req->len / bs - c->done;
	uint64_t gran = req->op == BLK_OP_READ || req->op == BLK_OP_WRITE ? s->xfer_gran : 0;
	struct scsi_task *t = NULL;
	struct scsi_iovec *iov;
	uint32_t n, len;
	int cnt, ret;

	n = (uint32_t)isc_split_next(lba, left, isc_part_max(s, req->op), gran);
	c->part = n;
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		len = n * bs;   /* isc_part_max keeps it within 32 bits */
		ret = cmd_slice(c, c->done * bs, len, &iov, &cnt);
		if (ret < 0)
			return ret;
		if (req->op == BLK_OP_READ)
			t = iscsi_read16_iov_task(s->ctx, lun, lba, len, bs, 0, 0, 0, 0, 0, isc_cb, c,
						  iov, cnt);
		else    /* FUA on every part: each must be durable. */
			t = iscsi_write16_iov_task(s->ctx, lun, lba, NULL, len, bs, 0, 0,
						   !!(req->flags & BLK_REQ_FUA), 0, 0, isc_cb, c,
						   iov, cnt);
		break;
	case BLK_OP_FLUSH:
		t = iscsi_synchronizecache16_task(s->ctx, lun, 0, 0, 0, 0, isc_cb, c);
		break;
	case BLK_OP_DISCARD:
		c->um.lba = lba;
		c->um.num = n;
		t = iscsi_unmap_task(s->ctx, lun, 0, 0, &c->um, 1, isc_cb, c);
		break;
	case BLK_OP_WRITE_ZEROES:
		t = iscsi_writesame16_task(s->ctx, lun, lba, isc_zero_block, bs, n, 0,
					   s->ws_unmap && (req->flags & BLK_REQ_UNMAP), 0, 0, isc_cb, c);
		break;
	}
	if (!t)
		return -ENOMEM;
	c->task = t;
	s->at_target++;
	return 0;
}

#endif
