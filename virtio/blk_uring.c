/* The io_uring engine of the file backend (blk_file.c): READV/WRITEV,
 * FSYNC and FALLOCATE on a ring whose completions signal the backend's
 * eventfd.  The ring is restricted to those opcodes on fixed file 0 (the
 * disk): seccomp cannot see what a ring does (src/seccomp.c). */
#include <errno.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/util.h"

#include "blk_file.h"

#ifdef HAVE_LIBURING
/* IORING_REGISTER_RESTRICTIONS and _ENABLE_RINGS by system call: the
 * liburing 2.3 of Debian 12 declares io_uring_register_restrictions() and
 * io_uring_enable_rings() but does not export them. */
static int uring_register(struct blk_file *f, unsigned int op, const void *arg, unsigned int nr)
{
	return syscall(__NR_io_uring_register, f->ring.ring_fd, op, arg, nr) < 0 ? -errno : 0;
}

/* Every opcode blk_uring_queue() submits, and nothing else. */
static const uint8_t uring_sqe_ops[] = {
	IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE,
};

/* A ring runs openat, connect, reads and writes of any fd in the kernel,
 * past the seccomp filters.  Restricted, it takes only the engine's opcodes,
 * only on registered file 0 (the disk), and no IORING_REGISTER_* at all once
 * enabled.  The kernel allows this on a ring still disabled (Linux 5.10). */
static int uring_restrict(struct blk_file *f)
{
	struct io_uring_restriction res[ARRAY_SIZE(uring_sqe_ops) + 1];
	size_t i;

#ifdef FERRY_TEST_HOOKS
	/* Pretend to be a kernel before 5.10 (tests/unit/test_blk_uring.c). */
	if (getenv("FERRY_TEST_URING_NO_RESTRICT"))
		return -EINVAL;
#endif
	memset(res, 0, sizeof(res));
	for (i = 0; i < ARRAY_SIZE(uring_sqe_ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = uring_sqe_ops[i];
	}
	res[i].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
	res[i].sqe_flags = IOSQE_FIXED_FILE;
	return uring_register(f, IORING_REGISTER_RESTRICTIONS, res, ARRAY_SIZE(res));
}

/* A kernel that cannot restrict rings gets no ring: an unrestricted one
 * would undo the sandbox.  AIO does the same I/O through system calls the
 * filters see. */
static int uring_fall_back(struct blk_file *f, struct ferr *e)
{
	if (f->ring_init)
		io_uring_queue_exit(&f->ring);
	f->ring_init = false;
#ifdef HAVE_LIBAIO
	log_warn("disk %s: engine=io_uring: this kernel cannot restrict io_uring rings (Linux 5.10 or later can); using engine=aio",
		 f->path);
	f->engine = BLK_ENGINE_AIO;
	f->b.engine = "aio";
	return blk_aio_setup(f, e);
#else
	return ferr_set(e, -ENOTSUP, "disk %s: engine=io_uring: this kernel cannot restrict io_uring rings (Linux 5.10 or later can; use engine=sync)",
			f->path);
#endif
}

int blk_uring_setup(struct blk_file *f, struct ferr *e)
{
	struct io_uring_probe *probe;
	int ret;

	/* COOP_TASKRUN: completions are posted when the loop thread next
	 * enters the kernel (it polls epoll, or the eventfd wakes it) instead
	 * of by an IPI that interrupts it.  Not SINGLE_ISSUER: blk_drain()
	 * may submit from a vCPU thread.  Kernels before 5.19 lack the flag.
	 * R_DISABLED: restrictions can only be registered before the ring
	 * runs; a kernel without it (before 5.10) cannot restrict either. */
	ret = io_uring_queue_init(f->b.queue_depth, &f->ring,
				  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_R_DISABLED);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(f->b.queue_depth, &f->ring, IORING_SETUP_R_DISABLED);
	if (ret == -EINVAL)
		return uring_fall_back(f, e);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: engine=io_uring: cannot set up a ring (try engine=aio or engine=sync)",
				  f->path);
	f->ring_init = true;
	ret = io_uring_register_eventfd(&f->ring, f->efd);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: engine=io_uring: cannot register the completion eventfd",
				  f->path);
	/* The only file the ring may touch; also spares the kernel a file
	 * lookup and reference per request. */
	ret = io_uring_register_files(&f->ring, &f->fd, 1);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: engine=io_uring: cannot register the disk with the ring (try engine=aio)",
				  f->path);
	probe = io_uring_get_probe_ring(&f->ring);
	if (!probe || !io_uring_opcode_supported(probe, IORING_OP_READV) ||
	    !io_uring_opcode_supported(probe, IORING_OP_WRITEV) ||
	    !io_uring_opcode_supported(probe, IORING_OP_FSYNC)) {
		io_uring_free_probe(probe);
		return ferr_set(e, -ENOTSUP, "disk %s: engine=io_uring: the kernel lacks READV/WRITEV/FSYNC (try engine=aio)",
				f->path);
	}
	f->ring_fallocate = io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
	io_uring_free_probe(probe);
	ret = uring_restrict(f);
	if (ret == -EINVAL || ret == -ENOSYS)
		return uring_fall_back(f, e);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: engine=io_uring: cannot restrict the ring (try engine=aio)",
				  f->path);
	ret = uring_register(f, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: engine=io_uring: cannot enable the ring (try engine=aio)",
				  f->path);
	return 0;
}

