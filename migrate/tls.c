/* The migration channel's TLS (GnuTLS): credentials loaded once at start-up
 * (--tls-psk, or --tls-cert/--tls-key/--tls-ca), a handshake per migration
 * in which both ends authenticate, and record I/O for stream.c.  Without
 * credentials the channel is plain TCP, which only --insecure allows.
 * Built into ferry-tls.so (src/module.c), loaded only when credentials are
 * given; which --tls-* combinations are accepted, the PSK file's format and
 * secret-file checks are in tls_cfg.c, in the core.
 *
 * Policy (also in README.md and ferry.1):
 * - TLS 1.3, or 1.2 where a peer lacks it; AES-GCM first (AES-NI makes it
 *   the cheapest), ephemeral (EC)DHE with the PSK too.
 * - PSK: both ends hold the same "identity:hexkey" file (psktool -u NAME
 *   -p FILE); the destination accepts only that identity and key.
 * - X.509: each end presents its certificate and checks the peer's against
 *   --tls-ca.  The source checks the destination's certificate against the
 *   host of --to: a DNS name against its DNS names, an IP address against
 *   its IP addresses (so certificates for tcp:10.0.0.2:4444 carry that IP).
 *   The destination requires a client certificate from the same CA, and
 *   checks no name (it does not know which host the source is).
 * - No credentials: ferry run --incoming tcp: refuses to start and
 *   ferry migrate refuses to send, unless --insecure (logged).
 * - The handshake completes, within MIG_TLS_HANDSHAKE_MS, before any byte
 *   of the stream is read; a failure rejects the migration like a bad
 *   stream does. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ferry/log.h"
#include "ferry/mig_tls.h"
#include "ferry/util.h"

#ifdef HAVE_GNUTLS
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* No implicit GnuTLS initialisation when the library loads: it would set
 * up its crypto backends and PKCS#11 (p11-kit) for every ferry, about
 * 2 MiB of memory, while only a VM given TLS credentials needs them
 * (mig_tls_create initialises then, at start-up). */
GNUTLS_SKIP_GLOBAL_INIT

struct mig_tls {
	bool psk;
	char ident[MIG_TLS_IDENT_MAX + 1];
	uint8_t key[MIG_TLS_KEY_MAX];
	size_t key_len;
	gnutls_psk_client_credentials_t psk_cli;
	gnutls_psk_server_credentials_t psk_srv;
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t prio;
};

/* GnuTLS moves one record (16 KiB) per push and two reads per record:
 * batching both through these buffers takes the system calls per GiB from
 * about 200000 to 8000 (13% less CPU for both ends, measured here).
 * Measured and dropped (900 MiB, pre-faulted destination): a sendmsg per
 * record instead of the wbuf copy was about 30% slower; a recvmsg into
 * GnuTLS's buffer plus the next header into rbuf (one system call per
 * record, no rbuf copy) was no faster than this. */
#define MIG_TLS_IOBUF (256 * 1024)

struct mig_tls_sess {
	gnutls_session_t s;
	struct mig_tls *t;
	int fd;
	int err;                        /* errno of the last socket failure */
	uint8_t *rbuf, *wbuf;           /* MIG_TLS_IOBUF each */
	size_t roff, rlen;              /* received, not yet given to GnuTLS */
	size_t wlen;                    /* records not yet sent */
	bool batch;                     /* inside mig_tls_send: hold records */
	char host[256];                 /* the source checks the certificate against it */
	char peer[96];                  /* for messages */
	char peer_ident[MIG_TLS_IDENT_MAX + 1];
};

/* AES-128-GCM first: with AES-NI the cheapest per byte (4 GB/s here,
 * ChaCha20 0.5).  Ephemeral (EC)DH only, also with the PSK: a key that
 * leaks later does not open recorded streams. */
