/* Prometheus metrics: the stats object (src/stats.c) in the text exposition
 * format (version 0.0.4), served two ways.
 *
 *   --metrics unix:PATH   a Unix stream socket (mode 0600).  A client that
 *       sends an HTTP request (GET or HEAD, any path, ending with an empty
 *       line) gets an HTTP/1.0 response, so that
 *           curl --unix-socket PATH http://localhost/metrics
 *       works; a client that sends nothing for METRICS_WAIT_MS, or shuts
 *       down its write side, gets the bare text (socat, nc -U).  Either
 *       way ferry closes the connection after the answer.  At most
 *       METRICS_MAX_CLIENTS at once; a client still connected after
 *       METRICS_DEADLINE_MS is dropped.
 *   --metrics file:PATH   PATH is rewritten every METRICS_PERIOD_S seconds
 *       through a temporary file and rename(), so a reader (node_exporter's
 *       textfile collector) never sees half a file.  The last snapshot,
 *       with state "stopped", stays when ferry exits.
 *
 * Names: ferry_info, ferry_state{state}, ferry_uptime_seconds,
 * ferry_memory_bytes, ferry_rss_bytes, ferry_vcpu_exits_total{vcpu,reason},
 * ferry_vcpu_guest_seconds_total{vcpu}, ferry_vcpu_vmm_seconds_total{vcpu},
 * ferry_device_<counter>_total{device}, ferry_bus_unhandled_total{bus}.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "ferry/api.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/metrics.h"
#include "ferry/stats.h"
#include "ferry/util.h"
#include "ferry/vmm.h"

#define METRICS_PERIOD_S     5
#define METRICS_MAX_CLIENTS  16
#define METRICS_REQ_MAX      2048
#define METRICS_WAIT_MS      300
#define METRICS_DEADLINE_MS  5000
#define METRICS_TICK_MS      100

struct metrics_client {
	struct metrics *mt;
	int fd;
	uint64_t since_ns;
	char req[METRICS_REQ_MAX];
	size_t req_len;
	char *out;                      /* the answer, once chosen */
	size_t out_len, out_off;
	struct metrics_client *next;
};

struct metrics {
	struct vmm *vmm;
	bool is_file;
	const char *path;
	int fd;                         /* the listening socket (unix:) */
	int timer_fd;                   /* file: period; unix: client timeouts */
	struct api_sock_id sock_id;
	struct metrics_client *clients;
	unsigned int nr_clients;
	bool write_failed;              /* file: log a failure once, not every 5 s */
};

/* --- Formatting --- */

static void metrics_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void metrics_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int64_t jget(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void metrics_vcpus(FILE *f, struct json_object *vcpus)
{
	size_t n = json_object_array_length(vcpus);

	metrics_head(f, "ferry_vcpu_exits_total", "counter", "vCPU exits to ferry, by KVM exit reason");
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vcpus, i), *ex;

		if (!json_object_object_get_ex(v, "exits", &ex))
			continue;
		json_object_object_foreach(ex, reason, cnt)
			fprintf(f, "ferry_vcpu_exits_total{vcpu=\"%lld\",reason=\"%s\"} %lld\n",
				(long long)jget(v, "id"), reason,
				(long long)json_object_get_int64(cnt));
	}
	metrics_head(f, "ferry_vcpu_guest_seconds_total", "counter", "time vCPUs spent in the guest (KVM_RUN)");
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vcpus, i);

		fprintf(f, "ferry_vcpu_guest_seconds_total{vcpu=\"%lld\"} %.9f\n",
			(long long)jget(v, "id"), jget(v, "guest_ns") / 1e9);
	}
	metrics_head(f, "ferry_vcpu_vmm_seconds_total", "counter", "time vCPU threads spent handling exits in ferry");
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vcpus, i);

		fprintf(f, "ferry_vcpu_vmm_seconds_total{vcpu=\"%lld\"} %.9f\n",
			(long long)jget(v, "id"), jget(v, "vmm_ns") / 1e9);
	}
}

/* One metric per counter name, each listing every device that has it: the
 * exposition format wants a metric's samples together. */
static void metrics_devices(FILE *f, struct json_object *devs)
{
	struct json_object *done = json_object_new_object();

	json_object_object_foreach(devs, dname, d) {
		(void)dname;
		json_object_object_foreach(d, key, val) {
			char metric[128];

			(void)val;
			if (json_object_object_get_ex(done, key, NULL))
				continue;
			json_object_object_add(done, key, NULL);
			snprintf(metric, sizeof(metric), "ferry_device_%s_total", key);
			metrics_head(f, metric, "counter", "device counter");
			json_object_object_foreach(devs, dn, dd) {
				struct json_object *c;

				if (!json_object_object_get_ex(dd, key, &c))
					continue;
				fprintf(f, "%s{device=\"", metric);
				metrics_label(f, dn);
				fprintf(f, "\"} %lld\n", (long long)json_object_get_int64(c));
			}
		}
	}
	json_object_put(done);
}

