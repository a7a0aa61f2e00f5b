/* The migration channel (migrate/tls.c): the PSK file parser, the
 * credential policy at start-up, and a PSK handshake with records both ways
 * over a socketpair (a wrong key must fail on both ends). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ferry/log.h"
#include "ferry/mig_tls.h"
#include "tap.h"

#define KEY32 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

static int parse(const char *text, char *ident, uint8_t *key, size_t *key_len, struct ferr *e)
{
	return mig_tls_parse_psk(text, strlen(text), ident, key, key_len, e);
}

TEST(psk_parse_good)
{
	char ident[MIG_TLS_IDENT_MAX + 1];
	uint8_t key[MIG_TLS_KEY_MAX];
	size_t len = 0;
	struct ferr e;

	CHECK_EQ(parse("ferry:" KEY32 "\n", ident, key, &len, &e), 0);
	CHECK_STR(ident, "ferry");
	CHECK_EQ(len, 32);
	CHECK_EQ(key[0], 0x00);
	CHECK_EQ(key[1], 0x11);
	CHECK_EQ(key[31], 0xff);
	/* CRLF, blank lines around it, no final newline */
	CHECK_EQ(parse("\n\nhost-a.example:" KEY32 "\r\n\n", ident, key, &len, &e), 0);
	CHECK_STR(ident, "host-a.example");
	CHECK_EQ(parse("x:00112233445566778899aabbccddeeff", ident, key, &len, &e), 0);
	CHECK_EQ(len, 16);
}

TEST(psk_parse_bad)
{
	char ident[MIG_TLS_IDENT_MAX + 1], big[400];
	uint8_t key[MIG_TLS_KEY_MAX];
	size_t len;
	struct ferr e;

	CHECK_EQ(parse("", ident, key, &len, &e), -EINVAL);
	CHECK(strstr(e.msg, "no identity:hexkey"));
	CHECK_EQ(parse("\n\n", ident, key, &len, &e), -EINVAL);
	CHECK_EQ(parse("ferry" KEY32 "\n", ident, key, &len, &e), -EINVAL);
	CHECK(strstr(e.msg, "not identity:hexkey"));
	CHECK_EQ(parse(":" KEY32, ident, key, &len, &e), -EINVAL);
	CHECK_EQ(parse("a b:" KEY32, ident, key, &len, &e), -EINVAL);
	CHECK(strstr(e.msg, "printable"));
	CHECK_EQ(parse("ferry:0011", ident, key, &len, &e), -EINVAL);        /* too short */
	CHECK(strstr(e.msg, "16 to 64 bytes"));
	CHECK_EQ(parse("ferry:" KEY32 "0", ident, key, &len, &e), -EINVAL);  /* odd */
	CHECK_EQ(parse("ferry:" KEY32 KEY32 "00", ident, key, &len, &e), -EINVAL); /* 65 bytes */
	CHECK_EQ(parse("ferry:" "zz112233445566778899aabbccddeeff", ident, key, &len, &e), -EINVAL);
	CHECK(strstr(e.msg, "hexadecimal"));
	CHECK_EQ(parse("a:" KEY32 "\nb:" KEY32 "\n", ident, key, &len, &e), -EINVAL);
	CHECK(strstr(e.msg, "line 2: a second key"));
	/* An identity one character too long */
	snprintf(big, sizeof(big), "%0*d:%s", MIG_TLS_IDENT_MAX + 1, 0, KEY32);
	CHECK_EQ(parse(big, ident, key, &len, &e), -EINVAL);
	snprintf(big, sizeof(big), "%0*d:%s", MIG_TLS_IDENT_MAX, 0, KEY32);  /* the maximum */
	CHECK_EQ(parse(big, ident, key, &len, &e), 0);
	CHECK_EQ(strlen(ident), MIG_TLS_IDENT_MAX);
	/* Not NUL-terminated: only @len bytes count. */
	CHECK_EQ(mig_tls_parse_psk("ferry:" KEY32 "GARBAGE", 6 + 64, ident, key, &len, &e), 0);
}

static char dir[] = "/tmp/test_mig_tls.XXXXXX";

static const char *put(const char *name, const char *text, mode_t mode)
{
	static char paths[8][256];
	static int n;
	char *p = paths[n++ % 8];
	int fd;

	snprintf(p, 256, "%s/%s", dir, name);
	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	fchmod(fd, mode);
	close(fd);
	return p;
}

