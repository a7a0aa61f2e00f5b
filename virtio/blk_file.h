/* Private to the file backend (virtio/blk_file.c) and its engines
 * (blk_uring.c, blk_aio.c): the backend's state, and what the engines share.
 * Every engine finishes requests onto one "done" list and signals one
 * eventfd; the loop handler runs the callbacks.  f->lock serialises
 * queueing and reaping, because blk_drain() may reap from another thread (a
 * vCPU resetting the device) while the loop sleeps or waits for the device
 * lock.  Functions below marked "locked" run with f->lock held. */
#ifndef FERRY_VIRTIO_BLK_FILE_H
#define FERRY_VIRTIO_BLK_FILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Absent only in the fuzz build (tests/fuzz/run.sh): no io_uring/AIO there. */
#if __has_include("config.h")
#include "config.h"
#endif
#include "ferry/blk.h"
#include "ferry/vm.h"

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif
#ifdef HAVE_LIBAIO
#include <libaio.h>
#endif

struct loop;

struct blk_file {
	struct blk_backend b;
	enum blk_engine engine;
	int fd;
	bool locked;                    /* holds the OFD lock (not shared=on) */
	int efd;                        /* completions */
	struct loop *loop;
	char *path;

	pthread_mutex_t lock;
	struct blk_req *done, **done_tail;      /* finished, callback pending */
	unsigned int outstanding;       /* submitted, callback not yet run */
	unsigned int in_kernel;         /* handed to the kernel, not reaped */
	bool punch_ok, zero_range_ok;   /* cleared on the first EOPNOTSUPP */
	void *zero_buf;                 /* lazily: write-zeroes fallback */

#ifdef HAVE_LIBURING
	struct io_uring ring;
	bool ring_init;
	bool ring_fallocate;            /* kernel has IORING_OP_FALLOCATE */
#endif
#ifdef HAVE_LIBAIO
	io_context_t aio;
	struct iocb *iocbs;             /* queue_depth of them */
	struct iocb **free_iocbs;       /* stack */
	unsigned int nr_free;
	struct iocb **pending;          /* queued, not yet io_submit()ed */
	unsigned int nr_pending;
#endif
};

/* blk_file.c: completion bookkeeping (locked) and the synchronous paths
 * that every engine falls back to. */
void blk_file_signal_done(struct blk_file *f);
void blk_file_finish(struct blk_file *f, struct blk_req *req, int ret);
int blk_file_rw_result(struct blk_req *req, int64_t res);
bool blk_file_unsupported(int ret);
int blk_file_sync_write_zeroes(struct blk_file *f, uint64_t off, uint64_t len, bool unmap);
int blk_file_sync_do(struct blk_file *f, struct blk_req *req);

#ifdef HAVE_LIBURING
/* blk_uring.c */
int blk_uring_setup(struct blk_file *f, struct ferr *e);
int blk_uring_queue(struct blk_file *f, struct blk_req *req);          /* locked */
void blk_uring_kick(struct blk_file *f);                               /* locked */
void blk_uring_reap(struct blk_file *f, bool wait);                    /* locked */
void blk_uring_free(struct blk_file *f);
#endif

#ifdef HAVE_LIBAIO
/* blk_aio.c */
int blk_aio_setup(struct blk_file *f, struct ferr *e);
int blk_aio_queue(struct blk_file *f, struct blk_req *req);            /* locked */
void blk_aio_flush_pending(struct blk_file *f);                        /* locked */
void blk_aio_reap(struct blk_file *f, bool wait);                      /* locked */
void blk_aio_free(struct blk_file *f);
#endif

#endif
