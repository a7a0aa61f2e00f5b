/* Least privilege for `ferry run`: after start-up, with every privileged
 * descriptor open (/dev/kvm, taps, disks, sockets), drop all capabilities,
 * optionally chroot and switch to --user; and report what is left to the
 * control socket's status request.
 *
 * Order of privs_drop(), each step needing what the later ones remove:
 *   1. resolve --user (NSS needs /etc, so before the chroot);
 *   2. check that ferry is still one thread: capabilities are per thread,
 *      and threads started later inherit the result;
 *   3. lock the securebits (NOROOT: exec as uid 0 grants nothing; KEEP_CAPS
 *      off and locked: a uid change clears them; no ambient raise) and
 *      empty the bounding and ambient sets: all need CAP_SETPCAP;
 *   4. chroot(DIR) + chdir("/"): CAP_SYS_CHROOT;
 *   5. setgroups, setresgid, setresuid: CAP_SETGID, CAP_SETUID;
 *   6. empty the effective, permitted and inheritable sets; no_new_privs;
 *   7. check the result, and that the files ferry writes later (the
 *      --metrics file) are still writable from where it now stands.
 * Without --user, root stays uid 0 without any capability.  --allow-root
 * skips 3, 5 and 6.
 *
 * What ferry opens after the drop, as the new user and inside the chroot:
 * the --metrics file (rewritten), `ferry snapshot --to FILE`, TCP
 * connections (migration, iSCSI), and at exit the unlink of the control
 * and metrics sockets.  None needs a capability; paths are resolved inside
 * --chroot.  /dev/kvm, taps, disks, the serial file, sockets, the TLS
 * credentials and the --incoming socket or --restore file are open before
 * (src/vmm.c calls privs_drop() after all of them). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/securebits.h>

#include <json-c/json.h>

#if __has_include("config.h")   /* not in the fuzz builds (tests/fuzz) */
#include "config.h"
#endif
#ifdef HAVE_LIBCAP_NG
#include <cap-ng.h>
#endif
#include "ferry/log.h"
#include "ferry/notify.h"
#include "ferry/privs.h"

#define PRIVS_MAX_GROUPS 65536  /* the kernel's NGROUPS_MAX */
/* libcap-ng's failures do not always leave errno set. */
#define PRIVS_ERRNO (errno ? -errno : -EIO)

/* Who ferry is after privs_drop(), for the status reply.  Written once by
 * privs_drop() on the only thread, before any other exists; read-only
 * afterwards.  Names are kept because NSS cannot look them up inside a
 * chroot. */
static struct {
	bool dropped;
	char user[PRIVS_NAME_MAX];
	char group[PRIVS_NAME_MAX];
	const char *chroot_dir;
} privs_now;

struct privs_target {
	uid_t uid;
	gid_t gid;
	gid_t *groups;          /* supplementary groups to set */
	int nr_groups;
	char user[PRIVS_NAME_MAX];
	char group[PRIVS_NAME_MAX];
};

int privs_parse_id(const char *s, unsigned int *out)
{
	unsigned long long v = 0;

	if (!*s || strlen(s) > 10)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned int)(*p - '0');
	}
	/* (uid_t)-1 means "leave unchanged" to setresuid(). */
	if (v >= UINT32_MAX)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

