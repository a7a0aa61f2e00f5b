/* One VM's life: create it, run the event loop (stop eventfd, signals,
 * shutdown timer, console, control socket), move between states and tell
 * the operator about each change, then turn the stop into an exit status. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ferry/api.h"
#include "ferry/console.h"
#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/metrics.h"
#include "ferry/mig_tls.h"
#include "ferry/migrate.h"
#include "ferry/notify.h"
#include "ferry/privs.h"
#include "ferry/seccomp.h"
#include "ferry/vmm.h"

const char *vmm_state_name(enum vmm_state s)
{
	switch (s) {
	case VMM_STARTING: return "starting";
	case VMM_INCOMING: return "incoming";
	case VMM_RUNNING: return "running";
	case VMM_PAUSED: return "paused";
	case VMM_SHUTTING_DOWN: return "shutting-down";
	case VMM_STOPPED: return "stopped";
	}
	return "unknown";
}

/* The one place a state changes: the control socket's subscribers and
 * systemd hear of it here. */
static void vmm_set_state(struct vmm *m, enum vmm_state s)
{
	if (m->state == s)
		return;
	log_info("VM '%s': %s -> %s", m->cfg->name, vmm_state_name(m->state),
		 vmm_state_name(s));
	m->state = s;
	notify_status(vmm_state_name(s));
	api_event_state(m->api, vmm_state_name(s));
}

int vmm_pause(struct vmm *m)
{
	int ret;

	/* A migration pauses and resumes the vCPUs itself. */
	if (m->state != VMM_RUNNING || mig_active(m))
		return -EBUSY;
	ret = vm_pause(&m->vm);
	if (ret < 0)
		return ret;
	vmm_set_state(m, VMM_PAUSED);
	return 0;
}

int vmm_resume(struct vmm *m)
{
	/* A snapshot of a paused VM must find it paused at the end. */
	if (m->state != VMM_PAUSED || mig_active(m))
		return -EBUSY;
	vm_resume(&m->vm);
	vmm_set_state(m, VMM_RUNNING);
	return 0;
}

int vmm_shutdown(struct vmm *m, unsigned int timeout_s)
{
	struct itimerspec its = { 0 };

	if (m->state != VMM_RUNNING && m->state != VMM_PAUSED)
		return -EBUSY;
	/* A paused guest cannot see the button: let it run to answer. */
	if (m->state == VMM_PAUSED)
		vm_resume(&m->vm);
	pm_power_button(m->vm.pm);
	m->shutdown_timeout_s = timeout_s ? timeout_s : m->cfg->shutdown_timeout_s;
	its.it_value.tv_sec = m->shutdown_timeout_s;
	if (its.it_value.tv_sec)
		timerfd_settime(m->shutdown_timer_fd, 0, &its, NULL);
	vmm_set_state(m, VMM_SHUTTING_DOWN);
	return 0;
}

/* While incoming, this cancels the migration (vmm_run joins the receive
 * thread); the source keeps its VM. */
int vmm_stop(struct vmm *m)
{
	if (m->state == VMM_STOPPED || m->state == VMM_STARTING)
		return -EBUSY;
	vm_request_stop(&m->vm, VM_STOP_HOST);
	return 0;
}

static void on_vm_stop(struct loop *l, int fd, uint32_t events, void *opaque)
{
	eventfd_t v;

	(void)events; (void)opaque;
	if (eventfd_read(fd, &v) < 0 && errno != EAGAIN)
		log_warn("stop eventfd: %s", strerror(errno));
	loop_quit(l);
}

static void on_shutdown_timeout(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vmm *m = opaque;
	uint64_t ticks;

	(void)l; (void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0)
		return;
	log_warn("the guest did not power off within %u s; stopping it",
		 m->shutdown_timeout_s);
	vm_request_stop(&m->vm, VM_STOP_HOST);
}

/* SIGTERM/SIGINT: ask the guest to power off, stop it after the timeout;
 * a second signal stops it at once. */
