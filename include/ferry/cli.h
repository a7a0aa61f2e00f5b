/* The command line: verbs and their flags.  One table describes every
 * `ferry run` flag (name, value, help, setter), so help text, parsing and
 * (later) config files cannot drift apart. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stdio.h>

#include "ferry/err.h"
#include "ferry/vm.h"

enum cli_action {
	CLI_RUN,
	CLI_HELP,          /* print help for the verb in cli.verb */
	CLI_VERSION,
};

struct cli {
	enum cli_action action;
	const char *verb;          /* NULL for the top level */
	struct vm_config vm;
};

/* Parse argv.  On error returns a negative errno with a one-line reason in
 * @e that names the flag ("--memory: '12X' is not a size ..."). */
int cli_parse(int argc, char **argv, struct cli *out, struct ferr *e);
void cli_vm_defaults(struct vm_config *cfg);
void cli_print_help(FILE *f, const char *verb);

#endif
