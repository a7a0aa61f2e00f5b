/* Start-up of the iSCSI backend: options, CHAP secret, a synchronous
 * log-in (so that a bad URL, a refused log-in or a missing LUN is an error
 * before the VM starts), READ CAPACITY(16) and the VPD pages that say which
 * of UNMAP and WRITE SAME the LUN takes and how long a command may be.
 * The I/O is virtio/blk_iscsi.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "config.h"
#ifdef HAVE_LIBISCSI
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "blk_iscsi.h"

void *isc_unmarshall(struct scsi_task *t, int min)
{
	if (t->datain.size < min) {
		unsigned char *p = calloc(1, min);

		if (!p)
			return NULL;
		if (t->datain.data && t->datain.size > 0)
			memcpy(p, t->datain.data, t->datain.size);
		free(t->datain.data);   /* the task's: scsi_free_scsi_task frees it */
		t->datain.data = p;
		t->datain.size = min;
	}
	return scsi_datain_unmarshall(t);
}

/* FERRY_TEST_ISCSI_LIMITS=N (test builds): the LUN's limits on READ/WRITE,
 * UNMAP and WRITE SAME become N blocks, as a target that sets them would
 * (tgt sets none), so that tests can split requests against tgtd. */
static void probe_test_limits(struct blk_iscsi *s)
{
#ifdef FERRY_TEST_HOOKS
	const char *env = getenv("FERRY_TEST_ISCSI_LIMITS");
	unsigned long n;
	char *end;

	if (!env || !*env)
		return;
	errno = 0;
	n = strtoul(env, &end, 10);
	if (errno || *end || !n || n > UINT32_MAX) {
		log_warn("test hook: FERRY_TEST_ISCSI_LIMITS=%s is not a block count, ignored", env);
		return;
	}
	s->max_xfer = s->max_unmap = s->max_ws = (uint32_t)n;
	log_info("test hook: iSCSI limits set to %lu blocks per command", n);
#else
	(void)s;
#endif
}

/* The LUN's limits from the Block Limits and Logical Block Provisioning
 * VPD pages: UNMAP and WRITE SAME are used only where the LUN says so. */
static void probe_vpd(struct blk_iscsi *s, bool lbpme)
{
	struct scsi_task *t;
	bool have_bl = false, lbpu = false, lbpws = false;
	uint32_t max_unmap_raw = 0;
	uint64_t max_ws = 0;

	t = iscsi_inquiry_sync(s->ctx, s->url.lun, 1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255);
	if (t && t->status == SCSI_STATUS_GOOD) {
		struct scsi_inquiry_block_limits *bl = isc_unmarshall(t, ISC_VPD_MIN);

		if (bl) {
			have_bl = true;
			s->max_xfer = bl->max_xfer_len;
			s->xfer_gran = bl->opt_gran;
			max_unmap_raw = bl->max_unmap;
			s->max_unmap = bl->max_unmap == 0xffffffff ? 0 : bl->max_unmap;
			max_ws = bl->max_ws_len;
		}
	}
	if (t)
		scsi_free_scsi_task(t);
	if (lbpme) {
		t = iscsi_inquiry_sync(s->ctx, s->url.lun, 1,
				       SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING, 255);
		if (t && t->status == SCSI_STATUS_GOOD) {
			struct scsi_inquiry_logical_block_provisioning *lbp =
				isc_unmarshall(t, ISC_VPD_MIN);

			if (lbp) {
				lbpu = lbp->lbpu;
				lbpws = lbp->lbpws;
			}
		}
		if (t)
			scsi_free_scsi_task(t);
	}
	s->max_ws = max_ws > UINT32_MAX ? UINT32_MAX : (uint32_t)max_ws;
	s->ws_unmap = lbpws;
	/* A maximum UNMAP LBA count of 0 means no UNMAP; all ones, no limit. */
	s->b.can_discard = lbpu && have_bl && max_unmap_raw != 0;
	s->b.can_write_zeroes = lbpws || (have_bl && max_ws);
	log_debug("disk %s: LBPME %d LBPU %d LBPWS %d, limits in blocks: transfer %u (granularity %u), UNMAP %u, WRITE SAME %llu",
		  s->url.target, lbpme, lbpu, lbpws, s->max_xfer, s->xfer_gran, max_unmap_raw,
		  (unsigned long long)max_ws);
	probe_test_limits(s);
}

