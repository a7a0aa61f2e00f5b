/* Address buses: port I/O and MMIO.  A device registers a range with its
 * read/write callbacks; vCPU exits dispatch through bus_access().
 *
 * Callbacks run on vCPU threads, possibly concurrently on different vCPUs:
 * a device that keeps state takes its own lock.  Registration normally
 * happens before the vCPUs start; later changes (PCI BAR moves) are safe
 * because the range table is protected by a rwlock. */
#ifndef FERRY_BUS_H
#define FERRY_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* @offset is relative to the registered base; @len is 1, 2, 4 or 8.
	 * read fills @data (little-endian, @len bytes). */
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;              /* "pio" or "mmio", for log lines */
	pthread_rwlock_t lock;
	struct bus_range *ranges;      /* sorted by base, non-overlapping */
	int nr, cap;
	uint64_t unhandled;            /* accesses nobody claimed */
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* -EEXIST if the range overlaps another, -EINVAL if len is 0 or wraps. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name);
/* Removes the range registered with exactly this base and opaque. */
int bus_unregister(struct bus *bus, uint64_t base, void *opaque);

/* Dispatch one access.  An access nobody claims reads as all-ones and a
 * write is dropped; it is counted and logged once at debug level.
 * Returns true if a device handled it. */
bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		bool is_write);

/* Little-endian helpers for callbacks. */
static inline uint64_t bus_get(const uint8_t *data, uint32_t len)
{
	uint64_t v = 0;
	for (uint32_t i = 0; i < len && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static inline void bus_put(uint8_t *data, uint32_t len, uint64_t v)
{
	for (uint32_t i = 0; i < len && i < 8; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

#endif
