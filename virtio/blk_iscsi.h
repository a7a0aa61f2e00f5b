/* Private to the iSCSI backend (virtio/blk_iscsi.c: I/O and sessions;
 * virtio/blk_iscsi_open.c: log-in and LUN probing at start-up). */
#ifndef FERRY_VIRTIO_BLK_ISCSI_H
#define FERRY_VIRTIO_BLK_ISCSI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "ferry/blk.h"

#define ISC_DEFAULT_QD  128             /* commands at the target */
#define ISC_TICK_MS     200             /* NOPs, timeout=, reconnect tries */
#define ISC_BACKOFF_MIN 100             /* ms between log-in tries ... */
#define ISC_BACKOFF_MAX 5000            /* ... doubling up to this */
#define ISC_LOGIN_MS    10000           /* a log-in try taking longer is dropped */
#define ISC_RETRIES     32              /* reissues per command (UA, BUSY, drops) */
#define ISC_DRAIN_DOWN_MS 10000         /* drain: wait this long for a lost target */

struct blk_iscsi;
struct vm;

struct isc_cmd {
	struct blk_req *req;
	struct blk_iscsi *s;
	struct scsi_task *task;         /* at the target; ours to free */
	uint64_t start_ns;              /* first submit: timeout= counts from here */
	unsigned int retries;
	bool cancelling;                /* timeout= cancelled it */
	/* A request past the LUN's limits goes as several commands, one at
	 * a time (virtio/blk_iscsi_split.c). */
	uint64_t done;                  /* blocks the target acknowledged */
	uint32_t part;                  /* blocks of the command at the target */
	struct iovec *iov;              /* that command's slice of req->iov */
	unsigned int iov_cap;
	struct unmap_list um;
	struct isc_cmd *next;           /* free or pending list */
};

struct blk_iscsi {
	struct blk_backend b;
	struct loop *loop;
	struct blk_iscsi_url url;
	struct blk_iscsi_secret secret;
	char initiator[224];
	uint64_t timeout_ns;            /* 0: wait forever */
	unsigned int max_qd;
	/* Blocks per command (0: no limit), from the Block Limits VPD page. */
	uint32_t max_xfer;              /* READ/WRITE */
	uint32_t xfer_gran;             /* READ/WRITE parts end on multiples */
	uint32_t max_unmap, max_ws;
	bool ws_unmap;                  /* WRITE SAME may deallocate */

	pthread_mutex_t lock;
	struct iscsi_context *ctx;      /* NULL between log-in tries */
	bool up;                        /* logged in: commands may go */
	bool dead;                      /* ctx's session failed: replace it */
	bool reported_down;             /* "session lost" logged, not yet back */
	uint64_t login_start_ns, next_try_ns;
	unsigned int backoff_ms;
	int fd;                         /* on the loop, -1 none */
	bool fd_stale;                  /* fd's socket closed off the loop */
	uint32_t events;
	int efd, tfd;
	bool efd_on, tfd_on;
	pthread_t loop_thread;
	bool loop_thread_known;

	struct isc_cmd *cmds, *free_cmds;
	struct isc_cmd *pending, **pending_tail;
	unsigned int nr_cmds, at_target, outstanding;
	struct blk_req *done, **done_tail;

	/* SCSI-3 persistent reservation (virtio/blk_iscsi_pr.c). */
	uint64_t pr_key;                /* ours; 0: reservation=off */
	bool pr_holder;                 /* we reserved the LUN */
	bool pr_redo;                   /* new session: register again before any I/O */
	bool pr_lost;                   /* fenced: another key owns the LUN */
	struct vm *vm;                  /* stopped when fenced */
};

extern const struct blk_backend_ops isc_ops;

/* scsi_datain_unmarshall() on what the target sent, zero-padded to at
 * least @min bytes first: libiscsi 1.19 unpacks fixed offsets (up to byte
 * 56 of a standard INQUIRY) without looking at how much came, so a short
 * answer from a hostile target would be read past its end.  The ISC_*_MIN
 * sizes cover every byte libiscsi reads for that page. */
#define ISC_INQUIRY_MIN    96
#define ISC_READCAP16_MIN  32
#define ISC_VPD_MIN        64
#define ISC_PR_RESV_MIN    24           /* PERSISTENT RESERVE IN, READ RESERVATION */
void *isc_unmarshall(struct scsi_task *t, int min);

/* Splitting (virtio/blk_iscsi_split.c).  split_next: blocks of the next
 * command of a request at @lba with @left blocks to go, at most @max (0: no
 * limit), ending on a multiple of @gran blocks where the limit allows.
 * iov_slice: bytes [@skip, @skip + @len) of @iov as at most @cnt buffers in
 * @out; their count, 0 when @iov is shorter.  part_max: the blocks one
 * command of @op may carry (0: no limit).  cmd_issue: send @c's next part
 * (s->lock held); isc_cb is its callback (virtio/blk_iscsi.c). */
uint64_t isc_split_next(uint64_t lba, uint64_t left, uint64_t max, uint64_t gran);
unsigned int isc_iov_slice(const struct iovec *iov, unsigned int cnt, uint64_t skip, uint64_t len,
			   struct iovec *out);
uint64_t isc_part_max(const struct blk_iscsi *s, enum blk_op op);
int isc_cmd_issue(struct blk_iscsi *s, struct isc_cmd *c);
void isc_cb(struct iscsi_context *ctx, int status, void *data, void *opaque);

/* libiscsi's last error, without its trailing newline. */
const char *isc_error(struct iscsi_context *ctx);
/* A context with our initiator name, a fresh ISID, the target, CHAP and
 * no automatic reconnect.  NULL with @e filled on failure. */
struct iscsi_context *isc_ctx_new(struct blk_iscsi *s, struct ferr *e);
/* Register s->ctx's socket for what libiscsi waits for (loop thread, or
 * before the loop runs); s->lock held. */
void isc_update_fd(struct blk_iscsi *s);
/* Loop handlers: the eventfd (completions off the loop) and the timer. */
void isc_efd_ready(struct loop *l, int fd, uint32_t events, void *opaque);
void isc_tick(struct loop *l, int fd, uint32_t events, void *opaque);
/* Log out if logged in, unregister, free (nothing in flight). */
void isc_free(struct blk_iscsi *s);

/* Persistent reservations (virtio/blk_iscsi_pr.c), s->lock held or
 * before the loop runs.  open: register a fresh key and (not incoming)
 * reserve, at start-up; restore: after a re-login, before any I/O;
 * conflict: a command met RESERVATION CONFLICT (log once, stop the VM);
 * close: release and unregister at exit. */
int isc_pr_open(struct blk_iscsi *s, const struct disk_config *cfg, const struct dev_env *env,
		struct ferr *e);
void isc_pr_restore(struct blk_iscsi *s);
void isc_pr_conflict(struct blk_iscsi *s);
void isc_pr_close(struct blk_iscsi *s);
void isc_pr_test_late_write(struct blk_iscsi *s);

#endif
