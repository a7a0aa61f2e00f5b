/* libFuzzer target for the config-file parser (src/cli.c cli_parse_config)
 * and the --disk/--net/--incoming value parsers behind its keys: any text
 * is applied or refused with a reason naming the line, and every string
 * the config keeps points at a live NUL-terminated string.
 *
 * Input: the file's text (cut at the first NUL, as --config refuses files
 * with one). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/cli.h"
#include "ferry/log.h"

static void touch(const char *s)
{
	if (s && strlen(s) > 1024 * 1024)
		__builtin_trap();
}

/* disk_config_parse hands each path over for the process' life; a fuzzer
 * parses millions of configs. */
static void free_disks(struct vm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_disks && i < VM_MAX_DISKS; i++)
		free((char *)cfg->disks[i].path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct vm_config cfg;
	struct ferr e = { 0 };
	char *text = malloc(len + 1);

	if (!text)
		return 0;
	log_set_level(LOG_ERROR);
	memcpy(text, data, len);
	text[len] = '\0';
	cli_vm_defaults(&cfg);
	if (cli_parse_config(text, "fuzz.conf", &cfg, &e) < 0) {
		if (!strstr(e.msg, "fuzz.conf:"))
			__builtin_trap();       /* errors name the file and line */
		goto out;
	}
	if (cfg.nr_disks > VM_MAX_DISKS || cfg.nr_nets > VM_MAX_NETS || !cfg.cpus)
		__builtin_trap();
	touch(cfg.name);
	touch(cfg.kernel);
	touch(cfg.initrd);
	touch(cfg.cmdline);
	touch(cfg.serial_path);
	touch(cfg.api_path);
	touch(cfg.metrics);
	touch(cfg.incoming);
out:
	free_disks(&cfg);
	free(text);
	return 0;
}
