/* The VMM around one VM: its life cycle (states), the event loop with
 * signals and the shutdown timer, and the operator's hooks (control socket,
 * systemd notifications).  Everything here runs on the event loop thread. */
#ifndef FERRY_VMM_H
#define FERRY_VMM_H

#include <stdbool.h>

#include "ferry/err.h"
#include "ferry/vm.h"

enum vmm_state {
	VMM_STARTING,        /* building the machine */
	VMM_INCOMING,        /* --incoming/--restore: waiting for, receiving or
			      * loading the VM; it runs once that is done */
	VMM_RUNNING,
	VMM_PAUSED,
	VMM_SHUTTING_DOWN,   /* power button pressed, waiting for the guest */
	VMM_STOPPED,
};

struct loop;
struct console;
struct api;
struct metrics;
struct mig;
struct mig_in;
struct mig_tls;

struct vmm {
	const struct vm_config *cfg;
	struct vm vm;
	struct loop *loop;
	enum vmm_state state;
	int signal_fd;
	int shutdown_timer_fd;
	unsigned int shutdown_timeout_s;  /* of the shutdown under way */
	struct console *console;
	struct api *api;
	struct metrics *metrics;
	struct mig *mig;                  /* the last outgoing migration */
	struct mig_in *mig_in;            /* an incoming one, until acked */
	struct mig_tls *mig_tls;          /* migration credentials; NULL: plain TCP */
};

/* Build, run and tear down the VM; returns ferry's exit status. */
int vmm_run(const struct vm_config *cfg);

const char *vmm_state_name(enum vmm_state s);

/* Operator actions.  Each returns 0, or -EBUSY when not legal in the
 * current state (the API reports which states allow it). */
int vmm_pause(struct vmm *m);
int vmm_resume(struct vmm *m);
/* Press the ACPI power button; stop after @timeout_s if still running
 * (0: the configured --shutdown-timeout). */
int vmm_shutdown(struct vmm *m, unsigned int timeout_s);
/* Stop at once, like pulling the plug. */
int vmm_stop(struct vmm *m);

#endif
