/* What a running VMM reports about itself: the "status" object (identity,
 * state, shape of the machine) and the "stats" object (counters).  The
 * control socket returns them as they are; metrics.c turns "stats" into
 * Prometheus text, so both always agree. */
#ifndef FERRY_STATS_H
#define FERRY_STATS_H

#include <stdint.h>

struct vmm;
struct json_object;

/* New objects, or NULL when out of memory.  Loop thread only (they read
 * the VMM's state); vCPU counters are read lock-free. */
struct json_object *stats_status(struct vmm *m);
struct json_object *stats_build(struct vmm *m);

/* Resident set size of this process in bytes, 0 if unknown. */
uint64_t stats_rss_bytes(void);
/* Seconds since the vCPUs started, 0 before. */
double stats_uptime_s(const struct vmm *m);

#endif
