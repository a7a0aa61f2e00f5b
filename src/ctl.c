/* The control verbs: `ferry status|pause|resume|shutdown|stop|stats|events
 * --api PATH`.  Each connects to a running ferry's control socket, sends one
 * request (protocol: src/api.c), and prints the answer for people, or the
 * reply's result as JSON with --json.  Exit status: enum ctl_exit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ferry/api.h"
#include "ferry/ctl.h"
#include "ferry/migrate.h"
#include "ferry/util.h"

/* A reply the VMM owes us at once; only `events` waits longer. */
#define CTL_REPLY_TIMEOUT_S 10

struct ctl_verb {
	const char *name;
	const char *request;            /* NULL: events */
	const char *help;
	void (*print)(struct json_object *result);
};

struct ctl_opts {
	const char *api;
	bool json;
	int64_t timeout;                /* shutdown --timeout, -1: not given */
};

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return "?";
	return json_object_get_string(v);
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static double jdbl(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static void ctl_fmt_bytes(char *buf, size_t size, uint64_t v)
{
	if (v >= GiB && v % GiB == 0)
		snprintf(buf, size, "%llu GiB", (unsigned long long)(v / GiB));
	else if (v >= MiB && v % MiB == 0)
		snprintf(buf, size, "%llu MiB", (unsigned long long)(v / MiB));
	else if (v >= MiB)
		snprintf(buf, size, "%.1f MiB", v / (double)MiB);
	else
		snprintf(buf, size, "%llu bytes", (unsigned long long)v);
}

/* "user root (uid 0, gid 0), capabilities: none, seccomp on" */
static void ctl_print_privileges(struct json_object *r)
{
	struct json_object *p, *caps;
	const char *user;

	if (!json_object_object_get_ex(r, "privileges", &p))
		return;
	user = jstr(p, "user");
	printf("user:     %s (uid %lld, gid %lld)", user && *user ? user : "?",
	       (long long)jint(p, "uid"), (long long)jint(p, "gid"));
	if (json_object_object_get_ex(p, "chroot", &caps) && json_object_is_type(caps, json_type_string))
		printf(", chroot %s", json_object_get_string(caps));
	printf("\ncaps:     ");
	if (json_object_object_get_ex(p, "capabilities", &caps) &&
	    json_object_is_type(caps, json_type_array) && json_object_array_length(caps)) {
		for (size_t i = 0; i < json_object_array_length(caps); i++)
			printf("%s%s", i ? "," : "",
			       json_object_get_string(json_object_array_get_idx(caps, i)));
	} else {
		printf("none");
	}
	printf("\nseccomp:  %s\n", jstr(r, "seccomp"));
}

static void ctl_print_status(struct json_object *r)
{
	struct json_object *devs;
	char mem[32];

	ctl_fmt_bytes(mem, sizeof(mem), jint(r, "memory_bytes"));
	printf("name:     %s\n", jstr(r, "name"));
	printf("state:    %s\n", jstr(r, "state"));
	printf("uptime:   %.1f s\n", jdbl(r, "uptime_s"));
	printf("vcpus:    %lld\n", (long long)jint(r, "vcpus"));
	printf("memory:   %s\n", mem);
	printf("pid:      %lld\n", (long long)jint(r, "pid"));
	ctl_print_privileges(r);
	if (json_object_object_get_ex(r, "devices", &devs) &&
	    json_object_is_type(devs, json_type_array)) {
		printf("devices: ");
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			struct json_object *d = json_object_array_get_idx(devs, i);

			printf(" %s@%s:0x%llx", jstr(d, "name"), jstr(d, "bus"),
			       (unsigned long long)jint(d, "base"));
		}
		printf("\n");
	}
}

