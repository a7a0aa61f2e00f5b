/* The control socket's server: a unix socket on the event loop, its
 * clients (bounded input and output, partial writes, events), and the
 * binding of the protocol's requests (api.c, where the protocol and its
 * limits are documented) to this VMM. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ferry/api.h"
#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/migrate.h"
#include "ferry/notify.h"
#include "ferry/stats.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vmm.h"

struct api_client {
	struct api *api;
	int fd;
	struct api_session session;
	char *in;                       /* API_LINE_MAX + 1 bytes */
	size_t in_len;
	bool skipping;                  /* inside an over-long line */
	char *out;
	size_t out_len, out_off, out_cap;
	bool want_out;                  /* EPOLLOUT registered */
	bool eof;                       /* it half-closed: flush, then close */
	bool dead;                      /* closed, to be freed by api_reap() */
	struct api_client *next;
};

struct api {
	struct vmm *vmm;
	int listen_fd;
	bool own_path;                  /* we created the socket file */
	struct api_sock_id sock_id;
	struct api_client *clients;
	unsigned int nr_clients;
	/* The client whose request is running: events meant for it wait in
	 * deferred until its reply is queued, so that replies come first. */
	struct api_client *serving;
	struct json_object *deferred;
};

static enum vmm_state api_vmm_state(void *o) { return ((struct vmm *)o)->state; }
static int api_vmm_pause(void *o) { return vmm_pause(o); }
static int api_vmm_resume(void *o) { return vmm_resume(o); }
static int api_vmm_shutdown(void *o, unsigned int t) { return vmm_shutdown(o, t); }
static int api_vmm_stop(void *o) { return vmm_stop(o); }
/* status's "disks": each virtio-blk disk's iSCSI reservation
 * (virtio/blk_iscsi_pr.c), "off" where it has none. */
static struct json_object *api_disks_json(struct vmm *m)
{
	struct json_object *arr = json_object_new_array();

	for (unsigned int i = 0; arr && i < m->vm.nr_virtio; i++) {
		struct virtio_dev *d = m->vm.virtio[i];
		struct json_object *o, *r;
		uint64_t key;
		bool holder;
		char hex[24];

		if (d->device_id != VIRTIO_ID_BLOCK)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(d->name));
		if (blk_iscsi_pr_state(virtio_blk_backend(d), &key, &holder) == 0) {
			snprintf(hex, sizeof(hex), "0x%016llx", (unsigned long long)key);
			r = json_object_new_object();
			json_object_object_add(r, "key", json_object_new_string(hex));
			json_object_object_add(r, "holder", json_object_new_boolean(holder));
		} else {
			r = json_object_new_string("off");
		}
		json_object_object_add(o, "reservation", r);
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *api_vmm_status(void *o)
{
	struct json_object *st = stats_status(o);

	if (st)
		json_object_object_add(st, "disks", api_disks_json(o));
	return st;
}
static struct json_object *api_vmm_stats(void *o) { return stats_build(o); }
static int api_vmm_migrate(void *o, const char *uri, const struct mig_params *p,
			   struct ferr *e) { return mig_start(o, uri, p, e); }
static int api_vmm_migrate_cancel(void *o) { return mig_cancel(o); }
/* The destination reports what it received; once running, what it sent. */
static struct json_object *api_vmm_migrate_status(void *o)
{
	struct vmm *m = o;

	return m->state == VMM_INCOMING && m->mig_in ? mig_incoming_status_json(m) :
						       mig_status_json(m);
}

static const struct api_ops api_vmm_ops = {
	.state = api_vmm_state,
	.pause = api_vmm_pause,
	.resume = api_vmm_resume,
	.shutdown = api_vmm_shutdown,
	.stop = api_vmm_stop,
	.status = api_vmm_status,
	.stats = api_vmm_stats,
	.migrate = api_vmm_migrate,
	.migrate_cancel = api_vmm_migrate_cancel,
	.migrate_status = api_vmm_migrate_status,
};

static void api_client_close(struct api_client *c, const char *why)
{
	if (c->dead)
		return;
	if (why)
		log_warn("api: dropping client %d: %s", c->fd, why);
	loop_del(c->api->vmm->loop, c->fd);
	close(c->fd);
	c->dead = true;
	c->api->nr_clients--;
}

/* Freeing waits for here, out of every handler, because a client may be
 * closed while an event for it is being written from deep in a request. */
static void api_reap(struct api *a)
{
	struct api_client **p = &a->clients;

	while (*p) {
		struct api_client *c = *p;

		if (c->dead && c != a->serving) {
			*p = c->next;
			free(c->in);
			free(c->out);
			free(c);
		} else {
			p = &c->next;
		}
	}
}

static void api_client_flush(struct api_client *c)
{
	bool want;
	uint32_t ev;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			api_client_close(c, NULL);      /* it hung up */
			return;
		}
		c->out_off += n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	want = c->out_len > 0;
	if (c->eof && !want) {
		api_client_close(c, NULL);
		return;
	}
	/* After EOF, EPOLLIN would fire forever: wait for room only. */
	ev = (c->eof ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0);
	if ((want != c->want_out || c->eof) &&
	    loop_mod(c->api->vmm->loop, c->fd, ev) == 0)
		c->want_out = want;
}

