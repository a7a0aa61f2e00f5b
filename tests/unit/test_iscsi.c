/* The iSCSI backend's pure parts: iscsi:// URLs, the CHAP secret file (its
 * format and mode check), the default initiator name, SCSI status/sense to
 * errno, and the iSCSI keys of --disk. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ferry/blk.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "tap.h"

#ifdef HAVE_LIBISCSI
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#endif

TEST(url_full)
{
	struct blk_iscsi_url u;
	struct ferr e;

	CHECK_EQ(blk_iscsi_parse_url("iscsi://alice@10.0.0.1:3261/iqn.2001-04.com.example:disk/3", &u, &e), 0);
	CHECK_STR(u.user, "alice");
	CHECK_STR(u.host, "10.0.0.1");
	CHECK_EQ(u.port, 3261);
	CHECK_STR(u.target, "iqn.2001-04.com.example:disk");
	CHECK_EQ(u.lun, 3);
	CHECK_STR(u.portal, "10.0.0.1:3261");
}

TEST(url_defaults_and_ipv6)
{
	struct blk_iscsi_url u;
	struct ferr e;

	CHECK_EQ(blk_iscsi_parse_url("iscsi://san.example/iqn.x:y/1", &u, &e), 0);
	CHECK_STR(u.user, "");
	CHECK_EQ(u.port, 3260);
	CHECK_STR(u.portal, "san.example:3260");
	CHECK_EQ(blk_iscsi_parse_url("iscsi://[fe80::1]:3000/iqn.x:y/0", &u, &e), 0);
	CHECK_STR(u.host, "[fe80::1]");
	CHECK_STR(u.portal, "[fe80::1]:3000");
	CHECK_EQ(u.lun, 0);
}

TEST(url_bad)
{
	static const char *bad[] = {
		"", "file:///x", "iscsi://", "iscsi://host", "iscsi://host/", "iscsi://host/iqn.x",
		"iscsi://host/iqn.x/", "iscsi://host/iqn.x/lun", "iscsi://host/iqn.x/1/2",
		"iscsi://host/iqn.x/-1", "iscsi://host/iqn.x/16384", "iscsi://host:0/iqn.x/1",
		"iscsi://host:65536/iqn.x/1", "iscsi://host:/iqn.x/1", "iscsi://host:12x/iqn.x/1",
		"iscsi://@host/iqn.x/1", "iscsi://a%secret@host/iqn.x/1", "iscsi://a:secret@host/iqn.x/1",
		"iscsi://[::1/iqn.x/1", "iscsi://[]/iqn.x/1", "iscsi://:3260/iqn.x/1",
		"iscsi://host//1", "iscsi://host/iq n/1",
	};
	struct blk_iscsi_url u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ferr e = { "" };
		int ret = blk_iscsi_parse_url(bad[i], &u, &e);

		if (ret != -EINVAL || !e.msg[0])
			printf("# accepted or no message: '%s'\n", bad[i]);
		CHECK_EQ(ret, -EINVAL);
		CHECK(e.msg[0]);
	}
}

TEST(url_secret_refused_with_hint)
{
	struct blk_iscsi_url u;
	struct ferr e = { "" };

	CHECK_EQ(blk_iscsi_parse_url("iscsi://bob%pw@h/iqn.x/1", &u, &e), -EINVAL);
	CHECK(strstr(e.msg, "password-file") != NULL);
}

TEST(url_long_target)
{
	char url[600], tgt[300];
	struct blk_iscsi_url u;
	struct ferr e;

	memset(tgt, 'a', sizeof(tgt) - 1);
	tgt[sizeof(tgt) - 1] = '\0';
	snprintf(url, sizeof(url), "iscsi://h/%s/1", tgt);
	CHECK_EQ(blk_iscsi_parse_url(url, &u, &e), -EINVAL);
}

static char tmpdir[] = "/tmp/ferry-test-iscsi.XXXXXX";

static const char *secret_file(const char *name, const char *text, mode_t mode)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		printf("# cannot write %s\n", path);
	close(fd);
	chmod(path, mode);
	return path;
}

TEST(secret_file)
{
	struct blk_iscsi_secret s;
	struct ferr e = { "" };

	CHECK_EQ(blk_iscsi_read_secret(secret_file("a", "s3cret-0123\n", 0600), &s, &e), 0);
	CHECK_STR(s.secret, "s3cret-0123");
	CHECK_STR(s.target_user, "");
	CHECK_EQ(blk_iscsi_read_secret(secret_file("b", "s3cret\r\ntgt:tsecret\n", 0400), &s, &e), 0);
	CHECK_STR(s.secret, "s3cret");
	CHECK_STR(s.target_user, "tgt");
	CHECK_STR(s.target_secret, "tsecret");
	CHECK_EQ(blk_iscsi_read_secret(secret_file("c", "no-newline", 0600), &s, &e), 0);
	CHECK_STR(s.secret, "no-newline");
}

TEST(secret_file_refused)
{
	struct blk_iscsi_secret s;
	struct ferr e = { "" };

	CHECK_EQ(blk_iscsi_read_secret(secret_file("m1", "x\n", 0644), &s, &e), -EPERM);
	CHECK(strstr(e.msg, "chmod 600") != NULL);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("m2", "x\n", 0620), &s, &e), -EPERM);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("m3", "x\n", 0604), &s, &e), -EPERM);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("e1", "\n", 0600), &s, &e), -EINVAL);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("e2", "", 0600), &s, &e), -EINVAL);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("e3", "x\nnocolon\n", 0600), &s, &e), -EINVAL);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("e4", "x\n:y\n", 0600), &s, &e), -EINVAL);
	CHECK_EQ(blk_iscsi_read_secret(secret_file("e5", "x\ny:\n", 0600), &s, &e), -EINVAL);
	CHECK_EQ(blk_iscsi_read_secret(tmpdir, &s, &e), -EINVAL);      /* a directory */
	CHECK(blk_iscsi_read_secret("/nonexistent/pw", &s, &e) == -ENOENT);
	{
		char big[2048];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CHECK_EQ(blk_iscsi_read_secret(secret_file("big", big, 0600), &s, &e), -EINVAL);
	}
	/* A failure leaves no secret behind. */
	CHECK_STR(s.secret, "");
}

