/* libFuzzer target for the kernel loaders (src/boot: ELF with or without
 * the PVH note, bzImage): any file is loaded or refused with a reason,
 * every byte goes through gm_ptr into guest RAM, and a loaded kernel's
 * entry point lies in RAM.
 *
 * Input: [0] bit0: with an initrd, bit1: with a long command line; then
 * the kernel file.  Guest RAM: 64 MiB, set up once and reused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/boot.h"
#include "ferry/log.h"
#include "ferry/mem.h"
#include "ferry/util.h"

#define RAM_SIZE (64 * MiB)

static struct guest_mem gm;
static uint8_t initrd[4096];
static char long_cmdline[8192];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	struct boot_config cfg = { .rsdp_gpa = 0xE0000 };
	struct boot_info bi;
	struct ferr e = { 0 };
	int ret;

	if (!ready) {
		struct gm_config gc = { .size = RAM_SIZE };

		log_set_level(LOG_ERROR);
		if (gm_init(&gm, &gc, &e) < 0)
			abort();
		memset(initrd, 0x5a, sizeof(initrd));
		memset(long_cmdline, 'c', sizeof(long_cmdline) - 1);
		ready = true;
	}
	if (len < 1)
		return 0;
	cfg.kernel = data + 1;
	cfg.kernel_len = len - 1;
	if (data[0] & 1) {
		cfg.initrd = initrd;
		cfg.initrd_len = sizeof(initrd);
	}
	cfg.cmdline = (data[0] & 2) ? long_cmdline : "console=ttyS0";
	ret = boot_load(&gm, &cfg, &bi, &e);
	if (ret < 0 && !e.msg[0])
		__builtin_trap();               /* every refusal says why */
	if (ret == 0 && !gm_ptr(&gm, bi.entry, 1))
		__builtin_trap();               /* the vCPU would start outside RAM */
	return 0;
}
