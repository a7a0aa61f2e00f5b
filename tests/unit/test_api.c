/* The control socket's request dispatcher (api_handle_line) against a fake
 * VMM: parsing, errors, id echo, arguments, and which requests are legal in
 * which state. */
#include <errno.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "ferry/api.h"
#include "ferry/util.h"
#include "tap.h"

struct fake {
	enum vmm_state state;
	int calls;
	int ret;                        /* what the next action returns */
	unsigned int timeout;
};

static enum vmm_state f_state(void *o) { return ((struct fake *)o)->state; }

static int f_act(struct fake *f, enum vmm_state to)
{
	f->calls++;
	if (f->ret)
		return f->ret;
	f->state = to;
	return 0;
}

static int f_pause(void *o) { return f_act(o, VMM_PAUSED); }
static int f_resume(void *o) { return f_act(o, VMM_RUNNING); }
static int f_shutdown(void *o, unsigned int t)
{
	((struct fake *)o)->timeout = t;
	return f_act(o, VMM_SHUTTING_DOWN);
}
static int f_stop(void *o) { return f_act(o, ((struct fake *)o)->state); }

static struct json_object *f_status(void *o)
{
	struct json_object *r = json_object_new_object();

	(void)o;
	json_object_object_add(r, "name", json_object_new_string("fake"));
	return r;
}

static struct json_object *f_stats(void *o)
{
	(void)o;
	return json_object_new_object();
}

static const struct api_ops fake_ops = {
	.state = f_state, .pause = f_pause, .resume = f_resume,
	.shutdown = f_shutdown, .stop = f_stop, .status = f_status, .stats = f_stats,
};

static struct fake fk;
static struct api_session sess;
static struct json_object *reply;

/* Send @line; returns the error code, or "ok". */
static const char *send_line(const char *line)
{
	struct json_object *ok, *err, *code;

	json_object_put(reply);
	reply = api_handle_line(&fake_ops, &fk, &sess, line, strlen(line));
	if (!reply || !json_object_object_get_ex(reply, "ok", &ok))
		return "no-reply";
	if (json_object_get_boolean(ok))
		return json_object_object_get_ex(reply, "result", NULL) ? "ok" : "no-result";
	if (!json_object_object_get_ex(reply, "error", &err) ||
	    !json_object_object_get_ex(err, "code", &code) ||
	    !json_object_object_get_ex(err, "message", NULL))
		return "bad-error";
	return json_object_get_string(code);
}

static void reset(enum vmm_state s)
{
	fk = (struct fake){ .state = s };
	sess = (struct api_session){ 0 };
}

TEST(malformed)
{
	reset(VMM_RUNNING);
	CHECK_STR(send_line("{"), "parse_error");
	CHECK_STR(send_line("not json"), "parse_error");
	CHECK_STR(send_line("{\"request\":\"status\"} trailing"), "parse_error");
	CHECK_STR(send_line("{\"request\":\"status\"}{\"request\":\"stop\"}"), "parse_error");
	CHECK_STR(send_line("[\"status\"]"), "parse_error");
	CHECK_STR(send_line("\"status\""), "parse_error");
	CHECK_STR(send_line("42"), "parse_error");
	CHECK_STR(send_line("\xff\xfe"), "parse_error");
	CHECK_EQ(fk.calls, 0);
	/* Embedded NUL: the length counts, not strlen. */
	json_object_put(reply);
	reply = api_handle_line(&fake_ops, &fk, &sess, "{\"request\":\"stop\"}\0x", 20);
	CHECK(!json_object_get_boolean(json_object_object_get(reply, "ok")));
	CHECK_EQ(fk.calls, 0);
}

