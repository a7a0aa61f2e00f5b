/* libFuzzer target for the small parsers that have no target of their own:
 * the iscsi:// URL and the CHAP password file (virtio/blk_iscsi_url.c), the
 * TLS PSK file (migrate/tls_cfg.c), --user and uids (src/privs.c), --seccomp
 * (src/seccomp.c), and what an iSCSI target sends back (INQUIRY, READ
 * CAPACITY(16), the VPD pages and READ RESERVATION, as virtio/blk_iscsi_open.c
 * and blk_iscsi_pr.c have libiscsi unpack them, and sense data with
 * blk_iscsi.c's status to errno mapping).
 *
 * Input: one selector byte (which parser, modulo the count), then that
 * parser's bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/mig_tls.h"
#include "ferry/privs.h"
#include "ferry/seccomp.h"
#include "../../virtio/blk_iscsi.h"

enum { P_URL, P_CHAP, P_PSK, P_USER, P_ID, P_SECCOMP, P_INQUIRY, P_READCAP16,
       P_VPD_BL, P_VPD_LBP, P_SENSE, P_PR_RESV, P_COUNT };

static void bounded(const char *s, size_t size)
{
	if (strnlen(s, size) >= size)
		__builtin_trap();               /* not NUL-terminated in its field */
}

static void refused_says_why(int ret, const struct ferr *e)
{
	if (ret < 0 && !e->msg[0])
		__builtin_trap();
}

/* The CHAP file is read by path: one private file, rewritten each run. */
static int chap_fd = -1;
static char chap_path[64];

static void chap_remove(void)
{
	unlink(chap_path);
}

static void fuzz_chap(const uint8_t *d, size_t n)
{
	struct blk_iscsi_secret s;
	struct ferr e = { 0 };
	int ret;

	if (chap_fd < 0) {
		snprintf(chap_path, sizeof(chap_path), "/tmp/ferry-fuzz-chap.XXXXXX");
		chap_fd = mkstemp(chap_path);   /* mode 0600 */
		if (chap_fd < 0)
			abort();
		atexit(chap_remove);
	}
	if (ftruncate(chap_fd, 0) < 0 || pwrite(chap_fd, d, n, 0) != (ssize_t)n)
		abort();
	ret = blk_iscsi_read_secret(chap_path, &s, &e);
	refused_says_why(ret, &e);
	if (ret == 0) {
		if (!s.secret[0])
			__builtin_trap();
		bounded(s.secret, sizeof(s.secret));
		bounded(s.target_user, sizeof(s.target_user));
		bounded(s.target_secret, sizeof(s.target_secret));
		if (!s.target_user[0] != !s.target_secret[0])
			__builtin_trap();       /* mutual CHAP: both or neither */
	}
}

