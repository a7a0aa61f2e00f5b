/* Command-line parsing for ferry's verbs.  Every flag of `ferry run` is one
 * row of run_opts[]: the help text and the parser come from the same row. */
#include <errno.h>
#include <string.h>

#include <stdlib.h>

#include "ferry/cli.h"
#include "ferry/ctl.h"
#include "ferry/migrate.h"
#include "ferry/privs.h"
#include "ferry/seccomp.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"

#define MEM_MIN   (16 * MiB)
#define MEM_MAX   (1024 * GiB)
#define CPUS_MAX  255

struct cli_opt {
	const char *name;          /* without the leading "--" */
	const char *arg;           /* value placeholder; NULL: takes none */
	const char *help;
	int (*set)(struct vm_config *cfg, const char *val, struct ferr *e);
};

static int set_kernel(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (!*val)
		return ferr_set(e, -EINVAL, "--kernel: empty path");
	cfg->kernel = val;
	return 0;
}

static int set_initrd(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (!*val)
		return ferr_set(e, -EINVAL, "--initrd: empty path");
	cfg->initrd = val;
	return 0;
}

static int set_cmdline(struct vm_config *cfg, const char *val, struct ferr *e)
{
	(void)e;
	cfg->cmdline = val;
	return 0;
}

/* SIZE[,hugepages=on|off][,backing=anon|memfd][,prealloc=on|off] */
static int set_memory(struct vm_config *cfg, const char *val, struct ferr *e)
{
	char buf[256], *save = NULL, *tok;
	uint64_t size;
	int ret;

	if (strlen(val) >= sizeof(buf))
		return ferr_set(e, -EINVAL, "--memory: value too long");
	strcpy(buf, val);
	tok = strtok_r(buf, ",", &save);
	if (!tok)
		return ferr_set(e, -EINVAL, "--memory: empty value (use e.g. 512M or 4G)");
	ret = parse_size(tok, &size);
	if (ret == -ERANGE)
		return ferr_set(e, ret, "--memory: '%s' is too large", tok);
	if (ret < 0)
		return ferr_set(e, ret, "--memory: '%s' is not a size (use e.g. 512M or 4G)", tok);
	if (size < MEM_MIN || size > MEM_MAX)
		return ferr_set(e, -ERANGE, "--memory: '%s' is out of range (16M to 1024G)", tok);
	if (size % (2 * MiB))
		return ferr_set(e, -EINVAL, "--memory: '%s' is not a multiple of 2M", tok);
	cfg->mem_size = size;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strcmp(tok, "hugepages=on"))
			cfg->hugepages = true;
		else if (!strcmp(tok, "hugepages=off"))
			cfg->hugepages = false;
		else if (!strcmp(tok, "backing=memfd"))
			cfg->backing = GM_BACKING_MEMFD;
		else if (!strcmp(tok, "backing=anon"))
			cfg->backing = GM_BACKING_ANON;
		else if (!strcmp(tok, "prealloc=on"))
			cfg->prealloc = true;
		else if (!strcmp(tok, "prealloc=off"))
			cfg->prealloc = false;
		else
			return ferr_set(e, -EINVAL,
				"--memory: unknown option '%s' (hugepages=on|off, backing=anon|memfd, prealloc=on|off)", tok);
	}
	return 0;
}

static int set_cpus(struct vm_config *cfg, const char *val, struct ferr *e)
{
	uint64_t n;
	int ret = parse_uint(val, 1, CPUS_MAX, &n);

	if (ret == -EINVAL)
		return ferr_set(e, ret, "--cpus: '%s' is not a number", val);
	if (ret < 0)
		return ferr_set(e, ret, "--cpus: %s is out of range (1 to %d)", val, CPUS_MAX);
	cfg->cpus = n;
	return 0;
}

static int set_serial(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (!strcmp(val, "stdio")) {
		cfg->serial = SERIAL_STDIO;
	} else if (!strcmp(val, "none")) {
		cfg->serial = SERIAL_NONE;
	} else if (!strncmp(val, "file:", 5) && val[5]) {
		cfg->serial = SERIAL_FILE;
		cfg->serial_path = val + 5;
	} else {
		return ferr_set(e, -EINVAL, "--serial: '%s' is not stdio, file:PATH or none", val);
	}
	return 0;
}