#define MIG_TLS_PRIO_BASE "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-KX-ALL"
#define MIG_TLS_PRIO_X509 MIG_TLS_PRIO_BASE ":+ECDHE-RSA:+ECDHE-ECDSA"
#define MIG_TLS_PRIO_PSK MIG_TLS_PRIO_BASE ":+ECDHE-PSK:+DHE-PSK"

static int mig_tls_gerr(struct ferr *e, int gret, const char *what, const char *path)
{
	return ferr_set(e, -EINVAL, "%s %s: %s", what, path, gnutls_strerror(gret));
}

static int mig_tls_psk_server_cb(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
	struct mig_tls_sess *ss = gnutls_session_get_ptr(s);
	struct mig_tls *t = ss->t;

	snprintf(ss->peer_ident, sizeof(ss->peer_ident), "%s", user);
	if (strcmp(user, t->ident))
		return -1;
	key->data = gnutls_malloc(t->key_len);
	if (!key->data)
		return -1;
	memcpy(key->data, t->key, t->key_len);
	key->size = t->key_len;
	return 0;
}

static int mig_tls_load_psk(struct mig_tls *t, const char *path, struct ferr *e)
{
	gnutls_datum_t key;
	struct ferr why;
	size_t len;
	void *buf;
	int ret;

	ret = mig_tls_read_secret("--tls-psk", path, &buf, &len, e);
	if (ret < 0)
		return ret;
	ret = mig_tls_parse_psk(buf, len, t->ident, t->key, &t->key_len, &why);
	memset(buf, 0, len);
	free(buf);
	if (ret < 0)
		return ferr_set(e, ret, "--tls-psk %s: %s", path, why.msg);
	key = (gnutls_datum_t){ t->key, t->key_len };
	if ((ret = gnutls_psk_allocate_client_credentials(&t->psk_cli)) < 0 ||
	    (ret = gnutls_psk_set_client_credentials(t->psk_cli, t->ident, &key,
						     GNUTLS_PSK_KEY_RAW)) < 0 ||
	    (ret = gnutls_psk_allocate_server_credentials(&t->psk_srv)) < 0)
		return mig_tls_gerr(e, ret, "--tls-psk", path);
	gnutls_psk_set_server_credentials_function(t->psk_srv, mig_tls_psk_server_cb);
	t->psk = true;
	return 0;
}

