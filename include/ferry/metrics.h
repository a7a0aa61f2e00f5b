/* Prometheus metrics of one VMM (--metrics unix:PATH or file:PATH), built
 * from the same stats object as the control socket's "stats" reply.  The
 * serving modes are described at the top of src/metrics.c. */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stddef.h>

#include "ferry/err.h"

struct vmm;
struct metrics;
struct json_object;

/* Start serving cfg->metrics on the VMM's loop; sets m->metrics.  Nothing
 * to do (0) when cfg->metrics is NULL. */
int metrics_create(struct vmm *m, struct ferr *e);
/* file: writes a last snapshot (state "stopped") before it goes.  NULL is
 * fine. */
void metrics_destroy(struct metrics *mt);

/* The text exposition format of @stats (from stats_build()) for VM @name,
 * in a malloc'd NUL-terminated buffer; NULL when out of memory. */
char *metrics_format(struct json_object *stats, const char *name, size_t *len);

#endif
