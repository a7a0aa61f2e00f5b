/* Block backend over an iSCSI LUN through libiscsi (a userspace initiator):
 * log-in and LUN probing at start-up, then READ16/WRITE16/SYNCHRONIZE
 * CACHE16/UNMAP/WRITE SAME16 issued asynchronously and driven by the event
 * loop, and our own reconnection when the session drops.  A request past
 * the LUN's limits goes as several commands (virtio/blk_iscsi_split.c).
 *
 * Threads: a libiscsi context is not thread safe, so s->lock guards it and
 * every call into it.  libiscsi's callbacks run inside iscsi_service() with
 * s->lock held and only move commands to the done list; the blk_req
 * callbacks run on the loop thread with no lock held (s->efd wakes the loop
 * when a command finished in kick or drain, off the loop).  Only the loop
 * thread (or a caller before the loop runs) adds or removes loop sources.
 *
 * Reconnection is ours, not libiscsi's (iscsi_set_noautoreconnect): when the
 * session drops, libiscsi cancels its tasks; we keep those commands, log in
 * again on a fresh context with backoff and reissue them as fresh tasks.
 * So a guest buffer is only referenced by a task we own, timeout= can fail
 * a command at any moment (nothing touches its buffers afterwards), and the
 * socket's fd change is handled here.  The commands reissued were never
 * acknowledged, so no acknowledged write is lost or replayed. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "config.h"
#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/util.h"
#include "ferry/vm.h"

#ifdef HAVE_LIBISCSI
#include "blk_iscsi.h"

/* libiscsi's last error, without its trailing newline. */
const char *isc_error(struct iscsi_context *ctx)
{
	static __thread char buf[160];
	const char *msg = iscsi_get_error(ctx);

	snprintf(buf, sizeof(buf), "%s", msg ? msg : "unknown error");
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static struct blk_iscsi *to_isc(struct blk_backend *b)
{
	return (struct blk_iscsi *)b;
}

int blk_iscsi_status_errno(int status, int key, int ascq)
{
	switch (status) {
	case SCSI_STATUS_GOOD:
	case SCSI_STATUS_CONDITION_MET:
		return 0;
	case SCSI_STATUS_BUSY:
	case SCSI_STATUS_TASK_SET_FULL:
		return -EAGAIN;
	case SCSI_STATUS_RESERVATION_CONFLICT:
		return -EBADE;
	case SCSI_STATUS_CANCELLED:
		return -ECANCELED;
	case SCSI_STATUS_TIMEOUT:
		return -ETIMEDOUT;
	case SCSI_STATUS_CHECK_CONDITION:
		break;
	default:
		return -EIO;
	}
	switch (key) {
	case SCSI_SENSE_NO_SENSE:
	case SCSI_SENSE_RECOVERED_ERROR:
		return 0;
	case SCSI_SENSE_UNIT_ATTENTION:
	case SCSI_SENSE_COMMAND_ABORTED:
		return -EAGAIN;
	case SCSI_SENSE_NOT_READY:
		/* "becoming ready": retry; no medium or stopped: fail. */
		return ascq == 0x0401 ? -EAGAIN : ascq >> 8 == 0x3a ? -ENOMEDIUM : -EIO;
	case SCSI_SENSE_DATA_PROTECTION:
		return -EROFS;
	case SCSI_SENSE_ILLEGAL_REQUEST:
		if (ascq == SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE)
			return -EOPNOTSUPP;
		if (ascq == SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED)
			return -ENODEV;
		return ascq == SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE ? -ERANGE : -EINVAL;
	case SCSI_SENSE_MEDIUM_ERROR:
	case SCSI_SENSE_HARDWARE_ERROR:
	default:
		return -EIO;
	}
}

/* ---- completions ---------------------------------------------------------- */

/* With s->lock held. */
static void cmd_finish(struct blk_iscsi *s, struct isc_cmd *c, int ret)
{
	struct blk_req *req = c->req;

	req->ret = ret;
	req->next = NULL;
	*s->done_tail = req;
	s->done_tail = &req->next;
	c->req = NULL;
	c->next = s->free_cmds;
	s->free_cmds = c;
}

static void cmd_requeue_front(struct blk_iscsi *s, struct isc_cmd *c)
{
	c->next = s->pending;
	if (!s->pending)
		s->pending_tail = &c->next;
	s->pending = c;
}

static void signal_loop(struct blk_iscsi *s)
{
	uint64_t one = 1;

	if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("disk %s: cannot wake the loop: %s", s->url.target, strerror(errno));
}

static bool on_loop_thread(struct blk_iscsi *s)
{
	return s->loop_thread_known && pthread_equal(pthread_self(), s->loop_thread);
}

/* libiscsi's callback, inside iscsi_service() or a cancel, s->lock held. */
void isc_cb(struct iscsi_context *ctx, int status, void *data, void *opaque)
{
	struct isc_cmd *c = opaque;
	struct blk_iscsi *s = c->s;
	struct scsi_task *task = c->task;
	int ret;

	(void)ctx;
	(void)data;
	ret = blk_iscsi_status_errno(status, task->sense.key, task->sense.ascq);
	if (!ret && c->req->op == BLK_OP_READ && task->residual_status == SCSI_RESIDUAL_UNDERFLOW &&
	    task->residual)
		ret = -EIO;
	if (ret && ret != -EAGAIN && status != SCSI_STATUS_CANCELLED)
		log_debug("disk %s: command at %llu: status %d sense %s/0x%04x",
			  s->url.target, (unsigned long long)c->req->offset, status,
			  scsi_sense_key_str(task->sense.key), task->sense.ascq);
	scsi_free_scsi_task(task);
	c->task = NULL;
	s->at_target--;
	if (status == SCSI_STATUS_RESERVATION_CONFLICT) {
		/* Fenced (virtio/blk_iscsi_pr.c): final, never retried. */
		if (s->pr_key)
			isc_pr_conflict(s);
		cmd_finish(s, c, -EIO);
		return;
	}
	if (c->cancelling) {
		cmd_finish(s, c, -EIO);
		return;
	}
	if (status == SCSI_STATUS_CANCELLED || status == SCSI_STATUS_ERROR ||
	    status == SCSI_STATUS_TIMEOUT) {
		/* The session failed under it: keep it for the next one. */
		s->up = false;
		s->dead = true;
		ret = -EAGAIN;
	}
	if (ret == -EAGAIN && c->retries++ < ISC_RETRIES) {
		cmd_requeue_front(s, c);
		return;
	}
	if (!ret && c->done + c->part < c->req->len / s->b.block_size) {
		/* A split request: its next part goes next, in this slot. */
		c->done += c->part;
		c->retries = 0;
		cmd_requeue_front(s, c);
		return;
	}
	cmd_finish(s, c, ret == -EAGAIN ? -EIO : ret);
}

/* ---- issuing -------------------------------------------------------------- */

/* Send what waits, within the queue depth; with s->lock held. */
static void issue_pending(struct blk_iscsi *s)
{
	/* A new session is a new I_T nexus: its reservation first. */
	if (s->up && s->pr_redo)
		isc_pr_restore(s);
	while (s->up && s->pending && s->at_target < s->max_qd) {
		struct isc_cmd *c = s->pending;

		s->pending = c->next;
		if (!s->pending)
			s->pending_tail = &s->pending;
		if (isc_cmd_issue(s, c) < 0) {
			log_warn("disk %s: cannot queue a SCSI command: %s", s->url.target,
				 isc_error(s->ctx));
			cmd_finish(s, c, -EIO);
		}
	}
}

/* ---- the session ------------------------------------------------------------ */

static void isc_fd_ready(struct loop *l, int fd, uint32_t events, void *opaque);

/* Make the loop wait for what libiscsi wants; loop thread only. */
void isc_update_fd(struct blk_iscsi *s)
{
	int fd = s->ctx && !s->dead ? iscsi_get_fd(s->ctx) : -1;
	uint32_t ev = fd >= 0 ? (uint32_t)iscsi_which_events(s->ctx) : 0;

	/* No events: libiscsi waits for a timer (the tick services it), and
	 * a registered dead socket would spin the loop on EPOLLHUP. */
	if (!ev)
		fd = -1;
	if (s->fd_stale) {
		/* Its socket is closed already (maybe its number reused). */
		if (s->fd >= 0)
			loop_del(s->loop, s->fd);
		s->fd = -1;
		s->fd_stale = false;
	}
	if (fd != s->fd && s->fd >= 0) {
		loop_del(s->loop, s->fd);
		s->fd = -1;
	}
	if (fd < 0)
		return;
	if (s->fd < 0) {
		if (loop_add(s->loop, fd, ev, isc_fd_ready, s) == 0) {
			s->fd = fd;
			s->events = ev;
		}
	} else if (ev != s->events && loop_mod(s->loop, fd, ev) == 0) {
		s->events = ev;
	}
}

struct iscsi_context *isc_ctx_new(struct blk_iscsi *s, struct ferr *e)
{
	struct iscsi_context *ctx = iscsi_create_context(s->initiator);
	uint32_t rnd;

	if (!ctx) {
		ferr_set(e, -ENOMEM, "disk %s: cannot create a libiscsi context", s->url.target);
		return NULL;
	}
	/* Our own ISID per session (a target resets a session that reuses
	 * another's IQN and ISID). */
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)now_ns();
	iscsi_set_isid_random(ctx, rnd ^ (uint32_t)getpid(), (uint16_t)(rnd >> 16));
	iscsi_set_targetname(ctx, s->url.target);
	iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	iscsi_set_noautoreconnect(ctx, 1);
	if (*s->url.user) {
		iscsi_set_initiator_username_pwd(ctx, s->url.user, s->secret.secret);
		if (*s->secret.target_user)
			iscsi_set_target_username_pwd(ctx, s->secret.target_user,
						      s->secret.target_secret);
	}
	return ctx;
}

