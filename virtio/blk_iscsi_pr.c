/* SCSI-3 persistent reservations on an iSCSI LUN: the fence that keeps two
 * hosts from writing one disk.  Each ferry registers its own random key on
 * its I_T nexus; the ferry that runs the VM holds a WRITE EXCLUSIVE
 * reservation; at a migration's switchover the destination PREEMPTs the
 * source's key, so the source's late writes fail with RESERVATION CONFLICT.
 *
 * Why WRITE EXCLUSIVE and not WRITE EXCLUSIVE - REGISTRANTS ONLY: during a
 * migration both ends are registered, and under REGISTRANTS ONLY every
 * registrant may write; under WRITE EXCLUSIVE only the holder writes, while
 * reads stay open to everyone (the destination reads nothing before it runs,
 * but a probe or a read-only disk elsewhere may).
 *
 * Every call here runs with s->lock held, on the session that is logged in,
 * with the synchronous libiscsi calls (a few round trips, at start-up, at a
 * reconnect, at switchover and at exit). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config.h"
#ifdef HAVE_LIBISCSI
#include "ferry/log.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "blk_iscsi.h"

#define PR_TYPE SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE

/* One PERSISTENT RESERVE OUT: 0 or a negative errno (-EBADE: reservation
 * conflict), with libiscsi's or the target's reason in @why. */
static int pr_out(struct blk_iscsi *s, int sa, uint64_t key, uint64_t sa_key, const char **why)
{
	struct scsi_persistent_reserve_out_basic p = {
		.reservation_key = key,
		.service_action_reservation_key = sa_key,
	};
	struct scsi_task *t;
	int ret;

	t = iscsi_persistent_reserve_out_sync(s->ctx, (int)s->url.lun, sa,
					      SCSI_PERSISTENT_RESERVE_SCOPE_LU, PR_TYPE, &p);
	if (!t) {
		*why = isc_error(s->ctx);
		return -EIO;
	}
	ret = blk_iscsi_status_errno(t->status, t->sense.key, t->sense.ascq);
	if (t->status == SCSI_STATUS_RESERVATION_CONFLICT)
		*why = "RESERVATION CONFLICT";
	else if (ret)
		*why = t->status == SCSI_STATUS_CHECK_CONDITION ? scsi_sense_ascq_str(t->sense.ascq) :
								 isc_error(s->ctx);
	scsi_free_scsi_task(t);
	return ret == -EAGAIN ? -EIO : ret;
}

/* PERSISTENT RESERVE IN, READ RESERVATION: the holder's key (0: none) and
 * its type. */
static int pr_read_reservation(struct blk_iscsi *s, uint64_t *key, int *type, const char **why)
{
	struct scsi_persistent_reserve_in_read_reservation *rr;
	struct scsi_task *t;
	int ret = 0;

	t = iscsi_persistent_reserve_in_sync(s->ctx, (int)s->url.lun,
					     SCSI_PERSISTENT_RESERVE_READ_RESERVATION, 255);
	if (!t) {
		*why = isc_error(s->ctx);
		return -EIO;
	}
	if (t->status != SCSI_STATUS_GOOD || !(rr = isc_unmarshall(t, ISC_PR_RESV_MIN))) {
		*why = t->status == SCSI_STATUS_CHECK_CONDITION ? scsi_sense_ascq_str(t->sense.ascq) :
								 isc_error(s->ctx);
		ret = t->status == SCSI_STATUS_GOOD ? -EPROTO :
		      blk_iscsi_status_errno(t->status, t->sense.key, t->sense.ascq);
		if (!ret || ret == -EAGAIN)
			ret = -EIO;
		goto out;
	}
	*key = rr->reserved ? rr->reservation_key : 0;
	*type = rr->reserved ? rr->pr_type : 0;
out:
	scsi_free_scsi_task(t);
	return ret;
}

static int pr_register(struct blk_iscsi *s, const char **why)
{
	/* AND IGNORE EXISTING KEY: also right after a reconnect, when this
	 * nexus may still be registered from before. */
	return pr_out(s, SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY, 0, s->pr_key, why);
}

/* Hold the reservation: RESERVE when nobody does; PREEMPT @victim's key
 * when it holds it (the source at switchover, a crashed ferry with
 * reservation=takeover, or our own key from a session before a
 * reconnect).  -EBUSY with the holder in @holder when another key holds
 * it and may not be preempted. */
static int pr_acquire(struct blk_iscsi *s, uint64_t victim, bool any, uint64_t *holder,
		      const char **why)
{
	int type, ret;

	ret = pr_read_reservation(s, holder, &type, why);
	if (ret < 0)
		return ret;
	if (!*holder)
		return pr_out(s, SCSI_PERSISTENT_RESERVE_RESERVE, s->pr_key, 0, why);
	if (*holder != victim && !any) {
		*why = "held by another key";
		return -EBUSY;
	}
	/* Also when we hold it by our key: the holder may be an older
	 * nexus of ours, and PREEMPT moves it to this one. */
	return pr_out(s, SCSI_PERSISTENT_RESERVE_PREEMPT, s->pr_key, *holder, why);
}