/* Queue one line; the caller flushes. */
static void api_client_queue(struct api_client *c, struct json_object *obj)
{
	const char *s;
	size_t len;

	if (c->dead)
		return;
	s = obj ? json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN) : NULL;
	if (!s) {
		api_client_close(c, "out of memory");
		return;
	}
	len = strlen(s);
	if (c->out_len - c->out_off + len + 1 > API_OUT_MAX) {
		api_client_close(c, "it does not read its replies");
		return;
	}
	if (c->out_off && c->out_len + len + 1 > c->out_cap) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + len + 1 > c->out_cap) {
		size_t cap = MAX(c->out_cap * 2, MAX(c->out_len + len + 1, (size_t)4096));
		char *p = realloc(c->out, cap);

		if (!p) {
			api_client_close(c, "out of memory");
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
}

static void api_client_line(struct api_client *c, const char *line, size_t len)
{
	struct api *a = c->api;
	struct json_object *reply;

	a->serving = c;
	reply = api_handle_line(&api_vmm_ops, a->vmm, &c->session, line, len);
	a->serving = NULL;
	api_client_queue(c, reply);
	json_object_put(reply);
	if (a->deferred) {
		for (size_t i = 0; i < json_object_array_length(a->deferred); i++)
			api_client_queue(c, json_object_array_get_idx(a->deferred, i));
		json_object_put(a->deferred);
		a->deferred = NULL;
	}
}

static void api_client_too_large(struct api_client *c)
{
	struct json_object *r = api_error_reply("too_large",
		"request longer than %d bytes; skipped up to the next newline", API_LINE_MAX);

	api_client_queue(c, r);
	json_object_put(r);
}

/* One read per call keeps a flooding client from holding the loop: the
 * loop is level-triggered and comes back for the rest. */
static void api_client_read(struct api_client *c)
{
	char *nl, *start;
	ssize_t n;

	n = read(c->fd, c->in + c->in_len, API_LINE_MAX + 1 - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		api_client_close(c, NULL);
		return;
	}
	if (n == 0) {
		/* Replies still queued go out before the close (a client
		 * that sends its request and shuts down its write side). */
		c->eof = true;
		return;
	}
	c->in_len += n;
	start = c->in;
	while (!c->dead && (nl = memchr(start, '\n', c->in + c->in_len - start))) {
		if (c->skipping)
			c->skipping = false;
		else if (nl > start)            /* blank lines are ignored */
			api_client_line(c, start, nl - start);
		start = nl + 1;
	}
	c->in_len -= start - c->in;
	memmove(c->in, start, c->in_len);
	if (c->in_len > API_LINE_MAX) {
		/* No newline in a full buffer: an over-long line.  Answer
		 * once, then drop what follows until its end. */
		if (!c->skipping)
			api_client_too_large(c);
		c->skipping = true;
		c->in_len = 0;
	}
}

static void on_client(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct api_client *c = opaque;
	struct api *a = c->api;

	(void)l; (void)fd;
	if (events & EPOLLIN)
		api_client_read(c);
	else if (events & (EPOLLHUP | EPOLLERR))
		api_client_close(c, NULL);
	if (!c->dead)
		api_client_flush(c);
	api_reap(a);
}

static void api_refuse_client(int fd)
{
	struct json_object *r = api_error_reply("too_many_clients",
		"already %d clients connected; try again later", API_MAX_CLIENTS);
	const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);

	/* Best effort, never waiting: the socket buffer of a new
	 * connection takes a line this short. */
	if (s) {
		ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0)
			n = send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
	}
	json_object_put(r);
	close(fd);
}

static void on_listen(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct api *a = opaque;

	(void)events;
	for (int i = 0; i < API_MAX_CLIENTS + 1; i++) {
		struct api_client *c;
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("api: accept: %s", strerror(errno));
			break;
		}
		if (a->nr_clients >= API_MAX_CLIENTS) {
			api_refuse_client(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c)
			c->in = malloc(API_LINE_MAX + 1);
		if (!c || !c->in || loop_add(l, cfd, EPOLLIN, on_client, c) < 0) {
			log_warn("api: cannot take a new client: out of memory");
			if (c)
				free(c->in);
			free(c);
			close(cfd);
			continue;
		}
		c->api = a;
		c->fd = cfd;
		c->next = a->clients;
		a->clients = c;
		a->nr_clients++;
	}
	api_reap(a);
}

