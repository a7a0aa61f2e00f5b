/* The migration channel's authentication (migrate/tls.c): TLS over the
 * migration socket with a pre-shared key or X.509 certificates, both ends
 * authenticated.  Credentials are loaded once at start-up; each migration
 * then runs one handshake before any byte of the stream is read. */
#ifndef FERRY_MIG_TLS_H
#define FERRY_MIG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ferry/err.h"
#include "ferry/migrate.h"
#include "ferry/vm.h"

#define MIG_TLS_IDENT_MAX     128       /* PSK identity, characters */
#define MIG_TLS_KEY_MIN       16        /* PSK bytes (128 bits) */
#define MIG_TLS_KEY_MAX       64        /* PSK bytes (512 bits) */
#define MIG_TLS_HANDSHAKE_MS  10000

struct mig_tls;

/* One "identity:hexkey" line (psktool's format) from @text (@len bytes, not
 * necessarily NUL-terminated); empty lines are ignored, a second entry is
 * an error.  0, or -EINVAL with the reason in @e. */
int mig_tls_parse_psk(const char *text, size_t len, char ident[MIG_TLS_IDENT_MAX + 1],
		      uint8_t key[MIG_TLS_KEY_MAX], size_t *key_len, struct ferr *e);

/* Both ends' policy on credentials (migrate/tls_cfg.c): --tls-psk and the
 * X.509 trio exclude each other, the trio goes together, and --incoming
 * tcp: without credentials needs --insecure (then logged).  *@any: some
 * credentials are given.  0, or -EINVAL/-EPERM with the reason in @e. */
int mig_tls_check_cfg(const struct vm_config *cfg, bool *any, struct ferr *e);
/* Read a secret file for option @flag: a regular file of at most 64 KiB
 * that group and others cannot read.  0 with *@buf malloc'd, or -errno. */
int mig_tls_read_secret(const char *flag, const char *path, void **buf, size_t *len,
			struct ferr *e);

/* At start-up, before privileges are dropped: load cfg->tls_* into *@out
 * (NULL without credentials: the channel is plain TCP).  Refuses an
 * --incoming tcp: without credentials unless cfg->insecure, a PSK or key
 * file that group or others can read, and unreadable or bad files. */
int mig_tls_create(const struct vm_config *cfg, struct mig_tls **out, struct ferr *e);
void mig_tls_destroy(struct mig_tls *t);

/* Wrap a connected socket: the handshake (at most MIG_TLS_HANDSHAKE_MS),
 * then @ch carries the session.  @t NULL: @ch is the plain socket.
 * The source checks the destination's certificate against @host (a name,
 * or an IP address against the certificate's IP addresses).
 * -EACCES: the peer failed authentication or refused ours; -EPROTO: the
 * peer does not speak TLS; else a transport error; the reason in @e. */
int mig_tls_client(struct mig_tls *t, int fd, const char *host, struct mig_chan *ch,
		   struct ferr *e);
/* The destination's side; a plain ferry source is told (in its own
 * framing) that this end takes TLS only. */
int mig_tls_server(struct mig_tls *t, int fd, struct mig_chan *ch, struct ferr *e);
/* Free @ch's session, if any (the fd stays open). */
void mig_tls_end(struct mig_chan *ch);

/* Record I/O for stream.c: bytes moved, 0 at the end of the stream (recv),
 * or -errno (-EAGAIN: SO_RCVTIMEO expired, -EINTR: call again). */
ssize_t mig_tls_send(struct mig_tls_sess *s, const void *buf, size_t len);
ssize_t mig_tls_recv(struct mig_tls_sess *s, void *buf, size_t len);
/* Decrypted bytes waiting in the session (poll() on the fd cannot see them). */
size_t mig_tls_pending(struct mig_tls_sess *s);

#endif
