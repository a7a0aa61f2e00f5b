/* libFuzzer target for the command-line parser (src/cli.c cli_parse) and
 * the flag value parsers it calls: any argv is accepted or refused with a
 * reason, never a crash.
 *
 * Input: the arguments after argv[0], separated by NUL bytes.  An input
 * that names --config is skipped: it would read a file (the file's text
 * is fuzz_config's job). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/cli.h"
#include "ferry/log.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *argv[MAX_ARGS + 2], *buf;
	struct ferr e = { 0 };
	struct cli cli;
	int argc = 0, ret;

	if (memmem(data, len, "--config", 8))
		return 0;
	buf = malloc(len + 1);
	if (!buf)
		return 0;
	log_set_level(LOG_ERROR);
	memcpy(buf, data, len);
	buf[len] = '\0';
	argv[argc++] = "ferry";
	for (char *p = buf; p <= buf + len && argc < MAX_ARGS + 1; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	ret = cli_parse(argc, argv, &cli, &e);
	if (ret < 0 && !e.msg[0])
		__builtin_trap();               /* every refusal says why */
	if (ret == 0 && cli.action == CLI_RUN &&
	    (!cli.vm.kernel || cli.vm.nr_disks > VM_MAX_DISKS || cli.vm.nr_nets > VM_MAX_NETS))
		__builtin_trap();
	if (ret == 0 && cli.action == CLI_CTL &&
	    (cli.ctl_argc < 0 || cli.ctl_argc > argc))
		__builtin_trap();
	cli_free(&cli);
	free(buf);
	return 0;
}