static void ctx_drop(struct blk_iscsi *s)
{
	/* Off the loop (drain on a vCPU) the loop's sources are not ours to
	 * touch: closing the socket takes it out of epoll, and the loop drops
	 * the stale source in update_fd. */
	if (s->fd >= 0 && on_loop_thread(s)) {
		loop_del(s->loop, s->fd);
		s->fd = -1;
	} else if (s->fd >= 0) {
		s->fd_stale = true;
	}
	if (s->ctx) {
		/* Cancels what it still holds: isc_cb requeues it. */
		iscsi_destroy_context(s->ctx);
		s->ctx = NULL;
	}
	/* A context that was no longer logged in drops its tasks without
	 * calling back: they are ours, keep their commands for the next. */
	for (unsigned int i = 0; i < s->nr_cmds; i++) {
		struct isc_cmd *c = &s->cmds[i];

		if (!c->task)
			continue;
		scsi_free_scsi_task(c->task);
		c->task = NULL;
		s->at_target--;
		if (c->cancelling)
			cmd_finish(s, c, -EIO);
		else
			cmd_requeue_front(s, c);
	}
	s->up = false;
	s->dead = false;
}

static void login_cb(struct iscsi_context *ctx, int status, void *data, void *opaque)
{
	struct blk_iscsi *s = opaque;

	(void)data;
	/* Also called when a logged-in session fails later. */
	if (ctx != s->ctx)
		return;
	if (status != SCSI_STATUS_GOOD || s->up) {
		s->up = false;
		s->dead = true;
		return;
	}
	log_info("disk iscsi://%s/%s/%u: session back, reissuing %u command(s)", s->url.portal,
		 s->url.target, s->url.lun, s->outstanding);
	s->up = true;
	s->pr_redo = s->pr_key != 0;
	s->reported_down = false;
	s->backoff_ms = 0;
}