static int set_name(struct vm_config *cfg, const char *val, struct ferr *e)
{
	size_t len = strlen(val);

	if (len == 0 || len > 64)
		return ferr_set(e, -EINVAL, "--name: must be 1 to 64 characters");
	for (size_t i = 0; i < len; i++) {
		char c = val[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.')
			return ferr_set(e, -EINVAL,
				"--name: '%s' has '%c'; use letters, digits, '-', '_' and '.'", val, c);
	}
	cfg->name = val;
	return 0;
}

static int set_log_level(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (log_parse_level(val, &cfg->log_level) < 0)
		return ferr_set(e, -EINVAL, "--log-level: '%s' is not error, warn, info or debug", val);
	return 0;
}

static int set_shutdown_timeout(struct vm_config *cfg, const char *val, struct ferr *e)
{
	uint64_t n;

	if (parse_uint(val, 0, 3600, &n) < 0)
		return ferr_set(e, -EINVAL, "--shutdown-timeout: '%s' is not 0 to 3600 seconds", val);
	cfg->shutdown_timeout_s = n;
	return 0;
}

static int set_api(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (!*val || strlen(val) >= 108)
		return ferr_set(e, -EINVAL, "--api: '%s' is not a usable socket path (1 to 107 characters)", val);
	cfg->api_path = val;
	return 0;
}

static int set_metrics(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if ((strncmp(val, "unix:", 5) && strncmp(val, "file:", 5)) || !val[5])
		return ferr_set(e, -EINVAL, "--metrics: '%s' is not unix:PATH or file:PATH", val);
	cfg->metrics = val;
	return 0;
}

static int set_incoming(struct vm_config *cfg, const char *val, struct ferr *e)
{
	char host[256], port[32];
	struct ferr why;

	if (mig_parse_uri(val, host, sizeof(host), port, sizeof(port), &why) < 0)
		return ferr_set(e, -EINVAL, "--incoming: %s", why.msg);
	if (cfg->incoming)
		return ferr_set(e, -EINVAL, "--incoming and --restore exclude each other");
	cfg->incoming = val;
	return 0;
}

static int set_restore(struct vm_config *cfg, const char *val, struct ferr *e)
{
	int n;

	if (!val[0])
		return ferr_set(e, -EINVAL, "--restore: empty path");
	if (cfg->incoming)
		return ferr_set(e, -EINVAL, "--restore and --incoming exclude each other");
	/* The receiver reads "file:PATH" the way it reads "tcp:...". */
	n = snprintf(cfg->restore_uri, sizeof(cfg->restore_uri), "file:%s", val);
	if (n < 0 || (size_t)n >= sizeof(cfg->restore_uri))
		return ferr_set(e, -ENAMETOOLONG, "--restore: path too long");
	cfg->incoming = cfg->restore_uri;
	return 0;
}

static int set_disk(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (cfg->nr_disks >= VM_MAX_DISKS)
		return ferr_set(e, -E2BIG, "--disk: at most %d disks", VM_MAX_DISKS);
	if (disk_config_parse(val, &cfg->disks[cfg->nr_disks], e) < 0)
		return -EINVAL;
	cfg->nr_disks++;
	return 0;
}

static int set_net(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (cfg->nr_nets >= VM_MAX_NETS)
		return ferr_set(e, -E2BIG, "--net: at most %d network devices", VM_MAX_NETS);
	if (net_config_parse(val, &cfg->nets[cfg->nr_nets], e) < 0)
		return -EINVAL;
	cfg->nr_nets++;
	return 0;
}

static int set_on_off(const char *flag, const char *val, bool *out, struct ferr *e)
{
	if (!strcmp(val, "on"))
		*out = true;
	else if (!strcmp(val, "off"))
		*out = false;
	else
		return ferr_set(e, -EINVAL, "--%s: '%s' is not on or off", flag, val);
	return 0;
}

static int set_rng(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_on_off("rng", val, &cfg->rng, e);
}

static int set_console(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (!strcmp(val, "virtio"))
		cfg->console = CONSOLE_VIRTIO;
	else if (!strcmp(val, "serial"))
		cfg->console = CONSOLE_SERIAL;
	else
		return ferr_set(e, -EINVAL, "--console: '%s' is not serial or virtio", val);
	return 0;
}

static int set_transport(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (!strcmp(val, "pci"))
		cfg->transport = VIRTIO_TRANSPORT_PCI;
	else if (!strcmp(val, "mmio"))
		cfg->transport = VIRTIO_TRANSPORT_MMIO;
	else
		return ferr_set(e, -EINVAL, "--transport: '%s' is not pci or mmio", val);
	return 0;
}

/* Least privilege (src/privs.c): checked here, looked up at the drop. */
static int set_user(struct vm_config *cfg, const char *val, struct ferr *e)
{
	char user[PRIVS_NAME_MAX], group[PRIVS_NAME_MAX];

	if (privs_parse_user(val, user, group, e) < 0)
		return -EINVAL;
	cfg->user = val;
	return 0;
}

static int set_chroot(struct vm_config *cfg, const char *val, struct ferr *e)
{
	if (val[0] != '/')
		return ferr_set(e, -EINVAL, "--chroot: '%s' is not an absolute path", val);
	cfg->chroot_dir = val;
	return 0;
}

static int set_allow_root(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_on_off("allow-root", val, &cfg->allow_root, e);
}

/* The migration channel (migrate/tls.c loads and checks the files). */
static int set_tls_file(const char *flag, const char *val, const char **out, struct ferr *e)
{
	if (!*val)
		return ferr_set(e, -EINVAL, "--%s: empty path", flag);
	*out = val;
	return 0;
}

static int set_tls_psk(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_tls_file("tls-psk", val, &cfg->tls_psk, e);
}

static int set_tls_cert(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_tls_file("tls-cert", val, &cfg->tls_cert, e);
}

static int set_tls_key(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_tls_file("tls-key", val, &cfg->tls_key, e);
}

static int set_tls_ca(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_tls_file("tls-ca", val, &cfg->tls_ca, e);
}

static int set_insecure(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return set_on_off("insecure", val, &cfg->insecure, e);
}

/* System call filters (src/seccomp.c). */
static int set_seccomp(struct vm_config *cfg, const char *val, struct ferr *e)
{
	return seccomp_parse_mode(val, &cfg->seccomp, e);
}

static const struct cli_opt run_opts[] = {
	{ "kernel", "PATH", "kernel to boot: ELF (PVH or vmlinux) or bzImage (required)", set_kernel },
	{ "initrd", "PATH", "initial ramdisk", set_initrd },
	{ "cmdline", "STRING", "kernel command line", set_cmdline },
	{ "memory", "SIZE[,hugepages=on][,backing=memfd][,prealloc=on]", "guest RAM, K/M/G suffixes (default 256M); prealloc=on faults it all in at start", set_memory },
	{ "cpus", "N", "number of vCPUs (default 1)", set_cpus },
	{ "serial", "stdio|file:PATH|none", "where COM1 goes (default stdio)", set_serial },
	{ "name", "NAME", "name of the VM, for logs and status", set_name },
	{ "log-level", "LEVEL", "error, warn, info or debug (default warn)", set_log_level },
	{ "shutdown-timeout", "SECONDS", "after SIGTERM/SIGINT, stop a guest that has not powered off (default 30)", set_shutdown_timeout },
	{ "disk", "path=FILE[,readonly=on][,cache=none][,engine=io_uring|aio|sync][,serial=ID][,queues=N][,shared=on]",
	  "a virtio-blk disk (repeatable)", set_disk },
	{ "net", "tap=NAME[,mac=MAC][,queues=N]", "a virtio-net device on a tap (repeatable)", set_net },
	{ "rng", NULL, "a virtio-rng device fed by getrandom() (config file: rng = on)", set_rng },
	{ "console", "serial|virtio", "where the console's input goes: COM1 (default) or virtio hvc0", set_console },
	{ "transport", "pci|mmio", "how virtio devices attach (default pci)", set_transport },
	{ "api", "PATH", "control socket (JSON, see 'ferry status --help')", set_api },
	{ "metrics", "unix:PATH|file:PATH", "Prometheus text metrics on a socket or in a file", set_metrics },
	{ "incoming", "tcp:ADDR:PORT", "wait for a migration (ferry migrate) instead of booting; give the source's machine flags", set_incoming },
	{ "restore", "FILE", "start from a snapshot (ferry snapshot) instead of booting; give the snapshot's machine flags", set_restore },
	{ "user", "USER[:GROUP]", "after start-up, run as USER (names or ids; groups: USER's, or only GROUP)", set_user },
	{ "chroot", "DIR", "after start-up, confine ferry to DIR (later paths: --metrics file, snapshots, are inside it)", set_chroot },
	{ "allow-root", NULL, "keep root's capabilities instead of dropping them (config file: allow-root = on)", set_allow_root },
	{ "tls-psk", "FILE", "authenticate migrations with this pre-shared key (psktool's identity:hexkey, mode 0600); both ends", set_tls_psk },
	{ "tls-cert", "FILE", "this end's X.509 certificate (PEM) for migrations; with --tls-key and --tls-ca", set_tls_cert },
	{ "tls-key", "FILE", "the private key of --tls-cert (PEM, mode 0600)", set_tls_key },
	{ "tls-ca", "FILE", "the CA that signs both ends' certificates (PEM)", set_tls_ca },
	{ "insecure", NULL, "allow migrations in plain TCP, unauthenticated (logged): anyone who reaches --incoming can inject a VM", set_insecure },
	{ "seccomp", "on|log|off", "system call filters per thread (default on; log: the kernel logs forbidden calls, ferry goes on)", set_seccomp },
	{ "config", "FILE", "read settings from FILE ('memory = 1G' lines); flags override it", NULL },
};

void cli_vm_defaults(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = "ferry";
	cfg->mem_size = 256 * MiB;
	cfg->cpus = 1;
	cfg->serial = SERIAL_STDIO;
	cfg->log_level = LOG_WARN;
	cfg->shutdown_timeout_s = 30;
	cfg->backing = GM_BACKING_ANON;
}

static const struct cli_opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(run_opts); i++)
		if (strlen(run_opts[i].name) == len && !strncmp(run_opts[i].name, name, len))
			return &run_opts[i];
	return NULL;
}

