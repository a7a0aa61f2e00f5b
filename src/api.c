/* The control socket's protocol: JSON lines, the requests and the VM
 * states each is legal in, and the dispatcher that checks and runs them
 * (api_handle_line, over struct api_ops).  The server that carries it is
 * api_sock.c.  The protocol below is its one description; `ferry
 * status|pause|...` (ctl.c) is a client of it.
 *
 * Transport
 *   A Unix stream socket, mode 0600 (--api PATH, or the socket systemd
 *   passes with socket activation).  UTF-8 JSON, one object per line, each
 *   line ended by '\n'.  A client sends requests and reads one reply per
 *   request, in order.  At most API_MAX_CLIENTS (16) connect at once; the
 *   next one gets a "too_many_clients" error line and is closed.
 *
 * Request
 *   {"request": "NAME", "id": ID, ...arguments}
 *   "id" is optional, a string or an integer, and is echoed in the reply.
 *   Unknown arguments are an error (so that a typo is not ignored).
 *
 * Reply
 *   {"ok": true,  "id": ID, "result": {...}}
 *   {"ok": false, "id": ID, "error": {"code": CODE, "message": TEXT, ...}}
 *   "id" is present when the request had one and could be parsed.
 *
 * Requests, and the VM states they are legal in (see enum vmm_state):
 *
 *   request    arguments             legal in                 result
 *   status     -                     any                      name, state, uptime_s,
 *                                                             vcpus, memory_bytes, pid,
 *                                                             version, devices[],
 *                                                             disks[], privileges, seccomp
 *              disks: [{"name": "blk0", "reservation": {"key": "0x<16 hex>",
 *              "holder": bool} or "off"}]: an iSCSI disk's SCSI-3 reservation
 *              (virtio/blk_iscsi_pr.c); holder turns false once fenced.
 *              seccomp: "on", "log" or "off" (src/seccomp.c).
 *              privileges: {"user": NAME|null, "uid": N, "group": NAME|null,
 *              "gid": N, "capabilities": [effective ones, e.g. "net_admin";
 *              [] once dropped], "no_new_privs": bool, "chroot": DIR|null}
 *              (src/privs.c: ferry drops them after start-up).
 *   stats      -                     any                      see src/stats.c: vcpus[]
 *                                                             (exits by reason, guest_ns,
 *                                                             vmm_ns), devices, buses,
 *                                                             memory_bytes, rss_bytes
 *   pause      -                     running                  state
 *   resume     -                     paused                   state
 *   shutdown   timeout: 0..3600 s    running, paused          state
 *              (0 or absent: --shutdown-timeout)
 *              presses the ACPI power button (a paused guest is resumed to
 *              see it); if the guest is still running after the timeout,
 *              ferry stops it (exit status 4).
 *   stop       -                     incoming, running,       state
 *                                    paused, shutting-down
 *              stops at once, like pulling the plug (exit status 4).
 *              While incoming it cancels the migration (the source keeps
 *              its VM) and no guest code runs here.
 *   subscribe  -                     any                      state
 *              from now on this connection also receives event lines.
 *
 *   migrate    to: "tcp:HOST:PORT"       running          the migrate-status result
 *              max_downtime_ms: 1..60000 (default 50)
 *              max_bandwidth: bytes/s (default 0: unlimited)
 *              timeout_s: 0..86400 (default 0: none)
 *              auto_converge: bool (default true)
 *              starts a live migration (migrate/migrate.c) and answers at
 *              once; "migration" events report progress and the end.  A
 *              second one while one runs is refused.  On success the VM
 *              stops here (exit status 0) after the final event.
 *   snapshot   to: "PATH"                running, paused  the migrate-status result
 *              live: bool (default false)
 *              max_downtime_ms, timeout_s: as for migrate (live only)
 *              writes the migration stream (migrate/stream.c) to PATH, a
 *              new file (mode 0600; an existing one is refused), with the
 *              migrate machinery and "migration" events; "completed" when
 *              it is on disk.  Not live: the vCPUs pause and the devices
 *              quiesce for the whole copy, as at a migration's switchover;
 *              live: pre-copy rounds while the guest runs, then a short
 *              pause.  The VM then goes on (a paused one stays paused);
 *              'ferry run --restore PATH' starts it again.  Refused while a
 *              migration or snapshot runs.  A relative PATH is relative to
 *              ferry's working directory.
 *   migrate-status -                 any              status (none, setup,
 *              active, switchover, completed, failed, connection-failed,
 *              refused, timeout, cancelled), error, round, ram_pages,
 *              remaining_pages, bytes, pages, zero_pages, bandwidth_bps,
 *              dirty_rate_bps, expected_downtime_ms, throttle_pct, stalled,
 *              rounds, total_ms, downtime_ms, dest_load_ms, to
 *              While incoming (the destination): status "incoming", phase
 *              (waiting, receiving, loading, loaded, failed), error (when
 *              failed), bytes, pages, zero_pages received so far, total_ms
 *              since it began waiting, incoming (the --incoming address, or
 *              file:PATH for --restore).
 *   migrate-cancel -                 running          the migrate-status result
 *              stops a migration before its switchover; the VM keeps
 *              running here.  "refused" when none runs or it is switching
 *              over.
 *
 * States: starting, incoming, running, paused, shutting-down, stopped.
 *   "incoming": ferry run --incoming (or --restore) is waiting for, receiving
 *   or loading the VM; the control socket answers all along.  Only status,
 *   stats, subscribe, migrate-status and stop are legal; everything else is
 *   "refused" with a message saying the VM is incoming.  Once the VM is
 *   loaded and acknowledged it becomes "running" (a state event); a refused
 *   or broken stream ends ferry with exit status 1, a stop with 4.
 *
 * Error codes
 *   parse_error       the line is not JSON, or not a JSON object
 *   too_large         the line is longer than API_LINE_MAX (64 KiB); the
 *                     rest of it, up to the next newline, is skipped
 *   invalid_request   "request" missing or not a string, "id" of a bad type
 *   unknown_request   no such request
 *   invalid_argument  an argument of the wrong type, out of range, or unknown
 *   refused           not legal in the current state; the error also has
 *                     "state": the current state
 *   failed            the action was tried and failed
 *   too_many_clients  sent once, then the connection is closed
 *   After any error but the last, the connection stays usable.
 *
 * Events (subscribed connections only; they may arrive between replies, but
 * never before the reply to the request that caused them)
 *   {"event": "state", "timestamp": UNIX_SECONDS, "state": STATE}
 *   {"event": "migration", "timestamp": ..., ...the migrate-status members}
 *   at most 10 per second while a migration runs, and one at its end.
 *   Later: "panic" (guest panic).  A client must
 *   ignore event names it does not know.  When the VM stops, the
 *   "stopped" state event is the last line before the socket closes.
 *
 * Example
 *   -> {"request":"pause","id":1}
 *   <- {"event":"state","timestamp":1718000000.5,"state":"paused"}   (if subscribed)
 *   <- {"ok":true,"id":1,"result":{"state":"paused"}}
 *   -> {"request":"pause","id":2}
 *   <- {"ok":false,"id":2,"error":{"code":"refused","message":"pause is not
 *       possible while the VM is paused (only when running)","state":"paused"}}
 *
 * Hostile or slow clients: a client's input is bounded (one line), its
 * output is bounded (API_OUT_MAX; a client that does not read is dropped),
 * partial writes wait for EPOLLOUT, and every handler does one read() so
 * that no client can hold the loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ferry/api.h"
#include "ferry/log.h"
#include "ferry/migrate.h"
#include "ferry/privs.h"
#include "ferry/seccomp.h"
#include "ferry/util.h"
#include "ferry/vmm.h"

#define ST(s) (1u << (s))
#define ST_ANY (ST(VMM_STARTING) | ST(VMM_INCOMING) | ST(VMM_RUNNING) | ST(VMM_PAUSED) | \
		ST(VMM_SHUTTING_DOWN) | ST(VMM_STOPPED))

/* One request being handled. */
struct api_call {
	const struct api_ops *ops;
	void *opaque;
	struct api_session *session;
	struct json_object *req;
	struct json_object *result;     /* set by the handler on success */
	struct json_object *error;      /* or this, on failure */
};