/* Replace a failed session, try a new log-in, fail commands past
 * timeout=; with s->lock held, from the tick or drain. */
static void session_tick(struct blk_iscsi *s)
{
	uint64_t now = now_ns();

	if (s->ctx && !s->dead)
		iscsi_service(s->ctx, 0);       /* NOP-outs, libiscsi's timers */
	if (s->ctx && !s->up && !s->dead && now - s->login_start_ns > ISC_LOGIN_MS * 1000000ull)
		s->dead = true;
	if (s->dead) {
		if (s->ctx && !s->reported_down)
			log_warn("disk iscsi://%s/%s/%u: session lost; reconnecting, requests wait %s",
				 s->url.portal, s->url.target, s->url.lun,
				 s->timeout_ns ? "up to timeout=" : "(no timeout=)");
		else if (s->ctx)
			log_debug("disk iscsi://%s/%s/%u: log-in failed: %s", s->url.portal, s->url.target,
				  s->url.lun, isc_error(s->ctx));
		s->reported_down = true;
		ctx_drop(s);
		s->backoff_ms = s->backoff_ms ? MIN(s->backoff_ms * 2, ISC_BACKOFF_MAX) : ISC_BACKOFF_MIN;
		s->next_try_ns = now + s->backoff_ms * 1000000ull;
	}
	if (!s->ctx && now >= s->next_try_ns) {
		s->ctx = isc_ctx_new(s, NULL);
		s->login_start_ns = now;
		if (s->ctx && iscsi_full_connect_async(s->ctx, s->url.portal, s->url.lun, login_cb, s))
			s->dead = true;
	}
	if (s->timeout_ns) {
		/* Waiting ones are ours alone; the ones at the target are
		 * cancelled in libiscsi, which then drops their buffers. */
		for (struct isc_cmd **p = &s->pending; *p;) {
			struct isc_cmd *c = *p;

			if (now - c->start_ns < s->timeout_ns) {
				p = &c->next;
				continue;
			}
			*p = c->next;
			if (s->pending_tail == &c->next)
				s->pending_tail = p;
			cmd_finish(s, c, -EIO);
		}
		for (unsigned int i = 0; i < s->nr_cmds; i++) {
			struct isc_cmd *c = &s->cmds[i];

			if (c->task && !c->cancelling && now - c->start_ns >= s->timeout_ns) {
				c->cancelling = true;
				iscsi_scsi_cancel_task(s->ctx, c->task);
			}
		}
	}
	issue_pending(s);
}

