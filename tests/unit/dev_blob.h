/* A device's state as migrate/state.c writes it: the device's node, named
 * after it, under the root of a fresh device tree of @cap bytes (calloc'd;
 * the caller frees it).  Include after tap.h. */
#ifndef FERRY_TEST_DEV_BLOB_H
#define FERRY_TEST_DEV_BLOB_H

#include <stdlib.h>

#include <libfdt.h>

#include "ferry/virtio_dev.h"

static inline void *dev_save_blob(struct virtio_dev *d, size_t cap)
{
	void *fdt = calloc(1, cap);

	CHECK(fdt != NULL);
	if (!fdt)
		return NULL;
	CHECK_EQ(fdt_create(fdt, cap), 0);
	CHECK_EQ(fdt_finish_reservemap(fdt), 0);
	CHECK_EQ(fdt_begin_node(fdt, ""), 0);
	CHECK_EQ(fdt_begin_node(fdt, d->name), 0);
	CHECK_EQ(virtio_dev_save(d, fdt), 0);
	CHECK_EQ(fdt_end_node(fdt), 0);
	CHECK_EQ(fdt_end_node(fdt), 0);
	CHECK_EQ(fdt_finish(fdt), 0);
	return fdt;
}

#endif
