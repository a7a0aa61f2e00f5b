/* Guest RAM for the virtio fuzz targets: two heap regions (so that ASan
 * sees any access just outside them), the first filled with the input after
 * its HDR-byte header, the second at RAM1_GPA past a hole. */
#ifndef FERRY_FUZZ_RAM_H
#define FERRY_FUZZ_RAM_H

#include <stdlib.h>
#include <string.h>

#include "ferry/mem.h"

#define HDR        4
#define RAM0_SIZE  0x10000
#define RAM1_GPA   0x20000
#define RAM1_SIZE  0x1000

static inline void fuzz_ram_init(struct guest_mem *gm, const uint8_t *data, size_t len)
{
	uint8_t *ram0 = calloc(1, RAM0_SIZE), *ram1 = calloc(1, RAM1_SIZE);

	if (!ram0 || !ram1)
		abort();
	*gm = (struct guest_mem){ .nr_regions = 2, .memfd = -1,
				  .ram_size = RAM0_SIZE + RAM1_SIZE };
	gm->regions[0] = (struct mem_region){ 0, RAM0_SIZE, ram0 };
	gm->regions[1] = (struct mem_region){ RAM1_GPA, RAM1_SIZE, ram1 };
	memcpy(ram0, data + HDR, len - HDR < RAM0_SIZE ? len - HDR : RAM0_SIZE);
}

static inline void fuzz_ram_free(struct guest_mem *gm)
{
	free(gm->regions[0].hva);
	free(gm->regions[1].hva);
}

#endif
