/* seccomp: the system calls each of ferry's threads may make, the filters
 * built from them (libseccomp), their installation, and the SIGSYS handler
 * that names a forbidden call before ferry dies.
 *
 * Roles and why the event loop's list is the widest
 * --------------------------------------------------
 *   vcpu       KVM_RUN and the exits it handles: port/MMIO device models,
 *              eventfds, irqfd/ioeventfd/MSI routing set up when the guest
 *              programs a device, tap offloads, a disk drained on reset.
 *              No sockets, no files opened, no threads, no PROT_EXEC.
 *   loop       the main thread from loop_run() on: epoll, the control
 *              socket, metrics, timers, disk and network I/O (also iSCSI:
 *              connect, getaddrinfo with its /etc files), and teardown.
 *   migration  either end of a migration or a snapshot: TCP (and TLS), the
 *              snapshot file, KVM's dirty log and every state ioctl.
 *
 * Each thread installs its own role's filter when it starts (vCPU threads,
 * migration threads: seccomp_enter at the top), and the main thread the
 * loop's right before loop_run().  Filters are inherited by new threads and
 * stack: a call must pass every filter of the thread.  The migration threads
 * are created by the loop after its filter is in place, so they can only be
 * narrowed from it; so are the vCPU threads of --incoming/--restore, which
 * the loop starts once the receive thread (created before the loop filter:
 * migration role only) has loaded the VM.  Hence the loop's allowlist is the union of every role's,
 * plus its own (tests/unit/test_seccomp.c checks this), and the narrowing
 * happens in the vcpu and migration filters.
 *
 * Why SECCOMP_RET_TRAP rather than KILL_PROCESS: the kernel's audit record
 * of a KILL is invisible where there is no audit daemon or dmesg access
 * (containers, unprivileged users), and the operator sees only "killed by
 * SIGSYS".  With TRAP, ferry's SIGSYS handler writes the role and the call's
 * name to stderr (async-signal-safe: the names are resolved at set-up), then
 * makes a forbidden call again with SIGSYS blocked, upon which the kernel
 * resets SIGSYS to its default action and the process dies of it, exactly as
 * with KILL_PROCESS.  The filters carry SECCOMP_FILTER_FLAG_LOG, so the audit
 * record is written as well.  A handler cannot be swapped: rt_sigaction on
 * SIGSYS is itself forbidden, and a blocked SIGSYS still kills.
 *
 * Limits: clone3 fails with ENOSYS (its flags sit in memory a filter cannot
 * read) so that glibc falls back to clone, allowed for threads only.
 * io_uring operations run in the kernel and are not filtered: the disk
 * engine's rings are set up before the filters and restricted to its own
 * opcodes on the disk's file (virtio/blk_uring.c).  io_uring_setup and
 * io_uring_register are in no role, so no thread can make a ring or lift
 * a restriction once filtered; io_uring_enter stays for submitting.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#if __has_include("config.h")   /* not in the fuzz builds (tests/fuzz) */
#include "config.h"
#endif
#include "ferry/log.h"
#include "ferry/seccomp.h"
#include "ferry/util.h"
#include "ferry/vm.h"

#ifdef HAVE_LIBSECCOMP
#include <seccomp.h>
#endif

#define V (1u << SECCOMP_ROLE_VCPU)
#define L (1u << SECCOMP_ROLE_LOOP)
#define M (1u << SECCOMP_ROLE_MIGRATION)
#define ALL (V | L | M)

/* A call any of @roles may make with any arguments. */
struct sc_allow {
	int nr;
	unsigned int roles;
};