/* migrate/tls_cfg.c, in the core: no GnuTLS needed. */
TEST(secret_file)
{
	void *buf = NULL;
	size_t len = 0;
	struct ferr e;

	CHECK_EQ(mig_tls_read_secret("--tls-psk", put("open.key", "secret", 0640), &buf, &len, &e),
		 -EPERM);
	CHECK(strstr(e.msg, "chmod 600") != NULL);
	CHECK(mig_tls_read_secret("--tls-psk", dir, &buf, &len, &e) < 0);       /* a directory */
	CHECK(strstr(e.msg, "not a regular file") != NULL);
	CHECK(mig_tls_read_secret("--tls-psk", "/nonexistent/key", &buf, &len, &e) < 0);
	CHECK_EQ(mig_tls_read_secret("--tls-psk", put("ok.key", "secret", 0400), &buf, &len, &e), 0);
	CHECK_EQ(len, 6);
	CHECK(buf && !memcmp(buf, "secret", 6));
	free(buf);
}

TEST(policy)
{
	struct vm_config cfg = { .incoming = "tcp:127.0.0.1:4444" };
	struct mig_tls *t = (void *)1;
	struct ferr e;

	/* --incoming without credentials: refused unless --insecure */
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -EPERM);
	CHECK(t == NULL);
	CHECK(strstr(e.msg, "--insecure"));
	cfg.insecure = true;
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), 0);
	CHECK(t == NULL);
	/* --restore and a VM that boots need none */
	cfg = (struct vm_config){ .incoming = "file:/x" };
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), 0);
	cfg = (struct vm_config){ 0 };
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), 0);
	CHECK(t == NULL);
	/* half an X.509 set, or both kinds */
	cfg = (struct vm_config){ .tls_cert = "/c", .tls_key = "/k" };
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -EINVAL);
	CHECK(strstr(e.msg, "go together"));
	cfg = (struct vm_config){ .tls_psk = "/p", .tls_cert = "/c", .tls_key = "/k", .tls_ca = "/a" };
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -EINVAL);
	CHECK(strstr(e.msg, "exclude"));
#ifdef HAVE_GNUTLS
	/* files: missing, too open, bad, good */
	cfg = (struct vm_config){ .incoming = "tcp:127.0.0.1:4444", .tls_psk = "/nonexistent/psk" };
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -ENOENT);
	CHECK(strstr(e.msg, "/nonexistent/psk"));
	cfg.tls_psk = put("open.psk", "ferry:" KEY32 "\n", 0640);
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -EPERM);
	CHECK(strstr(e.msg, "chmod 600"));
	cfg.tls_psk = put("bad.psk", "ferry:1234\n", 0600);
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -EINVAL);
	CHECK(strstr(e.msg, "bad.psk"));
	cfg.tls_psk = put("good.psk", "ferry:" KEY32 "\n", 0400);
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), 0);
	CHECK(t != NULL);
	mig_tls_destroy(t);
	cfg = (struct vm_config){ .tls_cert = "/nonexistent/c", .tls_key = put("k.pem", "x", 0644),
				  .tls_ca = "/nonexistent/a" };
	CHECK_EQ(mig_tls_create(&cfg, &t, &e), -EPERM);
	CHECK(strstr(e.msg, "--tls-key"));
#endif
}

#ifdef HAVE_GNUTLS
struct peer {
	struct mig_tls *t;
	int fd, ret;
	struct mig_chan ch;
	struct ferr e;
};

static void *server(void *arg)
{
	struct peer *p = arg;

	p->ret = mig_tls_server(p->t, p->fd, &p->ch, &p->e);
	return NULL;
}

static struct mig_tls *load_psk(const char *name, const char *line)
{
	struct vm_config cfg = { .tls_psk = put(name, line, 0600) };
	struct mig_tls *t = NULL;
	struct ferr e;

	if (mig_tls_create(&cfg, &t, &e) < 0) {
		printf("# %s\n", e.msg);
		abort();
	}
	return t;
}

/* Handshake both ends of a socketpair; 0 when both succeeded. */
static int pair(struct mig_tls *ct, struct mig_tls *st, struct peer *c, struct peer *s)
{
	int sv[2];
	pthread_t th;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	*c = (struct peer){ .t = ct, .fd = sv[0] };
	*s = (struct peer){ .t = st, .fd = sv[1] };
	pthread_create(&th, NULL, server, s);
	c->ret = mig_tls_client(c->t, c->fd, "localhost", &c->ch, &c->e);
	if (c->ret < 0)
		shutdown(c->fd, SHUT_RDWR);     /* a server still waiting hears it */
	pthread_join(th, NULL);
	return c->ret < 0 || s->ret < 0 ? -1 : 0;
}

static void unpair(struct peer *c, struct peer *s)
{
	mig_tls_end(&c->ch);
	mig_tls_end(&s->ch);
	close(c->fd);
	close(s->fd);
}