/* ---- loop handlers ------------------------------------------------------------ */

static void run_done(struct blk_req *req)
{
	while (req) {
		struct blk_req *next = req->next;

		req->done(req, req->ret);
		req = next;
	}
}

/* With s->lock held; unlocks, then runs the callbacks. */
static void unlock_and_complete(struct blk_iscsi *s)
{
	struct blk_req *done = s->done;
	unsigned int n = 0;

	s->done = NULL;
	s->done_tail = &s->done;
	for (struct blk_req *r = done; r; r = r->next)
		n++;
	s->outstanding -= n;
	pthread_mutex_unlock(&s->lock);
	run_done(done);
}

static void loop_enter(struct blk_iscsi *s)
{
	pthread_mutex_lock(&s->lock);
	s->loop_thread = pthread_self();
	s->loop_thread_known = true;
}

static void isc_fd_ready(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct blk_iscsi *s = opaque;

	(void)l;
	(void)fd;
	loop_enter(s);
	if (s->ctx && !s->dead && iscsi_service(s->ctx, (int)events) < 0 && !s->dead) {
		s->up = false;
		s->dead = true;
	}
	if (s->dead)
		session_tick(s);
	issue_pending(s);
	isc_update_fd(s);
	unlock_and_complete(s);
}

void isc_efd_ready(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct blk_iscsi *s = opaque;
	uint64_t v;

	(void)l;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("disk %s: cannot read its eventfd: %s", s->url.target, strerror(errno));
	loop_enter(s);
	issue_pending(s);
	isc_update_fd(s);
	unlock_and_complete(s);
}

void isc_tick(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct blk_iscsi *s = opaque;
	uint64_t v;

	(void)l;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("disk %s: cannot read its timer: %s", s->url.target, strerror(errno));
	loop_enter(s);
	session_tick(s);
	isc_update_fd(s);
	unlock_and_complete(s);
}