TEST(bad_requests)
{
	reset(VMM_RUNNING);
	CHECK_STR(send_line("{}"), "invalid_request");
	CHECK_STR(send_line("{\"request\":1}"), "invalid_request");
	CHECK_STR(send_line("{\"request\":null}"), "invalid_request");
	CHECK_STR(send_line("{\"request\":\"reboot\"}"), "unknown_request");
	CHECK_STR(send_line("{\"request\":\"pause\",\"now\":true}"), "invalid_argument");
	CHECK_STR(send_line("{\"request\":\"status\",\"id\":[1]}"), "invalid_request");
	CHECK_STR(send_line("{\"request\":\"status\",\"id\":1.5}"), "invalid_request");
	CHECK_STR(send_line("{\"request\":\"shutdown\",\"timeout\":\"5\"}"), "invalid_argument");
	CHECK_STR(send_line("{\"request\":\"shutdown\",\"timeout\":-1}"), "invalid_argument");
	CHECK_STR(send_line("{\"request\":\"shutdown\",\"timeout\":3601}"), "invalid_argument");
	CHECK_STR(send_line("{\"request\":\"shutdown\",\"timeout\":1e3}"), "invalid_argument");
	CHECK_STR(send_line("{\"request\":\"shutdown\",\"timeout\":99999999999999999999}"),
		  "invalid_argument");
	CHECK_EQ(fk.calls, 0);
	CHECK_EQ(fk.state, VMM_RUNNING);
}

TEST(oversized)
{
	size_t len = API_LINE_MAX + 1;
	char *big = malloc(len);

	reset(VMM_RUNNING);
	memset(big, ' ', len);
	memcpy(big, "{\"request\":\"stop\"}", 18);
	json_object_put(reply);
	reply = api_handle_line(&fake_ops, &fk, &sess, big, len);
	CHECK_STR(json_object_get_string(json_object_object_get(
		json_object_object_get(reply, "error"), "code")), "too_large");
	CHECK_EQ(fk.calls, 0);
	/* Exactly at the limit is fine (blanks after the object are). */
	json_object_put(reply);
	reply = api_handle_line(&fake_ops, &fk, &sess, big, API_LINE_MAX);
	CHECK(json_object_get_boolean(json_object_object_get(reply, "ok")));
	CHECK_EQ(fk.calls, 1);
	free(big);
}

TEST(id_echo)
{
	struct json_object *id;

	reset(VMM_RUNNING);
	CHECK_STR(send_line("{\"request\":\"status\",\"id\":\"abc\"}"), "ok");
	CHECK(json_object_object_get_ex(reply, "id", &id));
	CHECK_STR(json_object_get_string(id), "abc");
	CHECK_STR(send_line("{\"id\":42,\"request\":\"nope\"}"), "unknown_request");
	CHECK(json_object_object_get_ex(reply, "id", &id));
	CHECK_EQ(json_object_get_int(id), 42);
	CHECK_STR(send_line("{\"request\":\"status\"}"), "ok");
	CHECK(!json_object_object_get_ex(reply, "id", NULL));
	CHECK_STR(json_object_get_string(json_object_object_get(
		json_object_object_get(reply, "result"), "name")), "fake");
}

/* The documented table: request x state -> legal.  Order of states:
 * starting, incoming, running, paused, shutting-down, stopped. */
static const struct {
	const char *line;
	bool legal[6];
	bool acts;                      /* calls the VMM */
} legality[] = {
	{ "{\"request\":\"status\"}", { 1, 1, 1, 1, 1, 1 }, false },
	{ "{\"request\":\"stats\"}", { 1, 1, 1, 1, 1, 1 }, false },
	{ "{\"request\":\"subscribe\"}", { 1, 1, 1, 1, 1, 1 }, false },
	{ "{\"request\":\"pause\"}", { 0, 0, 1, 0, 0, 0 }, true },
	{ "{\"request\":\"resume\"}", { 0, 0, 0, 1, 0, 0 }, true },
	{ "{\"request\":\"shutdown\"}", { 0, 0, 1, 1, 0, 0 }, true },
	{ "{\"request\":\"stop\"}", { 0, 1, 1, 1, 1, 0 }, true },
};