static char *cstr(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

/* A task whose data-in is the input, exactly as long as the target sent
 * it (as libiscsi hands it over), unpacked as blk_iscsi_open.c does. */
static void *datain(struct scsi_task *t, const uint8_t *d, size_t n, int min)
{
	if (!t)
		abort();
	t->datain.data = malloc(n ? n : 1);    /* scsi_free_scsi_task frees it */
	if (!t->datain.data)
		abort();
	memcpy(t->datain.data, d, n);
	t->datain.size = (int)n;
	return isc_unmarshall(t, min);
}

static void fuzz_target_data(unsigned int sel, const uint8_t *d, size_t n)
{
	struct scsi_task *t = NULL;

	switch (sel) {
	case P_INQUIRY: {
		struct scsi_inquiry_standard *inq;

		t = scsi_cdb_inquiry(0, 0, 255);
		inq = datain(t, d, n, ISC_INQUIRY_MIN);
		if (inq)
			(void)(inq->qualifier + inq->device_type);
		break;
	}
	case P_READCAP16: {
		struct scsi_readcapacity16 *rc;

		t = scsi_cdb_readcapacity16();
		rc = datain(t, d, n, ISC_READCAP16_MIN);
		/* probe_lun's checks: an absurd capacity is refused. */
		if (rc && (rc->block_length == 512 || rc->block_length == 4096) &&
		    rc->returned_lba < UINT64_MAX / rc->block_length &&
		    (rc->returned_lba + 1) * rc->block_length < rc->block_length)
			__builtin_trap();
		break;
	}
	case P_VPD_BL: {
		struct scsi_inquiry_block_limits *bl;

		t = scsi_cdb_inquiry(1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255);
		bl = datain(t, d, n, ISC_VPD_MIN);
		if (bl)
			(void)((uint64_t)bl->max_xfer_len * 4096 + bl->max_unmap + bl->max_ws_len);
		break;
	}
	case P_VPD_LBP: {
		struct scsi_inquiry_logical_block_provisioning *lbp;

		t = scsi_cdb_inquiry(1, SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING, 255);
		lbp = datain(t, d, n, ISC_VPD_MIN);
		if (lbp)
			(void)(lbp->lbpu + lbp->lbpws);
		break;
	}
	case P_PR_RESV: {
		struct scsi_persistent_reserve_in_read_reservation *rr;

		t = scsi_cdb_persistent_reserve_in(SCSI_PERSISTENT_RESERVE_READ_RESERVATION, 255);
		rr = datain(t, d, n, ISC_PR_RESV_MIN);
		if (rr)
			(void)(rr->reservation_key + rr->pr_type);
		break;
	}
	case P_SENSE: {
		struct scsi_sense sense;
		uint8_t sb[64] = { 0 };
		int ret;

		/* The sense buffer is at most 252 bytes; libiscsi hands ferry
		 * the parsed key and ASC/ASCQ. */
		memcpy(sb, d, n < sizeof(sb) ? n : sizeof(sb));
		memset(&sense, 0, sizeof(sense));
		scsi_parse_sense_data(&sense, sb);
		ret = blk_iscsi_status_errno(n ? d[0] : 0, sense.key, sense.ascq);
		if (ret > 0 || ret < -4095)
			__builtin_trap();
		break;
	}
	}
	if (t)
		scsi_free_scsi_task(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char user[PRIVS_NAME_MAX], group[PRIVS_NAME_MAX];
	uint8_t key[MIG_TLS_KEY_MAX];
	char ident[MIG_TLS_IDENT_MAX + 1];
	struct blk_iscsi_url u;
	struct ferr e = { 0 };
	unsigned int sel, id;
	size_t key_len;
	char *s = NULL;
	int ret, mode;

	if (len < 1)
		return 0;
	log_set_level(LOG_ERROR);
	sel = data[0] % P_COUNT;
	data++;
	len--;
	switch (sel) {
	case P_URL:
		s = cstr(data, len);
		ret = blk_iscsi_parse_url(s, &u, &e);
		refused_says_why(ret, &e);
		if (ret == 0) {
			bounded(u.user, sizeof(u.user));
			bounded(u.host, sizeof(u.host));
			bounded(u.target, sizeof(u.target));
			bounded(u.portal, sizeof(u.portal));
			if (!u.host[0] || !u.target[0] || !u.port || u.lun > 16383)
				__builtin_trap();
		}
		break;
	case P_CHAP:
		fuzz_chap(data, len);
		break;
	case P_PSK:
		ret = mig_tls_parse_psk((const char *)data, len, ident, key, &key_len, &e);
		refused_says_why(ret, &e);
		if (ret == 0 && (key_len < MIG_TLS_KEY_MIN || key_len > MIG_TLS_KEY_MAX ||
				 !ident[0] || strnlen(ident, sizeof(ident)) > MIG_TLS_IDENT_MAX))
			__builtin_trap();
		break;
	case P_USER:
		s = cstr(data, len);
		ret = privs_parse_user(s, user, group, &e);
		refused_says_why(ret, &e);
		if (ret == 0) {
			bounded(user, sizeof(user));
			bounded(group, sizeof(group));
			if (!user[0] || strchr(user, ':'))
				__builtin_trap();
		}
		break;
	case P_ID:
		s = cstr(data, len);
		if (privs_parse_id(s, &id) == 0 && id == UINT32_MAX)
			__builtin_trap();               /* "unchanged" to setresuid */
		break;
	case P_SECCOMP:
		s = cstr(data, len);
		mode = -1;
		ret = seccomp_parse_mode(s, &mode, &e);
		refused_says_why(ret, &e);
		if (ret == 0 && mode < 0)
			__builtin_trap();
		break;
	default:
		fuzz_target_data(sel, data, len);
		break;
	}
	free(s);
	return 0;
}