int privs_parse_user(const char *spec, char *user, char *group, struct ferr *e)
{
	const char *colon;
	size_t ulen, glen;

	user[0] = group[0] = '\0';
	if (!spec || !*spec)
		return ferr_set(e, -EINVAL, "--user: empty value (use USER or USER:GROUP)");
	for (const char *p = spec; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return ferr_set(e, -EINVAL, "--user: spaces and control characters are not allowed");
	colon = strchr(spec, ':');
	ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	if (!ulen)
		return ferr_set(e, -EINVAL, "--user %.64s: no user before ':'", spec);
	if (ulen >= PRIVS_NAME_MAX)
		return ferr_set(e, -EINVAL, "--user: the user name is too long");
	if (colon) {
		glen = strlen(colon + 1);
		if (!glen)
			return ferr_set(e, -EINVAL, "--user %.64s: no group after ':'", spec);
		if (strchr(colon + 1, ':'))
			return ferr_set(e, -EINVAL, "--user %.64s: more than one ':' (use USER:GROUP)", spec);
		if (glen >= PRIVS_NAME_MAX)
			return ferr_set(e, -EINVAL, "--user: the group name is too long");
		memcpy(group, colon + 1, glen + 1);
	}
	memcpy(user, spec, ulen);
	user[ulen] = '\0';
	return 0;
}

/* The user's groups from the group database, as `login` would set them. */
static int privs_user_groups(const char *name, gid_t gid, struct privs_target *t)
{
	int n = 32;

	for (;;) {
		gid_t *g = realloc(t->groups, (size_t)n * sizeof(*g));
		int want = n;

		if (!g)
			return -ENOMEM;
		t->groups = g;
		if (getgrouplist(name, gid, g, &want) >= 0) {
			t->nr_groups = want;
			return 0;
		}
		if (want <= n || want > PRIVS_MAX_GROUPS)
			return -E2BIG;
		n = want;
	}
}

static int privs_resolve(const char *spec, struct privs_target *t, struct ferr *e)
{
	char user[PRIVS_NAME_MAX], group[PRIVS_NAME_MAX];
	bool have_pw = false;
	struct passwd *pw;
	struct group *gr;
	unsigned int id;
	int ret;

	ret = privs_parse_user(spec, user, group, e);
	if (ret < 0)
		return ret;
	if (privs_parse_id(user, &id) == 0) {
		t->uid = id;
		pw = getpwuid(id);
	} else {
		pw = getpwnam(user);
		if (!pw)
			return ferr_set(e, -ENOENT, "--user %.64s: no such user (create one, e.g. 'useradd --system --no-create-home %.64s', or give a numeric uid)",
					user, user);
		t->uid = pw->pw_uid;
	}
	if (pw) {
		have_pw = true;
		snprintf(t->user, sizeof(t->user), "%s", pw->pw_name);
		t->gid = pw->pw_gid;
	} else {
		snprintf(t->user, sizeof(t->user), "%s", user);
	}

	if (group[0]) {
		/* An explicit group is the only one: no supplementary groups. */
		if (privs_parse_id(group, &id) == 0) {
			t->gid = id;
			gr = getgrgid(id);
		} else {
			gr = getgrnam(group);
			if (!gr)
				return ferr_set(e, -ENOENT, "--user %.64s: no such group '%.64s'", spec, group);
			t->gid = gr->gr_gid;
		}
		snprintf(t->group, sizeof(t->group), "%s", gr ? gr->gr_name : group);
		t->groups = malloc(sizeof(*t->groups));
		if (!t->groups)
			return ferr_set(e, -ENOMEM, "out of memory");
		t->groups[0] = t->gid;
		t->nr_groups = 1;
		return 0;
	}
	if (!have_pw)
		return ferr_set(e, -ENOENT, "--user %.64s: uid %u has no passwd entry to take a group from; name one: --user %u:GID",
				spec, t->uid, t->uid);
	gr = getgrgid(t->gid);
	if (gr)
		snprintf(t->group, sizeof(t->group), "%s", gr->gr_name);
	else
		snprintf(t->group, sizeof(t->group), "%u", (unsigned int)t->gid);
	ret = privs_user_groups(t->user, t->gid, t);
	if (ret < 0)
		return ferr_errno(e, ret, "--user %.64s: cannot list the user's groups", spec);
	return 0;
}

/* Kernel workers that KVM and io_uring attach to the process (the NX
 * huge page recovery thread, io-wq) run no user code: not counted. */
#define PRIVS_PF_IO_WORKER   0x00000010
#define PRIVS_PF_USER_WORKER 0x00004000

static bool privs_is_kernel_worker(const char *tid)
{
	char path[sizeof("/proc/self/task//stat") + 256], buf[512], *p;
	unsigned long flags;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "tid (comm) state ppid pgrp session tty tpgid flags ...": comm
	 * may hold anything, so count from its closing parenthesis. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		return false;
	return flags & (PRIVS_PF_IO_WORKER | PRIVS_PF_USER_WORKER);
}

/* User threads of this process, or 0 when /proc cannot say. */
static int privs_count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && !privs_is_kernel_worker(de->d_name))
			n++;
	closedir(d);
	return n;
}