/* Caps on --config: a file is a few dozen short lines; the longest value
 * is a kernel command line (Linux takes 2 KiB on x86). */
#define CLI_CONFIG_MAX      (1024 * 1024)
#define CLI_CONFIG_LINE_MAX (16 * 1024)

int cli_parse_config(char *text, const char *file, struct vm_config *cfg, struct ferr *e)
{
	char *save = NULL, *line;
	unsigned int lineno = 0;

	/* strtok_r would skip empty lines and so miscount them. */
	for (line = text; line; line = save) {
		char *key, *val, *end, *eq;
		const struct cli_opt *opt;
		struct ferr why;

		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		lineno++;
		if (strlen(line) > CLI_CONFIG_LINE_MAX)
			return ferr_set(e, -EINVAL, "%s:%u: line longer than %d bytes", file, lineno,
					CLI_CONFIG_LINE_MAX);
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq)
			return ferr_set(e, -EINVAL, "%s:%u: expected 'key = value'", file, lineno);
		key = line;
		for (end = eq; end > key && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		val = eq + 1;
		while (*val == ' ' || *val == '\t')
			val++;
		end = val + strlen(val);
		while (end > val && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			end--;
		*end = '\0';
		opt = find_opt(key, strlen(key));
		if (!opt || !opt->set)
			return ferr_set(e, -EINVAL, "%s:%u: unknown key '%s'", file, lineno, key);
		if (opt->set(cfg, val, &why) < 0)
			return ferr_set(e, -EINVAL, "%s:%u: %s", file, lineno, why.msg);
	}
	return 0;
}

/* --config is applied first, whatever its position, so that flags on the
 * command line override the file. */
static int load_config(int argc, char **argv, struct cli *out, struct ferr *e)
{
	const char *path = NULL;
	struct ferr why;
	size_t len;
	void *buf;
	int ret;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
	}
	if (!path)
		return 0;
	ret = read_file(path, CLI_CONFIG_MAX, &buf, &len);
	if (ret == -EFBIG)
		return ferr_set(e, ret, "--config %s: larger than %d bytes (is it the right file?)",
				path, CLI_CONFIG_MAX);
	if (ret < 0)
		return ferr_errno(e, ret, "--config %s: cannot read", path);
	out->config_text = realloc(buf, len + 1);
	if (!out->config_text) {
		free(buf);
		return ferr_set(e, -ENOMEM, "out of memory");
	}
	out->config_text[len] = '\0';
	if (strlen(out->config_text) != len)
		return ferr_set(e, -EINVAL, "--config %s: not a text file", path);
	ret = cli_parse_config(out->config_text, path, &out->vm, &why);
	if (ret < 0)
		return ferr_set(e, ret, "--config %s", why.msg);
	return 0;
}

