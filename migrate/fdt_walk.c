/* A pre-check of the FDT blobs a migration stream carries (MACHINE and
 * STATE records), run by state.c before libfdt sees them: libfdt 1.6.1's
 * fdt_check_full() loops forever on a property whose length wraps the
 * offset back (found by tests/fuzz/fuzz_devstate.c). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <libfdt.h>

#include "ferry/migrate.h"

#define WALK_ALIGN(x) (((x) + 3) & ~(uint64_t)3)

int mig_fdt_walkable(const void *fdt, uint32_t len)
{
	const uint8_t *b = fdt;
	uint64_t off, end;

	if (len < sizeof(struct fdt_header) || fdt_magic(fdt) != FDT_MAGIC ||
	    fdt_totalsize(fdt) != len || fdt_version(fdt) < 17)
		return -EPROTO;
	off = fdt_off_dt_struct(fdt);
	end = off + fdt_size_dt_struct(fdt);
	if (off % 4 || end > len)
		return -EPROTO;
	/* Each step moves forward, and no further than the block's end. */
	while (off + 4 <= end) {
		uint32_t tag = fdt32_ld((const fdt32_t *)(b + off));
		const uint8_t *nul;
		uint32_t plen;

		off += 4;
		switch (tag) {
		case FDT_BEGIN_NODE:
			nul = memchr(b + off, '\0', end - off);
			if (!nul)
				return -EPROTO;
			off = WALK_ALIGN((uint64_t)(nul - b) + 1);
			break;
		case FDT_PROP:
			if (end - off < 8)
				return -EPROTO;
			plen = fdt32_ld((const fdt32_t *)(b + off));
			off += 8;
			if (plen > end - off)
				return -EPROTO;
			off = WALK_ALIGN(off + plen);
			break;
		case FDT_END_NODE:
		case FDT_NOP:
			break;
		case FDT_END:
			return 0;
		default:
			return -EPROTO;
		}
	}
	return -EPROTO;
}