struct api_request {
	const char *name;
	unsigned int states;            /* ST() mask of states it is legal in */
	const char *const args[8];      /* accepted arguments, NULL-terminated */
	int (*fn)(struct api_call *c);
};

static struct json_object *api_error_obj(const char *code, const char *fmt, va_list ap)
{
	struct json_object *err = json_object_new_object();
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	return err;
}

static int api_fail(struct api_call *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int api_fail(struct api_call *c, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	json_object_put(c->error);
	c->error = api_error_obj(code, fmt, ap);
	va_end(ap);
	return -1;
}

struct json_object *api_error_reply(const char *code, const char *fmt, ...)
{
	struct json_object *r = json_object_new_object();
	va_list ap;

	va_start(ap, fmt);
	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", api_error_obj(code, fmt, ap));
	va_end(ap);
	return r;
}

static int api_result_state(struct api_call *c)
{
	c->result = json_object_new_object();
	json_object_object_add(c->result, "state",
			       json_object_new_string(vmm_state_name(c->ops->state(c->opaque))));
	return 0;
}

/* An action's errno: -EBUSY means the state changed under us (the table
 * said yes, the VMM said no). */
static int api_action_done(struct api_call *c, const char *what, int ret)
{
	if (ret == -EBUSY)
		return api_fail(c, "refused", "%s is not possible while the VM is %s", what,
				vmm_state_name(c->ops->state(c->opaque)));
	if (ret < 0)
		return api_fail(c, "failed", "%s failed: %s", what, strerror(-ret));
	return api_result_state(c);
}

static int api_req_status(struct api_call *c)
{
	c->result = c->ops->status(c->opaque);
	if (!c->result)
		return api_fail(c, "failed", "cannot build the status");
	/* The process's own privileges, whoever asks (src/privs.c). */
	json_object_object_add(c->result, "privileges", privs_status_json());
	json_object_object_add(c->result, "seccomp",
			       json_object_new_string(seccomp_mode_name(seccomp_mode_now())));
	return 0;
}

static int api_req_stats(struct api_call *c)
{
	c->result = c->ops->stats(c->opaque);
	return c->result ? 0 : api_fail(c, "failed", "cannot build the stats");
}

static int api_req_pause(struct api_call *c)
{
	return api_action_done(c, "pause", c->ops->pause(c->opaque));
}

static int api_req_resume(struct api_call *c)
{
	return api_action_done(c, "resume", c->ops->resume(c->opaque));
}

static int api_req_shutdown(struct api_call *c)
{
	struct json_object *t;
	int64_t timeout = 0;

	if (json_object_object_get_ex(c->req, "timeout", &t)) {
		if (!json_object_is_type(t, json_type_int))
			return api_fail(c, "invalid_argument",
					"\"timeout\" must be an integer number of seconds");
		errno = 0;
		timeout = json_object_get_int64(t);
		if (errno || timeout < 0 || timeout > 3600)
			return api_fail(c, "invalid_argument",
					"\"timeout\" must be 0 to 3600 seconds");
	}
	return api_action_done(c, "shutdown", c->ops->shutdown(c->opaque, timeout));
}

static int api_req_stop(struct api_call *c)
{
	return api_action_done(c, "stop", c->ops->stop(c->opaque));
}

/* An optional integer argument in [min, max]. */
static int api_arg_int(struct api_call *c, const char *name, int64_t min, int64_t max,
		       int64_t *out)
{
	struct json_object *t;

	if (!json_object_object_get_ex(c->req, name, &t))
		return 0;
	errno = 0;
	if (!json_object_is_type(t, json_type_int) ||
	    (*out = json_object_get_int64(t), errno) || *out < min || *out > max)
		return api_fail(c, "invalid_argument", "\"%s\" must be an integer from %lld to %lld",
				name, (long long)min, (long long)max);
	return 0;
}

static int api_req_migrate(struct api_call *c)
{
	struct mig_params p = { .max_downtime_ms = MIG_DEFAULT_DOWNTIME_MS, .auto_converge = true };
	int64_t down = p.max_downtime_ms, bw = 0, timeout = 0;
	struct json_object *to, *ac;
	struct ferr e = { "" };
	int ret;

	if (!c->ops->migrate)
		return api_fail(c, "failed", "this VMM cannot migrate");
	if (!json_object_object_get_ex(c->req, "to", &to) ||
	    !json_object_is_type(to, json_type_string))
		return api_fail(c, "invalid_argument", "\"to\" (\"tcp:HOST:PORT\") is required");
	if (api_arg_int(c, "max_downtime_ms", 1, 60000, &down) < 0 ||
	    api_arg_int(c, "max_bandwidth", 0, INT64_MAX, &bw) < 0 ||
	    api_arg_int(c, "timeout_s", 0, 86400, &timeout) < 0)
		return -1;
	if (json_object_object_get_ex(c->req, "auto_converge", &ac)) {
		if (!json_object_is_type(ac, json_type_boolean))
			return api_fail(c, "invalid_argument", "\"auto_converge\" must be true or false");
		p.auto_converge = json_object_get_boolean(ac);
	}
	p.max_downtime_ms = down;
	p.max_bandwidth = bw;
	p.timeout_s = timeout;
	ret = c->ops->migrate(c->opaque, json_object_get_string(to), &p, &e);
	if (ret == -EBUSY)
		return api_fail(c, "refused", "%s", e.msg);
	if (ret == -EINVAL)
		return api_fail(c, "invalid_argument", "\"to\": %s", e.msg);
	if (ret < 0)
		return api_fail(c, "failed", "migrate failed: %s", e.msg);
	c->result = c->ops->migrate_status(c->opaque);
	return 0;
}

static int api_req_snapshot(struct api_call *c)
{
	struct mig_params p = { .max_downtime_ms = MIG_DEFAULT_DOWNTIME_MS, .auto_converge = true,
				.snapshot = true };
	int64_t down = p.max_downtime_ms, timeout = 0;
	struct json_object *to, *live;
	struct ferr e = { "" };
	int ret;

	if (!c->ops->migrate)
		return api_fail(c, "failed", "this VMM cannot take snapshots");
	if (!json_object_object_get_ex(c->req, "to", &to) ||
	    !json_object_is_type(to, json_type_string))
		return api_fail(c, "invalid_argument", "\"to\" (the snapshot file's path) is required");
	if (api_arg_int(c, "max_downtime_ms", 1, 60000, &down) < 0 ||
	    api_arg_int(c, "timeout_s", 0, 86400, &timeout) < 0)
		return -1;
	if (json_object_object_get_ex(c->req, "live", &live)) {
		if (!json_object_is_type(live, json_type_boolean))
			return api_fail(c, "invalid_argument", "\"live\" must be true or false");
		p.live = json_object_get_boolean(live);
	}
	p.max_downtime_ms = down;
	p.timeout_s = timeout;
	ret = c->ops->migrate(c->opaque, json_object_get_string(to), &p, &e);
	if (ret == -EBUSY)
		return api_fail(c, "refused", "%s", e.msg);
	if (ret == -EINVAL || ret == -EEXIST)
		return api_fail(c, "invalid_argument", "\"to\": %s", e.msg);
	if (ret < 0)
		return api_fail(c, "failed", "snapshot failed: %s", e.msg);
	c->result = c->ops->migrate_status(c->opaque);
	return 0;
}

static int api_req_migrate_status(struct api_call *c)
{
	if (!c->ops->migrate_status)
		return api_fail(c, "failed", "this VMM cannot migrate");
	c->result = c->ops->migrate_status(c->opaque);
	return c->result ? 0 : api_fail(c, "failed", "cannot build the migration status");
}

static int api_req_migrate_cancel(struct api_call *c)
{
	int ret;

	if (!c->ops->migrate_cancel)
		return api_fail(c, "failed", "this VMM cannot migrate");
	ret = c->ops->migrate_cancel(c->opaque);
	if (ret == -ENOENT)
		return api_fail(c, "refused", "no migration is running");
	if (ret == -EBUSY)
		return api_fail(c, "refused", "the migration is switching over; too late to cancel");
	if (ret < 0)
		return api_fail(c, "failed", "migrate-cancel failed: %s", strerror(-ret));
	c->result = c->ops->migrate_status(c->opaque);
	return 0;
}

static int api_req_subscribe(struct api_call *c)
{
	c->session->subscribed = true;
	return api_result_state(c);
}

/* To add a request: a row here and its line in the table at the top. */
static const struct api_request api_requests[] = {
	{ "status", ST_ANY, { NULL }, api_req_status },
	{ "stats", ST_ANY, { NULL }, api_req_stats },
	{ "pause", ST(VMM_RUNNING), { NULL }, api_req_pause },
	{ "resume", ST(VMM_PAUSED), { NULL }, api_req_resume },
	{ "shutdown", ST(VMM_RUNNING) | ST(VMM_PAUSED), { "timeout", NULL }, api_req_shutdown },
	{ "stop", ST(VMM_INCOMING) | ST(VMM_RUNNING) | ST(VMM_PAUSED) | ST(VMM_SHUTTING_DOWN),
	  { NULL }, api_req_stop },
	{ "subscribe", ST_ANY, { NULL }, api_req_subscribe },
	{ "migrate", ST(VMM_RUNNING),
	  { "to", "max_downtime_ms", "max_bandwidth", "timeout_s", "auto_converge", NULL },
	  api_req_migrate },
	{ "snapshot", ST(VMM_RUNNING) | ST(VMM_PAUSED),
	  { "to", "live", "max_downtime_ms", "timeout_s", NULL }, api_req_snapshot },
	{ "migrate-status", ST_ANY, { NULL }, api_req_migrate_status },
	{ "migrate-cancel", ST(VMM_RUNNING), { NULL }, api_req_migrate_cancel },
};

/* "running, paused" for the refusal message. */
static void api_states_text(unsigned int mask, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int s = VMM_STARTING; s <= VMM_STOPPED && n < size; s++)
		if (mask & ST(s))
			n += snprintf(buf + n, size - n, "%s%s", n ? ", " : "",
				      vmm_state_name(s));
}

