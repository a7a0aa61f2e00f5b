/* Error values with a human-readable reason.
 *
 * ferry's convention: functions return 0 or a negative errno.  Where the errno
 * alone cannot say what went wrong (a malformed kernel image, a bad flag
 * value), the function also fills a caller-provided struct ferr.  The caller
 * adds its own context ("--kernel foo: ") when it prints the message.
 */
#ifndef FERRY_ERR_H
#define FERRY_ERR_H

#include <stddef.h>

struct ferr {
	char msg[256];
};

/* Format a reason into @e (if non-NULL) and return @err (a negative errno),
 * so that call sites read: return ferr_set(e, -EINVAL, "bad magic %x", m); */
int ferr_set(struct ferr *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like ferr_set, with strerror(-err) appended: "cannot open x: No such file". */
int ferr_errno(struct ferr *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