/* ---- blk_backend_ops -------------------------------------------------------------- */

static int isc_submit(struct blk_backend *b, struct blk_req *req)
{
	struct blk_iscsi *s = to_isc(b);
	uint32_t bs = b->block_size;
	struct isc_cmd *c;
	int ret = 0;

	if (req->offset % bs || req->len % bs || req->offset > b->size ||
	    req->len > b->size - req->offset)
		return -EINVAL;
	if (b->readonly && req->op != BLK_OP_READ)
		return -EROFS;
	/* Past the LUN's limits a request is split (isc_cmd_issue). */
	if ((req->op == BLK_OP_DISCARD && !b->can_discard) ||
	    (req->op == BLK_OP_WRITE_ZEROES && !b->can_write_zeroes))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&s->lock);
	c = s->free_cmds;
	if (!c) {
		ret = -EAGAIN;
		goto out;
	}
	s->free_cmds = c->next;
	c->req = req;
	c->start_ns = now_ns();
	c->retries = 0;
	c->cancelling = false;
	c->done = 0;
	c->part = 0;
	c->next = NULL;
	*s->pending_tail = c;
	s->pending_tail = &c->next;
	s->outstanding++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void isc_kick(struct blk_backend *b)
{
	struct blk_iscsi *s = to_isc(b);
	bool wake;

	pthread_mutex_lock(&s->lock);
	issue_pending(s);
	/* Write the commands out now rather than after an epoll round. */
	if (s->ctx && !s->dead && (iscsi_which_events(s->ctx) & POLLOUT) &&
	    iscsi_service(s->ctx, POLLOUT) < 0) {
		s->up = false;
		s->dead = true;
	}
	if (on_loop_thread(s)) {
		isc_update_fd(s);
		wake = s->done || s->dead;
	} else {
		/* The loop re-registers (it owns the sources) and delivers. */
		wake = true;
	}
	pthread_mutex_unlock(&s->lock);
	/* Never run callbacks here: the device lock is held. */
	if (wake)
		signal_loop(s);
}

/* Fail every command: the context goes first, and with it every reference
 * to their buffers; s->lock held. */
static void fail_all(struct blk_iscsi *s)
{
	ctx_drop(s);
	while (s->pending) {
		struct isc_cmd *c = s->pending;

		s->pending = c->next;
		cmd_finish(s, c, -EIO);
	}
	s->pending_tail = &s->pending;
	s->next_try_ns = 0;
}

/* Wait until no command holds a buffer: drive the session ourselves (the
 * loop may be blocked on the lock our caller holds).  While the target
 * answers, wait for it; while the session is down, wait at most @down_ms
 * for it to come back, then fail what is left with EIO, so that a reset or
 * the VM's stop cannot hang on a target that is gone. */