static void api_dispatch(struct api_call *c)
{
	const struct api_request *r = NULL;
	struct json_object *name;
	enum vmm_state state;
	const char *req;
	char legal[96];

	if (!json_object_object_get_ex(c->req, "request", &name)) {
		api_fail(c, "invalid_request", "missing \"request\" (e.g. {\"request\":\"status\"})");
		return;
	}
	if (!json_object_is_type(name, json_type_string)) {
		api_fail(c, "invalid_request", "\"request\" must be a string");
		return;
	}
	req = json_object_get_string(name);
	for (size_t i = 0; i < ARRAY_SIZE(api_requests); i++)
		if (!strcmp(api_requests[i].name, req))
			r = &api_requests[i];
	if (!r) {
		api_fail(c, "unknown_request", "unknown request '%.64s'", req);
		return;
	}
	json_object_object_foreach(c->req, key, val) {
		bool known = !strcmp(key, "request") || !strcmp(key, "id");

		(void)val;
		for (size_t i = 0; !known && r->args[i]; i++)
			known = !strcmp(key, r->args[i]);
		if (!known) {
			api_fail(c, "invalid_argument", "%s takes no argument '%.64s'",
				 r->name, key);
			return;
		}
	}
	state = c->ops->state(c->opaque);
	if (!(r->states & ST(state))) {
		api_states_text(r->states, legal, sizeof(legal));
		api_fail(c, "refused", "%s is not possible while the VM is %s%s (only when %s)",
			 r->name, vmm_state_name(state),
			 state == VMM_INCOMING ? ", waiting for or receiving a migration" : "",
			 legal);
		return;
	}
	r->fn(c);
}

