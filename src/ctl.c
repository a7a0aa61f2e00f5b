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
