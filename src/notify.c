/* systemd's notification and socket-activation protocols, spoken directly
 * (a datagram to $NOTIFY_SOCKET; fds from 3 up per $LISTEN_FDS) rather than
 * through libsystemd, which ferry would otherwise not need. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/notify.h"
#include "ferry/util.h"
#include "ferry/vcpu.h"
#include "ferry/vmm.h"

#define SD_LISTEN_FDS_START 3

static void notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || !*path)
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';  /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   offsetof(struct sockaddr_un, sun_path) + len) < 0)
		log_debug("sd_notify '%s': %s", msg, strerror(errno));
	close(fd);
}

void notify_ready(void)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
	notify_send(msg);
}

void notify_status(const char *status)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	notify_send(msg);
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

/* $NAME is a decimal number naming this process (or is unset: -1). */
static int env_pid_is_ours(const char *name)
{
	const char *v = getenv(name);
	uint64_t pid;

	if (!v)
		return -1;
	return parse_uint(v, 1, INT32_MAX, &pid) == 0 && (pid_t)pid == getpid();
}

int notify_listen_fd(void)
{
	static int cached = -2;
	const char *n = getenv("LISTEN_FDS");
	uint64_t count;
	struct stat st;

	if (cached != -2)
		return cached;
	cached = -1;
	if (!n || env_pid_is_ours("LISTEN_PID") != 1)
		return cached;
	if (parse_uint(n, 1, 64, &count) < 0) {
		log_warn("ignoring LISTEN_FDS=%s", n);
		return cached;
	}
	if (count > 1)
		log_warn("systemd passed %llu sockets; using the first for the control socket",
			 (unsigned long long)count);
	if (fstat(SD_LISTEN_FDS_START, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		log_warn("LISTEN_FDS is set but fd %d is not a socket", SD_LISTEN_FDS_START);
		return cached;
	}
	cached = SD_LISTEN_FDS_START;
	/* Not for our children. */
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	return cached;
}

/* The VMM is healthy when the event loop runs (we are in it) and no vCPU
 * has been stuck in ferry's exit handling for a whole watchdog period. */
static bool notify_vmm_healthy(struct vmm *m, uint64_t period_ns)
{
	uint64_t now = now_ns();

	for (unsigned int i = 0; i < m->vm.nr_vcpus; i++) {
		uint64_t since = __atomic_load_n(&m->vm.vcpus[i]->busy_since_ns, __ATOMIC_RELAXED);

		if (since && now > since && now - since > period_ns)
			return false;
	}
	return true;
}

static struct {
	int fd;
	uint64_t period_ns;
} watchdog = { .fd = -1 };

static void notify_on_watchdog(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct vmm *m = opaque;
	uint64_t ticks;

	(void)l; (void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0)
		return;
	if (notify_vmm_healthy(m, watchdog.period_ns))
		notify_send("WATCHDOG=1");
	else
		log_warn("a vCPU is stuck outside the guest; not feeding the systemd watchdog");
}

int notify_watchdog_start(struct vmm *m)
{
	const char *v = getenv("WATCHDOG_USEC");
	struct itimerspec its = { 0 };
	uint64_t usec;

	if (!v || !getenv("NOTIFY_SOCKET") || env_pid_is_ours("WATCHDOG_PID") == 0)
		return 0;
	if (parse_uint(v, 1, UINT64_MAX / 1000, &usec) < 0) {
		log_warn("ignoring WATCHDOG_USEC=%s", v);
		return 0;
	}
	watchdog.period_ns = usec * 1000;
	watchdog.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (watchdog.fd < 0)
		return -errno;
	/* Feed at half the period, as systemd recommends. */
	its.it_interval.tv_sec = (usec / 2) / 1000000;
	its.it_interval.tv_nsec = ((usec / 2) % 1000000) * 1000;
	its.it_value = its.it_interval;
	if (timerfd_settime(watchdog.fd, 0, &its, NULL) < 0 ||
	    loop_add(m->loop, watchdog.fd, EPOLLIN, notify_on_watchdog, m) < 0) {
		int err = -errno;

		close(watchdog.fd);
		watchdog.fd = -1;
		return err;
	}
	notify_send("WATCHDOG=1");
	return 0;
}

void notify_watchdog_stop(struct vmm *m)
{
	if (watchdog.fd < 0)
		return;
	loop_del(m->loop, watchdog.fd);
	close(watchdog.fd);
	watchdog.fd = -1;
}