void api_event(struct api *a, const char *name, struct json_object *fields)
{
	struct json_object *ev;
	struct timespec ts;
	char stamp[32];

	if (!a) {
		json_object_put(fields);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string(name));
	snprintf(stamp, sizeof(stamp), "%lld.%03ld", (long long)ts.tv_sec,
		 ts.tv_nsec / 1000000);
	json_object_object_add(ev, "timestamp",
			       json_object_new_double_s(ts.tv_sec + ts.tv_nsec / 1e9, stamp));
	if (fields) {
		json_object_object_foreach(fields, k, v)
			json_object_object_add(ev, k, json_object_get(v));
		json_object_put(fields);
	}
	for (struct api_client *c = a->clients; c; c = c->next) {
		if (c->dead || !c->session.subscribed)
			continue;
		if (c == a->serving) {
			if (!a->deferred)
				a->deferred = json_object_new_array();
			json_object_array_add(a->deferred, json_object_get(ev));
			continue;
		}
		api_client_queue(c, ev);
		if (!c->dead)
			api_client_flush(c);
	}
	json_object_put(ev);
}

void api_event_state(struct api *a, const char *state)
{
	struct json_object *f;

	if (!a)
		return;
	f = json_object_new_object();
	json_object_object_add(f, "state", json_object_new_string(state));
	api_event(a, "state", f);
}

/* Is someone answering on @path?  A stale socket from a ferry that died
 * refuses connections and may be replaced; a live one must not be. */
static int api_check_path(const char *flag, const char *path, struct ferr *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return ferr_errno(e, -errno, "%s %s: cannot check the path", flag, path);
	}
	if (!S_ISSOCK(st.st_mode))
		return ferr_set(e, -EEXIST, "%s %s: exists and is not a socket", flag, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferr_errno(e, -errno, "%s %s: cannot create a socket", flag, path);
	strcpy(sa.sun_path, path);
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	ret = ret < 0 ? -errno : 0;
	close(fd);
	if (ret == 0)
		return ferr_set(e, -EADDRINUSE,
				"%s %s: another process is listening there (is this VM already running?)",
				flag, path);
	if (ret != -ECONNREFUSED)
		return ferr_errno(e, ret, "%s %s: cannot check the socket", flag, path);
	log_info("%s: replacing the stale socket %s", flag, path);
	if (unlink(path) < 0 && errno != ENOENT)
		return ferr_errno(e, -errno, "%s %s: cannot remove the stale socket", flag, path);
	return 0;
}

int api_listen_unix(const char *flag, const char *path, struct api_sock_id *id,
		    struct ferr *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return ferr_set(e, -ENAMETOOLONG, "%s %s: path too long", flag, path);
	ret = api_check_path(flag, path, e);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferr_errno(e, -errno, "%s %s: cannot create a socket", flag, path);
	strcpy(sa.sun_path, path);
	/* The umask makes the file 0600 from birth: chmod after bind would
	 * leave a moment in which others could connect.  No other thread
	 * exists yet to be surprised by the process-wide umask. */
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0) {
		ret = ferr_errno(e, -errno, "%s %s: cannot bind", flag, path);
		close(fd);
		return ret;
	}
	if (lstat(path, &st) == 0) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
	}
	if (listen(fd, API_MAX_CLIENTS) < 0) {
		ret = ferr_errno(e, -errno, "%s %s: cannot listen", flag, path);
		api_unlink_unix(path, id);
		close(fd);
		return ret;
	}
	return fd;
}

void api_unlink_unix(const char *path, const struct api_sock_id *id)
{
	struct stat st;

	/* Only if it is still ours, not a successor's. */
	if (lstat(path, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino)
		unlink(path);
}

int api_create(struct vmm *m, struct ferr *e)
{
	struct api *a = calloc(1, sizeof(*a));
	int fd, ret;

	if (!a)
		return ferr_set(e, -ENOMEM, "out of memory");
	a->vmm = m;
	a->listen_fd = -1;
	m->api = a;     /* from here api_destroy() cleans up after a failure */
	fd = notify_listen_fd();
	if (fd >= 0) {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return ferr_errno(e, -errno, "api: cannot use the socket systemd passed");
		a->listen_fd = fd;
	} else {
		ret = api_listen_unix("--api", m->cfg->api_path, &a->sock_id, e);
		if (ret < 0)
			return ret;
		a->listen_fd = ret;
		a->own_path = true;
	}
	ret = loop_add(m->loop, a->listen_fd, EPOLLIN, on_listen, a);
	if (ret < 0)
		return ferr_errno(e, ret, "api: cannot watch the control socket");
	return 0;
}

void api_destroy(struct api *a)
{
	if (!a)
		return;
	/* Last words (the "stopped" event, the reply to "stop") go out if the
	 * socket takes them now; nobody waits for a slow reader at exit. */
	for (struct api_client *c = a->clients; c; c = c->next) {
		if (!c->dead)
			api_client_flush(c);
		api_client_close(c, NULL);
	}
	a->serving = NULL;
	api_reap(a);
	json_object_put(a->deferred);
	if (a->listen_fd >= 0) {
		loop_del(a->vmm->loop, a->listen_fd);
		close(a->listen_fd);
	}
	if (a->own_path)
		api_unlink_unix(a->vmm->cfg->api_path, &a->sock_id);
	a->vmm->api = NULL;
	free(a);
}
