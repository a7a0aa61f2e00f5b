/* The module loader (src/module.c): a missing, a broken and a stale module
 * are refused with a message naming the file and what to do; a module of
 * this build loads and its ops work.  The real modules are tried end to
 * end by tests/integration/modules.sh. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ferry/module.h"
#include "tap.h"

#ifdef FERRY_TEST_HOOKS
#include "module_fake.h"

static char exe_dir[4096];
static char empty_dir[] = "/tmp/ferry-test-module.XXXXXX";

TEST(missing_module_says_where_and_what_to_do)
{
	struct ferr e = { "" };
	char want[4200];

	module_test_set_dir(empty_dir);
	CHECK(module_load("tls", "TLS", "tls", sizeof(struct mig_tls_module_ops), &e) == NULL);
	snprintf(want, sizeof(want), "no ferry-tls.so in %s", empty_dir);
	CHECK(strstr(e.msg, "cannot load the TLS module") != NULL);
	CHECK(strstr(e.msg, want) != NULL);
	CHECK(strstr(e.msg, "-Dtls=enabled") != NULL);
	printf("# %s\n", e.msg);
}

TEST(broken_module_is_an_error)
{
	struct ferr e = { "" };
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/ferry-iscsi.so", empty_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, "not an ELF file\n", 16) == 16);
	close(fd);
	module_test_set_dir(empty_dir);
	CHECK(module_load("iscsi", "iSCSI", "iscsi", sizeof(struct blk_iscsi_module_ops), &e) == NULL);
	CHECK(strstr(e.msg, "cannot load the iSCSI module") != NULL);
	CHECK(strstr(e.msg, path) != NULL);
	printf("# %s\n", e.msg);
	unlink(path);
}

TEST(stale_module_is_refused_with_both_stamps)
{
	struct ferr e = { "" };

	module_test_set_dir(exe_dir);
	CHECK(module_load("fakestale", "fake", "fake", sizeof(struct module_fake_ops), &e) == NULL);
	CHECK(strstr(e.msg, "ferry-fakestale.so") != NULL);
	CHECK(strstr(e.msg, "'0.0.1 abi 0 build 000000000000'") != NULL);
	CHECK(strstr(e.msg, FERRY_MODULE_STAMP) != NULL);
	printf("# %s\n", e.msg);
}

TEST(module_of_another_kind_or_size_is_refused)
{
	struct ferr e = { "" };

	module_test_set_dir(exe_dir);
	/* Its table is not the size this caller expects. */
	CHECK(module_load("fakegood", "fake", "fake", sizeof(struct module_fake_ops) + 8, &e) == NULL);
	CHECK(strstr(e.msg, "ferry-fakegood.so") != NULL);
}

TEST(module_of_this_build_loads)
{
	const struct module_fake_ops *ops;
	struct ferr e = { "" };

	module_test_set_dir(exe_dir);
	ops = module_load("fakegood", "fake", "fake", sizeof(*ops), &e);
	CHECK(ops != NULL);
	if (!ops) {
		printf("# %s\n", e.msg);
		return;
	}
	CHECK_STR(ops->head.name, "fakegood");
	CHECK_EQ(ops->answer(), 42);
}

int main(void)
{
	ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof(exe_dir) - 1);

	if (n <= 0 || !mkdtemp(empty_dir)) {
		printf("Bail out! cannot find /proc/self/exe or make a temporary directory\n");
		return 1;
	}
	exe_dir[n] = '\0';
	*strrchr(exe_dir, '/') = '\0';
	RUN(missing_module_says_where_and_what_to_do);
	RUN(broken_module_is_an_error);
	RUN(stale_module_is_refused_with_both_stamps);
	RUN(module_of_another_kind_or_size_is_refused);
	RUN(module_of_this_build_loads);
	rmdir(empty_dir);
	return tap_done();
}
#else
TAP_SKIP_ALL("the loader's test directory needs -Dtest_hooks=true")
#endif
