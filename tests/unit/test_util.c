/* Size and number parsing, file reading. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "ferry/util.h"
#include "tap.h"

TEST(parse_size_units)
{
	uint64_t v = 0;

	CHECK(parse_size("4096", &v) == 0); CHECK_EQ(v, 4096);
	CHECK(parse_size("1K", &v) == 0);   CHECK_EQ(v, 1024);
	CHECK(parse_size("256M", &v) == 0); CHECK_EQ(v, 256 * MiB);
	CHECK(parse_size("4g", &v) == 0);   CHECK_EQ(v, 4 * GiB);
	CHECK(parse_size("2GiB", &v) == 0); CHECK_EQ(v, 2 * GiB);
	CHECK(parse_size("1T", &v) == 0);   CHECK_EQ(v, 1024 * GiB);
}

TEST(parse_size_rejects_garbage)
{
	uint64_t v = 7;

	CHECK_EQ(parse_size("", &v), -EINVAL);
	CHECK_EQ(parse_size("M", &v), -EINVAL);
	CHECK_EQ(parse_size("12X", &v), -EINVAL);
	CHECK_EQ(parse_size("-1G", &v), -EINVAL);
	CHECK_EQ(parse_size(" 1G", &v), -EINVAL);
	CHECK_EQ(parse_size("1GG", &v), -EINVAL);
	CHECK_EQ(parse_size("99999999999999999999", &v), -ERANGE);
	CHECK_EQ(parse_size("17179869184G", &v), -ERANGE);
	CHECK_EQ(v, 7);
}

TEST(parse_uint_bounds)
{
	uint64_t v;

	CHECK(parse_uint("1", 1, 8, &v) == 0); CHECK_EQ(v, 1);
	CHECK_EQ(parse_uint("0", 1, 8, &v), -ERANGE);
	CHECK_EQ(parse_uint("9", 1, 8, &v), -ERANGE);
	CHECK_EQ(parse_uint("2x", 1, 8, &v), -EINVAL);
	CHECK_EQ(parse_uint("", 1, 8, &v), -EINVAL);
}

TEST(read_file_limits)
{
	char path[] = "/tmp/ferry-test-XXXXXX";
	int fd = mkstemp(path);
	void *buf = NULL;
	size_t len = 0;

	CHECK(fd >= 0);
	CHECK(write_all(fd, "hello", 5) == 0);
	close(fd);
	CHECK(read_file(path, 100, &buf, &len) == 0);
	CHECK_EQ(len, 5);
	CHECK(buf && memcmp(buf, "hello", 5) == 0);
	free(buf);
	CHECK_EQ(read_file(path, 4, &buf, &len), -EFBIG);
	CHECK_EQ(read_file("/nonexistent/ferry", 4, &buf, &len), -ENOENT);
	CHECK_EQ(read_file("/tmp", 4, &buf, &len), -EISDIR);
	unlink(path);
}

int main(void)
{
	RUN(parse_size_units);
	RUN(parse_size_rejects_garbage);
	RUN(parse_uint_bounds);
	RUN(read_file_limits);
	return tap_done();
}