char *metrics_format(struct json_object *stats, const char *name, size_t *len)
{
	struct json_object *v, *o;
	const char *state = "unknown";
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	if (json_object_object_get_ex(stats, "state", &v))
		state = json_object_get_string(v);
	metrics_head(f, "ferry_info", "gauge", "the VM's name and ferry's version");
	fprintf(f, "ferry_info{name=\"");
	metrics_label(f, name);
	fprintf(f, "\",version=\"%s\"} 1\n", FERRY_VERSION);
	metrics_head(f, "ferry_state", "gauge", "1 for the VM's current state");
	for (int s = VMM_STARTING; s <= VMM_STOPPED; s++)
		fprintf(f, "ferry_state{state=\"%s\"} %d\n", vmm_state_name(s),
			!strcmp(state, vmm_state_name(s)));
	metrics_head(f, "ferry_uptime_seconds", "gauge", "seconds since the vCPUs started");
	fprintf(f, "ferry_uptime_seconds %.3f\n",
		json_object_object_get_ex(stats, "uptime_s", &v) ? json_object_get_double(v) : 0.0);
	metrics_head(f, "ferry_memory_bytes", "gauge", "guest RAM size");
	fprintf(f, "ferry_memory_bytes %lld\n", (long long)jget(stats, "memory_bytes"));
	metrics_head(f, "ferry_rss_bytes", "gauge", "resident memory of the ferry process");
	fprintf(f, "ferry_rss_bytes %lld\n", (long long)jget(stats, "rss_bytes"));
	if (json_object_object_get_ex(stats, "vcpus", &o) && json_object_is_type(o, json_type_array))
		metrics_vcpus(f, o);
	if (json_object_object_get_ex(stats, "devices", &o) && json_object_is_type(o, json_type_object))
		metrics_devices(f, o);
	if (json_object_object_get_ex(stats, "buses", &o) && json_object_is_type(o, json_type_object)) {
		metrics_head(f, "ferry_bus_unhandled_total", "counter", "guest accesses no device claimed");
		json_object_object_foreach(o, bus, b)
			fprintf(f, "ferry_bus_unhandled_total{bus=\"%s\"} %lld\n", bus,
				(long long)jget(b, "unhandled"));
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	if (len)
		*len = size;
	return buf;
}

static char *metrics_text(struct metrics *mt, size_t *len)
{
	struct json_object *stats = stats_build(mt->vmm);
	char *text = stats ? metrics_format(stats, mt->vmm->cfg->name, len) : NULL;

	json_object_put(stats);
	return text;
}

/* --- file: --- */

static void metrics_write_file(struct metrics *mt)
{
	char tmp[4096];
	size_t len = 0;
	char *text = metrics_text(mt, &len);
	int fd = -1, ret = -ENOMEM;

	if (!text)
		goto out;
	ret = -ENAMETOOLONG;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", mt->path) >= sizeof(tmp))
		goto out;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	/* mkostemp makes it 0600; a collector running as another user
	 * must be able to read the result. */
	ret = fchmod(fd, 0644) < 0 ? -errno : write_all(fd, text, len);
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, mt->path) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
out:
	free(text);
	if (ret < 0 && !mt->write_failed)
		log_warn("--metrics file:%s: cannot write: %s", mt->path, strerror(-ret));
	else if (ret == 0 && mt->write_failed)
		log_info("--metrics file:%s: writing again", mt->path);
	mt->write_failed = ret < 0;
}

static void on_file_timer(struct loop *l, int fd, uint32_t events, void *opaque)
{
	uint64_t ticks;

	(void)l; (void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0)
		return;
	metrics_write_file(opaque);
}

/* --- unix: --- */

static void metrics_client_free(struct metrics_client *c)
{
	struct metrics *mt = c->mt;

	for (struct metrics_client **p = &mt->clients; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	loop_del(mt->vmm->loop, c->fd);
	close(c->fd);
	free(c->out);
	free(c);
	mt->nr_clients--;
}

/* Returns false if the client is gone. */
static bool metrics_client_flush(struct metrics_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			loop_mod(c->mt->vmm->loop, c->fd, EPOLLOUT);
			return true;
		}
		if (n <= 0)
			break;
		c->out_off += n;
	}
	metrics_client_free(c);
	return false;
}

/* @http: 0 bare text, 1 HTTP GET, 2 HTTP HEAD, -1 HTTP bad request. */
static void metrics_answer(struct metrics_client *c, int http)
{
	size_t len = 0;
	char *text = http >= 0 ? metrics_text(c->mt, &len) : NULL;
	FILE *f;

	if (!text && http >= 0) {
		metrics_client_free(c);
		return;
	}
	if (http == 0) {
		c->out = text;
		c->out_len = len;
	} else {
		size_t size;

		f = open_memstream(&c->out, &size);
		if (f && http < 0)
			fprintf(f, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n"
				   "Connection: close\r\n\r\nferry serves GET requests only\n");
		else if (f)
			fprintf(f, "HTTP/1.0 200 OK\r\n"
				   "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
				   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
				len, http == 2 ? "" : text);
		if (!f || fclose(f) != 0) {
			free(text);
			metrics_client_free(c);
			return;
		}
		c->out_len = size;
		free(text);
	}
	/* Stop reading: what the client sends from now on is ignored. */
	loop_mod(c->mt->vmm->loop, c->fd, 0);
	metrics_client_flush(c);
}

