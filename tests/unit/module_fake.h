/* The ops table of tests/unit/module_fake.c. */
#ifndef FERRY_TEST_MODULE_FAKE_H
#define FERRY_TEST_MODULE_FAKE_H

#include "ferry/module.h"

struct module_fake_ops {
	struct ferry_module_head head;
	int (*answer)(void);
};

#endif