static void ctl_print_stats(struct json_object *r)
{
	struct json_object *vcpus, *devs, *buses;
	char mem[32], rss[32];

	ctl_fmt_bytes(mem, sizeof(mem), jint(r, "memory_bytes"));
	ctl_fmt_bytes(rss, sizeof(rss), jint(r, "rss_bytes"));
	printf("state %s, up %.1f s, memory %s, ferry RSS %s\n\n", jstr(r, "state"),
	       jdbl(r, "uptime_s"), mem, rss);
	printf("%-5s %12s %12s %10s  %s\n", "VCPU", "GUEST s", "FERRY s", "EXITS", "BY REASON");
	if (json_object_object_get_ex(r, "vcpus", &vcpus) &&
	    json_object_is_type(vcpus, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(vcpus); i++) {
			struct json_object *v = json_object_array_get_idx(vcpus, i), *ex;

			printf("%-5lld %12.3f %12.3f %10lld ", (long long)jint(v, "id"),
			       jint(v, "guest_ns") / 1e9, jint(v, "vmm_ns") / 1e9,
			       (long long)jint(v, "exits_total"));
			if (json_object_object_get_ex(v, "exits", &ex) &&
			    json_object_is_type(ex, json_type_object)) {
				json_object_object_foreach(ex, k, n)
					printf(" %s=%lld", k, (long long)json_object_get_int64(n));
			}
			printf("\n");
		}
	}
	if (json_object_object_get_ex(r, "devices", &devs) &&
	    json_object_is_type(devs, json_type_object)) {
		printf("\n%-12s %s\n", "DEVICE", "COUNTERS");
		json_object_object_foreach(devs, name, d) {
			printf("%-12s", name);
			if (json_object_is_type(d, json_type_object)) {
				json_object_object_foreach(d, k, n)
					printf(" %s=%lld", k, (long long)json_object_get_int64(n));
			}
			printf("\n");
		}
	}
	if (json_object_object_get_ex(r, "buses", &buses) &&
	    json_object_is_type(buses, json_type_object)) {
		json_object_object_foreach(buses, name, b)
			printf("%-12s unhandled=%lld\n", name, (long long)jint(b, "unhandled"));
	}
}

static void ctl_print_state(struct json_object *r)
{
	printf("%s\n", jstr(r, "state"));
}

/* stop is asynchronous: the reply comes before the VM has stopped. */
static void ctl_print_stop(struct json_object *r)
{
	(void)r;
	printf("stopping\n");
}

static const struct ctl_verb ctl_verbs[] = {
	{ "status", "status", "show the VM's state, size and devices", ctl_print_status },
	{ "stats", "stats", "show vCPU exits, time in guest and in ferry, device counters", ctl_print_stats },
	{ "pause", "pause", "stop running the vCPUs (legal when running)", ctl_print_state },
	{ "resume", "resume", "run a paused VM again", ctl_print_state },
	{ "shutdown", "shutdown", "press the ACPI power button; stop the VM if it is still up after the timeout", ctl_print_state },
	{ "stop", "stop", "stop the VM at once, like pulling the plug", ctl_print_stop },
	{ "events", NULL, "print state changes as JSON lines until the VM stops", NULL },
	{ "migrate", "migrate", "move the running VM to another ferry (ferry run --incoming) over TCP", NULL },
	{ "snapshot", "snapshot", "write the VM to a file for 'ferry run --restore'; the VM goes on", NULL },
};

static const struct ctl_verb *ctl_find(const char *verb)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctl_verbs); i++)
		if (!strcmp(ctl_verbs[i].name, verb))
			return &ctl_verbs[i];
	return NULL;
}

int ctl_is_verb(const char *verb)
{
	return verb && ctl_find(verb) != NULL;
}

static void ctl_usage(FILE *f, const struct ctl_verb *v)
{
	bool shutdown = !strcmp(v->name, "shutdown");

	fprintf(f, "Usage: ferry %s --api PATH%s%s\n\n", v->name,
		v->request ? " [--json]" : "", shutdown ? " [--timeout SECONDS]" : "");
	fprintf(f, "%c%s.\n\nOptions:\n", v->help[0] - 'a' + 'A', v->help + 1);
	fprintf(f, "  --api PATH     the control socket the VM was started with (ferry run --api PATH)\n");
	if (v->request)
		fprintf(f, "  --json         print the reply's result as JSON\n");
	if (shutdown)
		fprintf(f, "  --timeout S    stop the VM if the guest is still up after S seconds\n"
			   "                 (default: the VM's --shutdown-timeout)\n");
	fprintf(f, "  --help         this help\n\n"
		   "Exit status:\n"
		   "  %d  done\n  %d  bad flags\n  %d  cannot connect to the control socket\n"
		   "  %d  not possible in the VM's current state\n  %d  the request failed\n"
		   "\nThe protocol (JSON lines: requests, replies, events) is documented at the\n"
		   "top of ferry's src/api.c.\n",
		CTL_EXIT_OK, CTL_EXIT_USAGE, CTL_EXIT_CONNECT, CTL_EXIT_REFUSED, CTL_EXIT_FAILED);
}