static void on_signal(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vmm *m = opaque;
	struct signalfd_siginfo si;

	(void)l; (void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (m->state == VMM_INCOMING) {
		log_info("signal %u: cancelling the incoming migration", si.ssi_signo);
		vm_request_stop(&m->vm, VM_STOP_HOST);
		return;
	}
	if (m->state == VMM_SHUTTING_DOWN || m->cfg->shutdown_timeout_s == 0 ||
	    vmm_shutdown(m, 0) < 0) {
		log_info("signal %u: stopping the VM", si.ssi_signo);
		vm_request_stop(&m->vm, VM_STOP_HOST);
		return;
	}
	log_info("signal %u: pressed the power button (stop in %u s)", si.ssi_signo,
		 m->cfg->shutdown_timeout_s);
}

/* stdin -> UART.  An incoming VM's UART belongs to the receive thread
 * until the migration is in (migrate/incoming.c): connected then. */
static int vmm_setup_console(struct vmm *m, struct ferr *e)
{
	/* With --console virtio, stdin belongs to hvc0 (virtio/console.c). */
	if (m->cfg->serial == SERIAL_STDIO && m->cfg->console == CONSOLE_SERIAL && !m->console) {
		m->console = console_create(m->loop, &m->vm);
		if (!m->console)
			return ferr_set(e, -ENOMEM, "cannot set up the serial console on stdin");
	}
	return 0;
}

static int vmm_setup_loop(struct vmm *m, const sigset_t *sigs, struct ferr *e)
{
	m->signal_fd = signalfd(-1, sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	m->shutdown_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->signal_fd < 0 || m->shutdown_timer_fd < 0)
		return ferr_errno(e, -errno, "cannot create the event loop's descriptors");
	if (loop_add(m->loop, m->vm.stop_efd, EPOLLIN, on_vm_stop, m) < 0 ||
	    loop_add(m->loop, m->signal_fd, EPOLLIN, on_signal, m) < 0 ||
	    loop_add(m->loop, m->shutdown_timer_fd, EPOLLIN, on_shutdown_timeout, m) < 0)
		return ferr_errno(e, -errno, "cannot set up the event loop");
	if (!m->cfg->incoming && vmm_setup_console(m, e) < 0)
		return -ENOMEM;
	if (m->cfg->api_path || notify_listen_fd() >= 0) {
		int ret = api_create(m, e);

		if (ret < 0)
			return ret;
	}
	return metrics_create(m, e);
}

/* The vCPUs start: the VM runs, systemd hears READY. */
static int vmm_go(struct vmm *m, struct ferr *e)
{
	int ret = vm_start(&m->vm, e);

	if (ret < 0)
		return ret;
	vmm_set_state(m, VMM_RUNNING);
	notify_ready();
	if (notify_watchdog_start(m) < 0)
		log_warn("cannot start the systemd watchdog timer");
	return 0;
}

/* Event loop, the receive thread joined: the VM is ours again.  Loaded:
 * acknowledge and run it.  Refused or broken: say why and exit 1; the
 * source keeps its VM either way until the acknowledgement. */
static void vmm_incoming_done(struct vmm *m, int ret, const char *why)
{
	struct ferr e = { "" };

	/* A stop (request, signal) that came first wins: no acknowledgement. */
	if (__atomic_load_n(&m->vm.stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE)
		return;
	if (ret < 0) {
		log_error("%s", why);
		vm_request_stop(&m->vm, VM_STOP_ERROR);
		return;
	}
	if (vmm_setup_console(m, &e) < 0 || mig_incoming_ack(m, &e) < 0 || vmm_go(m, &e) < 0) {
		log_error("%s", e.msg);
		vm_request_stop(&m->vm, VM_STOP_ERROR);
	}
}

/* Run the guest now, or (--incoming, --restore) once the receive thread
 * has loaded it, while the event loop serves the control socket. */
static int vmm_start(struct vmm *m, struct ferr *e)
{
	if (!m->cfg->incoming)
		return vmm_go(m, e);
	vmm_set_state(m, VMM_INCOMING);
	return mig_incoming_start(m, vmm_incoming_done, e);
}

int vmm_run(const struct vm_config *cfg)
{
	struct vmm *m;
	struct ferr e = { "" };
	sigset_t sigs;
	int status = FERRY_EXIT_ERROR;

	m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("out of memory");
		return FERRY_EXIT_ERROR;
	}
	m->cfg = cfg;
	m->state = VMM_STARTING;
	m->signal_fd = m->shutdown_timer_fd = -1;

	/* Signals are taken through a signalfd by the event loop; block them
	 * before any thread exists so that every thread inherits the mask.
	 * SIGUSR1 kicks vCPUs and is unblocked in vCPU threads only. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sigdelset(&sigs, SIGUSR1);
	signal(SIGPIPE, SIG_IGN);

	m->loop = loop_create();
	if (!m->loop) {
		log_error("cannot create the event loop");
		free(m);
		return FERRY_EXIT_ERROR;
	}
	/* The migration channel's credentials first: bad files stop here. */
	if (mig_tls_create(cfg, &m->mig_tls, &e) < 0 ||
	    vm_create(&m->vm, cfg, m->loop, &e) < 0 || vmm_setup_loop(m, &sigs, &e) < 0 ||
	    (cfg->incoming && mig_incoming_open(m, &e) < 0) ||
	    privs_drop(m->cfg, &e) < 0 ||
	    seccomp_setup(cfg->seccomp, &e) < 0 ||
	    vmm_start(m, &e) < 0) {
		log_error("%s", e.msg);
		goto out;
	}
	seccomp_enter(SECCOMP_ROLE_LOOP);
	if (loop_run(m->loop) < 0) {
		log_error("event loop failed: %s", strerror(errno));
		vm_request_stop(&m->vm, VM_STOP_ERROR);
	}
	notify_stopping();
	notify_watchdog_stop(m);
	mig_incoming_destroy(m);
	mig_destroy(m);
	vm_join(&m->vm);
	status = vm_exit_status(&m->vm);
	vmm_set_state(m, VMM_STOPPED);
	log_info("VM '%s' stopped, exit status %d", cfg->name, status);
out:
	mig_incoming_destroy(m);
	api_destroy(m->api);
	metrics_destroy(m->metrics);
	console_destroy(m->console);
	vm_destroy(&m->vm);
	loop_destroy(m->loop);
	mig_tls_destroy(m->mig_tls);
	if (m->signal_fd >= 0)
		close(m->signal_fd);
	if (m->shutdown_timer_fd >= 0)
		close(m->shutdown_timer_fd);
	free(m);
	return status;
}
