/* The migration channel's TLS as the core sees it when GnuTLS lives in
 * ferry-tls.so (migrate/tls.c, loaded through src/module.c): mig_tls_create
 * loads the module when credentials are configured, and every other
 * mig_tls_* call goes through its ops table.  Without credentials no
 * module is loaded and the channel is plain TCP, as in migrate/tls.c. */
#include <errno.h>

#include "config.h"
#include "ferry/mig_tls.h"
#include "ferry/module.h"

/* Set once at start-up (before any thread), read-only afterwards. */
static const struct mig_tls_module_ops *tls_ops;

int mig_tls_create(const struct vm_config *cfg, struct mig_tls **out, struct ferr *e)
{
	bool any;
	int ret;

	*out = NULL;
	/* The policy holds without the module: no credentials, no module. */
	ret = mig_tls_check_cfg(cfg, &any, e);
	if (ret < 0 || !any)
		return ret;
	if (!tls_ops)
		tls_ops = module_load("tls", "TLS", "tls", sizeof(*tls_ops), e);
	if (!tls_ops)
		return -ENOEXEC;
	return tls_ops->create(cfg, out, e);
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
