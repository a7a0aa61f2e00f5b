/* The migration channel's TLS as the core sees it when GnuTLS lives in
 * ferry-tls.so (migrate/tls.c, loaded through src/module.c): mig_tls_create
 * loads the module when credentials are configured, and every other
 * mig_tls_* call goes through its ops table.  Without credentials no
 * module is loaded and the channel is plain TCP, as in migrate/tls.c. */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "ferry/log.h"
#include "ferry/mig_tls.h"
#include "ferry/module.h"

/* Set once at start-up (before any thread), read-only afterwards. */
static const struct mig_tls_module_ops *tls_ops;

int mig_tls_create(const struct vm_config *cfg, struct mig_tls **out, struct ferr *e)
{
	*out = NULL;
	if (cfg->tls_psk || cfg->tls_cert || cfg->tls_key || cfg->tls_ca) {
		if (!tls_ops)
			tls_ops = module_load("tls", "TLS", "tls", sizeof(*tls_ops), e);
		if (!tls_ops)
			return -ENOEXEC;
		return tls_ops->create(cfg, out, e);
	}
	/* No credentials: the policy of migrate/tls.c (mig_tls_check_cfg),
	 * which must hold without the module too. */
	if (cfg->incoming && !strncmp(cfg->incoming, "tcp:", 4)) {
		if (!cfg->insecure)
			return ferr_set(e, -EPERM, "--incoming %s: no credentials for the migration channel; give --tls-psk FILE or --tls-cert/--tls-key/--tls-ca, or --insecure to accept an unauthenticated migration",
					cfg->incoming);
		log_warn("--insecure: migrations arrive in plain TCP on %s; anyone who reaches that port can inject a VM",
			 cfg->incoming);
	}
	return 0;
}

void mig_tls_destroy(struct mig_tls *t)
{
	if (t)
		tls_ops->destroy(t);
}

int mig_tls_client(struct mig_tls *t, int fd, const char *host, struct mig_chan *ch,
		   struct ferr *e)
{
	if (t)
		return tls_ops->client(t, fd, host, ch, e);
	*ch = (struct mig_chan){ .fd = fd };
	return 0;
}

int mig_tls_server(struct mig_tls *t, int fd, struct mig_chan *ch, struct ferr *e)
{
	if (t)
		return tls_ops->server(t, fd, ch, e);
	*ch = (struct mig_chan){ .fd = fd };
	return 0;
}

/* A session exists only through a struct mig_tls, so only with the module. */
void mig_tls_end(struct mig_chan *ch)
{
	if (ch->tls)
		tls_ops->end(ch);
	ch->tls = NULL;
}

ssize_t mig_tls_send(struct mig_tls_sess *s, const void *buf, size_t len)
{
	return tls_ops ? tls_ops->send(s, buf, len) : -ENOTCONN;
}

ssize_t mig_tls_recv(struct mig_tls_sess *s, void *buf, size_t len)
{
	return tls_ops ? tls_ops->recv(s, buf, len) : -ENOTCONN;
}

size_t mig_tls_pending(struct mig_tls_sess *s)
{
	return tls_ops && s ? tls_ops->pending(s) : 0;
}