static int probe_lun(struct blk_iscsi *s, const char *name, struct ferr *e)
{
	struct scsi_inquiry_standard *inq;
	struct scsi_readcapacity16 *rc;
	struct scsi_task *t;
	bool lbpme;
	int ret = 0;

	t = iscsi_inquiry_sync(s->ctx, s->url.lun, 0, 0, 255);
	if (!t || t->status != SCSI_STATUS_GOOD || !(inq = isc_unmarshall(t, ISC_INQUIRY_MIN))) {
		ret = ferr_set(e, -EIO, "disk %s: INQUIRY failed: %s", name, isc_error(s->ctx));
		goto out;
	}
	if (inq->qualifier != SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED) {
		ret = ferr_set(e, -ENODEV, "disk %s: the target has no LUN %u (check the URL's last part)",
			       name, s->url.lun);
		goto out;
	}
	if (inq->device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS) {
		ret = ferr_set(e, -ENODEV,
			       "disk %s: LUN %u is not a disk (device type %d; on tgt, LUN 0 is the controller and disks start at 1)",
			       name, s->url.lun, (int)inq->device_type);
		goto out;
	}
	scsi_free_scsi_task(t);
	t = iscsi_readcapacity16_sync(s->ctx, s->url.lun);
	if (!t || t->status != SCSI_STATUS_GOOD || !(rc = isc_unmarshall(t, ISC_READCAP16_MIN))) {
		ret = ferr_set(e, -EIO, "disk %s: READ CAPACITY(16) failed: %s", name,
			       isc_error(s->ctx));
		goto out;
	}
	if (rc->block_length != 512 && rc->block_length != 4096) {
		ret = ferr_set(e, -ENOTSUP, "disk %s: %u-byte blocks (only 512 and 4096 are supported)",
			       name, rc->block_length);
		goto out;
	}
	if (rc->returned_lba >= UINT64_MAX / rc->block_length) {
		ret = ferr_set(e, -EINVAL, "disk %s: capacity out of range", name);
		goto out;
	}
	s->b.block_size = rc->block_length;
	s->b.size = (rc->returned_lba + 1) * rc->block_length;
	lbpme = rc->lbpme;
	scsi_free_scsi_task(t);
	t = NULL;
	probe_vpd(s, lbpme);
out:
	if (t)
		scsi_free_scsi_task(t);
	return ret;
}

static int add_sources(struct blk_iscsi *s, const char *name, struct ferr *e)
{
	struct itimerspec its = {
		.it_interval = { 0, ISC_TICK_MS * 1000000L },
		.it_value = { 0, ISC_TICK_MS * 1000000L },
	};
	int ret;

	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->efd < 0 || s->tfd < 0)
		return ferr_errno(e, -errno, "disk %s: cannot create an eventfd or timerfd", name);
	if (timerfd_settime(s->tfd, 0, &its, NULL) < 0)
		return ferr_errno(e, -errno, "disk %s: cannot arm its timer", name);
	ret = loop_add(s->loop, s->efd, EPOLLIN, isc_efd_ready, s);
	if (ret)
		return ferr_errno(e, ret, "disk %s: cannot watch its eventfd", name);
	s->efd_on = true;
	ret = loop_add(s->loop, s->tfd, EPOLLIN, isc_tick, s);
	if (ret)
		return ferr_errno(e, ret, "disk %s: cannot watch its timer", name);
	s->tfd_on = true;
	isc_update_fd(s);
	if (s->fd < 0)
		return ferr_set(e, -EIO, "disk %s: cannot watch the iSCSI socket", name);
	return 0;
}

