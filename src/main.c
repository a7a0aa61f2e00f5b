/* ferry's entry point: parse the command line, build the VM, run the event
 * loop until the guest stops, and turn why it stopped into the exit status. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "config.h"
#include "ferry/cli.h"
#include "ferry/console.h"
#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/vm.h"

struct runner {
	struct vm *vm;
	struct loop *loop;
	int signal_fd;
	int shutdown_timer_fd;
	bool shutting_down;
};

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
	struct runner *r = opaque;
	uint64_t ticks;

	(void)l; (void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0)
		return;
	log_warn("the guest did not power off within %u s; stopping it",
		 r->vm->cfg->shutdown_timeout_s);
	vm_request_stop(r->vm, VM_STOP_HOST);
}

/* SIGTERM/SIGINT: ask the guest to power off (ACPI power button), and stop
 * it after --shutdown-timeout.  A second signal stops it at once. */
static void on_signal(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct runner *r = opaque;
	struct signalfd_siginfo si;
	struct itimerspec its = { 0 };

	(void)l; (void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (r->shutting_down || r->vm->cfg->shutdown_timeout_s == 0) {
		log_info("signal %u: stopping the VM", si.ssi_signo);
		vm_request_stop(r->vm, VM_STOP_HOST);
		return;
	}
	log_info("signal %u: pressing the power button", si.ssi_signo);
	r->shutting_down = true;
	pm_power_button(r->vm->pm);
	its.it_value.tv_sec = r->vm->cfg->shutdown_timeout_s;
	timerfd_settime(r->shutdown_timer_fd, 0, &its, NULL);
}

static int run_vm(const struct vm_config *cfg)
{
	struct runner r = { .signal_fd = -1, .shutdown_timer_fd = -1 };
	struct console *con = NULL;
	struct vm vm;
	struct ferr e = { "" };
	sigset_t sigs;
	int status = FERRY_EXIT_ERROR;

	/* Signals are taken through a signalfd by the event loop; block them
	 * before any thread exists so that every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);  /* vCPU kick: vCPU threads unblock it */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigdelset(&sigs, SIGUSR1);

	if (vm_create(&vm, cfg, &e) < 0) {
		log_error("%s", e.msg);
		goto out_vm;
	}
	r.vm = &vm;
	r.loop = loop_create();
	r.signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	r.shutdown_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (!r.loop || r.signal_fd < 0 || r.shutdown_timer_fd < 0 ||
	    loop_add(r.loop, vm.stop_efd, EPOLLIN, on_vm_stop, &r) < 0 ||
	    loop_add(r.loop, r.signal_fd, EPOLLIN, on_signal, &r) < 0 ||
	    loop_add(r.loop, r.shutdown_timer_fd, EPOLLIN, on_shutdown_timeout, &r) < 0) {
		log_error("cannot set up the event loop: %s", strerror(errno));
		goto out_vm;
	}
	if (cfg->serial == SERIAL_STDIO) {
		con = console_create(r.loop, &vm);
		if (!con) {
			log_error("cannot set up the serial console on stdin");
			goto out_vm;
		}
	}
	if (vm_start(&vm, &e) < 0) {
		log_error("%s", e.msg);
		goto out_vm;
	}
	log_info("VM '%s' running: %u vCPUs, %llu MiB", cfg->name, cfg->cpus,
		 (unsigned long long)(cfg->mem_size >> 20));
	if (loop_run(r.loop) < 0) {
		log_error("event loop failed: %s", strerror(errno));
		vm_request_stop(&vm, VM_STOP_ERROR);
	}
	vm_join(&vm);
	status = vm_exit_status(&vm);
	log_info("VM '%s' stopped, exit status %d", cfg->name, status);
out_vm:
	console_destroy(con);
	vm_destroy(&vm);
	loop_destroy(r.loop);
	if (r.signal_fd >= 0)
		close(r.signal_fd);
	if (r.shutdown_timer_fd >= 0)
		close(r.shutdown_timer_fd);
	return status;
}

int main(int argc, char **argv)
{
	struct ferr e = { "" };
	struct cli cli;

	if (cli_parse(argc, argv, &cli, &e) < 0) {
		log_error("%s", e.msg);
		return FERRY_EXIT_ERROR;
	}
	switch (cli.action) {
	case CLI_HELP:
		cli_print_help(stdout, cli.verb);
		return 0;
	case CLI_VERSION:
		printf("ferry %s\n", FERRY_VERSION);
		return 0;
	case CLI_RUN:
		break;
	}
	log_set_level(cli.vm.log_level);
	return run_vm(&cli.vm);
}
