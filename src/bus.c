/* Port-I/O and MMIO buses: a sorted table of ranges, looked up by binary
 * search on every vCPU exit. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/bus.h"
#include "ferry/log.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	pthread_rwlock_destroy(&bus->lock);
	memset(bus, 0, sizeof(*bus));
}

/* Index of the first range whose end is above addr (caller holds the lock). */
static int bus_search(const struct bus *bus, uint64_t addr)
{
	int lo = 0, hi = bus->nr;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (r->base + r->len - 1 < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name)
{
	struct bus_range *r;
	int i, ret = 0;

	if (len == 0 || base + len - 1 < base)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	i = bus_search(bus, base);
	if (i < bus->nr && bus->ranges[i].base <= base + len - 1) {
		ret = -EEXIST;
		goto out;
	}
	if (bus->nr == bus->cap) {
		int cap = bus->cap ? bus->cap * 2 : 16;

		r = realloc(bus->ranges, cap * sizeof(*r));
		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[i + 1], &bus->ranges[i],
		(bus->nr - i) * sizeof(bus->ranges[0]));
	bus->ranges[i] = (struct bus_range){
		.base = base, .len = len, .ops = ops, .opaque = opaque, .name = name,
	};
	bus->nr++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int bus_unregister(struct bus *bus, uint64_t base, void *opaque)
{
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	for (int i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].base == base && bus->ranges[i].opaque == opaque) {
			memmove(&bus->ranges[i], &bus->ranges[i + 1],
				(bus->nr - i - 1) * sizeof(bus->ranges[0]));
			bus->nr--;
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

bool bus_access(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		bool is_write)
{
	struct bus_range r = { 0 };
	bool found = false;
	int i;

	/* Copy the range out and call the device unlocked: a callback may move
	 * ranges on this very bus (a PCI I/O BAR being reprogrammed).  Devices
	 * live as long as the VM, so the copy stays valid. */
	pthread_rwlock_rdlock(&bus->lock);
	i = bus_search(bus, addr);
	if (i < bus->nr && bus->ranges[i].base <= addr) {
		r = bus->ranges[i];
		/* An access that straddles the end of a range is not the device's. */
		found = len && len <= r.len && addr - r.base <= r.len - len;
	}
	pthread_rwlock_unlock(&bus->lock);

	if (found) {
		if (is_write) {
			if (r.ops->write)
				r.ops->write(r.opaque, addr - r.base, data, len);
		} else if (r.ops->read) {
			r.ops->read(r.opaque, addr - r.base, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}

	if (!is_write)
		memset(data, 0xff, len);
	if (__atomic_fetch_add(&bus->unhandled, 1, __ATOMIC_RELAXED) == 0)
		log_debug("%s: unhandled %s of %u bytes at 0x%" PRIx64
			  " (further ones are counted, not logged)",
			  bus->name, is_write ? "write" : "read", len, addr);
	return false;
}
