/* The module loader: finds ferry-NAME.so next to the executable (the build
 * tree) or in FERRY_MODULE_DIR (the install), dlopen()s it and checks that
 * it comes from this very build before anyone calls through its ops table.
 * What the modules hold and why: include/ferry/module.h. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/migrate.h"
#include "ferry/module.h"
#include "ferry/vm.h"

#ifdef FERRY_TEST_HOOKS
static const char *module_test_dir;

void module_test_set_dir(const char *dir)
{
	module_test_dir = dir;
}
#endif

/* The directory ferry runs from: in the build tree the modules sit next
 * to the executable, so a build runs without being installed. */
static int module_exe_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

/* dlopen @path and check its entry; the handle stays open for good (the
 * stubs keep calling into it until exit). */
static const void *module_open(const char *path, const char *name, const char *what,
			       size_t ops_size, struct ferr *e)
{
	const struct ferry_module_head *h;
	void *dl;

	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *why = dlerror();
		size_t plen = strlen(path);

		/* dlerror() often repeats the path: say it once. */
		if (!strncmp(why, path, plen) && !strncmp(why + plen, ": ", 2))
			why += plen + 2;
		ferr_set(e, -ENOEXEC, "cannot load the %s module %s: %s", what, path, why);
		return NULL;
	}
	h = dlsym(dl, FERRY_MODULE_ENTRY);
	if (!h) {
		ferr_set(e, -ENOEXEC, "cannot load the %s module %s: no %s symbol: not a ferry module",
			 what, path, FERRY_MODULE_ENTRY);
		goto fail;
	}
	if (strncmp(h->stamp, FERRY_MODULE_STAMP, sizeof(h->stamp)) ||
	    strncmp(h->name, name, sizeof(h->name)) || h->ops_size != ops_size ||
	    h->sizes != FERRY_MODULE_SIZES) {
		ferr_set(e, -ENOEXEC, "cannot load the %s module %s: built for ferry '%.*s' (layout %u.%u), this is '%s' (layout %u.%zu); install the modules of this ferry's build",
			 what, path, (int)strnlen(h->stamp, sizeof(h->stamp)), h->stamp, h->sizes,
			 h->ops_size, FERRY_MODULE_STAMP, FERRY_MODULE_SIZES, ops_size);
		goto fail;
	}
	log_debug("loaded the %s module %s", what, path);
	return h;
fail:
	dlclose(dl);
	return NULL;
}

const void *module_load(const char *name, const char *what, const char *option,
			size_t ops_size, struct ferr *e)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	const char *dirs[2];
	int n = 0;

	if (module_exe_dir(exe, sizeof(exe)) == 0)
		dirs[n++] = exe;
	dirs[n++] = FERRY_MODULE_DIR;
#ifdef FERRY_TEST_HOOKS
	if (!module_test_dir)
		module_test_dir = getenv("FERRY_TEST_MODULE_DIR");
	if (module_test_dir) {
		dirs[0] = module_test_dir;
		n = 1;
	}
#endif
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/ferry-%s.so", dirs[i], name);
		/* Only a missing file moves on: a broken one is an error. */
		if (access(path, F_OK) == 0)
			return module_open(path, name, what, ops_size, e);
	}
	ferr_set(e, -ENOENT, "cannot load the %s module: no ferry-%s.so in %s%s%s; install ferry's modules or rebuild with -D%s=enabled",
		 what, name, dirs[0], n > 1 ? " or " : "", n > 1 ? dirs[1] : "", option);
	return NULL;
}