static const struct sc_allow sc_allow[] = {
	/* Memory, threads' own life, time, signals: everyone.  mmap and
	 * mprotect are below, with the PROT_EXEC condition for vCPUs. */
	{ SYS_read, ALL }, { SYS_write, ALL }, { SYS_readv, ALL }, { SYS_writev, ALL },
	{ SYS_pread64, ALL }, { SYS_pwrite64, ALL }, { SYS_preadv, ALL },
	{ SYS_pwritev, ALL }, { SYS_preadv2, ALL }, { SYS_pwritev2, ALL },
	{ SYS_close, ALL }, { SYS_lseek, ALL }, { SYS_fstat, ALL }, { SYS_dup, ALL },
	{ SYS_fcntl, ALL }, { SYS_eventfd2, ALL }, { SYS_epoll_ctl, ALL },
	{ SYS_poll, ALL }, { SYS_ppoll, ALL },
	{ SYS_fsync, ALL }, { SYS_fdatasync, ALL }, { SYS_fallocate, ALL },
	{ SYS_munmap, ALL }, { SYS_madvise, ALL }, { SYS_mremap, ALL }, { SYS_brk, ALL },
	{ SYS_futex, ALL }, { SYS_sched_yield, ALL }, { SYS_sched_getaffinity, ALL },
	{ SYS_set_robust_list, ALL }, { SYS_rseq, ALL }, { SYS_restart_syscall, ALL },
	{ SYS_exit, ALL }, { SYS_exit_group, ALL },
	{ SYS_rt_sigreturn, ALL }, { SYS_rt_sigprocmask, ALL }, { SYS_sigaltstack, ALL },
	{ SYS_clock_gettime, ALL }, { SYS_clock_getres, ALL }, { SYS_gettimeofday, ALL },
	{ SYS_clock_nanosleep, ALL }, { SYS_nanosleep, ALL },
	{ SYS_getpid, ALL }, { SYS_gettid, ALL }, { SYS_getrandom, ALL },
	/* Block engines: a vCPU that resets a disk drains it (blk_drain). */
	{ SYS_io_uring_enter, ALL }, { SYS_io_submit, ALL }, { SYS_io_getevents, ALL },
	{ SYS_io_pgetevents, ALL }, { SYS_io_cancel, ALL },
	{ SYS_timerfd_settime, ALL }, { SYS_timerfd_gettime, ALL },

	/* Networking: control socket, metrics, systemd notify, iSCSI,
	 * migration (TCP, TLS).  socket() and socketpair() are below. */
	{ SYS_connect, L | M }, { SYS_accept, L | M }, { SYS_accept4, L | M },
	{ SYS_bind, L | M }, { SYS_listen, L | M }, { SYS_shutdown, L | M },
	{ SYS_getsockopt, L | M }, { SYS_setsockopt, L | M },
	{ SYS_getsockname, L | M }, { SYS_getpeername, L | M },
	{ SYS_sendto, L | M }, { SYS_recvfrom, L | M }, { SYS_sendmsg, L | M },
	{ SYS_recvmsg, L | M }, { SYS_sendmmsg, L | M }, { SYS_recvmmsg, L | M },
	{ SYS_select, L | M }, { SYS_pselect6, L | M },
	{ SYS_epoll_wait, L | M }, { SYS_epoll_pwait, L | M }, { SYS_epoll_pwait2, L | M },
	{ SYS_epoll_create1, L | M },
	/* getaddrinfo, GnuTLS: the host's name, ids, NSS and config files. */
	{ SYS_uname, L | M }, { SYS_getuid, L | M }, { SYS_geteuid, L | M },
	{ SYS_getgid, L | M }, { SYS_getegid, L | M }, { SYS_getppid, L | M },

	/* Files: the snapshot (FILE.tmp linked to FILE), --restore, metrics
	 * files (written then renamed), the control socket's path, /proc. */
	{ SYS_open, L | M }, { SYS_openat, L | M }, { SYS_stat, L | M },
	{ SYS_lstat, L | M }, { SYS_newfstatat, L | M }, { SYS_statx, L | M },
	{ SYS_access, L | M }, { SYS_faccessat, L | M }, { SYS_faccessat2, L | M },
	{ SYS_readlink, L | M }, { SYS_readlinkat, L | M }, { SYS_getcwd, L | M },
	{ SYS_getdents64, L | M }, { SYS_statfs, L | M }, { SYS_fstatfs, L | M },
	{ SYS_link, L | M }, { SYS_linkat, L | M }, { SYS_unlink, L | M },
	{ SYS_unlinkat, L | M }, { SYS_rename, L | M }, { SYS_renameat, L | M },
	{ SYS_renameat2, L | M }, { SYS_ftruncate, L | M },
	{ SYS_fchmod, L | M }, { SYS_chmod, L | M }, { SYS_fchmodat, L | M },
	{ SYS_getrusage, L | M }, { SYS_sysinfo, L | M }, { SYS_times, L | M },

	/* The loop's own: timers, signals, pipes, teardown, capabilities
	 * for `status`. */
	{ SYS_timerfd_create, L }, { SYS_signalfd4, L }, { SYS_pipe2, L },
	{ SYS_dup3, L }, { SYS_io_destroy, L }, { SYS_io_setup, L },
	{ SYS_capget, L }, { SYS_set_tid_address, L },
	{ SYS_membarrier, L }, { SYS_wait4, L },
};