struct json_object *api_handle_line(const struct api_ops *ops, void *opaque,
				    struct api_session *s, const char *line,
				    size_t len)
{
	struct api_call c = { .ops = ops, .opaque = opaque, .session = s };
	struct json_object *reply, *id = NULL;
	struct json_tokener *tok;

	if (len > API_LINE_MAX)
		return api_error_reply("too_large", "request longer than %d bytes", API_LINE_MAX);
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	c.req = json_tokener_parse_ex(tok, line, len);
	/* The whole line must be one complete value, nothing after it but
	 * blanks: "{}{}" or a truncated object is malformed. */
	if (c.req && json_tokener_get_error(tok) == json_tokener_success) {
		for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
			if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
				json_object_put(c.req);
				c.req = NULL;
				break;
			}
		}
	} else {
		json_object_put(c.req);
		c.req = NULL;
	}
	json_tokener_free(tok);
	if (!c.req)
		return api_error_reply("parse_error", "not a JSON object on one line");
	if (!json_object_is_type(c.req, json_type_object)) {
		json_object_put(c.req);
		return api_error_reply("parse_error", "a request is a JSON object");
	}
	if (json_object_object_get_ex(c.req, "id", &id) &&
	    !json_object_is_type(id, json_type_string) &&
	    !json_object_is_type(id, json_type_int)) {
		id = NULL;
		api_fail(&c, "invalid_request", "\"id\" must be a string or an integer");
	} else {
		api_dispatch(&c);
	}

	reply = json_object_new_object();
	json_object_object_add(reply, "ok", json_object_new_boolean(!c.error));
	if (id)
		json_object_object_add(reply, "id", json_object_get(id));
	if (c.error) {
		if (!strcmp(json_object_get_string(json_object_object_get(c.error, "code")), "refused"))
			json_object_object_add(c.error, "state", json_object_new_string(
				vmm_state_name(ops->state(opaque))));
		json_object_object_add(reply, "error", c.error);
		json_object_put(c.result);
	} else {
		json_object_object_add(reply, "result", c.result);
	}
	json_object_put(c.req);
	return reply;
}
