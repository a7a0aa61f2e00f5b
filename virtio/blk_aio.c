/* The Linux AIO engine of the file backend (blk_file.c): preadv/pwritev
 * and fdsync iocbs submitted in batches, completions signalled on the
 * backend's eventfd.  AIO has no fallocate: discard and write-zeroes are
 * done synchronously. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/log.h"
#include "ferry/util.h"

#include "blk_file.h"

#ifdef HAVE_LIBAIO
int blk_aio_setup(struct blk_file *f, struct ferr *e)
{
	unsigned int n = f->b.queue_depth;
	int ret;

	ret = io_setup((int)n, &f->aio);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: engine=aio: io_setup(%u) failed (check /proc/sys/fs/aio-max-nr, or use engine=sync)",
				  f->path, n);
	f->iocbs = calloc(n, sizeof(*f->iocbs));
	f->free_iocbs = calloc(n, sizeof(*f->free_iocbs));
	f->pending = calloc(n, sizeof(*f->pending));
	if (!f->iocbs || !f->free_iocbs || !f->pending)
		return ferr_set(e, -ENOMEM, "disk %s: engine=aio: out of memory", f->path);
	for (unsigned int i = 0; i < n; i++)
		f->free_iocbs[i] = &f->iocbs[i];
	f->nr_free = n;
	return 0;
}

/* With f->lock held.  Discard and write-zeroes are done synchronously:
 * AIO has no fallocate. */
int blk_aio_queue(struct blk_file *f, struct blk_req *req)
{
	struct iocb *cb;

	if (req->op == BLK_OP_DISCARD || req->op == BLK_OP_WRITE_ZEROES) {
		blk_file_finish(f, req, blk_file_sync_do(f, req));
		blk_file_signal_done(f);
		return 0;
	}
	if (!f->nr_free)
		return -EAGAIN;         /* cannot happen: outstanding bounds it */
	cb = f->free_iocbs[--f->nr_free];
	switch (req->op) {
	case BLK_OP_READ:
		io_prep_preadv(cb, f->fd, req->iov, (int)req->iovcnt, (long long)req->offset);
		break;
	case BLK_OP_WRITE:
		io_prep_pwritev(cb, f->fd, req->iov, (int)req->iovcnt, (long long)req->offset);
		if (req->flags & BLK_REQ_FUA)
			cb->aio_rw_flags = RWF_DSYNC;
		break;
	default:
		io_prep_fdsync(cb, f->fd);
		break;
	}
	cb->data = req;
	io_set_eventfd(cb, f->efd);
	f->pending[f->nr_pending++] = cb;
	f->in_kernel++;
	return 0;
}

static void aio_release(struct blk_file *f, struct iocb *cb)
{
	f->free_iocbs[f->nr_free++] = cb;
	f->in_kernel--;
}

/* With f->lock held. */
void blk_aio_flush_pending(struct blk_file *f)
{
	unsigned int done = 0;

	while (done < f->nr_pending) {
		int ret = io_submit(f->aio, (long)(f->nr_pending - done), f->pending + done);

		if (ret == -EINTR)
			continue;
		if (ret > 0) {
			done += ret;
			continue;
		}
		/* The first one was refused: do it ourselves (an old kernel
		 * without AIO fdsync says EINVAL; EAGAIN is short of kernel
		 * resources) and go on with the rest. */
		{
			struct iocb *cb = f->pending[done++];
			struct blk_req *req = cb->data;

			aio_release(f, cb);
			blk_file_finish(f, req, blk_file_sync_do(f, req));
			blk_file_signal_done(f);
		}
	}
	f->nr_pending = 0;
}

void blk_aio_reap(struct blk_file *f, bool wait)
{
	struct io_event ev[32];
	struct timespec zero = { 0, 0 };
	int n;

	blk_aio_flush_pending(f);
	while (f->in_kernel) {
		n = io_getevents(f->aio, wait ? 1 : 0, ARRAY_SIZE(ev), ev, wait ? NULL : &zero);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			log_error("disk %s: io_getevents failed: %s", f->path, strerror(-n));
			return;
		}
		for (int i = 0; i < n; i++) {
			struct iocb *cb = ev[i].obj;
			struct blk_req *req = cb->data;
			long res = (long)ev[i].res;

			aio_release(f, cb);
			blk_file_finish(f, req, req->op == BLK_OP_FLUSH ? (res < 0 ? (int)res : 0)
						: blk_file_rw_result(req, res));
		}
		if (n < (int)ARRAY_SIZE(ev))
			break;
		wait = false;
	}
}

void blk_aio_free(struct blk_file *f)
{
	if (f->aio)
		io_destroy(f->aio);
	free(f->iocbs);
	free(f->free_iocbs);
	free(f->pending);
}
#endif