static void pr_name(const struct blk_iscsi *s, char *buf, size_t size)
{
	snprintf(buf, size, "iscsi://%s/%s/%u", s->url.portal, s->url.target, s->url.lun);
}

int isc_pr_open(struct blk_iscsi *s, const struct disk_config *cfg, const struct dev_env *env,
		struct ferr *e)
{
	const char *name = cfg->path, *why = "";
	uint64_t holder = 0;
	int ret;

	s->vm = env->vm;
	/* A read-only disk never writes: it has nothing to fence. */
	if (cfg->reservation && cfg->readonly && cfg->reservation_set)
		log_info("disk %s: readonly=on: no reservation taken", name);
	if (!cfg->reservation || cfg->readonly)
		return 0;
	do {
		if (getrandom(&s->pr_key, sizeof(s->pr_key), 0) != sizeof(s->pr_key))
			return ferr_errno(e, -errno, "disk %s: cannot draw a reservation key", name);
	} while (!s->pr_key);
	ret = pr_register(s, &why);
	if (ret == -EOPNOTSUPP || ret == -EINVAL) {
		s->pr_key = 0;
		return ferr_set(e, -ENOTSUP, "disk %s: the target does not take persistent reservations (%s); use reservation=off",
				name, why);
	}
	if (ret < 0) {
		s->pr_key = 0;
		return ferr_errno(e, ret, "disk %s: cannot register a reservation key: %s", name, why);
	}
	if (env->incoming) {
		/* Reserved at the switchover (or, restoring a snapshot, when
		 * the VM starts): blk_iscsi_pr_takeover(). */
		log_info("disk %s: registered reservation key 0x%016" PRIx64, name, s->pr_key);
		return 0;
	}
	ret = pr_acquire(s, 0, cfg->reservation_takeover, &holder, &why);
	if (ret == -EBUSY)
		return ferr_set(e, -EBUSY,
				"disk %s: LUN %u is reserved by key 0x%016" PRIx64 ": another host runs this disk (or a ferry that held it crashed; if so, reservation=takeover takes it over)",
				name, s->url.lun, holder);
	if (ret < 0)
		return ferr_errno(e, ret, "disk %s: cannot reserve LUN %u: %s", name, s->url.lun, why);
	s->pr_holder = true;
	if (holder && holder != s->pr_key)
		log_warn("disk %s: took the reservation over from key 0x%016" PRIx64 " (reservation=takeover)",
			 name, holder);
	log_info("disk %s: holds a WRITE EXCLUSIVE reservation with key 0x%016" PRIx64, name, s->pr_key);
	return 0;
}

/* A new session after a reconnect is a new I_T nexus: register it again,
 * and if we held the reservation, hold it on this nexus (a restarted
 * target forgot it; a target that kept it keeps it for the old nexus).  If
 * another key holds it now, we were fenced while away. */
void isc_pr_restore(struct blk_iscsi *s)
{
	const char *why = "";
	uint64_t holder = 0;
	char name[600];
	int ret;

	s->pr_redo = false;
	if (!s->pr_key || s->pr_lost)
		return;
	pr_name(s, name, sizeof(name));
	ret = pr_register(s, &why);
	if (!ret && s->pr_holder)
		ret = pr_acquire(s, s->pr_key, false, &holder, &why);
	if (ret == -EBUSY) {
		isc_pr_conflict(s);
		return;
	}
	if (ret < 0) {
		/* Writes will tell: a conflict fences, anything else retries
		 * at the next reconnect. */
		log_warn("disk %s: cannot renew the reservation after reconnecting: %s", name, why);
		return;
	}
	log_info("disk %s: reservation key 0x%016" PRIx64 " renewed on the new session%s", name,
		 s->pr_key, s->pr_holder ? " (holder)" : "");
}

/* The fence: another host owns the LUN.  Writes fail with EIO from now on,
 * and the VM stops: its disk has moved on without it (a migration finished
 * that this side did not hear of, or a takeover), so a paused copy could
 * only ever be resumed into I/O errors, and a running one would act on
 * stale state.  Once, with s->lock held. */
void isc_pr_conflict(struct blk_iscsi *s)
{
	char name[600];

	if (s->pr_lost)
		return;
	s->pr_lost = true;
	pr_name(s, name, sizeof(name));
	log_error("disk %s: lost the reservation on LUN %u: another host owns the disk now; stopping the VM",
		  name, s->url.lun);
	if (s->vm)
		vm_request_stop(s->vm, VM_STOP_ERROR);
}

