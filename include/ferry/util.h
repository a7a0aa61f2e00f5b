/* Small helpers shared by every subsystem. */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/* Parse "256M", "4G", "1024K", "4096" (bytes) into *out.  Suffixes K, M, G, T
 * (either case, binary units).  Returns -EINVAL for garbage, -ERANGE on
 * overflow. */
int parse_size(const char *s, uint64_t *out);

/* Parse a decimal unsigned integer in [min, max].  -EINVAL / -ERANGE. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Read a whole file (at most max_len bytes) into a malloc'd buffer. */
int read_file(const char *path, size_t max_len, void **buf, size_t *len);

/* Write all of buf to fd, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
