/* systemd integration without libsystemd: the sd_notify datagram protocol
 * (READY=1, STATUS=, STOPPING=1, WATCHDOG=1) when NOTIFY_SOCKET is set, and
 * socket activation (LISTEN_FDS/LISTEN_PID) of the control socket.  Every
 * function is a no-op outside systemd. */
#ifndef FERRY_NOTIFY_H
#define FERRY_NOTIFY_H

struct vmm;

void notify_ready(void);
void notify_status(const char *status);
void notify_stopping(void);
/* The listening socket passed by systemd (first of LISTEN_FDS, when
 * LISTEN_PID is ours), or -1.  Validated once, cached. */
int notify_listen_fd(void);
/* When WATCHDOG_USEC is set (and WATCHDOG_PID is ours or unset), send
 * WATCHDOG=1 every half period from the event loop while the VMM is
 * healthy.  Returns 0 or a negative errno. */
int notify_watchdog_start(struct vmm *m);
void notify_watchdog_stop(struct vmm *m);

#endif