/* ioctl requests by role; the request is compared on its low 32 bits,
 * as the kernel does. */
struct sc_ioctl {
	unsigned long req;
	unsigned int roles;
};

static const struct sc_ioctl sc_ioctls[] = {
	{ KVM_RUN, ALL },
	/* Crash reports read the registers on the vCPU's own thread. */
	{ KVM_GET_REGS, ALL }, { KVM_GET_SREGS, ALL }, { KVM_TRANSLATE, ALL },
	/* Interrupts and notifications, set up as the guest drives devices. */
	{ KVM_IRQ_LINE, ALL }, { KVM_IRQ_LINE_STATUS, ALL }, { KVM_SET_GSI_ROUTING, ALL },
	{ KVM_IRQFD, ALL }, { KVM_IOEVENTFD, ALL }, { KVM_SIGNAL_MSI, ALL },
	{ TUNSETOFFLOAD, ALL }, { TUNSETQUEUE, ALL }, { TUNSETVNETHDRSZ, ALL },
	{ FIONBIO, ALL }, { FIOCLEX, ALL }, { FIONCLEX, ALL },

	/* A migrating tap changes hands by name: the destination attaches
	 * when the net state arrives, a failed source takes it back.  With no
	 * capabilities left, only a persistent tap owned by ferry's user can
	 * be attached (tap.c). */
	{ TUNGETFEATURES, L | M }, { TUNSETIFF, L | M }, { TUNGETIFF, L | M },
	{ SIOCGIFINDEX, L | M },         /* if_nametoindex() */

	/* Sockets: libiscsi and GnuTLS ask what is queued. */
	{ FIONREAD, L | M }, { TIOCOUTQ, L | M },

	/* Migration: dirty logging, and every piece of state both ways. */
	{ KVM_CHECK_EXTENSION, L | M }, { KVM_ENABLE_CAP, L | M },
	{ KVM_SET_USER_MEMORY_REGION, L | M }, { KVM_GET_DIRTY_LOG, L | M },
	{ KVM_CLEAR_DIRTY_LOG, L | M }, { KVM_RESET_DIRTY_RINGS, L | M },
	{ KVM_GET_MSR_INDEX_LIST, L | M }, { KVM_GET_SUPPORTED_CPUID, L | M },
	{ KVM_SET_REGS, L | M }, { KVM_SET_SREGS, L | M },
	{ KVM_GET_FPU, L | M }, { KVM_SET_FPU, L | M },
	{ KVM_GET_XCRS, L | M }, { KVM_SET_XCRS, L | M },
	{ KVM_GET_LAPIC, L | M }, { KVM_SET_LAPIC, L | M },
	{ KVM_GET_VCPU_EVENTS, L | M }, { KVM_SET_VCPU_EVENTS, L | M },
	{ KVM_GET_MP_STATE, L | M }, { KVM_SET_MP_STATE, L | M },
	{ KVM_GET_DEBUGREGS, L | M }, { KVM_SET_DEBUGREGS, L | M },
	{ KVM_GET_MSRS, L | M }, { KVM_SET_MSRS, L | M },
	{ KVM_GET_XSAVE, L | M }, { KVM_GET_XSAVE2, L | M }, { KVM_SET_XSAVE, L | M },
	{ KVM_GET_CLOCK, L | M }, { KVM_SET_CLOCK, L | M },
	{ KVM_GET_IRQCHIP, L | M }, { KVM_SET_IRQCHIP, L | M },
	{ KVM_GET_PIT2, L | M }, { KVM_SET_PIT2, L | M },
	{ KVM_GET_TSC_KHZ, L | M }, { KVM_SET_TSC_KHZ, L | M },

	/* The terminal (serial console on stdio) and disks. */
	{ TCGETS, L }, { TCSETS, L }, { TCSETSW, L }, { TCSETSF, L }, { TIOCGWINSZ, L },
	{ BLKGETSIZE64, L }, { BLKSSZGET, L },
};