static int mig_tls_load_x509(struct mig_tls *t, const struct vm_config *cfg, struct ferr *e)
{
	size_t len;
	void *buf;
	int ret;

	/* The key's mode is checked as the PSK's; GnuTLS reads the files. */
	ret = mig_tls_read_secret("--tls-key", cfg->tls_key, &buf, &len, e);
	if (ret < 0)
		return ret;
	memset(buf, 0, len);
	free(buf);
	if (access(cfg->tls_cert, R_OK) < 0)
		return ferr_errno(e, -errno, "--tls-cert %s: cannot read", cfg->tls_cert);
	if (access(cfg->tls_ca, R_OK) < 0)
		return ferr_errno(e, -errno, "--tls-ca %s: cannot read", cfg->tls_ca);
	ret = gnutls_certificate_allocate_credentials(&t->x509);
	if (ret < 0)
		return mig_tls_gerr(e, ret, "--tls-cert", cfg->tls_cert);
	ret = gnutls_certificate_set_x509_trust_file(t->x509, cfg->tls_ca, GNUTLS_X509_FMT_PEM);
	if (ret <= 0)
		return ret ? mig_tls_gerr(e, ret, "--tls-ca", cfg->tls_ca) :
		       ferr_set(e, -EINVAL, "--tls-ca %s: no PEM certificate in it", cfg->tls_ca);
	ret = gnutls_certificate_set_x509_key_file(t->x509, cfg->tls_cert, cfg->tls_key,
						   GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		return ferr_set(e, -EINVAL, "--tls-cert %s / --tls-key %s: %s (PEM files, the key matching the certificate)",
				cfg->tls_cert, cfg->tls_key, gnutls_strerror(ret));
	return 0;
}

int mig_tls_create(const struct vm_config *cfg, struct mig_tls **out, struct ferr *e)
{
	struct mig_tls *t;
	const char *errpos = NULL;
	bool any;
	int ret;

	*out = NULL;
	ret = mig_tls_check_cfg(cfg, &any, e);
	if (ret < 0 || !any)
		return ret;
	t = calloc(1, sizeof(*t));
	if (!t)
		return ferr_set(e, -ENOMEM, "out of memory");
	/* Here, at start-up: GnuTLS opens what it needs (its configuration,
	 * the random generator) before ferry drops privileges. */
	ret = gnutls_global_init();
	if (ret < 0) {
		free(t);
		return ferr_set(e, -EIO, "cannot initialise GnuTLS: %s", gnutls_strerror(ret));
	}
	ret = cfg->tls_psk ? mig_tls_load_psk(t, cfg->tls_psk, e) : mig_tls_load_x509(t, cfg, e);
	if (ret == 0) {
		ret = gnutls_priority_init(&t->prio, t->psk ? MIG_TLS_PRIO_PSK : MIG_TLS_PRIO_X509,
					   &errpos);
		if (ret < 0)
			ret = ferr_set(e, -EINVAL, "GnuTLS rejects ferry's priority string at '%s': %s",
				       errpos ? errpos : "", gnutls_strerror(ret));
	}
	if (ret < 0) {
		mig_tls_destroy(t);
		return ret;
	}
	log_info("migration channel: TLS with %s%s%s", t->psk ? "the pre-shared key of identity '" :
		 "X.509 certificates from ", t->psk ? t->ident : cfg->tls_ca, t->psk ? "'" : "");
	*out = t;
	return 0;
}

void mig_tls_destroy(struct mig_tls *t)
{
	if (!t)
		return;
	if (t->psk_cli)
		gnutls_psk_free_client_credentials(t->psk_cli);
	if (t->psk_srv)
		gnutls_psk_free_server_credentials(t->psk_srv);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	memset(t->key, 0, sizeof(t->key));
	free(t);
	gnutls_global_deinit();
}

/* ---- transport: our own, so that errors keep their errno ---- */

static int mig_tls_sendall(struct mig_tls_sess *ss, struct msghdr *msg, size_t len)
{
	while (len) {
		ssize_t n = sendmsg(ss->fd, msg, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ss->err = errno;
			gnutls_transport_set_errno(ss->s, errno);
			return -1;
		}
		len -= n;
		/* Short write: skip what went out. */
		while (n > 0 && msg->msg_iovlen) {
			size_t k = MIN((size_t)n, msg->msg_iov->iov_len);

			msg->msg_iov->iov_base = (uint8_t *)msg->msg_iov->iov_base + k;
			msg->msg_iov->iov_len -= k;
			n -= k;
			if (!msg->msg_iov->iov_len) {
				msg->msg_iov++;
				msg->msg_iovlen--;
			}
		}
	}
	return 0;
}

static int mig_tls_wflush(struct mig_tls_sess *ss)
{
	struct iovec v = { ss->wbuf, ss->wlen };
	struct msghdr msg = { .msg_iov = &v, .msg_iovlen = 1 };
	int ret = mig_tls_sendall(ss, &msg, ss->wlen);

	ss->wlen = 0;
	return ret;
}

static ssize_t mig_tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct mig_tls_sess *ss = p;
	struct iovec v[16];
	struct msghdr msg = { .msg_iov = v };
	size_t len = 0;

	if ((size_t)iovcnt > ARRAY_SIZE(v))
		iovcnt = ARRAY_SIZE(v);         /* GnuTLS takes a short write */
	for (int i = 0; i < iovcnt; i++) {
		v[i] = (struct iovec){ iov[i].iov_base, iov[i].iov_len };
		len += iov[i].iov_len;
	}
	msg.msg_iovlen = iovcnt;
	if (ss->batch && len <= MIG_TLS_IOBUF) {
		if (ss->wlen + len > MIG_TLS_IOBUF && mig_tls_wflush(ss) < 0)
			return -1;
		for (int i = 0; i < iovcnt; i++) {
			memcpy(ss->wbuf + ss->wlen, v[i].iov_base, v[i].iov_len);
			ss->wlen += v[i].iov_len;
		}
		return len;
	}
	if (ss->wlen && mig_tls_wflush(ss) < 0)
		return -1;
	return mig_tls_sendall(ss, &msg, len) < 0 ? -1 : (ssize_t)len;
}

