/* Unit tests for devices/debugport.c: bytes written to 0x402 come out of the
 * log, a line at a time.  stderr is redirected into a pipe to see them. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/platform.h"
#include "tap.h"

static int log_pipe[2];
static int saved_stderr;

/* Everything logged since the last call, NUL-terminated. */
static const char *logged(void)
{
	static char buf[4096];
	ssize_t n = read(log_pipe[0], buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void put(struct bus *pio, const char *s)
{
	for (; *s; s++) {
		uint8_t c = (uint8_t)*s;

		CHECK(bus_access(pio, PLAT_DEBUG_PORT, &c, 1, true));
	}
}

TEST(lines)
{
	struct bus pio;
	struct debugport *d;

	bus_init(&pio, "pio");
	d = debugport_create(&pio);
	CHECK(d != NULL);
	put(&pio, "SeaBIOS (version");
	CHECK_STR(logged(), "");
	put(&pio, " 1.16)\r\nnext\n");
	CHECK_STR(logged(), "ferry: info: debug port: SeaBIOS (version 1.16)\n"
			    "ferry: info: debug port: next\n");
	/* Escape sequences do not reach the terminal. */
	put(&pio, "\x1b[2Jx\n");
	CHECK_STR(logged(), "ferry: info: debug port: .[2Jx\n");
	/* A partial line is flushed when the device goes away. */
	put(&pio, "tail");
	debugport_destroy(d);
	CHECK_STR(logged(), "ferry: info: debug port: tail\n");
	CHECK_EQ(pio.nr, 0);
	bus_destroy(&pio);
}

TEST(overflow_flushes)
{
	struct bus pio;
	struct debugport *d;
	char big[301];
	const char *out;

	bus_init(&pio, "pio");
	d = debugport_create(&pio);
	memset(big, 'a', 300);
	big[300] = '\0';
	put(&pio, big);
	out = logged();
	/* 256 bytes came out as one line; 44 wait for more. */
	CHECK_EQ(strlen(out), strlen("ferry: info: debug port: \n") + 256);
	put(&pio, "\n");
	CHECK_EQ(strlen(logged()), strlen("ferry: info: debug port: \n") + 44);
	debugport_destroy(d);
	bus_destroy(&pio);
}

TEST(read_and_hostile)
{
	struct bus pio;
	struct debugport *d;
	uint8_t v[4] = { 0 };

	bus_init(&pio, "pio");
	d = debugport_create(&pio);
	CHECK(bus_access(&pio, PLAT_DEBUG_PORT, v, 1, false));
	CHECK_EQ(v[0], 0xe9);
	CHECK(!bus_access(&pio, PLAT_DEBUG_PORT, v, 2, true));
	for (unsigned int c = 0; c < 256; c++) {
		v[0] = (uint8_t)c;
		bus_access(&pio, PLAT_DEBUG_PORT, v, 1, true);
	}
	debugport_destroy(d);
	logged();
	d = debugport_create(&pio);
	CHECK(d != NULL);
	/* The port is taken now: a second one fails. */
	CHECK(debugport_create(&pio) == NULL);
	debugport_destroy(d);
	logged();
	bus_destroy(&pio);
}

int main(void)
{
	int ret;

	if (pipe(log_pipe) < 0)
		return 1;
	fcntl(log_pipe[0], F_SETFL, O_NONBLOCK);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(log_pipe[1], STDERR_FILENO);
	log_set_level(LOG_INFO);
	RUN(lines);
	RUN(overflow_flushes);
	RUN(read_and_hostile);
	ret = tap_done();
	dup2(saved_stderr, STDERR_FILENO);
	return ret;
}
