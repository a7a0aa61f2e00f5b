/* seccomp: --seccomp parsing, the role tables' promises (the loop's list
 * holds every role's, dangerous calls are in none), and real filters in
 * forked children: an allowed call passes, a forbidden one kills. */
#include <errno.h>
#include <linux/kvm.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "ferry/seccomp.h"
#include "seccomp_child.h"
#include "tap.h"

TEST(parse_modes)
{
	struct ferr e;
	int mode = -1;

	CHECK(seccomp_parse_mode("off", &mode, &e) == 0);
	CHECK_EQ(mode, SECCOMP_MODE_OFF);
#ifdef HAVE_LIBSECCOMP
	CHECK(seccomp_parse_mode("on", &mode, &e) == 0);
	CHECK_EQ(mode, SECCOMP_MODE_ON);
	CHECK(seccomp_parse_mode("log", &mode, &e) == 0);
	CHECK_EQ(mode, SECCOMP_MODE_LOG);
#else
	mode = SECCOMP_MODE_OFF;
	CHECK(seccomp_parse_mode("on", &mode, &e) == -ENOTSUP);
	CHECK(strstr(e.msg, "without libseccomp") != NULL);
	CHECK_EQ(mode, SECCOMP_MODE_OFF);
#endif
	mode = SECCOMP_MODE_LOG;
	CHECK(seccomp_parse_mode("yes", &mode, &e) == -EINVAL);
	CHECK(strstr(e.msg, "'yes' is not on, log or off") != NULL);
	CHECK(seccomp_parse_mode("", &mode, &e) == -EINVAL);
	CHECK(seccomp_parse_mode("ON", &mode, &e) == -EINVAL);
	CHECK_EQ(mode, SECCOMP_MODE_LOG);
	/* A zeroed vm_config means "the default". */
	CHECK_EQ(SECCOMP_MODE_DEFAULT, 0);
	CHECK_STR(seccomp_mode_name(SECCOMP_MODE_LOG), "log");
}

TEST(role_names)
{
	CHECK_STR(seccomp_role_name(SECCOMP_ROLE_VCPU), "vcpu");
	CHECK_STR(seccomp_role_name(SECCOMP_ROLE_LOOP), "loop");
	CHECK_STR(seccomp_role_name(SECCOMP_ROLE_MIGRATION), "migration");
	CHECK(seccomp_role_name(SECCOMP_ROLE_COUNT) == NULL);
	CHECK(!seccomp_role_allows(SECCOMP_ROLE_COUNT, SYS_read));
}

/* Threads the loop creates inherit its filter: whatever they may do, the
 * loop's filter must let through. */
TEST(loop_holds_every_role)
{
	static const unsigned long reqs[] = {
		KVM_RUN, KVM_IRQFD, KVM_IOEVENTFD, KVM_GET_DIRTY_LOG, KVM_SET_MSRS,
		KVM_GET_XSAVE2, KVM_SET_CLOCK, FIONREAD,
	};

	for (int nr = 0; nr < 512; nr++)
		for (int r = 0; r < SECCOMP_ROLE_COUNT; r++)
			if (seccomp_role_allows(r, nr) && !seccomp_role_allows(SECCOMP_ROLE_LOOP, nr)) {
				printf("# syscall %d: role %s has it, the loop not\n", nr,
				       seccomp_role_name(r));
				tap_cur_failed = 1;
			}
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		CHECK(seccomp_role_allows_ioctl(SECCOMP_ROLE_LOOP, reqs[i]));
}

TEST(dangerous_calls_in_no_role)
{
	static const int never[] = {
		SYS_execve, SYS_execveat, SYS_fork, SYS_vfork, SYS_ptrace, SYS_mount,
		SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_setns, SYS_unshare,
		SYS_kexec_load, SYS_init_module, SYS_finit_module, SYS_delete_module,
		SYS_bpf, SYS_perf_event_open, SYS_process_vm_readv, SYS_process_vm_writev,
		SYS_keyctl, SYS_add_key, SYS_userfaultfd, SYS_reboot, SYS_swapon,
		SYS_open_by_handle_at, SYS_setuid, SYS_setgid, SYS_capset, SYS_kill,
		SYS_memfd_create, SYS_personality,
	};

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		for (int r = 0; r < SECCOMP_ROLE_COUNT; r++)
			if (seccomp_role_allows(r, never[i])) {
				printf("# syscall %d allowed to %s\n", never[i], seccomp_role_name(r));
				tap_cur_failed = 1;
			}
}

