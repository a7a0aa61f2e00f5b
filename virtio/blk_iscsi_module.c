/* ferry-iscsi.so's one exported symbol: the ops table through which the
 * core's stubs (virtio/blk_iscsi_stub.c) reach virtio/blk_iscsi*.c and
 * libiscsi.  Everything else in the module has hidden visibility. */
#include "config.h"
#include "ferry/blk.h"
#include "ferry/migrate.h"
#include "ferry/module.h"
#include "ferry/vm.h"

FERRY_MODULE_EXPORT const struct blk_iscsi_module_ops ferry_module_entry = {
	.head = {
		.stamp = FERRY_MODULE_STAMP,
		.name = "iscsi",
		.ops_size = sizeof(struct blk_iscsi_module_ops),
		.sizes = FERRY_MODULE_SIZES,
	},
	.open = blk_iscsi_open,
	.pr_takeover = blk_iscsi_pr_takeover,
	.pr_state = blk_iscsi_pr_state,
};
