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
	CLI_CTL,           /* a control verb: ctl_main(verb, ctl_argc, ctl_argv) */
};

struct cli {
	enum cli_action action;
	const char *verb;          /* NULL for the top level */
	struct vm_config vm;
	int ctl_argc;
	char **ctl_argv;
	char *config_text;         /* --config file contents; vm points into it */
};

/* Parse argv.  On error returns a negative errno with a one-line reason in
 * @e that names the flag ("--memory: '12X' is not a size ..."). */
int cli_parse(int argc, char **argv, struct cli *out, struct ferr *e);
void cli_vm_defaults(struct vm_config *cfg);
void cli_free(struct cli *cli);
/* Apply a config file's text ("key = value" lines, '#' comments) to @cfg.
 * Modifies @text in place; @cfg keeps pointers into it.  Errors name
 * @file and the line. */
int cli_parse_config(char *text, const char *file, struct vm_config *cfg, struct ferr *e);
void cli_print_help(FILE *f, const char *verb);

#endif