void isc_pr_close(struct blk_iscsi *s)
{
	const char *why = "";
	char name[600];
	int ret;

	if (!s->pr_key || s->pr_lost || !s->ctx || !s->up)
		return;
	pr_name(s, name, sizeof(name));
	/* Unregistering drops the holder's reservation too; RELEASE first
	 * says so explicitly (a non-holder's RELEASE does nothing). */
	if (s->pr_holder)
		pr_out(s, SCSI_PERSISTENT_RESERVE_RELEASE, s->pr_key, 0, &why);
	ret = pr_out(s, SCSI_PERSISTENT_RESERVE_REGISTER, s->pr_key, 0, &why);
	if (ret == -EBADE)
		/* Our key is gone: a destination preempted it (migrated). */
		log_info("disk %s: reservation key 0x%016" PRIx64 " was preempted: the disk moved on", name,
			 s->pr_key);
	else if (ret < 0)
		log_warn("disk %s: cannot remove the reservation key: %s", name, why);
	else
		log_info("disk %s: %sremoved reservation key 0x%016" PRIx64, name,
			 s->pr_holder ? "released the reservation and " : "", s->pr_key);
	s->pr_holder = false;
}

static struct blk_iscsi *pr_isc(struct blk_backend *b)
{
	return b && b->ops == &isc_ops ? (struct blk_iscsi *)b : NULL;
}

int blk_iscsi_pr_takeover(struct blk_backend *b, uint64_t src_key, struct ferr *e)
{
	struct blk_iscsi *s = pr_isc(b);
	const char *why = "";
	uint64_t holder = 0;
	char name[600];
	int ret;

	if (!s || !s->pr_key)
		return 0;
	pr_name(s, name, sizeof(name));
	pthread_mutex_lock(&s->lock);
	if (!s->up || s->dead) {
		ret = ferr_set(e, -ENOTCONN, "disk %s: cannot take the reservation over: the session is down",
			       name);
		goto out;
	}
	ret = pr_acquire(s, src_key, false, &holder, &why);
	if (ret == -EBUSY)
		ret = ferr_set(e, -EBUSY,
			       "disk %s: LUN %u is reserved by key 0x%016" PRIx64 ", not by the source's 0x%016" PRIx64 ": another host runs this disk",
			       name, s->url.lun, holder, src_key);
	else if (ret < 0)
		ret = ferr_errno(e, ret, "disk %s: cannot take the reservation over from key 0x%016" PRIx64 ": %s",
				 name, src_key, why);
	if (ret < 0)
		goto out;
	s->pr_holder = true;
	if (holder)
		log_info("disk %s: holds the WRITE EXCLUSIVE reservation with key 0x%016" PRIx64 " (preempted the source's 0x%016" PRIx64 ")",
			 name, s->pr_key, holder);
	else
		log_info("disk %s: holds the WRITE EXCLUSIVE reservation with key 0x%016" PRIx64, name,
			 s->pr_key);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int blk_iscsi_pr_state(struct blk_backend *b, uint64_t *key, bool *holder)
{
	struct blk_iscsi *s = pr_isc(b);

	if (!s || !s->pr_key)
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	*key = s->pr_key;
	*holder = s->pr_holder && !s->pr_lost;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* FERRY_TEST_LATE_WRITE=1 (test builds): after a migration, before the
 * log-out, write one block of 0xee at the LUN's last LBA on this session
 * and log what the target said: the fence's proof (tests/integration/
 * iscsi.sh, case migrate).  s->lock held. */
void isc_pr_test_late_write(struct blk_iscsi *s)
{
#ifdef FERRY_TEST_HOOKS
	const char *env = getenv("FERRY_TEST_LATE_WRITE");
	uint8_t buf[4096];
	struct scsi_task *t;
	uint32_t bs = s->b.block_size;

	if (!env || strcmp(env, "1") || !s->ctx || !s->up || !bs || bs > sizeof(buf))
		return;
	memset(buf, 0xee, bs);
	/* The first answer may be the UNIT ATTENTION "registrations
	 * preempted"; retried like any command. */
	for (int i = 0; i < 3; i++) {
		t = iscsi_write16_sync(s->ctx, (int)s->url.lun, s->b.size / bs - 1, buf, bs, (int)bs,
				       0, 0, 0, 0, 0);
		if (!t || t->status != SCSI_STATUS_CHECK_CONDITION ||
		    t->sense.key != SCSI_SENSE_UNIT_ATTENTION)
			break;
		scsi_free_scsi_task(t);
		t = NULL;
	}
	if (!t)
		log_info("test hook: late write after hand-over: %s", isc_error(s->ctx));
	else if (t->status == SCSI_STATUS_RESERVATION_CONFLICT)
		log_info("test hook: late write after hand-over: RESERVATION CONFLICT");
	else
		log_info("test hook: late write after hand-over: status %d (%s)", t->status,
			 t->status == SCSI_STATUS_GOOD ? "written!" : scsi_sense_key_str(t->sense.key));
	if (t)
		scsi_free_scsi_task(t);
#else
	(void)s;
#endif
}

#endif
