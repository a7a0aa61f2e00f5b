/* `ferry run` flag parsing: values, defaults, and one clear error per bad
 * input that names the flag. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "ferry/cli.h"
#include "ferry/util.h"
#include "tap.h"

static int parse(struct cli *c, struct ferr *e, int n, const char **args)
{
	char *argv[32];

	for (int i = 0; i < n; i++)
		argv[i] = (char *)args[i];
	e->msg[0] = 0;
	return cli_parse(n, argv, c, e);
}

#define PARSE(c, e, ...) ({                                              \
	const char *_a[] = { "ferry", __VA_ARGS__ };                     \
	parse(c, e, (int)(sizeof(_a) / sizeof(_a[0])), _a);              \
})

TEST(defaults_and_values)
{
	struct cli c;
	struct ferr e;

	CHECK_EQ(PARSE(&c, &e, "run", "--kernel", "k.elf"), 0);
	CHECK_EQ(c.action, CLI_RUN);
	CHECK_STR(c.vm.kernel, "k.elf");
	CHECK_EQ(c.vm.mem_size, 256 * MiB);
	CHECK_EQ(c.vm.cpus, 1);
	CHECK_EQ(c.vm.serial, SERIAL_STDIO);
	CHECK_EQ(PARSE(&c, &e, "run", "--kernel=k", "--memory", "4G,hugepages=on,backing=memfd",
		       "--cpus=2", "--serial", "file:/tmp/x", "--cmdline", "a b",
		       "--name", "vm-1", "--log-level", "debug", "--initrd", "i"), 0);
	CHECK_EQ(c.vm.mem_size, 4 * GiB);
	CHECK(c.vm.hugepages);
	CHECK_EQ(c.vm.backing, GM_BACKING_MEMFD);
	CHECK_EQ(c.vm.cpus, 2);
	CHECK_EQ(c.vm.serial, SERIAL_FILE);
	CHECK_STR(c.vm.serial_path, "/tmp/x");
	CHECK_STR(c.vm.cmdline, "a b");
	CHECK_STR(c.vm.name, "vm-1");
	CHECK_EQ(c.vm.log_level, LOG_DEBUG);
	CHECK_STR(c.vm.initrd, "i");
}

TEST(help_and_version)
{
	struct cli c;
	struct ferr e;

	CHECK_EQ(PARSE(&c, &e, "--help"), 0);
	CHECK_EQ(c.action, CLI_HELP);
	CHECK_EQ(PARSE(&c, &e, "--version"), 0);
	CHECK_EQ(c.action, CLI_VERSION);
	CHECK_EQ(PARSE(&c, &e, "run", "--help"), 0);
	CHECK_EQ(c.action, CLI_HELP);
	CHECK_STR(c.verb, "run");
}

/* Each bad input: an error whose message contains @needle. */
#define BAD(needle, ...) do {                                            \
	struct cli _c; struct ferr _e;                                   \
	CHECK(PARSE(&_c, &_e, __VA_ARGS__) < 0);                         \
	if (!strstr(_e.msg, needle)) {                                   \
		printf("# message '%s' lacks '%s'\n", _e.msg, needle);   \
		tap_cur_failed = 1;                                      \
	}                                                                \
} while (0)

TEST(bad_inputs_name_the_flag)
{
	BAD("no command");
	BAD("unknown command 'fly'", "fly");
	BAD("unknown option '--bogus'", "run", "--kernel", "k", "--bogus", "1");
	BAD("unknown option '--bogus'", "run", "--bogus=1");
	BAD("--kernel is required", "run");
	BAD("--memory needs a value", "run", "--kernel", "k", "--memory");
	BAD("--memory: '12X' is not a size", "run", "--kernel", "k", "--memory", "12X");
	BAD("--memory: '1M' is out of range", "run", "--kernel", "k", "--memory", "1M");
	BAD("--memory: '99999999999999999999' is too large", "run", "--kernel", "k", "--memory", "99999999999999999999");
	BAD("--memory: '17M' is not a multiple of 2M", "run", "--kernel", "k", "--memory", "17M");
	BAD("--memory: unknown option 'huge=1'", "run", "--kernel", "k", "--memory", "1G,huge=1");
	BAD("--cpus: 'two' is not a number", "run", "--kernel", "k", "--cpus", "two");
	BAD("--cpus: 0 is out of range", "run", "--kernel", "k", "--cpus", "0");
	BAD("--cpus: 1000 is out of range", "run", "--kernel", "k", "--cpus", "1000");
	BAD("--serial: 'tty' is not", "run", "--kernel", "k", "--serial", "tty");
	BAD("--serial: 'file:' is not", "run", "--kernel", "k", "--serial", "file:");
	BAD("--log-level: 'loud'", "run", "--kernel", "k", "--log-level", "loud");
	BAD("--name: 'a b' has ' '", "run", "--kernel", "k", "--name", "a b");
	BAD("unexpected argument 'extra'", "run", "--kernel", "k", "extra");
}

