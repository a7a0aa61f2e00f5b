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
#include <stddef.h>
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

/* An iSCSI LUN through libiscsi (virtio/blk_iscsi.c): cfg->path is
 * iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN; logs in, probes the LUN and
 * registers its socket on env->loop; registers a reservation key, and
 * reserves the LUN unless env->incoming (then at the switchover), and
 * stops env->vm when fenced off.  NULL with @e filled on failure (target
 * unreachable, log-in refused, no such LUN...).  Only with HAVE_LIBISCSI. */
struct dev_env;
struct blk_backend *blk_iscsi_open(const struct disk_config *cfg, const struct dev_env *env,
				   unsigned int queue_depth, struct ferr *e);

/* Run @fn on the backend's libiscsi context and LUN, under its lock, while
 * the session is logged in (for SCSI-3 persistent reservations: PERSISTENT
 * RESERVE IN/OUT with the iscsi_*_sync calls).  -ENOTCONN while the session
 * is down, -EINVAL if @b is not an iSCSI backend; else @fn's result. */
struct iscsi_context;
typedef int (*blk_iscsi_fn)(struct iscsi_context *ctx, int lun, void *opaque);
int blk_iscsi_call(struct blk_backend *b, blk_iscsi_fn fn, void *opaque);

/* Persistent reservations (virtio/blk_iscsi_pr.c).  takeover: on the
 * destination before it acknowledges a migration, PREEMPT the source's
 * key @src_key and hold the WRITE EXCLUSIVE reservation (@src_key 0, as
 * after --restore: RESERVE, refused if another key holds it); 0 when @b
 * has no reservation.  state: our key and whether we hold the
 * reservation; -ENOENT for reservation=off or a non-iSCSI backend. */
int blk_iscsi_pr_takeover(struct blk_backend *b, uint64_t src_key, struct ferr *e);
int blk_iscsi_pr_state(struct blk_backend *b, uint64_t *key, bool *holder);

/* The parts of an iscsi:// URL (virtio/blk_iscsi_url.c, pure). */
struct blk_iscsi_url {
	char user[256];                 /* CHAP name, "" for none */
	char host[256];                 /* [v6] keeps its brackets */
	uint16_t port;                  /* 3260 unless given */
	char target[224];               /* IQN: at most 223 bytes */
	unsigned int lun;
	char portal[272];               /* "HOST:PORT" for libiscsi */
};
int blk_iscsi_parse_url(const char *url, struct blk_iscsi_url *u, struct ferr *e);

/* password-file=PATH: line 1 the CHAP secret, optional line 2
 * TARGET-USER:TARGET-SECRET for mutual CHAP.  Refused unless it is a
 * regular file that only its owner may read (mode 600 or 400). */
struct blk_iscsi_secret {
	char secret[256];
	char target_user[256];          /* "" without mutual CHAP */
	char target_secret[256];
};
int blk_iscsi_read_secret(const char *path, struct blk_iscsi_secret *out, struct ferr *e);
/* A SCSI status (and sense key, ASC/ASCQ as 0xAASS) as 0, -EAGAIN (retry:
 * unit attention, busy...) or a negative errno.  Only with HAVE_LIBISCSI. */
int blk_iscsi_status_errno(int status, int key, int ascq);
/* "iqn.2026-11.org.ferry:HOSTNAME:PID", sanitised to IQN characters. */
void blk_iscsi_default_initiator(char *buf, size_t size, const char *hostname, long pid);

/* virtio-blk limits that --disk checks (virtio/blk_config.c). */
#define VIRTIO_BLK_QUEUE_DEPTH  128     /* requests in flight per queue */
#define VIRTIO_BLK_ID_BYTES     20      /* GET_ID serial */

/* An iscsi:// path (virtio/blk_iscsi.c), not a file. */
bool disk_is_iscsi(const char *path);

/* The backend behind a virtio-blk device (for tests and stats). */
struct virtio_dev;
struct blk_backend *virtio_blk_backend(struct virtio_dev *d);
/* Before a loaded VM runs (migrate/incoming.c, before DONE): hold the
 * disk's reservation, preempting the source's key when @from_source (a
 * migration) or reserving afresh (--restore).  0 without a reservation. */
int virtio_blk_takeover(struct virtio_dev *d, bool from_source, struct ferr *e);

#endif