static int parse_run(int argc, char **argv, struct cli *out, struct ferr *e)
{
	int ret;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			out->action = CLI_HELP;
			return 0;
		}
	}
	ret = load_config(argc, argv, out, e);
	if (ret < 0)
		return ret;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *name, *val, *eq;
		const struct cli_opt *opt;
		size_t len;

		if (strncmp(arg, "--", 2) != 0 || !arg[2])
			return ferr_set(e, -EINVAL, "unexpected argument '%s' (see 'ferry run --help')", arg);
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		opt = find_opt(name, len);
		if (!opt)
			return ferr_set(e, -EINVAL, "unknown option '--%.*s' (see 'ferry run --help')",
					(int)len, name);
		if (eq) {
			val = eq + 1;
		} else if (!opt->arg) {
			val = "on";  /* a flag without a value: --rng */
		} else {
			if (i + 1 >= argc)
				return ferr_set(e, -EINVAL, "--%s needs a value: %s", opt->name, opt->arg);
			val = argv[++i];
		}
		if (!opt->set)
			continue;  /* --config, applied above */
		ret = opt->set(&out->vm, val, e);
		if (ret < 0)
			return ret;
	}
	if (!out->vm.kernel)
		return ferr_set(e, -EINVAL, "--kernel is required (see 'ferry run --help')");
	return 0;
}