TEST(legality)
{
	for (size_t i = 0; i < ARRAY_SIZE(legality); i++) {
		for (int s = VMM_STARTING; s <= VMM_STOPPED; s++) {
			const char *got;

			reset(s);
			got = send_line(legality[i].line);
			if (strcmp(got, legality[i].legal[s] ? "ok" : "refused")) {
				printf("# %s in %s: %s\n", legality[i].line, vmm_state_name(s), got);
				tap_cur_failed = 1;
			}
			CHECK_EQ(fk.calls, legality[i].legal[s] && legality[i].acts);
			if (!legality[i].legal[s]) {
				struct json_object *err = json_object_object_get(reply, "error");

				/* A refusal names the state it happened in. */
				CHECK_STR(json_object_get_string(json_object_object_get(err, "state")),
					  vmm_state_name(s));
				CHECK(strstr(json_object_get_string(json_object_object_get(err, "message")),
					     vmm_state_name(s)));
			}
		}
	}
}

/* While a migration comes in, what would act on the VM is refused, and
 * the message says why. */
TEST(incoming_refusals)
{
	static const char *const lines[] = {
		"{\"request\":\"pause\"}",
		"{\"request\":\"resume\"}",
		"{\"request\":\"shutdown\"}",
		"{\"request\":\"migrate\",\"to\":\"tcp:127.0.0.1:1\"}",
		"{\"request\":\"snapshot\",\"to\":\"/nonexistent/x\"}",
		"{\"request\":\"migrate-cancel\"}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		const char *msg;

		reset(VMM_INCOMING);
		CHECK_STR(send_line(lines[i]), "refused");
		CHECK_EQ(fk.calls, 0);
		msg = json_object_get_string(json_object_object_get(
			json_object_object_get(reply, "error"), "message"));
		CHECK(msg && strstr(msg, "incoming") && strstr(msg, "migration"));
	}
	reset(VMM_INCOMING);
	CHECK_STR(send_line("{\"request\":\"stop\"}"), "ok");
	CHECK_EQ(fk.calls, 1);
}

TEST(pause_twice)
{
	reset(VMM_RUNNING);
	CHECK_STR(send_line("{\"request\":\"pause\"}"), "ok");
	CHECK_STR(json_object_get_string(json_object_object_get(
		json_object_object_get(reply, "result"), "state")), "paused");
	CHECK_STR(send_line("{\"request\":\"pause\"}"), "refused");
	CHECK_STR(send_line("{\"request\":\"resume\"}"), "ok");
	CHECK_EQ(fk.state, VMM_RUNNING);
}

TEST(action_errors)
{
	reset(VMM_RUNNING);
	/* The VMM may still say no (the state moved): refused, not failed. */
	fk.ret = -EBUSY;
	CHECK_STR(send_line("{\"request\":\"pause\"}"), "refused");
	fk.ret = -EIO;
	CHECK_STR(send_line("{\"request\":\"pause\"}"), "failed");
	CHECK(strstr(json_object_get_string(json_object_object_get(
		json_object_object_get(reply, "error"), "message")), "Input/output error"));
}

TEST(shutdown_timeout)
{
	reset(VMM_RUNNING);
	CHECK_STR(send_line("{\"request\":\"shutdown\",\"timeout\":7}"), "ok");
	CHECK_EQ(fk.timeout, 7);
	reset(VMM_PAUSED);
	CHECK_STR(send_line("{\"request\":\"shutdown\"}"), "ok");
	CHECK_EQ(fk.timeout, 0);
	CHECK_EQ(fk.state, VMM_SHUTTING_DOWN);
}

TEST(subscribe)
{
	reset(VMM_RUNNING);
	CHECK(!sess.subscribed);
	CHECK_STR(send_line("{\"request\":\"subscribe\",\"id\":1}"), "ok");
	CHECK(sess.subscribed);
}

TEST(error_reply)
{
	struct json_object *r = api_error_reply("too_many_clients", "at most %d", 16);

	CHECK(!json_object_get_boolean(json_object_object_get(r, "ok")));
	CHECK_STR(json_object_get_string(json_object_object_get(
		json_object_object_get(r, "error"), "message")), "at most 16");
	json_object_put(r);
}

int main(void)
{
	RUN(malformed);
	RUN(bad_requests);
	RUN(oversized);
	RUN(id_echo);
	RUN(legality);
	RUN(incoming_refusals);
	RUN(pause_twice);
	RUN(action_errors);
	RUN(shutdown_timeout);
	RUN(subscribe);
	RUN(error_reply);
	json_object_put(reply);
	return tap_done();
}