static void metrics_client_read(struct metrics_client *c)
{
	ssize_t n = read(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		metrics_client_free(c);
		return;
	}
	if (n == 0) {
		metrics_answer(c, 0);   /* it sent nothing and shut down: bare text */
		return;
	}
	c->req_len += n;
	c->req[c->req_len] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
		if (!strncmp(c->req, "GET ", 4))
			metrics_answer(c, 1);
		else if (!strncmp(c->req, "HEAD ", 5))
			metrics_answer(c, 2);
		else
			metrics_answer(c, -1);
	} else if (c->req_len >= sizeof(c->req) - 1) {
		metrics_answer(c, -1);
	}
}

static void on_metrics_client(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct metrics_client *c = opaque;

	(void)l; (void)fd;
	if (c->out)
		metrics_client_flush(c);
	else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		metrics_client_read(c);
}

static void metrics_arm(struct metrics *mt, bool on)
{
	struct itimerspec its = { 0 };

	if (on) {
		its.it_value.tv_nsec = METRICS_TICK_MS * 1000000L;
		its.it_interval = its.it_value;
	}
	timerfd_settime(mt->timer_fd, 0, &its, NULL);
}

/* Answer clients that stay silent; drop those that do not read. */
static void on_client_timer(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct metrics *mt = opaque;
	uint64_t ticks, now = now_ns();
	struct metrics_client *c, *next;

	(void)l; (void)events;
	if (read(fd, &ticks, sizeof(ticks)) < 0)
		return;
	for (c = mt->clients; c; c = next) {
		uint64_t age_ms = (now - c->since_ns) / 1000000;

		next = c->next;
		if (age_ms >= METRICS_DEADLINE_MS)
			metrics_client_free(c);
		else if (!c->out && c->req_len == 0 && age_ms >= METRICS_WAIT_MS)
			metrics_answer(c, 0);
	}
	if (!mt->clients)
		metrics_arm(mt, false);
}

static void on_metrics_listen(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct metrics *mt = opaque;

	(void)events;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		struct metrics_client *c;
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0)
			break;
		if (mt->nr_clients >= METRICS_MAX_CLIENTS) {
			close(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || loop_add(l, cfd, EPOLLIN, on_metrics_client, c) < 0) {
			free(c);
			close(cfd);
			continue;
		}
		c->mt = mt;
		c->fd = cfd;
		c->since_ns = now_ns();
		c->next = mt->clients;
		mt->clients = c;
		mt->nr_clients++;
		metrics_arm(mt, true);
	}
}

int metrics_create(struct vmm *m, struct ferr *e)
{
	const char *spec = m->cfg->metrics;
	struct metrics *mt;
	int ret;

	if (!spec)
		return 0;
	mt = calloc(1, sizeof(*mt));
	if (!mt)
		return ferr_set(e, -ENOMEM, "out of memory");
	mt->vmm = m;
	mt->fd = -1;
	mt->is_file = !strncmp(spec, "file:", 5);
	mt->path = spec + 5;
	m->metrics = mt;        /* from here metrics_destroy() cleans up */
	mt->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (mt->timer_fd < 0)
		return ferr_errno(e, -errno, "--metrics: cannot create a timer");
	if (mt->is_file) {
		/* The first snapshot soon after start, then every period. */
		struct itimerspec its = {
			.it_value.tv_nsec = 500 * 1000000L,
			.it_interval.tv_sec = METRICS_PERIOD_S,
		};

		timerfd_settime(mt->timer_fd, 0, &its, NULL);
		ret = loop_add(m->loop, mt->timer_fd, EPOLLIN, on_file_timer, mt);
		if (ret < 0)
			return ferr_errno(e, ret, "--metrics: cannot watch the timer");
		return 0;
	}
	ret = api_listen_unix("--metrics", mt->path, &mt->sock_id, e);
	if (ret < 0)
		return ret;
	mt->fd = ret;
	if ((ret = loop_add(m->loop, mt->fd, EPOLLIN, on_metrics_listen, mt)) < 0 ||
	    (ret = loop_add(m->loop, mt->timer_fd, EPOLLIN, on_client_timer, mt)) < 0)
		return ferr_errno(e, ret, "--metrics: cannot watch the socket");
	return 0;
}

void metrics_destroy(struct metrics *mt)
{
	if (!mt)
		return;
	while (mt->clients)
		metrics_client_free(mt->clients);
	if (mt->timer_fd >= 0) {
		loop_del(mt->vmm->loop, mt->timer_fd);
		close(mt->timer_fd);
	}
	if (mt->fd >= 0) {
		loop_del(mt->vmm->loop, mt->fd);
		close(mt->fd);
		api_unlink_unix(mt->path, &mt->sock_id);
	}
	if (mt->is_file && mt->vmm->state != VMM_STARTING)
		metrics_write_file(mt);
	mt->vmm->metrics = NULL;
	free(mt);
}
