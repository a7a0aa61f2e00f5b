/* The iSCSI backend as the core sees it when libiscsi lives in
 * ferry-iscsi.so (virtio/blk_iscsi*.c, loaded through src/module.c): the
 * first iscsi:// disk loads the module at start-up (vm_create, before
 * privileges are dropped) and the blk_iscsi_* calls go through its ops. */
#include <errno.h>

#include "config.h"
#include "ferry/blk.h"
#include "ferry/module.h"

/* Set once at start-up (before any thread), read-only afterwards. */
static const struct blk_iscsi_module_ops *isc_ops_mod;

struct blk_backend *blk_iscsi_open(const struct disk_config *cfg, const struct dev_env *env,
				   unsigned int queue_depth, struct ferr *e)
{
	if (!isc_ops_mod)
		isc_ops_mod = module_load("iscsi", "iSCSI", "iscsi", sizeof(*isc_ops_mod), e);
	if (!isc_ops_mod)
		return NULL;
	return isc_ops_mod->open(cfg, env, queue_depth, e);
}

/* Without the module no backend is an iSCSI one: as for a file. */
int blk_iscsi_pr_takeover(struct blk_backend *b, uint64_t src_key, struct ferr *e)
{
	return isc_ops_mod ? isc_ops_mod->pr_takeover(b, src_key, e) : 0;
}

int blk_iscsi_pr_state(struct blk_backend *b, uint64_t *key, bool *holder)
{
	return isc_ops_mod ? isc_ops_mod->pr_state(b, key, holder) : -ENOENT;
}