/* With f->lock held.  Fallocate modes are picked here; a mode the file
 * system refuses is retried synchronously in uring_reap_one(). */
int blk_uring_queue(struct blk_file *f, struct blk_req *req)
{
	struct io_uring_sqe *sqe;
	int mode;

	if ((req->op == BLK_OP_DISCARD || req->op == BLK_OP_WRITE_ZEROES) &&
	    (!f->ring_fallocate || !(req->op == BLK_OP_DISCARD ? f->punch_ok : f->zero_range_ok))) {
		blk_file_finish(f, req, blk_file_sync_do(f, req));
		blk_file_signal_done(f);
		return 0;
	}
	sqe = io_uring_get_sqe(&f->ring);
	if (!sqe) {
		/* Cannot happen: outstanding <= queue_depth <= ring size. */
		io_uring_submit(&f->ring);
		sqe = io_uring_get_sqe(&f->ring);
		if (!sqe)
			return -EAGAIN;
	}
	switch (req->op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, f->fd, req->iov, req->iovcnt, req->offset);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, f->fd, req->iov, req->iovcnt, req->offset);
		if (req->flags & BLK_REQ_FUA)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		mode = req->op == BLK_OP_DISCARD || ((req->flags & BLK_REQ_UNMAP) && f->punch_ok)
			? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE;
		io_uring_prep_fallocate(sqe, f->fd, mode | FALLOC_FL_KEEP_SIZE,
					req->offset, req->len);
		break;
	}
	/* Registered file 0: the restricted ring refuses anything else. */
	sqe->fd = 0;
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, req);
	f->in_kernel++;
	return 0;
}

static void uring_reap_one(struct blk_file *f, struct io_uring_cqe *cqe)
{
	struct blk_req *req = io_uring_cqe_get_data(cqe);
	int res = cqe->res;

	io_uring_cqe_seen(&f->ring, cqe);
	f->in_kernel--;
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		res = blk_file_rw_result(req, res);
		break;
	case BLK_OP_FLUSH:
		break;
	case BLK_OP_DISCARD:
		if (blk_file_unsupported(res)) {
			f->punch_ok = false;
			res = 0;
		}
		break;
	case BLK_OP_WRITE_ZEROES:
		if (blk_file_unsupported(res))
			res = blk_file_sync_write_zeroes(f, req->offset, req->len, req->flags & BLK_REQ_UNMAP);
		break;
	}
	blk_file_finish(f, req, res > 0 ? 0 : res);
}

/* With f->lock held: everything the kernel has finished, or (@wait) at
 * least one request. */
void blk_uring_reap(struct blk_file *f, bool wait)
{
	struct io_uring_cqe *cqe;

	if (wait && f->in_kernel) {
		int ret;

		/* Submits too: an earlier kick may have failed to. */
		do {
			ret = io_uring_submit_and_wait(&f->ring, 1);
		} while (ret == -EINTR);
		if (ret < 0) {
			log_error("disk %s: io_uring wait failed: %s", f->path, strerror(-ret));
			return;
		}
	}
	while (f->in_kernel && io_uring_peek_cqe(&f->ring, &cqe) == 0)
		uring_reap_one(f, cqe);
}

/* Locked.  What was not submitted stays queued: the next kick or a drain
 * submits it. */
void blk_uring_kick(struct blk_file *f)
{
	int ret;

	do {
		ret = io_uring_submit(&f->ring);
	} while (ret == -EINTR);
	if (ret < 0)
		log_warn("disk %s: io_uring submit failed: %s", f->path, strerror(-ret));
}

void blk_uring_free(struct blk_file *f)
{
	if (f->ring_init)
		io_uring_queue_exit(&f->ring);
}
#endif
