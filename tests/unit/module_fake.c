/* A stand-in module for tests/unit/test_module.c, built twice: with this
 * build's stamp (ferry-fakegood.so) and, with -DMODULE_FAKE_STALE, with
 * another build's (ferry-fakestale.so).  It needs nothing from ferry. */
#include "config.h"
#include "ferry/blk.h"
#include "ferry/migrate.h"
#include "ferry/module.h"
#include "ferry/vm.h"
#include "module_fake.h"

static int fake_answer(void)
{
	return 42;
}

#ifdef MODULE_FAKE_STALE
#define FAKE_NAME  "fakestale"
#define FAKE_STAMP "0.0.1 abi 0 build 000000000000"
#else
#define FAKE_NAME  "fakegood"
#define FAKE_STAMP FERRY_MODULE_STAMP
#endif

FERRY_MODULE_EXPORT const struct module_fake_ops ferry_module_entry = {
	.head = {
		.stamp = FAKE_STAMP,
		.name = FAKE_NAME,
		.ops_size = sizeof(struct module_fake_ops),
		.sizes = FERRY_MODULE_SIZES,
	},
	.answer = fake_answer,
};
