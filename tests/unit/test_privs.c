/* --user parsing (USER[:GROUP], numeric ids) and the status "privileges"
 * object; dropping itself is tested by tests/integration/privs.sh. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ferry/privs.h"
#include "tap.h"

TEST(parse_user_forms)
{
	char u[PRIVS_NAME_MAX], g[PRIVS_NAME_MAX];
	struct ferr e;

	CHECK(privs_parse_user("ferry", u, g, &e) == 0);
	CHECK_STR(u, "ferry"); CHECK_STR(g, "");
	CHECK(privs_parse_user("ferry:kvm", u, g, &e) == 0);
	CHECK_STR(u, "ferry"); CHECK_STR(g, "kvm");
	CHECK(privs_parse_user("999:998", u, g, &e) == 0);
	CHECK_STR(u, "999"); CHECK_STR(g, "998");
	CHECK(privs_parse_user("a-b_c.d$", u, g, &e) == 0);
	CHECK_STR(u, "a-b_c.d$");
}

TEST(parse_user_rejects)
{
	char u[PRIVS_NAME_MAX], g[PRIVS_NAME_MAX], big[PRIVS_NAME_MAX + 8];
	struct ferr e;

	CHECK_EQ(privs_parse_user("", u, g, &e), -EINVAL);
	CHECK(strstr(e.msg, "empty") != NULL);
	CHECK_EQ(privs_parse_user(":kvm", u, g, &e), -EINVAL);
	CHECK(strstr(e.msg, "no user") != NULL);
	CHECK_EQ(privs_parse_user("ferry:", u, g, &e), -EINVAL);
	CHECK(strstr(e.msg, "no group") != NULL);
	CHECK_EQ(privs_parse_user("a:b:c", u, g, &e), -EINVAL);
	CHECK(strstr(e.msg, "more than one") != NULL);
	CHECK_EQ(privs_parse_user("fer ry", u, g, &e), -EINVAL);
	CHECK_EQ(privs_parse_user("ferry\n", u, g, &e), -EINVAL);
	CHECK_EQ(privs_parse_user("a:\tb", u, g, &e), -EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ(privs_parse_user(big, u, g, &e), -EINVAL);
	CHECK(strstr(e.msg, "too long") != NULL);
	big[0] = 'u'; big[1] = ':';
	CHECK_EQ(privs_parse_user(big, u, g, &e), -EINVAL);
	CHECK(strstr(e.msg, "group name is too long") != NULL);
	/* Exactly the longest name fits. */
	big[PRIVS_NAME_MAX - 1] = '\0';
	memset(big, 'y', PRIVS_NAME_MAX - 1);
	CHECK(privs_parse_user(big, u, g, &e) == 0);
	CHECK_EQ(strlen(u), PRIVS_NAME_MAX - 1);
}

TEST(parse_id)
{
	unsigned int id = 7;

	CHECK(privs_parse_id("0", &id) == 0); CHECK_EQ(id, 0);
	CHECK(privs_parse_id("999", &id) == 0); CHECK_EQ(id, 999);
	CHECK(privs_parse_id("4294967294", &id) == 0); CHECK_EQ(id, 4294967294u);
	id = 7;
	CHECK_EQ(privs_parse_id("4294967295", &id), -EINVAL);  /* (uid_t)-1 */
	CHECK_EQ(privs_parse_id("4294967296", &id), -EINVAL);
	CHECK_EQ(privs_parse_id("99999999999999999999", &id), -EINVAL);
	CHECK_EQ(privs_parse_id("", &id), -EINVAL);
	CHECK_EQ(privs_parse_id("-1", &id), -EINVAL);
	CHECK_EQ(privs_parse_id("+1", &id), -EINVAL);
	CHECK_EQ(privs_parse_id("12a", &id), -EINVAL);
	CHECK_EQ(privs_parse_id("ferry", &id), -EINVAL);
	CHECK_EQ(id, 7);
}

TEST(status_json_shape)
{
	struct json_object *o = privs_status_json(), *v;

	CHECK(o != NULL);
	if (!o)
		return;
	CHECK(json_object_object_get_ex(o, "uid", &v) && json_object_get_int64(v) == (int64_t)geteuid());
	CHECK(json_object_object_get_ex(o, "gid", &v) && json_object_get_int64(v) == (int64_t)getegid());
	CHECK(json_object_object_get_ex(o, "capabilities", &v) && json_object_is_type(v, json_type_array));
	CHECK(json_object_object_get_ex(o, "no_new_privs", &v) && json_object_is_type(v, json_type_boolean));
	CHECK(json_object_object_get_ex(o, "user", &v));
	CHECK(json_object_object_get_ex(o, "chroot", &v) && v == NULL);
	json_object_put(o);
}

int main(void)
{
	RUN(parse_user_forms);
	RUN(parse_user_rejects);
	RUN(parse_id);
	RUN(status_json_shape);
	return tap_done();
}
