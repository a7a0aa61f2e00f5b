/* seccomp system call filters: one allowlist per thread role, installed by
 * each thread on itself once start-up is over (src/seccomp.c explains why
 * the event loop's list is the widest). */
#ifndef FERRY_SECCOMP_H
#define FERRY_SECCOMP_H

#include <stdbool.h>

#include "ferry/err.h"

/* struct vm_config.seccomp.  DEFAULT is 0 so that a zeroed config means
 * "on where ferry has libseccomp, else off (with a log line)". */
enum seccomp_mode {
	SECCOMP_MODE_DEFAULT = 0,
	SECCOMP_MODE_ON,       /* a forbidden call kills ferry, logged */
	SECCOMP_MODE_LOG,      /* the kernel logs forbidden calls; ferry goes on */
	SECCOMP_MODE_OFF,
};

enum seccomp_role {
	SECCOMP_ROLE_VCPU,       /* KVM_RUN and the device exits it handles */
	SECCOMP_ROLE_LOOP,       /* main thread: loop, control API, device I/O */
	SECCOMP_ROLE_MIGRATION,  /* either end of a migration or snapshot */
	SECCOMP_ROLE_COUNT,
};

/* --seccomp=on|log|off.  "on" is refused where ferry was built without
 * libseccomp. */
int seccomp_parse_mode(const char *val, int *mode, struct ferr *e);
const char *seccomp_mode_name(int mode);
/* "vcpu", "loop", "migration"; NULL for a bad role. */
const char *seccomp_role_name(enum seccomp_role role);

/* Decide the mode (DEFAULT becomes on or off) and build every role's
 * filter; nothing is installed yet.  Once, on the main thread, before any
 * thread that calls seccomp_enter() starts. */
int seccomp_setup(int mode, struct ferr *e);

/* The filters in force since seccomp_setup(): SECCOMP_MODE_ON, _LOG or
 * _OFF (for status). */
int seccomp_mode_now(void);

/* Install @role's filter on the calling thread (a no-op when the mode is
 * off).  Put it at the top of a thread function, once the thread has done
 * what only start-up may do.  Filters stack: a thread created after its
 * creator entered a role keeps that role's limits as well.  A thread that
 * cannot be filtered ends ferry rather than run unfiltered. */
void seccomp_enter(enum seccomp_role role);

/* The allowlists, for tests: whether @role may ever make system call @nr
 * (with some arguments), and whether it may issue ioctl @req. */
bool seccomp_role_allows(enum seccomp_role role, int nr);
bool seccomp_role_allows_ioctl(enum seccomp_role role, unsigned long req);

#endif
