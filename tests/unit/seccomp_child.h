/* Real seccomp filters in forked children for unit tests (test_seccomp.c,
 * test_blk_uring.c): run a function under a role's filter and read how the
 * child ended.  Include after config.h; empty without libseccomp. */
#ifndef FERRY_TESTS_SECCOMP_CHILD_H
#define FERRY_TESTS_SECCOMP_CHILD_H

#include "config.h"

#ifdef HAVE_LIBSECCOMP
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ferry/err.h"
#include "ferry/seccomp.h"

/* Run @fn in a child under @role's filter (mode on); its wait status. */
static inline int in_child(enum seccomp_role role, int (*fn)(void))
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		struct ferr e;

		if (seccomp_setup(SECCOMP_MODE_ON, &e) < 0)
			_exit(100);
		seccomp_enter(role);
		_exit(fn());  /* _exit: no sanitizer exit work under the filter */
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* A wait status from in_child(): the filter killed the child. */
static inline bool killed_by_sigsys(int status)
{
	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}
#endif /* HAVE_LIBSECCOMP */

#endif
