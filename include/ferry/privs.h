/* Least privilege: once ferry holds every descriptor it needs, it drops all
 * capabilities (bounding set and ambient too), locks the securebits, sets
 * no_new_privs, optionally chroots and switches to --user.  src/privs.c. */
#ifndef FERRY_PRIVS_H
#define FERRY_PRIVS_H

#include <stddef.h>

#include "ferry/err.h"
#include "ferry/vm.h"

struct json_object;

#define PRIVS_NAME_MAX 256

/* Split --user's "USER[:GROUP]" into @user and @group (empty when absent),
 * each up to PRIVS_NAME_MAX - 1 bytes.  Names are not looked up here.
 * Returns 0 or -EINVAL with the reason in @e. */
int privs_parse_user(const char *spec, char *user, char *group, struct ferr *e);

/* A decimal uid/gid: 0 and *out set, or -EINVAL (not a number, or the
 * value (uid_t)-1 that the kernel reads as "unchanged"). */
int privs_parse_id(const char *s, unsigned int *out);

/* Drop privileges as cfg->user, cfg->chroot_dir and cfg->allow_root say.
 * Call it once, from the only thread of the process (capabilities are per
 * thread; every thread created later inherits the result), after every
 * descriptor that needs a privilege is open.  A failure leaves ferry unfit
 * to run: the caller stops. */
int privs_drop(const struct vm_config *cfg, struct ferr *e);

/* The "privileges" member of the control socket's status reply: user, uid,
 * group, gid, capabilities (effective, by name), no_new_privs, chroot.
 * NULL when out of memory. */
struct json_object *privs_status_json(void);

#endif
