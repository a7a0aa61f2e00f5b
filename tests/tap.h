/* A minimal TAP producer for ferry's unit tests (meson protocol: 'tap').
 *
 *   TEST(parse_size_suffixes) { CHECK(parse_size("1K", &v) == 0); ... }
 *   int main(void) { RUN(parse_size_suffixes); return tap_done(); }
 */
#ifndef FERRY_TAP_H
#define FERRY_TAP_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Unused in a test file whose tests are compiled out (a skip-only main). */
static int tap_count, tap_failed, tap_cur_failed __attribute__((unused));

#define TEST(name) static void test_##name(void)

/* The whole file's tests need what this build lacks: a main that says so
 * (TAP's skip-all plan). */
#define TAP_SKIP_ALL(why)                                                  \
	int main(void)                                                     \
	{                                                                  \
		printf("1..0 # SKIP %s\n", why);                           \
		return 0;                                                  \
	}

#define CHECK(cond) do {                                                   \
	if (!(cond)) {                                                     \
		printf("# %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
		tap_cur_failed = 1;                                        \
	}                                                                  \
} while (0)

#define CHECK_EQ(a, b) do {                                                \
	unsigned long long _a = (unsigned long long)(a);                   \
	unsigned long long _b = (unsigned long long)(b);                   \
	if (_a != _b) {                                                    \
		printf("# %s:%d: %s == %s failed: 0x%llx != 0x%llx\n",      \
		       __FILE__, __LINE__, #a, #b, _a, _b);                \
		tap_cur_failed = 1;                                        \
	}                                                                  \
} while (0)

#define CHECK_STR(a, b) do {                                               \
	const char *_a = (a), *_b = (b);                                   \
	if (!_a || !_b || strcmp(_a, _b) != 0) {                           \
		printf("# %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,   \
		       _a ? _a : "(null)", _b ? _b : "(null)");            \
		tap_cur_failed = 1;                                        \
	}                                                                  \
} while (0)

#define RUN(name) do {                                                     \
	tap_cur_failed = 0;                                                \
	test_##name();                                                     \
	tap_count++;                                                       \
	if (tap_cur_failed)                                                \
		tap_failed++;                                              \
	printf("%s %d - %s\n", tap_cur_failed ? "not ok" : "ok", tap_count, #name); \
	fflush(stdout);                                                    \
} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