struct blk_backend *blk_iscsi_open(const struct disk_config *cfg, const struct dev_env *env,
				   unsigned int queue_depth, struct ferr *e)
{
	const char *name = cfg->path;
	struct blk_iscsi *s = calloc(1, sizeof(*s));
	char host[256] = "";

	if (!s) {
		ferr_set(e, -ENOMEM, "disk %s: out of memory", name);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->fd = s->efd = s->tfd = -1;
	s->loop = env->loop;
	s->pending_tail = &s->pending;
	s->done_tail = &s->done;
	if (blk_iscsi_parse_url(cfg->path, &s->url, e) < 0)
		goto fail;
	if (*s->url.user && !*cfg->iscsi_password_file) {
		ferr_set(e, -EINVAL, "disk %s: CHAP user '%s' needs password-file=PATH with the secret",
			 name, s->url.user);
		goto fail;
	}
	if (!*s->url.user && *cfg->iscsi_password_file) {
		ferr_set(e, -EINVAL, "disk %s: password-file= needs the CHAP user in the URL (iscsi://USER@HOST/...)",
			 name);
		goto fail;
	}
	if (*cfg->iscsi_password_file &&
	    blk_iscsi_read_secret(cfg->iscsi_password_file, &s->secret, e) < 0)
		goto fail;
	if (*cfg->iscsi_initiator) {
		snprintf(s->initiator, sizeof(s->initiator), "%s", cfg->iscsi_initiator);
	} else {
		gethostname(host, sizeof(host) - 1);
		blk_iscsi_default_initiator(s->initiator, sizeof(s->initiator), host, (long)getpid());
	}
	s->timeout_ns = (uint64_t)cfg->iscsi_timeout_s * 1000000000ull;
	s->nr_cmds = queue_depth ? queue_depth : 1;
	s->max_qd = cfg->iscsi_queue_depth ? cfg->iscsi_queue_depth : ISC_DEFAULT_QD;
	s->cmds = calloc(s->nr_cmds, sizeof(*s->cmds));
	if (!s->cmds) {
		ferr_set(e, -ENOMEM, "disk %s: out of memory", name);
		goto fail;
	}
	for (unsigned int i = s->nr_cmds; i-- > 0;) {
		s->cmds[i].s = s;
		s->cmds[i].next = s->free_cmds;
		s->free_cmds = &s->cmds[i];
	}
	s->ctx = isc_ctx_new(s, e);
	if (!s->ctx)
		goto fail;
	/* Start-up is synchronous and bounded: an unreachable target is an
	 * error now, not a VM that hangs on its first read. */
	iscsi_set_timeout(s->ctx, cfg->iscsi_timeout_s ? (int)cfg->iscsi_timeout_s : 30);
	iscsi_set_tcp_syncnt(s->ctx, 3);
	if (iscsi_full_connect_sync(s->ctx, s->url.portal, (int)s->url.lun) != 0) {
		const char *why = isc_error(s->ctx);

		if (strstr(why, "LOGICAL_UNIT_NOT_SUPPORTED"))
			ferr_set(e, -ENODEV, "disk %s: cannot log in: the target has no LUN %u (check the URL's last part)",
				 name, s->url.lun);
		else
			ferr_set(e, -EIO, "disk %s: cannot log in to %s at %s as %s: %s (check the portal, the target name, the CHAP user and password-file, and the target's ACL)",
				 name, s->url.target, s->url.portal, s->initiator,
				 strstr(why, "reconnect") ? "connection refused or closed by the portal" : why);
		goto fail;
	}
	s->up = true;
	if (probe_lun(s, name, e) < 0)
		goto fail;
	if (isc_pr_open(s, cfg, env, e) < 0)
		goto fail;
	/* From here on timeout= is ours (session_tick): libiscsi's per-PDU
	 * timeout would also end sessions that are merely slow. */
	iscsi_set_timeout(s->ctx, 0);
	s->b.ops = &isc_ops;
	s->b.engine = "iscsi";
	s->b.dio_align = 1;
	s->b.readonly = cfg->readonly;
	s->b.queue_depth = s->nr_cmds;
	if (add_sources(s, name, e) < 0)
		goto fail;
	log_info("disk %s: iSCSI LUN of %llu bytes in %u-byte blocks, as %s%s%s", name,
		 (unsigned long long)s->b.size, s->b.block_size, s->initiator,
		 s->b.can_discard ? ", UNMAP" : "", s->b.can_write_zeroes ? ", WRITE SAME" : "");
	if (s->max_xfer)
		log_info("disk %s: at most %u blocks per READ/WRITE: longer requests are split",
			 name, s->max_xfer);
	return &s->b;
fail:
	isc_free(s);
	return NULL;
}

#endif