/* Allowed only with some arguments; seccomp_role_allows counts them. */
static const struct sc_allow sc_conditional[] = {
	{ SYS_ioctl, ALL },          /* sc_ioctls[] */
	{ SYS_mmap, ALL },           /* vcpu: never PROT_EXEC */
	{ SYS_mprotect, ALL },       /* vcpu: never PROT_EXEC */
	{ SYS_rt_sigaction, ALL },   /* anything but SIGSYS */
	{ SYS_tgkill, ALL },         /* this process's threads only */
	{ SYS_prctl, ALL },          /* thread names, no_new_privs */
	{ SYS_seccomp, ALL },        /* adding a filter: narrowing only */
	{ SYS_socket, L | M },       /* AF_UNIX, AF_INET(6), NETLINK_ROUTE */
	{ SYS_socketpair, L | M },   /* AF_UNIX */
	{ SYS_clone, L },            /* threads (CLONE_THREAD) only */
};

static const char *const sc_role_names[SECCOMP_ROLE_COUNT] = {
	[SECCOMP_ROLE_VCPU] = "vcpu",
	[SECCOMP_ROLE_LOOP] = "loop",
	[SECCOMP_ROLE_MIGRATION] = "migration",
};

const char *seccomp_role_name(enum seccomp_role role)
{
	return (unsigned int)role < SECCOMP_ROLE_COUNT ? sc_role_names[role] : NULL;
}

static bool sc_in(const struct sc_allow *t, size_t n, enum seccomp_role role, int nr)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].nr == nr && (t[i].roles & (1u << role)))
			return true;
	return false;
}

bool seccomp_role_allows(enum seccomp_role role, int nr)
{
	if ((unsigned int)role >= SECCOMP_ROLE_COUNT)
		return false;
	return sc_in(sc_allow, ARRAY_SIZE(sc_allow), role, nr) ||
	       sc_in(sc_conditional, ARRAY_SIZE(sc_conditional), role, nr);
}

bool seccomp_role_allows_ioctl(enum seccomp_role role, unsigned long req)
{
	if ((unsigned int)role >= SECCOMP_ROLE_COUNT)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(sc_ioctls); i++)
		if ((uint32_t)sc_ioctls[i].req == (uint32_t)req &&
		    (sc_ioctls[i].roles & (1u << role)))
			return true;
	return false;
}

int seccomp_parse_mode(const char *val, int *mode, struct ferr *e)
{
	if (!strcmp(val, "on")) {
#ifndef HAVE_LIBSECCOMP
		return ferr_set(e, -ENOTSUP,
				"--seccomp=on: this ferry was built without libseccomp (rebuild with libseccomp-dev, or use --seccomp=off)");
#endif
		*mode = SECCOMP_MODE_ON;
	} else if (!strcmp(val, "log")) {
#ifndef HAVE_LIBSECCOMP
		return ferr_set(e, -ENOTSUP,
				"--seccomp=log: this ferry was built without libseccomp (rebuild with libseccomp-dev, or use --seccomp=off)");
#endif
		*mode = SECCOMP_MODE_LOG;
	} else if (!strcmp(val, "off")) {
		*mode = SECCOMP_MODE_OFF;
	} else {
		return ferr_set(e, -EINVAL, "--seccomp: '%s' is not on, log or off", val);
	}
	return 0;
}