TEST(vcpu_is_narrow)
{
	static const int no_vcpu[] = {
		SYS_socket, SYS_connect, SYS_accept4, SYS_bind, SYS_open, SYS_openat,
		SYS_unlink, SYS_clone, SYS_sendmsg,
	};

	for (size_t i = 0; i < sizeof(no_vcpu) / sizeof(no_vcpu[0]); i++)
		CHECK(!seccomp_role_allows(SECCOMP_ROLE_VCPU, no_vcpu[i]));
	CHECK(seccomp_role_allows(SECCOMP_ROLE_VCPU, SYS_ioctl));
	CHECK(seccomp_role_allows_ioctl(SECCOMP_ROLE_VCPU, KVM_RUN));
	CHECK(seccomp_role_allows_ioctl(SECCOMP_ROLE_VCPU, KVM_IRQ_LINE));
	CHECK(!seccomp_role_allows_ioctl(SECCOMP_ROLE_VCPU, KVM_SET_USER_MEMORY_REGION));
	CHECK(!seccomp_role_allows_ioctl(SECCOMP_ROLE_VCPU, KVM_CREATE_VM));
	CHECK(!seccomp_role_allows_ioctl(SECCOMP_ROLE_VCPU, TIOCSTI));
	/* Migration threads never create threads of their own. */
	CHECK(!seccomp_role_allows(SECCOMP_ROLE_MIGRATION, SYS_clone));
	CHECK(!seccomp_role_allows_ioctl(SECCOMP_ROLE_LOOP, KVM_CREATE_VM));
	CHECK(!seccomp_role_allows_ioctl(SECCOMP_ROLE_LOOP, TIOCSTI));
}

#ifdef HAVE_LIBSECCOMP
static int do_allowed_vcpu(void)
{
	/* A bad fd: the filter passes the request, the kernel says EBADF. */
	if (ioctl(-1, KVM_RUN, 0) == 0 || errno != EBADF)
		return 1;
	return write(STDOUT_FILENO, "", 0) == 0 && getpid() > 0 ? 0 : 2;
}

static int do_socket_inet(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	return fd >= 0 ? 0 : 3;
}

static int do_socket_packet(void)
{
	socket(AF_PACKET, SOCK_RAW, 0);
	return 4;
}

static int do_netlink_route(void)
{
	return socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) >= 0 ? 0 : 7;
}

static int do_netlink_uevent(void)
{
	socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT);
	return 8;
}

static int do_tiocsti(void)
{
	char c = 'x';

	ioctl(-1, TIOCSTI, &c);
	return 5;
}

static int do_execve(void)
{
	static char *const argv[] = { "/bin/true", NULL };

	execve("/bin/true", argv, NULL);
	return 6;
}

TEST(filters_enforced)
{
	int st;

	st = in_child(SECCOMP_ROLE_VCPU, do_allowed_vcpu);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(killed_by_sigsys(in_child(SECCOMP_ROLE_VCPU, do_socket_inet)));
	CHECK(killed_by_sigsys(in_child(SECCOMP_ROLE_VCPU, do_execve)));
	st = in_child(SECCOMP_ROLE_LOOP, do_socket_inet);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(killed_by_sigsys(in_child(SECCOMP_ROLE_LOOP, do_socket_packet)));
	st = in_child(SECCOMP_ROLE_MIGRATION, do_netlink_route);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(killed_by_sigsys(in_child(SECCOMP_ROLE_MIGRATION, do_netlink_uevent)));
	CHECK(killed_by_sigsys(in_child(SECCOMP_ROLE_LOOP, do_tiocsti)));
	CHECK(killed_by_sigsys(in_child(SECCOMP_ROLE_MIGRATION, do_tiocsti)));
}
#endif

int main(void)
{
	RUN(parse_modes);
	RUN(role_names);
	RUN(loop_holds_every_role);
	RUN(dangerous_calls_in_no_role);
	RUN(vcpu_is_narrow);
#ifdef HAVE_LIBSECCOMP
	RUN(filters_enforced);
#endif
	return tap_done();
}