/* Returns -1 after printing the reason, 1 for --help, 0 to go on. */
static int ctl_parse(const struct ctl_verb *v, int argc, char **argv, struct ctl_opts *o)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		size_t len;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return 1;
		if (!strcmp(a, "--json") && v->request) {
			o->json = true;
			continue;
		}
		len = strcspn(a, "=");
		if (!strncmp(a, "--api", len) && len == 5) {
			val = a[len] ? a + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val || !*val) {
				fprintf(stderr, "ferry: --api needs a socket path\n");
				return -1;
			}
			o->api = val;
			continue;
		}
		if (!strncmp(a, "--timeout", len) && len == 9 && !strcmp(v->name, "shutdown")) {
			uint64_t t;

			val = a[len] ? a + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val || parse_uint(val, 0, 3600, &t) < 0) {
				fprintf(stderr, "ferry: --timeout: '%s' is not 0 to 3600 seconds\n",
					val ? val : "");
				return -1;
			}
			o->timeout = t;
			continue;
		}
		fprintf(stderr, "ferry: %s: unknown option '%s' (see 'ferry %s --help')\n",
			v->name, a, v->name);
		return -1;
	}
	if (!o->api) {
		fprintf(stderr, "ferry: %s: --api PATH is required (see 'ferry %s --help')\n",
			v->name, v->name);
		return -1;
	}
	return 0;
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ferry: cannot connect to %s: path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		fprintf(stderr, "ferry: cannot connect to %s: %s%s\n", path, strerror(err),
			err == ENOENT || err == ECONNREFUSED ?
			" (is the VM running with --api?)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read one line into a growing buffer; 0 at EOF before any byte, 1 for a
 * line (NUL-terminated, newline dropped), -errno on error. */
static int ctl_read_line(int fd, char **line, char *buf, size_t *have)
{
	size_t cap = API_OUT_MAX;

	for (;;) {
		char *nl = memchr(buf, '\n', *have);
		ssize_t n;

		if (nl) {
			size_t len = nl - buf;

			*line = strndup(buf, len);
			memmove(buf, nl + 1, *have - len - 1);
			*have -= len + 1;
			return *line ? 1 : -ENOMEM;
		}
		if (*have >= cap)
			return -EMSGSIZE;
		n = read(fd, buf + *have, cap - *have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return *have ? -EPROTO : 0;
		*have += n;
	}
}

static int ctl_events(int fd, const char *path)
{
	const char *req = "{\"request\":\"subscribe\"}\n";
	char *buf = malloc(API_OUT_MAX), *line = NULL;
	size_t have = 0;
	int ret, status = CTL_EXIT_OK;
	bool replied = false;

	if (!buf || write_all(fd, req, strlen(req)) < 0) {
		fprintf(stderr, "ferry: cannot send to %s: %s\n", path, strerror(errno));
		free(buf);
		return CTL_EXIT_FAILED;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((ret = ctl_read_line(fd, &line, buf, &have)) > 0) {
		/* The reply to subscribe is not an event; the rest are. */
		if (!replied && !strstr(line, "\"event\"")) {
			replied = true;
			if (!strstr(line, "\"ok\":true")) {
				fprintf(stderr, "ferry: events: %s\n", line);
				status = CTL_EXIT_FAILED;
				free(line);
				break;
			}
		} else {
			printf("%s\n", line);
		}
		free(line);
	}
	if (ret < 0) {
		fprintf(stderr, "ferry: events: reading %s: %s\n", path, strerror(-ret));
		status = CTL_EXIT_FAILED;
	}
	free(buf);
	return status;
}

static int ctl_reply_status(const struct ctl_verb *v, struct json_object *reply, bool json)
{
	struct json_object *ok, *res, *err;

	if (!json_object_is_type(reply, json_type_object) ||
	    !json_object_object_get_ex(reply, "ok", &ok)) {
		fprintf(stderr, "ferry: %s: the VMM sent a reply that is not ferry's protocol\n",
			v->name);
		return CTL_EXIT_FAILED;
	}
	if (json_object_get_boolean(ok)) {
		if (!json_object_object_get_ex(reply, "result", &res))
			res = NULL;
		if (json)
			printf("%s\n", json_object_to_json_string_ext(res,
				JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
		else if (res)
			v->print(res);
		return CTL_EXIT_OK;
	}
	if (!json_object_object_get_ex(reply, "error", &err))
		err = NULL;
	if (json)
		printf("%s\n", json_object_to_json_string_ext(err, JSON_C_TO_STRING_PRETTY));
	fprintf(stderr, "ferry: %s: %s\n", v->name, err ? jstr(err, "message") : "failed");
	return err && !strcmp(jstr(err, "code"), "refused") ? CTL_EXIT_REFUSED : CTL_EXIT_FAILED;
}

/* ---- ferry migrate ---- */

struct ctl_mig_opts {
	const char *api, *to;
	int64_t downtime, bandwidth, timeout;
	int auto_converge;              /* -1: default */
	bool json;
	bool snap, live;                /* ferry snapshot [--live] */
	const char *verb;
	char *abs_to;                   /* snapshot: --to made absolute */
};

static void ctl_snapshot_usage(FILE *f)
{
	fprintf(f, "Usage: ferry snapshot --api PATH --to FILE [--live] [--max-downtime MS] [--timeout S] [--json]\n\n"
		   "Write the VM (machine description, RAM, vCPU and device state) to FILE, a new\n"
		   "file of mode 0600; 'ferry run --restore FILE <the same machine flags>' starts it\n"
		   "again.  The VM keeps running here (a paused one stays paused).\n\n"
		   "Options:\n"
		   "  --api PATH            the control socket of the VM\n"
		   "  --to FILE             the snapshot file to create (an existing one is refused)\n"
		   "  --live                copy RAM while the guest runs, then pause it briefly;\n"
		   "                        without it the guest is paused for the whole copy\n"
		   "  --max-downtime MS     --live: longest pause to aim for (default %d)\n"
		   "  --timeout S           --live: give up if not done after S seconds\n"
		   "  --json                print the summary as one JSON object\n\n"
		   "Exit status (in every failure the VM keeps running and no FILE is left):\n"
		   "  %d  FILE written\n  %d  bad flags, or FILE exists\n  %d  cannot connect to the control socket\n"
		   "  %d  not possible now (a migration or snapshot is running, VM not running)\n"
		   "  %d  failed\n  %d  cancelled\n  %d  --live did not converge within --timeout\n",
		MIG_DEFAULT_DOWNTIME_MS, CTL_EXIT_OK, CTL_EXIT_USAGE, CTL_EXIT_CONNECT,
		CTL_EXIT_REFUSED, CTL_EXIT_FAILED, CTL_EXIT_MIG_CANCELLED, CTL_EXIT_MIG_TIMEOUT);
}

static void ctl_migrate_usage(FILE *f)
{
	fprintf(f, "Usage: ferry migrate --api PATH --to tcp:HOST:PORT [--max-downtime MS]\n"
		   "                     [--max-bandwidth RATE] [--timeout S] [--auto-converge on|off] [--json]\n\n"
		   "Move the running VM to another ferry started with\n"
		   "'ferry run --incoming tcp:ADDR:PORT <the same machine flags>' (live, pre-copy).\n\n"
		   "Options:\n"
		   "  --api PATH            the control socket of the VM to move\n"
		   "  --to tcp:HOST:PORT    the destination's --incoming address\n"
		   "  --max-downtime MS     longest pause of the guest to aim for (default %d)\n"
		   "  --max-bandwidth RATE  bytes per second, K/M/G suffixes (default: unlimited)\n"
		   "  --timeout S           give up if not done after S seconds (default: never)\n"
		   "  --auto-converge on|off  slow down vCPUs that dirty memory faster than the\n"
		   "                        link carries it (default on)\n"
		   "  --json                print the summary as one JSON object\n\n"
		   "Exit status (in every failure the VM keeps running on the source):\n"
		   "  %d  the destination runs the VM\n  %d  bad flags\n  %d  cannot connect to the control socket\n"
		   "  %d  not possible now (a migration is already running, VM not running)\n"
		   "  %d  failed\n  %d  cancelled\n  %d  did not converge within --timeout\n"
		   "  %d  the destination refused (machine mismatch, corrupted stream)\n"
		   "  %d  the connection to the destination failed or broke\n",
		MIG_DEFAULT_DOWNTIME_MS, CTL_EXIT_OK, CTL_EXIT_USAGE, CTL_EXIT_CONNECT,
		CTL_EXIT_REFUSED, CTL_EXIT_FAILED, CTL_EXIT_MIG_CANCELLED, CTL_EXIT_MIG_TIMEOUT,
		CTL_EXIT_MIG_REFUSED, CTL_EXIT_MIG_CONNECT);
}

static int ctl_migrate_parse(int argc, char **argv, struct ctl_mig_opts *o)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val;
		size_t len = strcspn(a, "=");
		uint64_t v;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return 1;
		if (!strcmp(a, "--json")) {
			o->json = true;
			continue;
		}
		if (o->snap && !strcmp(a, "--live")) {
			o->live = true;
			continue;
		}
		val = a[len] ? a + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!val) {
			fprintf(stderr, "ferry: %s: %s needs a value\n", o->verb, a);
			return -1;
		}
#define IS(flag) (len == strlen(flag) && !strncmp(a, flag, len))
		if (IS("--api")) {
			o->api = val;
		} else if (IS("--to")) {
			o->to = val;
		} else if (IS("--max-downtime")) {
			if (parse_uint(val, 1, 60000, &v) < 0) {
				fprintf(stderr, "ferry: migrate: --max-downtime: '%s' is not 1 to 60000 ms\n", val);
				return -1;
			}
			o->downtime = v;
		} else if (IS("--max-bandwidth") && !o->snap) {
			if (parse_size(val, &v) < 0 || v > INT64_MAX) {
				fprintf(stderr, "ferry: migrate: --max-bandwidth: '%s' is not a rate in bytes/s (e.g. 100M)\n", val);
				return -1;
			}
			o->bandwidth = v;
		} else if (IS("--timeout")) {
			if (parse_uint(val, 0, 86400, &v) < 0) {
				fprintf(stderr, "ferry: migrate: --timeout: '%s' is not 0 to 86400 seconds\n", val);
				return -1;
			}
			o->timeout = v;
		} else if (IS("--auto-converge") && !o->snap) {
			if (strcmp(val, "on") && strcmp(val, "off")) {
				fprintf(stderr, "ferry: migrate: --auto-converge: '%s' is not on or off\n", val);
				return -1;
			}
			o->auto_converge = !strcmp(val, "on");
		} else {
			fprintf(stderr, "ferry: %s: unknown option '%s' (see 'ferry %s --help')\n",
				o->verb, a, o->verb);
			return -1;
		}
#undef IS
	}
	if (!o->api || !o->to) {
		fprintf(stderr, "ferry: %s: --api PATH and --to %s are required (see 'ferry %s --help')\n",
			o->verb, o->snap ? "FILE" : "tcp:HOST:PORT", o->verb);
		return -1;
	}
	/* ferry runs elsewhere: a relative FILE means ours, not its. */
	if (o->snap && o->to[0] != '/') {
		char *cwd = getcwd(NULL, 0);

		if (!cwd || asprintf(&o->abs_to, "%s/%s", cwd, o->to) < 0) {
			free(cwd);
			fprintf(stderr, "ferry: snapshot: cannot make '%s' absolute\n", o->to);
			return -1;
		}
		free(cwd);
		o->to = o->abs_to;
	}
	return 0;
}

static int ctl_send(int fd, struct json_object *req)
{
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);

	if (!s || write_all(fd, s, strlen(s)) < 0 || write_all(fd, "\n", 1) < 0)
		return -1;
	return 0;
}

static bool ctl_mig_terminal(const char *status)
{
	static const char *const ends[] = { "completed", "failed", "connection-failed",
					    "refused", "timeout", "cancelled" };

	for (size_t i = 0; i < ARRAY_SIZE(ends); i++)
		if (!strcmp(status, ends[i]))
			return true;
	return false;
}

static void ctl_mig_progress(struct json_object *ev, bool tty)
{
	double total = jint(ev, "ram_pages"), left = jint(ev, "remaining_pages");
	double pct = total ? 100.0 * (total - left) / total : 0;
	char line[200];

	snprintf(line, sizeof(line), "%-10s %5.1f%%  %8.1f MiB/s  dirty %8.1f MiB/s  round %lld  expected downtime %.1f ms%s",
		 jstr(ev, "status"), pct, jint(ev, "bandwidth_bps") / (double)MiB,
		 jint(ev, "dirty_rate_bps") / (double)MiB, (long long)jint(ev, "round"),
		 jdbl(ev, "expected_downtime_ms"),
		 jint(ev, "throttle_pct") ? "  throttled" : "");
	if (tty) {
		int filled = (int)(pct / 5);

		fprintf(stderr, "\r[%.*s%*s] %s", filled, "####################", 20 - filled, "", line);
	} else {
		fprintf(stderr, "%s\n", line);
	}
}

static int ctl_mig_summary(struct json_object *ev, const struct ctl_mig_opts *o, bool tty)
{
	const char *status = jstr(ev, "status");

	if (tty)
		fprintf(stderr, "\n");
	if (o->json) {
		json_object_object_del(ev, "event");
		json_object_object_del(ev, "timestamp");
		printf("%s\n", json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
	}
	if (!strcmp(status, "completed") && o->snap) {
		if (!o->json)
			printf("snapshot written to %s: total %.1f ms, guest paused %.2f ms, %.1f MiB, %lld pages (%lld zero pages skipped)\n",
			       o->to, jdbl(ev, "total_ms"), jdbl(ev, "downtime_ms"),
			       jint(ev, "bytes") / (double)MiB, (long long)jint(ev, "pages"),
			       (long long)jint(ev, "zero_pages"));
		return CTL_EXIT_OK;
	}
	if (!strcmp(status, "completed")) {
		if (!o->json)
			printf("migrated to %s: total %.1f ms, downtime %.2f ms, %.1f MiB sent, %lld pages (%lld zero pages skipped), %lld rounds, final dirty rate %.1f MiB/s\n",
			       o->to, jdbl(ev, "total_ms"), jdbl(ev, "downtime_ms"),
			       jint(ev, "bytes") / (double)MiB, (long long)jint(ev, "pages"),
			       (long long)jint(ev, "zero_pages"), (long long)jint(ev, "rounds"),
			       jint(ev, "dirty_rate_bps") / (double)MiB);
		return CTL_EXIT_OK;
	}
	fprintf(stderr, "ferry: %s: %s: %s (the VM keeps running%s)\n", o->verb, status,
		jstr(ev, "error"), o->snap ? "" : " on the source");
	if (!strcmp(status, "cancelled"))
		return CTL_EXIT_MIG_CANCELLED;
	if (!strcmp(status, "timeout"))
		return CTL_EXIT_MIG_TIMEOUT;
	if (!strcmp(status, "refused"))
		return CTL_EXIT_MIG_REFUSED;
	if (!strcmp(status, "connection-failed"))
		return CTL_EXIT_MIG_CONNECT;
	return CTL_EXIT_FAILED;
}

static int ctl_migrate(int argc, char **argv, bool snap)
{
	struct ctl_mig_opts o = { .downtime = -1, .bandwidth = -1, .timeout = -1, .auto_converge = -1,
				  .snap = snap, .verb = snap ? "snapshot" : "migrate" };
	struct json_object *req, *msg = NULL;
	char *buf = NULL, *line = NULL;
	bool tty = isatty(STDERR_FILENO), replied = false;
	int fd, ret, status = CTL_EXIT_FAILED, step = 0;
	size_t have = 0;

	ret = ctl_migrate_parse(argc, argv, &o);
	if (ret) {
		if (ret > 0 && snap)
			ctl_snapshot_usage(stdout);
		else if (ret > 0)
			ctl_migrate_usage(stdout);
		free(o.abs_to);
		return ret > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	fd = ctl_connect(o.api);
	if (fd < 0) {
		free(o.abs_to);
		return CTL_EXIT_CONNECT;
	}
	buf = malloc(API_OUT_MAX);
	req = json_object_new_object();
	json_object_object_add(req, "request", json_object_new_string("subscribe"));
	if (!buf || ctl_send(fd, req) < 0) {
		fprintf(stderr, "ferry: %s: cannot send to %s: %s\n", o.verb, o.api, strerror(errno));
		goto out;
	}
	json_object_put(req);
	req = json_object_new_object();
	json_object_object_add(req, "request", json_object_new_string(o.verb));
	json_object_object_add(req, "to", json_object_new_string(o.to));
	if (o.live)
		json_object_object_add(req, "live", json_object_new_boolean(true));
	if (o.downtime >= 0)
		json_object_object_add(req, "max_downtime_ms", json_object_new_int64(o.downtime));
	if (o.bandwidth >= 0)
		json_object_object_add(req, "max_bandwidth", json_object_new_int64(o.bandwidth));
	if (o.timeout >= 0)
		json_object_object_add(req, "timeout_s", json_object_new_int64(o.timeout));
	if (o.auto_converge >= 0)
		json_object_object_add(req, "auto_converge", json_object_new_boolean(o.auto_converge));
	if (ctl_send(fd, req) < 0) {
		fprintf(stderr, "ferry: %s: cannot send to %s: %s\n", o.verb, o.api, strerror(errno));
		goto out;
	}
	/* Replies: subscribe's, then migrate's; then events until the end.
	 * Events before migrate's reply belong to an earlier migration. */
	while ((ret = ctl_read_line(fd, &line, buf, &have)) > 0) {
		json_object_put(msg);
		msg = json_tokener_parse(line);
		free(line);
		line = NULL;
		if (!msg || !json_object_is_type(msg, json_type_object))
			continue;
		if (!json_object_object_get_ex(msg, "event", NULL)) {
			struct json_object *ok, *err;

			step++;
			if (!json_object_object_get_ex(msg, "ok", &ok) || json_object_get_boolean(ok))
				continue;
			json_object_object_get_ex(msg, "error", &err);
			fprintf(stderr, "ferry: %s: %s\n", o.verb, err ? jstr(err, "message") : "failed");
			status = err && !strcmp(jstr(err, "code"), "refused") ? CTL_EXIT_REFUSED :
				 err && !strcmp(jstr(err, "code"), "invalid_argument") ? CTL_EXIT_USAGE :
				 CTL_EXIT_FAILED;
			goto out;
		}
		replied = step >= 2;
		if (!replied || strcmp(jstr(msg, "event"), "migration"))
			continue;
		if (ctl_mig_terminal(jstr(msg, "status"))) {
			status = ctl_mig_summary(msg, &o, tty);
			goto out;
		}
		ctl_mig_progress(msg, tty);
	}
	fprintf(stderr, "ferry: %s: the VMM closed the control socket before the %s ended\n",
		o.verb, snap ? "snapshot" : "migration");
out:
	free(o.abs_to);
	json_object_put(msg);
	json_object_put(req);
	free(line);
	free(buf);
	close(fd);
	return status;
}

int ctl_main(const char *verb, int argc, char **argv)
{
	const struct ctl_verb *v = ctl_find(verb);
	struct ctl_opts o = { .timeout = -1 };
	struct json_object *req, *reply;
	struct timeval tv = { .tv_sec = CTL_REPLY_TIMEOUT_S };
	char *buf = NULL, *line = NULL;
	size_t have = 0;
	const char *s;
	int fd, ret, status;

	if (!v)
		return CTL_EXIT_USAGE;
	if (!strcmp(v->name, "migrate") || !strcmp(v->name, "snapshot"))
		return ctl_migrate(argc, argv, !strcmp(v->name, "snapshot"));
	ret = ctl_parse(v, argc, argv, &o);
	if (ret) {
		if (ret > 0)
			ctl_usage(stdout, v);
		return ret > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	fd = ctl_connect(o.api);
	if (fd < 0)
		return CTL_EXIT_CONNECT;
	if (!v->request) {
		status = ctl_events(fd, o.api);
		close(fd);
		return status;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	req = json_object_new_object();
	json_object_object_add(req, "request", json_object_new_string(v->request));
	if (o.timeout >= 0)
		json_object_object_add(req, "timeout", json_object_new_int64(o.timeout));
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	buf = malloc(API_OUT_MAX);
	status = CTL_EXIT_FAILED;
	if (!buf || !s || write_all(fd, s, strlen(s)) < 0 || write_all(fd, "\n", 1) < 0) {
		fprintf(stderr, "ferry: %s: cannot send to %s: %s\n", v->name, o.api, strerror(errno));
		goto out;
	}
	/* Skip event lines: none are expected without subscribing, but a
	 * newer ferry might send them. */
	do {
		free(line);
		line = NULL;
		ret = ctl_read_line(fd, &line, buf, &have);
	} while (ret > 0 && strstr(line, "\"event\"") && !strstr(line, "\"ok\""));
	if (ret <= 0) {
		fprintf(stderr, "ferry: %s: no reply from %s: %s\n", v->name, o.api,
			ret == 0 ? "connection closed" :
			ret == -EAGAIN ? "timed out" : strerror(-ret));
		goto out;
	}
	reply = json_tokener_parse(line);
	status = ctl_reply_status(v, reply, o.json);
	json_object_put(reply);
out:
	free(line);
	free(buf);
	json_object_put(req);
	close(fd);
	return status;
}