static ssize_t mig_tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct mig_tls_sess *ss = p;
	ssize_t n;

	if (ss->roff == ss->rlen) {
		/* Whatever waits for an answer must have gone out first. */
		if (ss->wlen && mig_tls_wflush(ss) < 0)
			return -1;
		do
			n = recv(ss->fd, ss->rbuf, MIG_TLS_IOBUF, 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			if (n < 0) {
				ss->err = errno;
				gnutls_transport_set_errno(ss->s, errno);
			}
			return n;
		}
		ss->roff = 0;
		ss->rlen = n;
	}
	n = MIN(len, ss->rlen - ss->roff);
	memcpy(buf, ss->rbuf + ss->roff, n);
	ss->roff += n;
	return n;
}

static int mig_tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct mig_tls_sess *ss = p;
	struct pollfd pfd = { .fd = ss->fd, .events = POLLIN };
	int ret;

	if (ss->roff < ss->rlen)
		return 1;
	if (ss->wlen && mig_tls_wflush(ss) < 0)
		return -1;
	do
		ret = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ss->err = errno;
		gnutls_transport_set_errno(ss->s, errno);
	}
	return ret;
}

static ssize_t mig_tls_send_err(struct mig_tls_sess *ss, ssize_t n)
{
	if (n == GNUTLS_E_INTERRUPTED)
		return -EINTR;
	if (n == GNUTLS_E_AGAIN)
		return -EAGAIN;
	if (n == GNUTLS_E_PUSH_ERROR)
		return ss->err ? -ss->err : -EPIPE;
	return -EPIPE;
}

/* All of @buf, as records held back in wbuf and sent in large writes. */
ssize_t mig_tls_send(struct mig_tls_sess *ss, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t off = 0;
	ssize_t n = 0;

	ss->batch = true;
	while (off < len) {
		n = gnutls_record_send(ss->s, p + off, len - off);
		if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
			continue;
		if (n < 0)
			break;
		off += n;
	}
	ss->batch = false;
	if (ss->wlen && mig_tls_wflush(ss) < 0 && n >= 0)
		n = GNUTLS_E_PUSH_ERROR;
	return n < 0 ? mig_tls_send_err(ss, n) : (ssize_t)off;
}

ssize_t mig_tls_recv(struct mig_tls_sess *ss, void *buf, size_t len)
{
	ssize_t n = gnutls_record_recv(ss->s, buf, len);

	if (n >= 0)
		return n;
	switch (n) {
	case GNUTLS_E_INTERRUPTED:
		return -EINTR;
	case GNUTLS_E_AGAIN:
		return -EAGAIN;
	case GNUTLS_E_PULL_ERROR:
		return ss->err ? -ss->err : -EPIPE;
	/* The stream's own END record marks a complete migration: a close
	 * without TLS's close_notify is just the end of the bytes. */
	case GNUTLS_E_PREMATURE_TERMINATION:
		return 0;
	/* TLS 1.3: the destination checks our certificate after our side
	 * of the handshake is done, and says no with an alert. */
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		log_warn("migration channel: %s ended the TLS session (%s alert)", ss->peer,
			 gnutls_alert_get_name(gnutls_alert_get(ss->s)));
		return -EACCES;
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_MAC_VERIFY_FAILED:
		log_warn("migration channel: a TLS record from %s failed its integrity check",
			 ss->peer);
		return -EBADMSG;
	}
	log_warn("migration channel: %s: %s", ss->peer, gnutls_strerror(n));
	return -EPROTO;
}