struct privs_caps {
	uint64_t eff, prm, inh, bnd;
};

/* The calling thread's capability sets, straight from the kernel: works
 * inside a chroot, where libcap-ng cannot read /proc. */
static int privs_read_caps(struct privs_caps *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
	c->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	c->bnd = 0;
	for (unsigned int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break;  /* EINVAL past the kernel's last capability */
		if (r)
			c->bnd |= 1ULL << cap;
	}
	return 0;
}

static const char *privs_cap_name(unsigned int cap, char *buf, size_t len)
{
#ifdef HAVE_LIBCAP_NG
	const char *n = capng_capability_to_name(cap);

	if (n)
		return n;
#endif
	snprintf(buf, len, "cap_%u", cap);
	return buf;
}

#ifdef HAVE_LIBCAP_NG
/* Sockets that ferry bound as root would outlive it: a non-root ferry
 * cannot remove a root-owned file from a sticky directory.  Hand the
 * ones it created over to the new user. */
static void privs_chown_socket(const char *flag, const char *path, const struct privs_target *t)
{
	struct stat st;

	if (!path || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
		return;
	if (lchown(path, t->uid, t->gid) < 0)
		log_warn("%s %s: cannot hand the socket to user %s: %s (it may stay behind at exit)",
			 flag, path, t->user, strerror(errno));
}
#endif

/* After the drop: can the files written later still be written? */
static int privs_check_paths(const struct vm_config *cfg, struct ferr *e)
{
	char buf[4096], *dir;
	const char *where = cfg->chroot_dir ? " (inside --chroot)" : "";

	if (!cfg->metrics || strncmp(cfg->metrics, "file:", 5))
		return 0;
	if (snprintf(buf, sizeof(buf), "%s", cfg->metrics + 5) >= (int)sizeof(buf))
		return ferr_set(e, -ENAMETOOLONG, "--metrics: path too long");
	dir = dirname(buf);
	if (access(dir, W_OK | X_OK) < 0)
		return ferr_errno(e, -errno, "--metrics %s: uid %u cannot create files in %s%s",
				  cfg->metrics, (unsigned int)geteuid(), dir, where);
	return 0;
}

/* Staying who we are: our names, looked up while NSS still can. */
static void privs_current_names(struct privs_target *t)
{
	struct passwd *pw = getpwuid(geteuid());
	struct group *gr = getgrgid(getegid());

	snprintf(t->user, sizeof(t->user), "%s", pw ? pw->pw_name : "");
	snprintf(t->group, sizeof(t->group), "%s", gr ? gr->gr_name : "");
}

static void privs_record(const struct vm_config *cfg, const struct privs_target *t)
{
	snprintf(privs_now.user, sizeof(privs_now.user), "%s", t->user);
	snprintf(privs_now.group, sizeof(privs_now.group), "%s", t->group);
	privs_now.chroot_dir = cfg->chroot_dir;
	privs_now.dropped = true;
}

static int privs_chroot(const char *dir, struct ferr *e)
{
	if (chroot(dir) < 0)
		return ferr_errno(e, -errno, "--chroot %s: cannot chroot%s", dir,
				  errno == EPERM ? " (needs CAP_SYS_CHROOT: start ferry as root)" : "");
	if (chdir("/") < 0)
		return ferr_errno(e, -errno, "--chroot %s: cannot chdir to its root", dir);
	return 0;
}

#ifdef HAVE_LIBCAP_NG
/* Capabilities that cannot be dropped: ferry does not run with them. */
static int privs_refuse(struct ferr *e, int err, const char *what)
{
	return ferr_set(e, err, "%s: %s; refusing to run with capabilities ferry cannot drop (--allow-root keeps them)",
			what, strerror(-err));
}

static int privs_switch_user(const struct privs_target *t, struct ferr *e)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	/* Nothing to switch (a non-root ferry naming itself) needs no right. */
	getresuid(&ruid, &euid, &suid);
	getresgid(&rgid, &egid, &sgid);
	if (ruid == t->uid && euid == t->uid && suid == t->uid &&
	    rgid == t->gid && egid == t->gid && sgid == t->gid)
		return 0;
	if (setgroups((size_t)t->nr_groups, t->groups) < 0)
		return ferr_errno(e, -errno, "--user %s: cannot set its groups%s", t->user,
				  errno == EPERM ? " (switching users needs ferry to start as root)" : "");
	if (setresgid(t->gid, t->gid, t->gid) < 0)
		return ferr_errno(e, -errno, "--user %s: cannot switch to gid %u", t->user,
				  (unsigned int)t->gid);
	if (setresuid(t->uid, t->uid, t->uid) < 0)
		return ferr_errno(e, -errno, "--user %s: cannot switch to uid %u", t->user,
				  (unsigned int)t->uid);
	return 0;
}

