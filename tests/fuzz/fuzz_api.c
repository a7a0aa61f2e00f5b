/* libFuzzer target for the control protocol (src/api.c api_handle_line):
 * whatever a client sends, ferry answers with one reply object that has
 * "ok", never crashes, and frees what it parsed.
 *
 * Input: [0] the fake VM's starting state and which ops fail, then request
 * lines separated by '\n', handled in order on one session (so that a
 * "pause" changes what the next line may do).  The VM is a fake, as in
 * tests/unit/test_api.c. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ferry/api.h"
#include "ferry/err.h"
#include "ferry/log.h"
#include "ferry/migrate.h"

struct fake {
	enum vmm_state state;
	int fail;                       /* what each action returns */
	bool migrating;
};

static enum vmm_state f_state(void *o) { return ((struct fake *)o)->state; }

static int f_act(struct fake *f, enum vmm_state to)
{
	if (f->fail)
		return f->fail;
	f->state = to;
	return 0;
}

static int f_pause(void *o) { return f_act(o, VMM_PAUSED); }
static int f_resume(void *o) { return f_act(o, VMM_RUNNING); }
static int f_shutdown(void *o, unsigned int t) { (void)t; return f_act(o, VMM_SHUTTING_DOWN); }
static int f_stop(void *o) { return f_act(o, VMM_STOPPED); }
static struct json_object *f_obj(void *o) { (void)o; return json_object_new_object(); }

static int f_migrate(void *o, const char *uri, const struct mig_params *p, struct ferr *e)
{
	struct fake *f = o;

	if (!uri || !p)
		__builtin_trap();       /* the dispatcher checked its arguments */
	if (f->fail)
		return ferr_set(e, f->fail, "fake migration failure");
	f->migrating = true;
	return 0;
}

static int f_migrate_cancel(void *o)
{
	struct fake *f = o;

	if (!f->migrating)
		return -ENOENT;
	f->migrating = false;
	return 0;
}

static const struct api_ops fake_ops = {
	.state = f_state, .pause = f_pause, .resume = f_resume,
	.shutdown = f_shutdown, .stop = f_stop, .status = f_obj, .stats = f_obj,
	.migrate = f_migrate, .migrate_cancel = f_migrate_cancel,
	.migrate_status = f_obj,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const int fails[] = { 0, 0, -EBUSY, -EIO };
	struct fake f;
	struct api_session s = { 0 };
	const char *p, *end;

	if (len < 1)
		return 0;
	log_set_level(LOG_ERROR);
	f = (struct fake){ .state = data[0] % (VMM_STOPPED + 1),
			   .fail = fails[(data[0] >> 4) & 3] };
	p = (const char *)data + 1;
	end = (const char *)data + len;
	while (p <= end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t n = (nl ? nl : end) - p;
		struct json_object *reply, *ok;

		reply = api_handle_line(&fake_ops, &f, &s, p, n);
		if (!reply || !json_object_object_get_ex(reply, "ok", &ok) ||
		    !json_object_is_type(ok, json_type_boolean))
			__builtin_trap();
		/* The server serializes every reply: that must work too. */
		if (!json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN))
			__builtin_trap();
		json_object_put(reply);
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}
