/* Block backend over a host file or block device: open + OFD lock + size,
 * the backend ops, and the synchronous I/O paths.  Three engines do the
 * I/O: io_uring (blk_uring.c), Linux AIO (blk_aio.c) and sync (plain
 * syscalls on the loop thread, the fallback everywhere); blk_file.h says
 * how they share the backend's state. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/util.h"

#include "blk_file.h"

#define ZERO_BUF_SIZE   (64 * 1024)

static struct blk_file *to_file(struct blk_backend *b)
{
	return (struct blk_file *)b;
}

/* ---- helpers shared by the engines ------------------------------------- */

void blk_file_signal_done(struct blk_file *f)
{
	uint64_t one = 1;

	if (write(f->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("disk %s: cannot signal completion: %s", f->path, strerror(errno));
}

/* With f->lock held. */
void blk_file_finish(struct blk_file *f, struct blk_req *req, int ret)
{
	req->ret = ret;
	req->next = NULL;
	*f->done_tail = req;
	f->done_tail = &req->next;
}

static void iov_zero_from(struct iovec *iov, unsigned int cnt, uint64_t skip)
{
	for (unsigned int i = 0; i < cnt; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		memset((uint8_t *)iov[i].iov_base + skip, 0, iov[i].iov_len - skip);
		skip = 0;
	}
}

/* Drop the first @n bytes of @req's buffers (after a short transfer). */
static void iov_advance(struct blk_req *req, uint64_t n)
{
	while (n && req->iovcnt) {
		if (n < req->iov->iov_len) {
			req->iov->iov_base = (uint8_t *)req->iov->iov_base + n;
			req->iov->iov_len -= n;
			return;
		}
		n -= req->iov->iov_len;
		req->iov++;
		req->iovcnt--;
	}
}

/* The result of a READ/WRITE that moved @res bytes (or -errno).  A short
 * read means end of file (the file shrank under us): the rest reads as
 * zeroes.  A short write is an error: the disk is full. */
int blk_file_rw_result(struct blk_req *req, int64_t res)
{
	if (res < 0)
		return (int)res;
	if ((uint64_t)res >= req->len)
		return 0;
	if (req->op == BLK_OP_READ) {
		iov_zero_from(req->iov, req->iovcnt, res);
		return 0;
	}
	return -ENOSPC;
}

static int sync_rw(struct blk_file *f, struct blk_req *req)
{
	uint64_t off = req->offset, left = req->len;

	while (left) {
		ssize_t n;

		if (req->op == BLK_OP_READ)
			n = preadv(f->fd, req->iov, (int)MIN(req->iovcnt, (unsigned int)IOV_MAX), (off_t)off);
		else
			n = pwritev2(f->fd, req->iov, (int)MIN(req->iovcnt, (unsigned int)IOV_MAX), (off_t)off,
				     req->flags & BLK_REQ_FUA ? RWF_DSYNC : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (req->op == BLK_OP_READ) {
				iov_zero_from(req->iov, req->iovcnt, 0);
				return 0;
			}
			return -ENOSPC;
		}
		off += n;
		left -= MIN(left, (uint64_t)n);
		iov_advance(req, n);
	}
	return 0;
}

static int sync_fallocate(struct blk_file *f, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(f->fd, mode, (off_t)off, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int write_zeroes_by_writing(struct blk_file *f, uint64_t off, uint64_t len)
{
	if (!f->zero_buf) {
		if (posix_memalign(&f->zero_buf, 4096, ZERO_BUF_SIZE))
			return -ENOMEM;
		memset(f->zero_buf, 0, ZERO_BUF_SIZE);
	}
	while (len) {
		size_t n = MIN(len, (uint64_t)ZERO_BUF_SIZE);
		ssize_t w = pwrite(f->fd, f->zero_buf, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -ENOSPC;
		off += w;
		len -= w;
	}
	return 0;
}

bool blk_file_unsupported(int ret)
{
	return ret == -EOPNOTSUPP || ret == -ENOTSUP || ret == -EINVAL || ret == -ENOSYS;
}

/* Discard is advisory: where the file system cannot punch holes it is a
 * successful no-op. */
static int sync_discard(struct blk_file *f, uint64_t off, uint64_t len)
{
	int ret;

	if (!f->punch_ok)
		return 0;
	ret = sync_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	if (blk_file_unsupported(ret)) {
		f->punch_ok = false;
		return 0;
	}
	return ret;
}

/* ZERO_RANGE, else PUNCH_HOLE (holes read as zeroes), else write zeroes. */
int blk_file_sync_write_zeroes(struct blk_file *f, uint64_t off, uint64_t len, bool unmap)
{
	int ret;

	if (f->zero_range_ok && !(unmap && f->punch_ok)) {
		ret = sync_fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
		if (!blk_file_unsupported(ret))
			return ret;
		f->zero_range_ok = false;
	}
	if (f->punch_ok) {
		ret = sync_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
		if (!blk_file_unsupported(ret))
			return ret;
		f->punch_ok = false;
	}
	return write_zeroes_by_writing(f, off, len);
}

/* Any op, done here and now. */
int blk_file_sync_do(struct blk_file *f, struct blk_req *req)
{
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return sync_rw(f, req);
	case BLK_OP_FLUSH:
		return fdatasync(f->fd) < 0 ? -errno : 0;
	case BLK_OP_DISCARD:
		return sync_discard(f, req->offset, req->len);
	case BLK_OP_WRITE_ZEROES:
		return blk_file_sync_write_zeroes(f, req->offset, req->len, req->flags & BLK_REQ_UNMAP);
	}
	return -EINVAL;
}

/* ---- the backend ops ---------------------------------------------------- */

static int file_submit(struct blk_backend *b, struct blk_req *req)
{
	struct blk_file *f = to_file(b);
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	if (f->outstanding >= b->queue_depth) {
		ret = -EAGAIN;
		goto out;
	}
	switch (f->engine) {
#ifdef HAVE_LIBURING
	case BLK_ENGINE_IO_URING:
		ret = blk_uring_queue(f, req);
		break;
#endif
#ifdef HAVE_LIBAIO
	case BLK_ENGINE_AIO:
		ret = blk_aio_queue(f, req);
		break;
#endif
	default:
		blk_file_finish(f, req, blk_file_sync_do(f, req));
		blk_file_signal_done(f);
		break;
	}
	if (!ret)
		f->outstanding++;
out:
	pthread_mutex_unlock(&f->lock);
	return ret;
}

/* With f->lock held. */
static void file_kick_locked(struct blk_file *f)
{
#ifdef HAVE_LIBURING
	if (f->engine == BLK_ENGINE_IO_URING)
		blk_uring_kick(f);
#endif
#ifdef HAVE_LIBAIO
	if (f->engine == BLK_ENGINE_AIO)
		blk_aio_flush_pending(f);
#endif
	(void)f;
}

static void file_kick(struct blk_backend *b)
{
	struct blk_file *f = to_file(b);

	pthread_mutex_lock(&f->lock);
	file_kick_locked(f);
	pthread_mutex_unlock(&f->lock);
}

/* With f->lock held. */
static void file_reap(struct blk_file *f, bool wait)
{
#ifdef HAVE_LIBURING
	if (f->engine == BLK_ENGINE_IO_URING)
		blk_uring_reap(f, wait);
#endif
#ifdef HAVE_LIBAIO
	if (f->engine == BLK_ENGINE_AIO)
		blk_aio_reap(f, wait);
#endif
	(void)f;
	(void)wait;
}

static void file_drain(struct blk_backend *b)
{
	struct blk_file *f = to_file(b);

	pthread_mutex_lock(&f->lock);
	file_kick_locked(f);
	while (f->in_kernel) {
		unsigned int before = f->in_kernel;

		file_reap(f, true);
		if (f->in_kernel == before) {
			log_error("disk %s: %u requests stuck in the kernel", f->path, before);
			break;
		}
	}
	pthread_mutex_unlock(&f->lock);
	/* The loop delivers what was reaped here: the engines' eventfd has
	 * been signalled for each of them. */
}

static void file_complete(struct blk_backend *b)
{
	struct blk_file *f = to_file(b);
	struct blk_req *req, *next;

	pthread_mutex_lock(&f->lock);
	file_reap(f, false);
	req = f->done;
	f->done = NULL;
	f->done_tail = &f->done;
	for (next = req; next; next = next->next)
		f->outstanding--;
	pthread_mutex_unlock(&f->lock);
	/* Callbacks may submit again (the device resumes a stalled queue). */
	for (; req; req = next) {
		next = req->next;
		req->done(req, req->ret);
	}
}

static void file_efd_ready(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct blk_file *f = opaque;
	uint64_t cnt;

	(void)l;
	(void)events;
	if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_warn("disk %s: cannot read completion eventfd: %s", f->path, strerror(errno));
	file_complete(&f->b);
}

static void file_free(struct blk_file *f)
{
	if (f->efd >= 0 && f->loop)
		loop_del(f->loop, f->efd);
#ifdef HAVE_LIBURING
	blk_uring_free(f);
#endif
#ifdef HAVE_LIBAIO
	blk_aio_free(f);
#endif
	if (f->efd >= 0)
		close(f->efd);
	/* Unlock explicitly: io_uring drops its reference to a registered
	 * file asynchronously, so the lock could outlive close() and refuse a
	 * VM restarted right away (a guest reboot under systemd). */
	if (f->locked) {
		struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

		fcntl(f->fd, F_OFD_SETLK, &fl);
	}
	if (f->fd >= 0)
		close(f->fd);
	pthread_mutex_destroy(&f->lock);
	free(f->zero_buf);
	free(f->path);
	free(f);
}

/* Callbacks of requests still queued are not run: the owner is going away. */
static void file_destroy(struct blk_backend *b)
{
	struct blk_file *f = to_file(b);

	file_drain(b);
	file_free(f);
}

static const struct blk_backend_ops file_ops = {
	.submit = file_submit,
	.kick = file_kick,
	.drain = file_drain,
	.complete = file_complete,
	.destroy = file_destroy,
};

/* ---- opening ------------------------------------------------------------ */

static const char *engine_name(enum blk_engine e)
{
	switch (e) {
	case BLK_ENGINE_IO_URING: return "io_uring";
	case BLK_ENGINE_AIO: return "aio";
	case BLK_ENGINE_SYNC: return "sync";
	}
	return "?";
}

static int file_open_fd(struct blk_file *f, const struct disk_config *cfg, struct ferr *e)
{
	int flags = O_CLOEXEC | (cfg->readonly ? O_RDONLY : O_RDWR);

	if (cfg->cache == BLK_CACHE_NONE)
		flags |= O_DIRECT;
	f->fd = open(cfg->path, flags);
	if (f->fd < 0 && errno == EINVAL && (flags & O_DIRECT))
		return ferr_set(e, -EINVAL, "disk %s: its file system does not support O_DIRECT (use cache=writeback)",
				cfg->path);
	if (f->fd < 0)
		return ferr_errno(e, -errno, "cannot open disk %s%s", cfg->path,
				  cfg->readonly ? "" : " for writing (add ,readonly=on to use it read-only)");
	return 0;
}

/* One writer or many readers per disk, across processes (OFD locks belong
 * to the open file, so two ferry disks on one file in one process conflict
 * too).  A migration destination opens the disk while the source still
 * holds it: that is what shared=on is for. */
static int file_lock(struct blk_file *f, const struct disk_config *cfg, struct ferr *e)
{
	struct flock fl = {
		.l_type = cfg->readonly ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};

	if (cfg->shared)
		return 0;
	if (fcntl(f->fd, F_OFD_SETLK, &fl) == 0) {
		f->locked = true;
		return 0;
	}
	if (errno == EAGAIN || errno == EACCES)
		return ferr_set(e, -EBUSY,
				"disk %s is in use by another process (add ,shared=on only for migration on shared storage)",
				cfg->path);
	return ferr_errno(e, -errno, "disk %s: cannot lock it", cfg->path);
}

static int file_size(struct blk_file *f, const struct disk_config *cfg, struct ferr *e)
{
	struct stat st;
	uint64_t size;

	if (fstat(f->fd, &st) < 0)
		return ferr_errno(e, -errno, "disk %s: cannot stat", cfg->path);
	f->b.block_size = 512;
	if (S_ISBLK(st.st_mode)) {
		int ssz = 512;

		if (ioctl(f->fd, BLKGETSIZE64, &size) < 0)
			return ferr_errno(e, -errno, "disk %s: cannot get the block device's size", cfg->path);
		if (ioctl(f->fd, BLKSSZGET, &ssz) == 0 && ssz == 4096)
			f->b.block_size = 4096;
		f->punch_ok = f->zero_range_ok = true;
	} else if (S_ISREG(st.st_mode)) {
		size = st.st_size;
		f->punch_ok = f->zero_range_ok = true;
	} else {
		return ferr_set(e, -EINVAL, "disk %s: not a regular file or a block device", cfg->path);
	}
	if (size % f->b.block_size)
		log_warn("disk %s: size %llu is not a multiple of %u bytes; the tail is not visible",
			 cfg->path, (unsigned long long)size, f->b.block_size);
	f->b.size = ALIGN_DOWN(size, (uint64_t)f->b.block_size);
	f->b.dio_align = cfg->cache == BLK_CACHE_NONE ? f->b.block_size : 1;
	return 0;
}

static int engine_setup(struct blk_file *f, struct ferr *e)
{
	switch (f->engine) {
	case BLK_ENGINE_IO_URING:
#ifdef HAVE_LIBURING
		return blk_uring_setup(f, e);
#else
		return ferr_set(e, -ENOTSUP, "disk %s: engine=io_uring is not available (ferry was built without liburing; use engine=aio or engine=sync)",
				f->path);
#endif
	case BLK_ENGINE_AIO:
#ifdef HAVE_LIBAIO
		return blk_aio_setup(f, e);
#else
		return ferr_set(e, -ENOTSUP, "disk %s: engine=aio is not available (ferry was built without libaio; use engine=io_uring or engine=sync)",
				f->path);
#endif
	case BLK_ENGINE_SYNC:
		return 0;
	}
	return ferr_set(e, -EINVAL, "disk %s: unknown engine %d", f->path, (int)f->engine);
}

struct blk_backend *blk_file_open(const struct disk_config *cfg, struct loop *loop,
				  unsigned int queue_depth, struct ferr *e)
{
	struct blk_file *f;
	int ret;

	if (!cfg->path) {
		ferr_set(e, -EINVAL, "disk: no path");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		ferr_set(e, -ENOMEM, "disk %s: out of memory", cfg->path);
		return NULL;
	}
	f->fd = f->efd = -1;
	pthread_mutex_init(&f->lock, NULL);
	f->done_tail = &f->done;
	f->engine = cfg->engine;
	f->b.ops = &file_ops;
	f->b.engine = engine_name(cfg->engine);
	f->b.readonly = cfg->readonly;
	f->b.queue_depth = queue_depth ? queue_depth : 1;
	f->path = strdup(cfg->path);
	if (!f->path) {
		ret = ferr_set(e, -ENOMEM, "disk %s: out of memory", cfg->path);
		goto out;
	}
	ret = file_open_fd(f, cfg, e);
	if (!ret)
		ret = file_lock(f, cfg, e);
	if (!ret)
		ret = file_size(f, cfg, e);
	if (ret)
		goto out;
	f->b.can_discard = f->b.can_write_zeroes = !cfg->readonly;
	f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->efd < 0) {
		ret = ferr_errno(e, -errno, "disk %s: cannot create an eventfd", cfg->path);
		goto out;
	}
	ret = engine_setup(f, e);
	if (ret)
		goto out;
	ret = loop_add(loop, f->efd, EPOLLIN, file_efd_ready, f);
	if (ret) {
		ferr_errno(e, ret, "disk %s: cannot watch completions", cfg->path);
		goto out;
	}
	f->loop = loop;
	log_debug("disk %s: %llu bytes, %u-byte blocks, engine=%s%s%s", cfg->path,
		  (unsigned long long)f->b.size, f->b.block_size, f->b.engine,
		  cfg->cache == BLK_CACHE_NONE ? ", cache=none" : "",
		  cfg->readonly ? ", read-only" : "");
	return &f->b;
out:
	file_free(f);
	return NULL;
}