const char *seccomp_mode_name(int mode)
{
	switch (mode) {
	case SECCOMP_MODE_DEFAULT: return "default";
	case SECCOMP_MODE_ON: return "on";
	case SECCOMP_MODE_LOG: return "log";
	case SECCOMP_MODE_OFF: return "off";
	}
	return "unknown";
}

#ifdef HAVE_LIBSECCOMP

#define SC_MAX_NR   512       /* x86-64 numbers in use end near 470 */
#define SC_NAME_LEN 28

/* Written once by seccomp_setup() on the main thread before any thread
 * that reads it exists (and before any filter), read-only afterwards: the
 * SIGSYS handler can only reach state through globals. */
static struct {
	int mode;
	struct sock_fprog prog[SECCOMP_ROLE_COUNT];
	char names[SC_MAX_NR][SC_NAME_LEN];
} sc = { .mode = SECCOMP_MODE_OFF };

static __thread int sc_thread_role = -1;

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1  /* si_code of a SIGSYS from a filter */
#endif

/* ---- the SIGSYS handler: async-signal-safe only ------------------------ */

static size_t sc_put(char *buf, size_t pos, size_t cap, const char *s)
{
	while (*s && pos < cap)
		buf[pos++] = *s++;
	return pos;
}

static size_t sc_put_uint(char *buf, size_t pos, size_t cap, unsigned int v)
{
	char tmp[12];
	int n = 0;

	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n && pos < cap)
		buf[pos++] = tmp[--n];
	return pos;
}

static void sc_sigsys(int sig, siginfo_t *si, void *uc)
{
	const char *role = seccomp_role_name(sc_thread_role);
	unsigned int nr = (unsigned int)si->si_syscall;
	char line[160];
	size_t n = 0;

	(void)sig; (void)uc;
	/* Someone's kill -SYS: not ours to act on. */
	if (si->si_code != SYS_SECCOMP)
		return;
	n = sc_put(line, n, sizeof(line), "ferry: seccomp: ");
	n = sc_put(line, n, sizeof(line), role ? role : "unfiltered");
	n = sc_put(line, n, sizeof(line), " thread made a forbidden system call ");
	n = sc_put(line, n, sizeof(line),
		   nr < SC_MAX_NR && sc.names[nr][0] ? sc.names[nr] : "unknown");
	n = sc_put(line, n, sizeof(line), " (");
	n = sc_put_uint(line, n, sizeof(line), nr);
	n = sc_put(line, n, sizeof(line), "); ferry stops\n");
	if (write(STDERR_FILENO, line, n) < 0)
		(void)0;
	/* SIGSYS is blocked in here: a second forbidden call makes the
	 * kernel reset it to its default action, and the process dies of it
	 * as it would under KILL_PROCESS.  ptrace is in no allowlist. */
	syscall(SYS_ptrace, -1L, 0L, 0L, 0L);
	_exit(FERRY_EXIT_CRASH);
}

/* ---- building the filters ---------------------------------------------- */

static int sc_rule(scmp_filter_ctx ctx, int nr, unsigned int n, const struct scmp_arg_cmp *c)
{
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, c);
}

static int sc_add_ioctls(scmp_filter_ctx ctx, enum seccomp_role role)
{
	int ret = 0;

	for (size_t i = 0; i < ARRAY_SIZE(sc_ioctls) && !ret; i++) {
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL,
						(uint32_t)sc_ioctls[i].req);

		if (sc_ioctls[i].roles & (1u << role))
			ret = sc_rule(ctx, SYS_ioctl, 1, &c);
	}
	return ret;
}

static int sc_add_memory(scmp_filter_ctx ctx, enum seccomp_role role)
{
	struct scmp_arg_cmp noexec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);

	/* dlopen() by NSS (getaddrinfo) or GnuTLS maps code: the loop and
	 * migration threads may, a vCPU never. */
	if (role != SECCOMP_ROLE_VCPU)
		return sc_rule(ctx, SYS_mmap, 0, NULL) ?: sc_rule(ctx, SYS_mprotect, 0, NULL);
	return sc_rule(ctx, SYS_mmap, 1, &noexec) ?: sc_rule(ctx, SYS_mprotect, 1, &noexec);
}

