/* Private to the source end of a migration: the record of one migration
 * (struct mig), shared by the control side in migrate.c (start, cancel,
 * status, the event loop's calls) and the thread that sends it in
 * source.c.  g->lock guards fd, prog and call. */
#ifndef FERRY_MIGRATE_MIG_INT_H
#define FERRY_MIGRATE_MIG_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry/migrate.h"

struct vm;

enum mig_phase { PH_NONE, PH_SETUP, PH_ACTIVE, PH_SWITCHOVER, PH_DONE };
enum mig_call { MIG_CALL_NONE, MIG_CALL_QUIESCE, MIG_CALL_RESUME };

struct mig_progress {
	enum mig_phase phase;
	enum mig_outcome outcome;
	char error[256];
	uint64_t ram_pages;
	uint64_t remaining_pages;
	uint64_t round;
	uint64_t bytes, pages, zero_pages;
	uint64_t bandwidth, dirty_rate;         /* bytes per second */
	uint64_t expected_downtime_ns;
	unsigned int throttle_pct;
	bool stalled;
	uint64_t total_ns, downtime_ns, dest_load_us;
};

struct mig {
	struct vmm *vmm;
	struct mig_params p;
	char host[256], port[32], uri[300];
	char *path, *tmp;               /* a snapshot: the file, and FILE.tmp */
	bool was_paused;                /* a snapshot of a paused VM: stays so */
	pthread_t thread, kicker;
	bool joined;
	int notify_efd;
	int cancel;                     /* atomic */
	int done;                       /* atomic: the thread finished */
	pthread_mutex_t lock;           /* guards fd, prog and call */
	int fd;
	/* Device quiesce and resume run on the event loop (devices are
	 * single-threaded there): the thread posts a call, mig_on_notify()
	 * runs it and signals call_cond. */
	pthread_cond_t call_cond;
	int call;                       /* MIG_CALL_*, MIG_CALL_NONE when none */
	int call_ret;
	struct mig_progress prog;
	uint64_t start_ns, last_event_ns;
};

/* source.c: the migration thread, the vCPU throttle's kicker, and the
 * device quiesce/resume that the event loop runs for the thread. */
void *mig_thread(void *arg);
void *mig_kicker(void *arg);
int mig_devices_quiesce(struct vm *vm);
void mig_devices_resume(struct vm *vm);

#endif