size_t mig_tls_pending(struct mig_tls_sess *ss)
{
	return gnutls_record_check_pending(ss->s) + (ss->rlen - ss->roff);
}

/* ---- sessions ---- */

static void mig_tls_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char h[64], p[16];              /* numeric: INET6_ADDRSTRLEN, a port */

	if (getpeername(fd, (struct sockaddr *)&sa, &sl) < 0 ||
	    (sa.ss_family != AF_INET && sa.ss_family != AF_INET6) ||
	    getnameinfo((struct sockaddr *)&sa, sl, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, len, "the peer");
	else
		snprintf(buf, len, "%s:%s", h, p);
}

static void mig_tls_free(struct mig_tls_sess *ss)
{
	if (!ss)
		return;
	gnutls_deinit(ss->s);
	free(ss->rbuf);
	free(ss->wbuf);
	free(ss);
}

static int mig_tls_new(struct mig_tls *t, int fd, bool server, struct mig_tls_sess **out,
		       struct ferr *e)
{
	struct mig_tls_sess *ss = calloc(1, sizeof(*ss));
	int ret;

	if (ss) {
		ss->rbuf = malloc(MIG_TLS_IOBUF);
		ss->wbuf = malloc(MIG_TLS_IOBUF);
	}
	if (!ss || !ss->rbuf || !ss->wbuf) {
		if (ss) {
			free(ss->rbuf);
			free(ss->wbuf);
		}
		free(ss);
		return ferr_set(e, -ENOMEM, "out of memory");
	}
	ss->t = t;
	ss->fd = fd;
	mig_tls_peer_name(fd, ss->peer, sizeof(ss->peer));
	/* One connection per migration: no session tickets to resume. */
	ret = gnutls_init(&ss->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_TICKETS);
	if (ret < 0) {
		free(ss->rbuf);
		free(ss->wbuf);
		free(ss);
		return ferr_set(e, -ENOMEM, "cannot start a TLS session: %s", gnutls_strerror(ret));
	}
	gnutls_session_set_ptr(ss->s, ss);
	ret = gnutls_priority_set(ss->s, t->prio);
	if (ret == 0 && t->psk)
		ret = gnutls_credentials_set(ss->s, GNUTLS_CRD_PSK,
					     server ? (void *)t->psk_srv : (void *)t->psk_cli);
	else if (ret == 0)
		ret = gnutls_credentials_set(ss->s, GNUTLS_CRD_CERTIFICATE, t->x509);
	if (ret < 0) {
		mig_tls_free(ss);
		return ferr_set(e, -EINVAL, "cannot set up a TLS session: %s", gnutls_strerror(ret));
	}
	gnutls_transport_set_ptr(ss->s, ss);
	gnutls_transport_set_vec_push_function(ss->s, mig_tls_push);
	gnutls_transport_set_pull_function(ss->s, mig_tls_pull);
	gnutls_transport_set_pull_timeout_function(ss->s, mig_tls_pull_timeout);
	gnutls_handshake_set_timeout(ss->s, MIG_TLS_HANDSHAKE_MS);
	*out = ss;
	return 0;
}

