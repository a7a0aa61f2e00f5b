/* Block backends: what virtio-blk submits its requests to.  A backend (a
 * file or block device through io_uring, Linux AIO or plain syscalls; later
 * an iSCSI LUN through libiscsi) takes asynchronous requests and completes
 * them on the event loop thread.
 *
 * Threads and locks: blk_submit()/blk_kick() are called by one thread at a
 * time (the device, under its lock).  Completion callbacks run on the event
 * loop thread with no backend lock held, never from inside blk_submit().
 * blk_drain() may be called from any thread, also while the caller holds the
 * lock its callbacks take: it waits for the host I/O only, and leaves the
 * callbacks to the loop. */
#ifndef FERRY_BLK_H
#define FERRY_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ferry/err.h"

struct loop;
struct disk_config;

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,           /* make completed writes durable */
	BLK_OP_DISCARD,         /* advisory: the range may read back as anything */
	BLK_OP_WRITE_ZEROES,    /* the range reads back as zeroes */
};

#define BLK_REQ_FUA     (1u << 0)       /* WRITE: durable on completion */
#define BLK_REQ_UNMAP   (1u << 1)       /* WRITE_ZEROES: may deallocate */

struct blk_req;
/* @ret is 0 or a negative errno. */
typedef void (*blk_done_fn)(struct blk_req *req, int ret);

/* Owned by the submitter; must stay valid until its callback has run. */
struct blk_req {
	enum blk_op op;
	unsigned int flags;
	uint64_t offset;                /* bytes */
	/* READ/WRITE: the buffers (the backend may advance them in place to
	 * finish a short transfer); len is their total.  DISCARD and
	 * WRITE_ZEROES: len only.  FLUSH: neither. */
	struct iovec *iov;
	unsigned int iovcnt;
	uint64_t len;
	blk_done_fn done;
	void *opaque;

	/* The backend's, while in flight. */
	struct blk_req *next;
	int ret;
};

struct blk_backend;

struct blk_backend_ops {
	/* Queue @req.  0: its callback will run; -EAGAIN: queue_depth
	 * requests are in flight (retry after a completion); another
	 * negative errno: refused, no callback. */
	int (*submit)(struct blk_backend *b, struct blk_req *req);
	/* Start what was queued since the last kick (batching). */
	void (*kick)(struct blk_backend *b);
	/* Wait until no submitted request is in host I/O any more: nothing
	 * touches the requests' buffers after it returns.  Their callbacks
	 * still run later, on the loop. */
	void (*drain)(struct blk_backend *b);
	/* Run the callbacks of finished requests now (what the loop handler
	 * does; for callers on the loop thread and for tests). */
	void (*complete)(struct blk_backend *b);
	/* Drain, unregister from the loop and free. */
	void (*destroy)(struct blk_backend *b);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	const char *engine;             /* "io_uring", "aio", "sync", "iscsi" */
	uint64_t size;                  /* bytes, a multiple of block_size */
	uint32_t block_size;            /* logical block: 512 or 4096 */
	/* Alignment that offsets, lengths and buffers of READ/WRITE need
	 * (block_size with O_DIRECT, else 1). */
	uint32_t dio_align;
	bool readonly;
	bool can_discard;
	bool can_write_zeroes;
	unsigned int queue_depth;       /* requests in flight at most */
};

static inline int blk_submit(struct blk_backend *b, struct blk_req *req)
{
	return b->ops->submit(b, req);
}

static inline void blk_kick(struct blk_backend *b)
{
	b->ops->kick(b);
}

static inline void blk_drain(struct blk_backend *b)
{
	b->ops->drain(b);
}

static inline void blk_complete(struct blk_backend *b)
{
	b->ops->complete(b);
}

static inline void blk_destroy(struct blk_backend *b)
{
	if (b)
		b->ops->destroy(b);
}

/* A file or block device (virtio/blk_file.c): opened per @cfg (path,
 * readonly, cache, engine, shared), completions registered on @loop, at most
 * @queue_depth requests in flight.  NULL with @e filled on failure. */
struct blk_backend *blk_file_open(const struct disk_config *cfg, struct loop *loop,
				  unsigned int queue_depth, struct ferr *e);

/* The backend behind a virtio-blk device (for tests and stats). */
struct virtio_dev;
struct blk_backend *virtio_blk_backend(struct virtio_dev *d);

#endif