/* Signals, thread names, stacking filters: only what cannot widen. */
static int sc_add_process(scmp_filter_ctx ctx)
{
	static const int prctl_ok[] = {
		PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS,
		PR_CAPBSET_READ, PR_GET_SECCOMP,
	};
	struct scmp_arg_cmp notsys = SCMP_A0(SCMP_CMP_NE, SIGSYS);
	struct scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ, (uint64_t)getpid());
	struct scmp_arg_cmp filter = SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER);
	/* libcap-ng reading the ambient set (status reports it). */
	struct scmp_arg_cmp ambient[2] = {
		SCMP_A0(SCMP_CMP_EQ, PR_CAP_AMBIENT), SCMP_A1(SCMP_CMP_EQ, PR_CAP_AMBIENT_IS_SET),
	};
	int ret = sc_rule(ctx, SYS_rt_sigaction, 1, &notsys) ?:
		  sc_rule(ctx, SYS_tgkill, 1, &self) ?:
		  sc_rule(ctx, SYS_seccomp, 1, &filter) ?:
		  sc_rule(ctx, SYS_prctl, 2, ambient);

	for (size_t i = 0; i < ARRAY_SIZE(prctl_ok) && !ret; i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, prctl_ok[i]);

		ret = sc_rule(ctx, SYS_prctl, 1, &c);
	}
	return ret;
}

static int sc_add_sockets(scmp_filter_ctx ctx)
{
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
	struct scmp_arg_cmp unix_only = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
	/* getaddrinfo(AI_ADDRCONFIG) asks the kernel which address families
	 * are configured over a NETLINK_ROUTE socket. */
	struct scmp_arg_cmp rtnl[2] = {
		SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE),
	};
	int ret = sc_rule(ctx, SYS_socket, 2, rtnl) ?:
		  sc_rule(ctx, SYS_socketpair, 1, &unix_only);

	for (size_t i = 0; i < ARRAY_SIZE(families) && !ret; i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, families[i]);

		ret = sc_rule(ctx, SYS_socket, 1, &c);
	}
	return ret;
}

/* sc_conditional[]'s rules. */
static int sc_add_conditional(scmp_filter_ctx ctx, enum seccomp_role role)
{
	struct scmp_arg_cmp thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
	int ret = sc_add_ioctls(ctx, role) ?: sc_add_memory(ctx, role) ?: sc_add_process(ctx);

	if (!ret && role != SECCOMP_ROLE_VCPU)
		ret = sc_add_sockets(ctx);
	if (!ret && role == SECCOMP_ROLE_LOOP)
		ret = sc_rule(ctx, SYS_clone, 1, &thread);
	return ret;
}

/* libseccomp 2.5 exports BPF to a file descriptor only. */
static int sc_export(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	struct stat st;
	void *buf = NULL;
	int fd, ret;

	fd = memfd_create("ferry-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(ctx, fd);
	if (ret < 0)
		goto out;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		ret = -E2BIG;
		goto out;
	}
	buf = malloc(st.st_size);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, buf, st.st_size, 0) != st.st_size) {
		ret = -EIO;
		goto out;
	}
	prog->filter = buf;
	prog->len = st.st_size / sizeof(struct sock_filter);
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

static int sc_build(enum seccomp_role role, int mode, struct sock_fprog *prog)
{
	uint32_t deny = mode == SECCOMP_MODE_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
	scmp_filter_ctx ctx = seccomp_init(deny);
	int ret;

	if (!ctx)
		return -ENOMEM;
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	for (size_t i = 0; i < ARRAY_SIZE(sc_allow) && !ret; i++)
		if (sc_allow[i].roles & (1u << role))
			ret = sc_rule(ctx, sc_allow[i].nr, 0, NULL);
	/* glibc falls back to clone(), whose flags a filter can read. */
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SYS_clone3, 0);
	if (!ret)
		ret = sc_add_conditional(ctx, role);
	if (!ret)
		ret = sc_export(ctx, prog);
	seccomp_release(ctx);
	return ret;
}