/* Run the handshake; on failure the reason, worded for this end. */
static int mig_tls_handshake(struct mig_tls_sess *ss, bool server, struct ferr *e)
{
	const char *who = server ? "the source" : "the destination";
	char hint[2 * MIG_TLS_IDENT_MAX + 100] = "";
	int ret;

	do
		ret = gnutls_handshake(ss->s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret == 0) {
		/* gnutls_session_get_desc() omits TLS 1.3's group with a PSK. */
		const char *grp = gnutls_group_get_name(gnutls_group_get(ss->s));

		log_info("migration channel: %s (%s) authenticated, %s, %s%s%s, %s", who, ss->peer,
			 gnutls_protocol_get_name(gnutls_protocol_get_version(ss->s)),
			 ss->t->psk ? "pre-shared key" : "X.509", grp ? " + ephemeral " : "",
			 grp ? grp : "", gnutls_cipher_get_name(gnutls_cipher_get(ss->s)));
		return 0;
	}
	/* Tell the peer why at once, rather than leave it to time out. */
	if (ret != GNUTLS_E_PUSH_ERROR && ret != GNUTLS_E_PULL_ERROR && ret != GNUTLS_E_TIMEDOUT &&
	    ret != GNUTLS_E_PREMATURE_TERMINATION && ret != GNUTLS_E_FATAL_ALERT_RECEIVED)
		gnutls_alert_send_appropriate(ss->s, ret);
	switch (ret) {
	case GNUTLS_E_TIMEDOUT:
		return ferr_set(e, -ETIMEDOUT, "TLS handshake with %s (%s): no answer within %d ms",
				who, ss->peer, MIG_TLS_HANDSHAKE_MS);
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return ferr_set(e, -(ss->err ? ss->err : ECONNRESET), "TLS handshake with %s (%s): %s",
				who, ss->peer, strerror(ss->err ? ss->err : ECONNRESET));
	case GNUTLS_E_PREMATURE_TERMINATION:
		return ferr_set(e, -EACCES, "TLS handshake with %s (%s) failed: it closed the connection (it rejected our credentials, or does not use TLS)",
				who, ss->peer);
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET:
		return ferr_set(e, -EPROTO, "TLS handshake with %s (%s) failed: %s (does it run with the same --tls-* credentials, not --insecure?)",
				who, ss->peer, gnutls_strerror(ret));
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR: {
		gnutls_datum_t out = { NULL, 0 };
		unsigned int st = gnutls_session_get_verify_cert_status(ss->s);

		if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &out, 0) == 0)
			snprintf(hint, sizeof(hint), ": %s", (char *)out.data);
		gnutls_free(out.data);
		return ferr_set(e, -EACCES, "TLS handshake with %s (%s): its certificate is not accepted%s",
				who, ss->peer, hint);
	}
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		return ferr_set(e, -EACCES, "TLS handshake with %s (%s): it presented no certificate signed by this end's --tls-ca",
				who, ss->peer);
	}
	if (ss->peer_ident[0] && strcmp(ss->peer_ident, ss->t->ident))
		snprintf(hint, sizeof(hint), " (it offered the PSK identity '%s', this end's file has '%s')",
			 ss->peer_ident, ss->t->ident);
	else if (ss->t->psk)
		snprintf(hint, sizeof(hint), " (do both ends have the same --tls-psk key?)");
	else
		snprintf(hint, sizeof(hint), " (are both certificates signed by the other end's --tls-ca?)");
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
		return ferr_set(e, -EACCES, "TLS handshake with %s (%s) failed: it refused us (%s)%s",
				who, ss->peer, gnutls_alert_get_name(gnutls_alert_get(ss->s)), hint);
	return ferr_set(e, -EACCES, "TLS handshake with %s (%s) failed: %s%s", who, ss->peer,
			gnutls_strerror(ret), hint);
}

