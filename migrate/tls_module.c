/* ferry-tls.so's one exported symbol: the ops table through which the
 * core's stubs (migrate/tls_stub.c) reach migrate/tls.c and GnuTLS.
 * Everything else in the module has hidden visibility. */
#include "config.h"
#include "ferry/blk.h"
#include "ferry/mig_tls.h"
#include "ferry/migrate.h"
#include "ferry/module.h"
#include "ferry/vm.h"

FERRY_MODULE_EXPORT const struct mig_tls_module_ops ferry_module_entry = {
	.head = {
		.stamp = FERRY_MODULE_STAMP,
		.name = "tls",
		.ops_size = sizeof(struct mig_tls_module_ops),
		.sizes = FERRY_MODULE_SIZES,
	},
	.create = mig_tls_create,
	.destroy = mig_tls_destroy,
	.client = mig_tls_client,
	.server = mig_tls_server,
	.end = mig_tls_end,
	.send = mig_tls_send,
	.recv = mig_tls_recv,
	.pending = mig_tls_pending,
};