TEST(psk_roundtrip)
{
	struct mig_tls *a = load_psk("a.psk", "ferry:" KEY32 "\n");
	struct mig_tls *b = load_psk("b.psk", "ferry:" KEY32 "\n");
	struct mig_writer w;
	struct mig_reader r;
	struct peer c, s;
	static uint8_t out[300000], in[300000];
	uint8_t reply[8];
	struct ferr e;

	CHECK_EQ(pair(a, b, &c, &s), 0);
	CHECK(c.ch.tls != NULL && s.ch.tls != NULL);
	/* Larger than a TLS record and than the writer's buffer: many
	 * records, read back exactly, through the stream's writer/reader. */
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = i * 7 + (i >> 9);
	mig_writer_init(&w, c.fd, 0);
	w.ch.tls = c.ch.tls;
	mig_reader_init(&r, s.fd, 0);
	r.ch.tls = s.ch.tls;
	CHECK_EQ(mig_put_rec(&w, MIG_REC_STATE, out, 100000), 0);
	CHECK_EQ(mig_flush(&w), 0);
	{
		struct mig_rec_hdr h;

		CHECK_EQ(mig_read(&r, &h, sizeof(h)), 0);
		CHECK_EQ(h.type, MIG_REC_STATE);
		CHECK_EQ(h.len, 100000);
		CHECK_EQ(mig_read(&r, in, h.len), 0);
		CHECK(memcmp(in, out, h.len) == 0);
	}
	/* A reply the other way, through the session. */
	CHECK_EQ(mig_reply(&s.ch, MIG_REPLY_DONE, "12345678", 8), 0);
	CHECK_EQ(mig_wait_reply(&c.ch, MIG_REPLY_DONE, reply, 8, 5000, &e), 0);
	CHECK(memcmp(reply, "12345678", 8) == 0);
	CHECK_EQ(mig_reply(&s.ch, MIG_REPLY_ERROR, "no", 2), 0);
	CHECK_EQ(mig_wait_reply(&c.ch, MIG_REPLY_DONE, reply, 8, 5000, &e), -EREMOTEIO);
	CHECK(strstr(e.msg, "refused: no"));
	/* The source goes away: the reader sees the end, not garbage. */
	mig_tls_end(&c.ch);
	shutdown(c.fd, SHUT_RDWR);
	CHECK_EQ(mig_read(&r, in, 1), -EPIPE);
	mig_writer_free(&w);
	mig_reader_free(&r);
	unpair(&c, &s);
	mig_tls_destroy(a);
	mig_tls_destroy(b);
}

TEST(psk_wrong_key)
{
	struct mig_tls *a = load_psk("a.psk", "ferry:" KEY32 "\n");
	struct mig_tls *b = load_psk("c.psk", "ferry:ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
	struct mig_tls *d = load_psk("d.psk", "other:" KEY32 "\n");
	struct peer c, s;

	CHECK_EQ(pair(a, b, &c, &s), -1);
	CHECK(c.ret < 0 && s.ret < 0);
	CHECK(c.ch.tls == NULL && s.ch.tls == NULL);
	CHECK(strstr(s.e.msg, "TLS handshake with the source"));
	printf("# source: %s\n# destination: %s\n", c.e.msg, s.e.msg);
	unpair(&c, &s);
	CHECK_EQ(pair(a, d, &c, &s), -1);
	CHECK(s.ret < 0);
	CHECK(strstr(s.e.msg, "identity 'ferry'"));
	printf("# destination: %s\n", s.e.msg);
	unpair(&c, &s);
	/* A plain source: told in its own framing. */
	{
		struct peer p;
		pthread_t th;
		uint8_t buf[8];
		int sv[2];
		struct ferr e;

		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
		p = (struct peer){ .t = b, .fd = sv[1] };
		CHECK_EQ(write(sv[0], MIG_MAGIC "\1\0\0\0\0\0\0\0", 16), 16);
		pthread_create(&th, NULL, server, &p);
		pthread_join(th, NULL);
		CHECK_EQ(p.ret, -EPROTO);
		CHECK(strstr(p.e.msg, "plain-TCP"));
		CHECK_EQ(mig_wait_reply(&(struct mig_chan){ .fd = sv[0] }, MIG_REPLY_READY, buf, 0,
					5000, &e), -EREMOTEIO);
		CHECK(strstr(e.msg, "TLS migrations only"));
		close(sv[0]);
		close(sv[1]);
	}
	mig_tls_destroy(a);
	mig_tls_destroy(b);
	mig_tls_destroy(d);
}
#endif

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	log_set_level(LOG_ERROR);
	RUN(psk_parse_good);
	RUN(psk_parse_bad);
	RUN(secret_file);
	RUN(policy);
#ifdef HAVE_GNUTLS
	RUN(psk_roundtrip);
	RUN(psk_wrong_key);
#endif
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			printf("# cannot remove %s\n", dir);
	}
	return tap_done();
}
