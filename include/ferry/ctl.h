/* Command-line verbs that talk to a running ferry over its control socket:
 * ferry status|pause|resume|shutdown|stop|stats --api PATH [--json]. */
#ifndef FERRY_CTL_H
#define FERRY_CTL_H

/* Exit status of the control verbs. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_USAGE = 1,        /* bad flags */
	CTL_EXIT_CONNECT = 2,      /* cannot connect to the control socket */
	CTL_EXIT_REFUSED = 3,      /* not legal in the VM's current state */
	CTL_EXIT_FAILED = 4,       /* the request failed */
	/* ferry migrate; in each of these the source VM keeps running. */
	CTL_EXIT_MIG_CANCELLED = 5,
	CTL_EXIT_MIG_TIMEOUT = 6,  /* did not converge within --timeout */
	CTL_EXIT_MIG_REFUSED = 7,  /* the destination refused the stream */
	CTL_EXIT_MIG_CONNECT = 8,  /* cannot connect, or the connection broke */
};

/* @verb is "status", "pause", ...; argv holds the flags after the verb. */
int ctl_main(const char *verb, int argc, char **argv);
/* True if @verb is a control verb. */
int ctl_is_verb(const char *verb);

#endif