static int privs_drop_caps(const struct vm_config *cfg, const struct privs_target *t,
			   struct ferr *e)
{
	const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
				   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
				   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	struct privs_caps c;
	bool setpcap;
	int ret;

	/* libcap-ng reads the bounding set from /proc: before the chroot. */
	errno = 0;
	if (capng_get_caps_process() < 0)
		return privs_refuse(e, PRIVS_ERRNO, "cannot read ferry's capabilities");
	setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP) == 1;
	if (setpcap) {
		if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
			return privs_refuse(e, -errno, "cannot lock the securebits");
		capng_clear(CAPNG_SELECT_BOUNDS);
		errno = 0;
		if (capng_apply(CAPNG_SELECT_BOUNDS) < 0)
			return privs_refuse(e, PRIVS_ERRNO, "cannot empty the capability bounding set");
	}
	/* Unprivileged and already without capabilities: nothing to clear
	 * beyond ambient, and no_new_privs below stops exec from gaining. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return privs_refuse(e, -errno, "cannot clear the ambient capabilities");
	if (cfg->chroot_dir && (ret = privs_chroot(cfg->chroot_dir, e)) < 0)
		return ret;
	if (t && (ret = privs_switch_user(t, e)) < 0)
		return ret;
	capng_clear(CAPNG_SELECT_CAPS);
	errno = 0;
	if (capng_apply(CAPNG_SELECT_CAPS) < 0)
		return privs_refuse(e, PRIVS_ERRNO, "cannot drop ferry's capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return privs_refuse(e, -errno, "cannot set no_new_privs");

	/* Trust, but verify: the kernel's word, not the library's state. */
	ret = privs_read_caps(&c);
	if (ret < 0)
		return privs_refuse(e, ret, "cannot read back ferry's capabilities");
	if (c.eff || c.prm || c.inh)
		return ferr_set(e, -EPERM, "capabilities remain after dropping them (effective %#llx, permitted %#llx)",
				(unsigned long long)c.eff, (unsigned long long)c.prm);
	if (setpcap && c.bnd)
		return ferr_set(e, -EPERM, "the capability bounding set is not empty (%#llx)",
				(unsigned long long)c.bnd);
	if (!setpcap && c.bnd)
		log_debug("no CAP_SETPCAP: the bounding set stays (%#llx); no_new_privs keeps exec from using it",
			  (unsigned long long)c.bnd);
	return 0;
}
#endif