static void isc_drain_within(struct blk_iscsi *s, uint64_t down_ms)
{
	uint64_t down_since = 0;
	bool any = false;

	pthread_mutex_lock(&s->lock);
	while (s->at_target || s->pending) {
		struct pollfd p = { .fd = -1 };

		any = true;
		if (s->up) {
			down_since = 0;
		} else if (!down_since) {
			down_since = now_ns();
		} else if (now_ns() - down_since >= down_ms * 1000000ull) {
			log_warn("disk iscsi://%s/%s/%u: target unreachable for %llu ms while draining: failing %u request(s)",
				 s->url.portal, s->url.target, s->url.lun, (unsigned long long)down_ms,
				 s->outstanding);
			fail_all(s);
			break;
		}
		issue_pending(s);
		if (s->ctx && !s->dead) {
			p.fd = iscsi_get_fd(s->ctx);
			p.events = (short)iscsi_which_events(s->ctx);
		}
		if (p.fd >= 0 && p.events) {
			int n = poll(&p, 1, ISC_TICK_MS);

			if (n > 0 && iscsi_service(s->ctx, p.revents) < 0) {
				s->up = false;
				s->dead = true;
			}
			if (n == 0)
				session_tick(s);
		} else {
			pthread_mutex_unlock(&s->lock);
			usleep(ISC_TICK_MS * 1000);
			pthread_mutex_lock(&s->lock);
			session_tick(s);
		}
		if (s->dead)
			session_tick(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (any)
		signal_loop(s);
}

static void isc_drain(struct blk_backend *b)
{
	struct blk_iscsi *s = to_isc(b);

	isc_drain_within(s, s->timeout_ns ? MIN(s->timeout_ns / 1000000, (uint64_t)ISC_DRAIN_DOWN_MS) :
			 ISC_DRAIN_DOWN_MS);
}

static void isc_complete(struct blk_backend *b)
{
	struct blk_iscsi *s = to_isc(b);

	pthread_mutex_lock(&s->lock);
	unlock_and_complete(s);
}

void isc_free(struct blk_iscsi *s)
{
	if (s->ctx && s->up) {
		/* A clean log-out, bounded: the target may be gone. */
		iscsi_set_timeout(s->ctx, 2);
		isc_pr_test_late_write(s);
		isc_pr_close(s);
		iscsi_logout_sync(s->ctx);
	}
	if (s->fd >= 0)
		loop_del(s->loop, s->fd);
	s->fd = -1;
	if (s->ctx)
		iscsi_destroy_context(s->ctx);
	if (s->efd_on)
		loop_del(s->loop, s->efd);
	if (s->tfd_on)
		loop_del(s->loop, s->tfd);
	if (s->efd >= 0)
		close(s->efd);
	if (s->tfd >= 0)
		close(s->tfd);
	explicit_bzero(&s->secret, sizeof(s->secret));
	for (unsigned int i = 0; s->cmds && i < s->nr_cmds; i++)
		free(s->cmds[i].iov);
	free(s->cmds);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Like the file backend's, callbacks do not run any more. */
static void isc_destroy(struct blk_backend *b)
{
	struct blk_iscsi *s = to_isc(b);

	isc_drain(b);
	isc_free(s);
}

const struct blk_backend_ops isc_ops = {
	.submit = isc_submit,
	.kick = isc_kick,
	.drain = isc_drain,
	.complete = isc_complete,
	.destroy = isc_destroy,
};

int blk_iscsi_call(struct blk_backend *b, blk_iscsi_fn fn, void *opaque)
{
	struct blk_iscsi *s;
	bool wake;
	int ret;

	if (!b || b->ops != &isc_ops)
		return -EINVAL;
	s = to_isc(b);
	pthread_mutex_lock(&s->lock);
	ret = s->up && !s->dead ? fn(s->ctx, (int)s->url.lun, opaque) : -ENOTCONN;
	/* A sync call services the context: commands may have finished. */
	wake = s->done || s->dead;
	pthread_mutex_unlock(&s->lock);
	if (wake)
		signal_loop(s);
	return ret;
}

/* ---- start-up: log in and probe the LUN, synchronously ------------------------------ */

#else /* !HAVE_LIBISCSI */

struct blk_backend *blk_iscsi_open(const struct disk_config *cfg, const struct dev_env *env,
				   unsigned int queue_depth, struct ferr *e)
{
	(void)env;
	(void)queue_depth;
	ferr_set(e, -ENOTSUP, "disk %s: this ferry was built without libiscsi (install libiscsi-dev and rebuild)",
		 cfg->path);
	return NULL;
}

int blk_iscsi_call(struct blk_backend *b, blk_iscsi_fn fn, void *opaque)
{
	(void)b;
	(void)fn;
	(void)opaque;
	return -EINVAL;
}

int blk_iscsi_pr_takeover(struct blk_backend *b, uint64_t src_key, struct ferr *e)
{
	(void)b;
	(void)src_key;
	(void)e;
	return 0;
}

int blk_iscsi_pr_state(struct blk_backend *b, uint64_t *key, bool *holder)
{
	(void)b;
	(void)key;
	(void)holder;
	return -ENOENT;
}
#endif
