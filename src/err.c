/* struct ferr: a negative errno plus a sentence saying what went wrong. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ferry/err.h"

int ferr_set(struct ferr *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return err;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return err;
}

int ferr_errno(struct ferr *e, int err, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!e)
		return err;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(-err));
	return err;
}