int privs_drop(const struct vm_config *cfg, struct ferr *e)
{
	struct privs_target t = { .groups = NULL };
	bool root = geteuid() == 0;
	struct privs_caps c;
	int threads, ret;

	if (cfg->user && cfg->allow_root)
		return ferr_set(e, -EINVAL, "--user and --allow-root exclude each other (--allow-root keeps root)");
	if (cfg->user && (ret = privs_resolve(cfg->user, &t, e)) < 0)
		goto out;
	if (!cfg->user)
		privs_current_names(&t);
	threads = privs_count_threads();
	if (threads > 1) {
		ret = ferr_set(e, -EBUSY, "cannot drop privileges: %d threads run already and would keep theirs (a bug in ferry)",
			       threads);
		goto out;
	}
	if (cfg->allow_root) {
		if (cfg->chroot_dir && (ret = privs_chroot(cfg->chroot_dir, e)) < 0)
			goto out;
		if (privs_read_caps(&c) == 0 && (c.eff || c.prm))
			log_warn("--allow-root: keeping %s's capabilities (effective %#llx); a guest that breaks out of ferry gets them too",
				 root ? "root" : "this user", (unsigned long long)c.eff);
		privs_record(cfg, &t);
		ret = 0;
		goto out;
	}
#ifdef HAVE_LIBCAP_NG
	if (cfg->user)
		privs_chown_socket("--api", notify_listen_fd() < 0 ? cfg->api_path : NULL, &t);
	if (cfg->user && cfg->metrics && !strncmp(cfg->metrics, "unix:", 5))
		privs_chown_socket("--metrics", cfg->metrics + 5, &t);
	ret = privs_drop_caps(cfg, cfg->user ? &t : NULL, e);
	if (ret < 0)
		goto out;
#else
	if (cfg->user || cfg->chroot_dir) {
		ret = ferr_set(e, -ENOTSUP, "--user and --chroot need a ferry built with libcap-ng (apt-get install libcap-ng-dev, rebuild)");
		goto out;
	}
	if (privs_read_caps(&c) < 0 || c.eff || c.prm) {
		ret = ferr_set(e, -EPERM, "refusing to run with capabilities: this ferry was built without libcap-ng and cannot drop them; run it as an unprivileged user or pass --allow-root");
		goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = ferr_errno(e, -errno, "cannot set no_new_privs");
		goto out;
	}
#endif
	ret = privs_check_paths(cfg, e);
	if (ret < 0)
		goto out;
	privs_record(cfg, &t);
	if (cfg->user)
		log_info("privileges dropped: running as %s (uid %u, gid %u) without capabilities%s%s",
			 t.user, (unsigned int)t.uid, (unsigned int)t.gid,
			 cfg->chroot_dir ? ", chrooted to " : "", cfg->chroot_dir ? cfg->chroot_dir : "");
	else if (root)
		log_info("privileges dropped: running as root without capabilities%s%s (--user USER leaves root too)",
			 cfg->chroot_dir ? ", chrooted to " : "", cfg->chroot_dir ? cfg->chroot_dir : "");
	else
		log_debug("privileges dropped: no capabilities, no_new_privs");
out:
	free(t.groups);
	return ret;
}

struct json_object *privs_status_json(void)
{
	struct json_object *o = json_object_new_object(), *caps = json_object_new_array();
	struct privs_caps c;
	char buf[32];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);

	if (!o || !caps) {
		json_object_put(o);
		json_object_put(caps);
		return NULL;
	}
	if (!privs_now.dropped) {
		/* Not dropped (a unit test, or before start-up ends): look up. */
		struct passwd *pw = getpwuid(uid);
		struct group *gr = getgrgid(gid);

		json_object_object_add(o, "user", pw ? json_object_new_string(pw->pw_name) : NULL);
		json_object_object_add(o, "group", gr ? json_object_new_string(gr->gr_name) : NULL);
	} else {
		json_object_object_add(o, "user", privs_now.user[0] ?
				       json_object_new_string(privs_now.user) : NULL);
		json_object_object_add(o, "group", privs_now.group[0] ?
				       json_object_new_string(privs_now.group) : NULL);
	}
	json_object_object_add(o, "uid", json_object_new_int64(uid));
	json_object_object_add(o, "gid", json_object_new_int64(gid));
	if (privs_read_caps(&c) == 0) {
		for (unsigned int cap = 0; cap < 64; cap++)
			if (c.eff & (1ULL << cap))
				json_object_array_add(caps, json_object_new_string(
						      privs_cap_name(cap, buf, sizeof(buf))));
	}
	json_object_object_add(o, "capabilities", caps);
	json_object_object_add(o, "no_new_privs", json_object_new_boolean(nnp == 1));
	json_object_object_add(o, "chroot", privs_now.chroot_dir ?
			       json_object_new_string(privs_now.chroot_dir) : NULL);
	return o;
}