TEST(default_initiator)
{
	char buf[224];

	blk_iscsi_default_initiator(buf, sizeof(buf), "Host_Name.example", 42);
	CHECK_STR(buf, "iqn.2026-11.org.ferry:host-name.example:42");
	blk_iscsi_default_initiator(buf, sizeof(buf), "", 7);
	CHECK_STR(buf, "iqn.2026-11.org.ferry:localhost:7");
}

TEST(sense_errno)
{
#ifdef HAVE_LIBISCSI
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_GOOD, 0, 0), 0);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_BUSY, 0, 0), -EAGAIN);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_TASK_SET_FULL, 0, 0), -EAGAIN);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_RESERVATION_CONFLICT, 0, 0), -EBADE);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CANCELLED, 0, 0), -ECANCELED);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_ERROR, 0, 0), -EIO);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_UNIT_ATTENTION,
					SCSI_SENSE_ASCQ_BUS_RESET), -EAGAIN);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_NOT_READY, 0x0401), -EAGAIN);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_NOT_READY,
					SCSI_SENSE_ASCQ_MEDIUM_NOT_PRESENT), -ENOMEDIUM);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_DATA_PROTECTION,
					SCSI_SENSE_ASCQ_WRITE_PROTECTED), -EROFS);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_ILLEGAL_REQUEST,
					SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE), -EOPNOTSUPP);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_ILLEGAL_REQUEST,
					SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE), -ERANGE);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_ILLEGAL_REQUEST,
					SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED), -ENODEV);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_MEDIUM_ERROR, 0x1100), -EIO);
	CHECK_EQ(blk_iscsi_status_errno(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_RECOVERED_ERROR, 0), 0);
#else
	printf("# skipped: built without libiscsi\n");
#endif
}

TEST(disk_keys)
{
	struct disk_config c;
	struct ferr e = { "" };

	CHECK_EQ(disk_config_parse("iscsi://u@h/iqn.x:y/1,password-file=/etc/ferry/pw,initiator=iqn.2026-11.org.example:a,"
				   "timeout=30,queue-depth=32,reservation=on,readonly=on,serial=s1", &c, &e), 0);
	CHECK_STR(c.path, "iscsi://u@h/iqn.x:y/1");
	CHECK_STR(c.iscsi_password_file, "/etc/ferry/pw");
	CHECK_STR(c.iscsi_initiator, "iqn.2026-11.org.example:a");
	CHECK_EQ(c.iscsi_timeout_s, 30);
	CHECK_EQ(c.iscsi_queue_depth, 32);
	CHECK(c.reservation && c.reservation_set);
	CHECK(c.readonly);
	free((char *)c.path);

	CHECK_EQ(disk_config_parse("path=iscsi://h/iqn.x/1", &c, &e), 0);
	CHECK(!c.reservation_set);
	CHECK_EQ(c.iscsi_timeout_s, 0);
	free((char *)c.path);
	CHECK_EQ(disk_config_parse("iscsi://h/iqn.x/1,reservation=off", &c, &e), 0);
	CHECK(!c.reservation && c.reservation_set);
	free((char *)c.path);
}

TEST(disk_keys_refused)
{
	static const char *bad[] = {
		"iscsi://h/iqn.x/1,engine=sync", "iscsi://h/iqn.x/1,cache=none", "iscsi://h/iqn.x/1,shared=on",
		"/tmp/disk.img,password-file=/x", "/tmp/disk.img,initiator=iqn.x", "/tmp/disk.img,timeout=3",
		"/tmp/disk.img,reservation=on", "iscsi://h/iqn.x/1,timeout=-1", "iscsi://h/iqn.x/1,timeout=x",
		"iscsi://h/iqn.x/1,queue-depth=0", "iscsi://h/iqn.x/1,queue-depth=100000",
		"iscsi://h/iqn.x/1,initiator=bob", "iscsi://h/iqn.x/1,initiator=iqn.a b",
		"iscsi://h/iqn.x/1,reservation=maybe", "iscsi://h/iqn.x/1,password-file=",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct disk_config c;
		struct ferr e = { "" };
		int ret = disk_config_parse(bad[i], &c, &e);

		if (ret == 0) {
			printf("# accepted: '%s'\n", bad[i]);
			free((char *)c.path);
		}
		CHECK(ret < 0);
		CHECK(e.msg[0]);
	}
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(url_full);
	RUN(url_defaults_and_ipv6);
	RUN(url_bad);
	RUN(url_secret_refused_with_hint);
	RUN(url_long_target);
	RUN(secret_file);
	RUN(secret_file_refused);
	RUN(default_initiator);
	RUN(sense_errno);
	RUN(disk_keys);
	RUN(disk_keys_refused);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd))
			printf("# cannot remove %s\n", tmpdir);
	}
	return tap_done();
}