void cli_free(struct cli *cli)
{
	for (unsigned int i = 0; i < cli->vm.nr_disks; i++)
		free((char *)cli->vm.disks[i].path);  /* disk_config_parse's copy */
	cli->vm.nr_disks = 0;
	free(cli->config_text);
	cli->config_text = NULL;
}

int cli_parse(int argc, char **argv, struct cli *out, struct ferr *e)
{
	memset(out, 0, sizeof(*out));
	cli_vm_defaults(&out->vm);
	if (argc < 2)
		return ferr_set(e, -EINVAL, "no command given (see 'ferry --help')");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		static char *verb_help[] = { "--help", NULL };

		out->action = CLI_HELP;
		if (argc > 2 && !strcmp(argv[1], "help"))
			out->verb = argv[2];
		if (out->verb && ctl_is_verb(out->verb)) {
			/* The control verbs print their own help. */
			out->action = CLI_CTL;
			out->ctl_argc = 1;
			out->ctl_argv = verb_help;
		}
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		out->action = CLI_VERSION;
		return 0;
	}
	if (!strcmp(argv[1], "run")) {
		out->verb = "run";
		out->action = CLI_RUN;
		return parse_run(argc - 2, argv + 2, out, e);
	}
	if (ctl_is_verb(argv[1])) {
		out->verb = argv[1];
		out->action = CLI_CTL;
		out->ctl_argc = argc - 2;
		out->ctl_argv = argv + 2;
		return 0;
	}
	if (argv[1][0] == '-')
		return ferr_set(e, -EINVAL, "unknown option '%s' (see 'ferry --help')", argv[1]);
	return ferr_set(e, -EINVAL, "unknown command '%s' (see 'ferry --help')", argv[1]);
}

static void print_exit_codes(FILE *f)
{
	fprintf(f,
		"\nExit status:\n"
		"  %d  the guest powered off\n"
		"  %d  ferry could not start the VM (bad flags, no KVM, unbootable kernel)\n"
		"  %d  the guest reset the machine\n"
		"  %d  the guest crashed (triple fault, KVM internal error, failed entry)\n"
		"  %d  stopped from the host (Ctrl-A x, shutdown timeout)\n",
		FERRY_EXIT_POWEROFF, FERRY_EXIT_ERROR, FERRY_EXIT_RESET,
		FERRY_EXIT_CRASH, FERRY_EXIT_STOPPED);
}

void cli_print_help(FILE *f, const char *verb)
{
	if (verb && !strcmp(verb, "run")) {
		fprintf(f, "Usage: ferry run --kernel PATH [options]\n\n"
			   "Run one virtual machine in the foreground.\n\nOptions:\n");
		for (size_t i = 0; i < ARRAY_SIZE(run_opts); i++) {
			char left[64];

			snprintf(left, sizeof(left), "--%s%s%s", run_opts[i].name,
				 run_opts[i].arg ? " " : "", run_opts[i].arg ? run_opts[i].arg : "");
			fprintf(f, "  %-30s %s\n", left, run_opts[i].help);
		}
		fprintf(f, "\nOn a terminal, keys go to the guest's serial port; Ctrl-A x quits, Ctrl-A h helps.\n");
		print_exit_codes(f);
		return;
	}
	fprintf(f, "Usage: ferry COMMAND [options]\n\n"
		   "A KVM virtual machine monitor.\n\n"
		   "Commands:\n"
		   "  run        run a virtual machine (ferry run --help)\n"
		   "  status     state of a running VM (ferry status --api PATH [--json])\n"
		   "  pause, resume, shutdown, stop, stats, events\n"
		   "             control a running VM through its --api socket\n"
		   "  migrate    move a running VM to another ferry (ferry migrate --help)\n"
		   "  help CMD   help for a command\n\n"
		   "Options:\n"
		   "  --help     this help\n"
		   "  --version  print the version\n");
	print_exit_codes(f);
}
