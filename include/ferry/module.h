/* On-demand modules (src/module.c): the parts of ferry that pull in big
 * libraries (GnuTLS for the migration channel, libiscsi for iSCSI disks)
 * are shared objects that ferry loads at start-up only when the
 * configuration needs them, so that every other ferry stays small.
 *
 * A module exports one symbol, FERRY_MODULE_ENTRY: its ops table, which
 * starts with a struct ferry_module_head.  The core keeps forwarding stubs
 * with the public names (mig_tls_*, blk_iscsi_*) that call through it. */
#ifndef FERRY_MODULE_H
#define FERRY_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ferry/err.h"

/* FERRY_VERSION and FERRY_BUILD_ID come from config.h: include it first. */

/* Bump when an ops table below or a structure that crosses the boundary
 * (vm_config, disk_config, blk_backend, mig_chan, ferr, loop API) changes
 * incompatibly.  FERRY_BUILD_ID (config.h) also differs per configured
 * build, so a module from another build is refused even when this is not
 * bumped; FERRY_MODULE_SIZES catches a changed structure. */
#define FERRY_MODULE_ABI 2
#define FERRY_MODULE_STR_(x) #x
#define FERRY_MODULE_STR(x) FERRY_MODULE_STR_(x)
/* The stamp a module carries and the loader compares byte for byte. */
#define FERRY_MODULE_STAMP \
	FERRY_VERSION " abi " FERRY_MODULE_STR(FERRY_MODULE_ABI) " build " FERRY_BUILD_ID

#define FERRY_MODULE_ENTRY "ferry_module_entry"
#define FERRY_MODULE_EXPORT __attribute__((visibility("default")))

/* The sizes of what crosses the boundary: a stale module of the same
 * build directory whose headers changed since.  Needs ferry/vm.h,
 * ferry/blk.h and ferry/migrate.h. */
#define FERRY_MODULE_SIZES ((uint32_t)(sizeof(struct vm_config) * 31 + \
	sizeof(struct disk_config) * 17 + sizeof(struct mig_chan) * 7 + \
	sizeof(struct blk_backend) * 5 + sizeof(struct ferr) * 3))

struct ferry_module_head {
	char stamp[96];                 /* FERRY_MODULE_STAMP of its build */
	char name[16];                  /* "tls", "iscsi" */
	uint32_t ops_size;              /* sizeof the whole ops table */
	uint32_t sizes;                 /* FERRY_MODULE_SIZES */
};

/* The TLS channel (migrate/tls.c in ferry-tls.so); see ferry/mig_tls.h. */
struct vm_config;
struct mig_tls;
struct mig_tls_sess;
struct mig_chan;
struct mig_tls_module_ops {
	struct ferry_module_head head;
	int (*create)(const struct vm_config *cfg, struct mig_tls **out, struct ferr *e);
	void (*destroy)(struct mig_tls *t);
	int (*client)(struct mig_tls *t, int fd, const char *host, struct mig_chan *ch,
		      struct ferr *e);
	int (*server)(struct mig_tls *t, int fd, struct mig_chan *ch, struct ferr *e);
	void (*end)(struct mig_chan *ch);
	ssize_t (*send)(struct mig_tls_sess *s, const void *buf, size_t len);
	ssize_t (*recv)(struct mig_tls_sess *s, void *buf, size_t len);
	size_t (*pending)(struct mig_tls_sess *s);
};

/* The iSCSI backend (virtio/blk_iscsi*.c in ferry-iscsi.so); see ferry/blk.h. */
struct disk_config;
struct dev_env;
struct blk_backend;
struct blk_iscsi_module_ops {
	struct ferry_module_head head;
	struct blk_backend *(*open)(const struct disk_config *cfg, const struct dev_env *env,
				    unsigned int queue_depth, struct ferr *e);
	int (*pr_takeover)(struct blk_backend *b, uint64_t src_key, struct ferr *e);
	int (*pr_state)(struct blk_backend *b, uint64_t *key, bool *holder);
};

/* Load module @name ("tls" -> ferry-tls.so) once per process and return
 * its ops table (never unloaded), or NULL with the reason in @e: the file
 * looked for, what failed, and what to do.  @what names the feature for
 * the message ("TLS", "iSCSI"), @option the meson option that builds it.
 * Searched: the directory of /proc/self/exe (the build tree), then
 * FERRY_MODULE_DIR.  Call at start-up only: before privileges are dropped,
 * the chroot and the seccomp filters. */
const void *module_load(const char *name, const char *what, const char *option,
			size_t ops_size, struct ferr *e);

/* Test builds (-Dtest_hooks=true) only: search @dir alone (NULL: the
 * normal order).  ferry itself takes it from FERRY_TEST_MODULE_DIR. */
void module_test_set_dir(const char *dir);

#endif
