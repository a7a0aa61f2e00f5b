/* ferry's entry point: parse the command line and hand over to the verb. */
#include <stdio.h>

#include "config.h"
#include "ferry/cli.h"
#include "ferry/ctl.h"
#include "ferry/log.h"
#include "ferry/vmm.h"

int main(int argc, char **argv)
{
	struct ferr e = { "" };
	struct cli cli;
	int ret;

	ret = cli_parse(argc, argv, &cli, &e);
	if (ret < 0) {
		log_error("%s", e.msg);
		cli_free(&cli);
		return FERRY_EXIT_ERROR;
	}
	switch (cli.action) {
	case CLI_HELP:
		cli_print_help(stdout, cli.verb);
		ret = 0;
		break;
	case CLI_VERSION:
		printf("ferry %s\n", FERRY_VERSION);
		ret = 0;
		break;
	case CLI_RUN:
		log_set_level(cli.vm.log_level);
		ret = vmm_run(&cli.vm);
		break;
	case CLI_CTL:
		ret = ctl_main(cli.verb, cli.ctl_argc, cli.ctl_argv);
		break;
	}
	cli_free(&cli);
	return ret;
}