TEST(config_file_lines)
{
	struct vm_config cfg;
	struct ferr e = { "" };
	char text[] = "# a VM\n\nkernel = /k.elf\n  memory=1G \ncpus\t= 2\r\n"
		      "cmdline = console=ttyS0 testguest.run=selftest\n";

	cli_vm_defaults(&cfg);
	CHECK_EQ(cli_parse_config(text, "vm.conf", &cfg, &e), 0);
	CHECK_STR(cfg.kernel, "/k.elf");
	CHECK_EQ(cfg.mem_size, 1 * GiB);
	CHECK_EQ(cfg.cpus, 2);
	/* Only the first '=' splits: the value keeps its own. */
	CHECK_STR(cfg.cmdline, "console=ttyS0 testguest.run=selftest");
}

TEST(config_file_errors_name_file_and_line)
{
	struct vm_config cfg;
	struct ferr e = { "" };
	char unknown[] = "kernel = k\n\nwings = 2\n";
	char bad_value[] = "memory = 1G\nmemory = 12X\n";
	char no_equals[] = "kernel k\n";
	char nested[] = "config = other.conf\n";

	cli_vm_defaults(&cfg);
	CHECK(cli_parse_config(unknown, "vm.conf", &cfg, &e) < 0);
	CHECK_STR(e.msg, "vm.conf:3: unknown key 'wings'");
	CHECK(cli_parse_config(bad_value, "vm.conf", &cfg, &e) < 0);
	CHECK_STR(e.msg, "vm.conf:2: --memory: '12X' is not a size (use e.g. 512M or 4G)");
	CHECK(cli_parse_config(no_equals, "a.conf", &cfg, &e) < 0);
	CHECK_STR(e.msg, "a.conf:1: expected 'key = value'");
	CHECK(cli_parse_config(nested, "a.conf", &cfg, &e) < 0);
	CHECK_STR(e.msg, "a.conf:1: unknown key 'config'");
}

TEST(flags_override_config_file)
{
	char path[] = "/tmp/ferry-conf-XXXXXX";
	int fd = mkstemp(path);
	const char conf[] = "kernel = /from-file\ncpus = 4\nmemory = 512M\n";
	struct cli c;
	struct ferr e;

	CHECK(fd >= 0);
	CHECK(write(fd, conf, sizeof(conf) - 1) == (ssize_t)sizeof(conf) - 1);
	close(fd);
	CHECK_EQ(PARSE(&c, &e, "run", "--cpus", "2", "--config", path), 0);
	CHECK_STR(c.vm.kernel, "/from-file");
	CHECK_EQ(c.vm.cpus, 2);
	CHECK_EQ(c.vm.mem_size, 512 * MiB);
	cli_free(&c);
	CHECK(PARSE(&c, &e, "run", "--config", "/nonexistent/x.conf") < 0);
	CHECK_STR(e.msg, "--config /nonexistent/x.conf: cannot read: No such file or directory");
	cli_free(&c);
	unlink(path);
}

/* --config's caps: a 16 KiB line and a 1 MiB file, each refused with a
 * message that says which (and never read without bound). */
TEST(config_file_limits)
{
	char path[] = "/tmp/ferry-conf-XXXXXX";
	size_t big = 1024 * 1024 + 1, n = 16 * 1024 + 1;
	char *text = malloc(big), want[128];
	struct vm_config cfg;
	struct cli c;
	struct ferr e;
	int fd;

	CHECK(text != NULL);
	if (!text)
		return;
	/* Line 2 holds a value just past the cap; one byte less is fine. */
	memcpy(text, "cpus = 1\ncmdline = ", 19);
	memset(text + 19, 'x', n - 10);
	text[19 + n - 10] = '\0';
	cli_vm_defaults(&cfg);
	CHECK(cli_parse_config(text, "vm.conf", &cfg, &e) < 0);
	CHECK_STR(e.msg, "vm.conf:2: line longer than 16384 bytes");
	/* The parser cuts the text in place: write it again. */
	memcpy(text, "cpus = 1\ncmdline = ", 19);
	text[19 + n - 11] = '\0';
	cli_vm_defaults(&cfg);
	CHECK_EQ(cli_parse_config(text, "vm.conf", &cfg, &e), 0);

	fd = mkstemp(path);
	CHECK(fd >= 0);
	memset(text, '#', big);
	CHECK(write(fd, text, big) == (ssize_t)big);
	close(fd);
	CHECK(PARSE(&c, &e, "run", "--config", path) < 0);
	snprintf(want, sizeof(want), "--config %s: larger than 1048576 bytes (is it the right file?)", path);
	CHECK_STR(e.msg, want);
	cli_free(&c);
	unlink(path);
	free(text);
}

int main(void)
{
	RUN(defaults_and_values);
	RUN(help_and_version);
	RUN(bad_inputs_name_the_flag);
	RUN(config_file_lines);
	RUN(config_file_errors_name_file_and_line);
	RUN(flags_override_config_file);
	RUN(config_file_limits);
	return tap_done();
}