static bool mig_tls_is_ip(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

int mig_tls_client(struct mig_tls *t, int fd, const char *host, struct mig_chan *ch,
		   struct ferr *e)
{
	struct mig_tls_sess *ss;
	int ret;

	*ch = (struct mig_chan){ .fd = fd };
	if (!t)
		return 0;
	ret = mig_tls_new(t, fd, false, &ss, e);
	if (ret < 0)
		return ret;
	if (!t->psk) {
		snprintf(ss->host, sizeof(ss->host), "%s", host);
		if (!mig_tls_is_ip(host))
			gnutls_server_name_set(ss->s, GNUTLS_NAME_DNS, ss->host, strlen(ss->host));
		/* GnuTLS matches an IP address against the IP SANs. */
		gnutls_session_set_verify_cert(ss->s, ss->host, 0);
	}
	ret = mig_tls_handshake(ss, false, e);
	if (ret < 0) {
		mig_tls_free(ss);
		return ret;
	}
	ch->tls = ss;
	return 0;
}

/* A plain ferry source starts with the stream's magic: tell it in its own
 * framing, so that ferry migrate says why instead of "connection reset". */
static int mig_tls_plain_source(int fd, struct ferr *e)
{
	static const char why[] = "this destination takes TLS migrations only: give the source's ferry run the same --tls-psk or --tls-cert/--tls-key/--tls-ca";
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[8];
	ssize_t n;

	if (poll(&p, 1, MIG_TLS_HANDSHAKE_MS) <= 0)
		return 0;               /* the handshake will time out */
	n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0 || memcmp(buf, MIG_MAGIC, n))
		return 0;
	mig_reply(&(struct mig_chan){ .fd = fd }, MIG_REPLY_ERROR, why, sizeof(why) - 1);
	return ferr_set(e, -EPROTO, "the source sent a plain-TCP stream; this destination requires TLS (is the source's ferry run missing its --tls-* credentials?)");
}

int mig_tls_server(struct mig_tls *t, int fd, struct mig_chan *ch, struct ferr *e)
{
	struct mig_tls_sess *ss;
	int ret;

	*ch = (struct mig_chan){ .fd = fd };
	if (!t)
		return 0;
	ret = mig_tls_plain_source(fd, e);
	if (ret < 0)
		return ret;
	ret = mig_tls_new(t, fd, true, &ss, e);
	if (ret < 0)
		return ret;
	if (!t->psk) {
		gnutls_certificate_server_set_request(ss->s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(ss->s, NULL, 0);
	}
	ret = mig_tls_handshake(ss, true, e);
	if (ret < 0) {
		mig_tls_free(ss);
		return ret;
	}
	ch->tls = ss;
	return 0;
}

void mig_tls_end(struct mig_chan *ch)
{
	mig_tls_free(ch->tls);
	ch->tls = NULL;
}

#else /* !HAVE_GNUTLS: credentials are refused at start-up, so no session
       * ever exists and stream.c never calls the record functions. */

int mig_tls_create(const struct vm_config *cfg, struct mig_tls **out, struct ferr *e)
{
	bool any;
	int ret;

	*out = NULL;
	ret = mig_tls_check_cfg(cfg, &any, e);
	if (ret == 0 && any)
		ret = ferr_set(e, -ENOTSUP, "--tls-*: this ferry was built without GnuTLS (install libgnutls28-dev and rebuild)");
	return ret;
}

void mig_tls_destroy(struct mig_tls *t) { (void)t; }
void mig_tls_end(struct mig_chan *ch) { ch->tls = NULL; }
size_t mig_tls_pending(struct mig_tls_sess *s) { (void)s; return 0; }

int mig_tls_client(struct mig_tls *t, int fd, const char *host, struct mig_chan *ch,
		   struct ferr *e)
{
	(void)t; (void)host; (void)e;
	*ch = (struct mig_chan){ .fd = fd };
	return 0;
}

int mig_tls_server(struct mig_tls *t, int fd, struct mig_chan *ch, struct ferr *e)
{
	(void)t; (void)e;
	*ch = (struct mig_chan){ .fd = fd };
	return 0;
}

ssize_t mig_tls_send(struct mig_tls_sess *s, const void *buf, size_t len)
{
	(void)s; (void)buf; (void)len;
	return -ENOTSUP;
}

ssize_t mig_tls_recv(struct mig_tls_sess *s, void *buf, size_t len)
{
	(void)s; (void)buf; (void)len;
	return -ENOTSUP;
}

#endif
