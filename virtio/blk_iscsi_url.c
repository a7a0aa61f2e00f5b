/* The iSCSI backend's inputs, without libiscsi (so that they are checked
 * and unit-tested in every build): the iscsi:// URL, the CHAP secret file
 * and the default initiator name.  The backend is virtio/blk_iscsi.c. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/blk.h"
#include "ferry/util.h"

/* ---- pure parts: the URL and the secret file (unit-tested) ------------- */

static int copy_field(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

int blk_iscsi_parse_url(const char *url, struct blk_iscsi_url *u, struct ferr *e)
{
	const char *p, *slash, *at, *host, *host_end, *tgt, *tgt_end;
	uint64_t n;

	memset(u, 0, sizeof(*u));
	u->port = 3260;
	if (strncmp(url, "iscsi://", 8))
		return ferr_set(e, -EINVAL, "%s: not an iscsi:// URL", url);
	p = url + 8;
	slash = strchr(p, '/');
	if (!slash)
		return ferr_set(e, -EINVAL, "%s: expected iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN", url);
	at = memchr(p, '@', slash - p);
	if (at) {
		if (at == p || copy_field(u->user, sizeof(u->user), p, at - p))
			return ferr_set(e, -EINVAL, "%s: bad user name before '@'", url);
		if (strchr(u->user, '%') || strchr(u->user, ':'))
			return ferr_set(e, -EINVAL,
					"%s: a CHAP secret does not belong in the URL: put it in a file and give password-file=PATH",
					url);
		p = at + 1;
	}
	host = p;
	if (*host == '[') {
		host_end = memchr(host, ']', slash - host);
		if (!host_end)
			return ferr_set(e, -EINVAL, "%s: unterminated [IPv6] address", url);
		host_end++;
	} else {
		host_end = memchr(host, ':', slash - host);
		if (!host_end)
			host_end = slash;
	}
	if (host_end == host || (*host == '[' && host_end - host < 3) ||
	    copy_field(u->host, sizeof(u->host), host, host_end - host))
		return ferr_set(e, -EINVAL, "%s: missing or too long host", url);
	if (host_end < slash) {
		char port[8];

		if (*host_end != ':' ||
		    copy_field(port, sizeof(port), host_end + 1, slash - host_end - 1) ||
		    parse_uint(port, 1, 65535, &n))
			return ferr_set(e, -EINVAL, "%s: bad port (expected 1 to 65535)", url);
		u->port = (uint16_t)n;
	}
	tgt = slash + 1;
	tgt_end = strchr(tgt, '/');
	if (!tgt_end || tgt_end == tgt)
		return ferr_set(e, -EINVAL, "%s: missing target IQN or LUN (.../TARGET-IQN/LUN)", url);
	if (copy_field(u->target, sizeof(u->target), tgt, tgt_end - tgt))
		return ferr_set(e, -EINVAL, "%s: target name longer than %zu bytes", url,
				sizeof(u->target) - 1);
	for (const char *c = u->target; *c; c++)
		if (*c <= ' ' || *c > '~')
			return ferr_set(e, -EINVAL, "%s: target name has a space or control character", url);
	/* LUN 0 is a controller on many targets (tgt): still a valid number. */
	if (parse_uint(tgt_end + 1, 0, 16383, &n))
		return ferr_set(e, -EINVAL, "%s: LUN '%s' is not a number from 0 to 16383", url,
				tgt_end + 1);
	u->lun = (unsigned int)n;
	snprintf(u->portal, sizeof(u->portal), "%s:%u", u->host, u->port);
	return 0;
}

static void chomp(char *s)
{
	s[strcspn(s, "\r\n")] = '\0';
}

int blk_iscsi_read_secret(const char *path, struct blk_iscsi_secret *out, struct ferr *e)
{
	char buf[1024], *line2, *colon;
	struct stat st;
	ssize_t n;
	int fd, ret = 0;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ferr_errno(e, -errno, "password-file %s: cannot open", path);
	if (fstat(fd, &st) < 0) {
		ret = ferr_errno(e, -errno, "password-file %s: cannot stat", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = ferr_set(e, -EINVAL, "password-file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		ret = ferr_set(e, -EPERM,
			       "password-file %s: readable or writable by group or others (mode %03o): chmod 600 it",
			       path, (unsigned int)(st.st_mode & 0777));
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		ret = ferr_errno(e, -errno, "password-file %s: cannot read", path);
		goto out;
	}
	if ((size_t)n == sizeof(buf)) {
		ret = ferr_set(e, -EINVAL, "password-file %s: larger than %zu bytes", path, sizeof(buf) - 1);
		goto out;
	}
	buf[n] = '\0';
	line2 = strchr(buf, '\n');
	if (line2)
		*line2++ = '\0';
	chomp(buf);
	if (!*buf || strlen(buf) >= sizeof(out->secret)) {
		ret = ferr_set(e, -EINVAL, "password-file %s: the first line must hold the CHAP secret (1 to %zu bytes)",
			       path, sizeof(out->secret) - 1);
		goto out;
	}
	strcpy(out->secret, buf);
	if (line2) {
		chomp(line2);
		if (*line2) {
			/* Mutual CHAP: the target's own name and secret. */
			colon = strchr(line2, ':');
			if (!colon || colon == line2 || !colon[1] ||
			    copy_field(out->target_user, sizeof(out->target_user), line2, colon - line2) ||
			    copy_field(out->target_secret, sizeof(out->target_secret), colon + 1,
				       strlen(colon + 1))) {
				ret = ferr_set(e, -EINVAL,
					       "password-file %s: the second line (mutual CHAP) must be TARGET-USER:TARGET-SECRET",
					       path);
				goto out;
			}
		}
	}
out:
	explicit_bzero(buf, sizeof(buf));
	if (ret)
		explicit_bzero(out, sizeof(*out));
	close(fd);
	return ret;
}

/* An IQN from the host name and pid: unique per ferry process, so that two
 * VMs' sessions never share a name (and with it, their reservations). */
void blk_iscsi_default_initiator(char *buf, size_t size, const char *hostname, long pid)
{
	char host[64];
	size_t i;

	for (i = 0; hostname[i] && i < sizeof(host) - 1; i++) {
		unsigned char c = (unsigned char)hostname[i];

		host[i] = isalnum(c) || c == '-' || c == '.' ? (char)tolower(c) : '-';
	}
	host[i] = '\0';
	snprintf(buf, size, "iqn.2026-11.org.ferry:%s:%ld", i ? host : "localhost", pid);
}