int seccomp_setup(int mode, struct ferr *e)
{
	struct sigaction sa = { .sa_sigaction = sc_sigsys, .sa_flags = SA_SIGINFO };
	int ret;

	if (mode == SECCOMP_MODE_OFF)
		return 0;
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
		if (mode == SECCOMP_MODE_DEFAULT) {
			log_info("seccomp: the kernel has no seccomp filters; running without them");
			return 0;
		}
		return ferr_errno(e, -errno, "--seccomp=%s: the kernel cannot filter system calls (use --seccomp=off)",
				  seccomp_mode_name(mode));
	}
	if (mode == SECCOMP_MODE_DEFAULT)
		mode = SECCOMP_MODE_ON;
	for (int r = 0; r < SECCOMP_ROLE_COUNT; r++) {
		ret = sc_build(r, mode, &sc.prog[r]);
		if (ret < 0)
			return ferr_errno(e, ret, "seccomp: cannot build the %s filter (try --seccomp=off)",
					  sc_role_names[r]);
	}
	for (int nr = 0; nr < SC_MAX_NR; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (name)
			snprintf(sc.names[nr], SC_NAME_LEN, "%s", name);
		free(name);
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return ferr_errno(e, -errno, "seccomp: cannot catch SIGSYS");
	sc.mode = mode;
	log_info("seccomp: filters %s", mode == SECCOMP_MODE_LOG ?
		 "log forbidden system calls (--seccomp=log)" : "on");
	return 0;
}

int seccomp_mode_now(void)
{
	return sc.mode;
}

static void sc_test_violate(enum seccomp_role role)
{
#ifdef FERRY_TEST_HOOKS
	const char *who = getenv("FERRY_TEST_SECCOMP_VIOLATE");
	size_t len = strlen(sc_role_names[role]);
	int fd;

	if (!who || strncmp(who, sc_role_names[role], len))
		return;
	/* ROLE:io_uring_setup: a new ring would escape the disk rings'
	 * restrictions (virtio/blk_uring.c), so no role may make one. */
	if (!strcmp(who + len, ":io_uring_setup")) {
		struct io_uring_params p = { 0 };

		log_info("test hook: the %s thread calls io_uring_setup", sc_role_names[role]);
		fd = syscall(SYS_io_uring_setup, 1, &p);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (who[len])
		return;
	/* Forbidden to every role: no thread has packet sockets. */
	log_info("test hook: the %s thread calls socket(AF_PACKET)", who);
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
#else
	(void)role;
#endif
}

void seccomp_enter(enum seccomp_role role)
{
	unsigned int flags = SECCOMP_FILTER_FLAG_LOG;
	int ret;

	if (sc.mode == SECCOMP_MODE_OFF || (unsigned int)role >= SECCOMP_ROLE_COUNT)
		return;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &sc.prog[role]);
	if (ret < 0 && errno == EINVAL)  /* before Linux 4.14: no FLAG_LOG */
		ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sc.prog[role]);
	if (ret < 0) {
		ret = -errno;
		goto fail;
	}
	sc_thread_role = role;
	sc_test_violate(role);
	return;
fail:
	/* Running unfiltered when filters were asked for is not an option. */
	log_error("seccomp: cannot filter the %s thread: %s; ferry stops (--seccomp=off runs without filters)",
		  sc_role_names[role], strerror(-ret));
	_exit(FERRY_EXIT_ERROR);
}

#else /* !HAVE_LIBSECCOMP */

int seccomp_setup(int mode, struct ferr *e)
{
	if (mode == SECCOMP_MODE_DEFAULT)
		log_info("seccomp: ferry was built without libseccomp; running without system call filters");
	else if (mode != SECCOMP_MODE_OFF)
		return ferr_set(e, -ENOTSUP, "--seccomp=%s: ferry was built without libseccomp",
				seccomp_mode_name(mode));
	return 0;
}

void seccomp_enter(enum seccomp_role role)
{
	(void)role;
}

int seccomp_mode_now(void)
{
	return SECCOMP_MODE_OFF;
}

#endif
