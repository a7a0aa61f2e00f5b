/* The status and stats objects of one VMM, built in one place for the
 * control socket's "status"/"stats" replies and for the metrics exporter.
 * Counters owned by vCPU threads are read with relaxed atomic loads: each is
 * an aligned uint64 with a single writer, so a load is never torn, and a
 * snapshot that is a few exits stale is fine for statistics. */
#include <stdio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "ferry/devices.h"
#include "ferry/stats.h"
#include "ferry/util.h"
#include "ferry/vcpu.h"
#include "ferry/vmm.h"

uint64_t stats_rss_bytes(void)
{
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	if (n != 2 || page <= 0)
		return 0;
	return resident * (uint64_t)page;
}

double stats_uptime_s(const struct vmm *m)
{
	uint64_t start = m->vm.start_ns;

	if (!start || m->state == VMM_STARTING)
		return 0;
	return (now_ns() - start) / 1e9;
}

/* json-c's int64 is signed; counters that would not fit are clamped rather
 * than turned negative. */
static struct json_object *json_u64(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

/* Seconds with millisecond precision: a double's full expansion
 * (0.99656404899999995) helps nobody reading the reply. */
static struct json_object *json_seconds(double s)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.3f", s);
	return json_object_new_double_s(s, buf);
}

/* Every device and its address range, as the buses know them. */
static struct json_object *stats_devices(struct bus *bus, struct json_object *arr)
{
	pthread_rwlock_rdlock(&bus->lock);
	for (int i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "name", json_object_new_string(r->name ? r->name : "?"));
		json_object_object_add(d, "bus", json_object_new_string(bus->name));
		json_object_object_add(d, "base", json_u64(r->base));
		json_object_object_add(d, "size", json_u64(r->len));
		json_object_array_add(arr, d);
	}
	pthread_rwlock_unlock(&bus->lock);
	return arr;
}

struct json_object *stats_status(struct vmm *m)
{
	struct json_object *o = json_object_new_object(), *devs;

	if (!o)
		return NULL;
	json_object_object_add(o, "name", json_object_new_string(m->cfg->name));
	json_object_object_add(o, "state", json_object_new_string(vmm_state_name(m->state)));
	json_object_object_add(o, "uptime_s", json_seconds(stats_uptime_s(m)));
	json_object_object_add(o, "vcpus", json_object_new_int(m->vm.nr_vcpus));
	json_object_object_add(o, "memory_bytes", json_u64(m->cfg->mem_size));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "version", json_object_new_string(FERRY_VERSION));
	devs = json_object_new_array();
	stats_devices(&m->vm.pio, devs);
	stats_devices(&m->vm.mmio, devs);
	json_object_object_add(o, "devices", devs);
	return o;
}

static struct json_object *stats_vcpu(struct vcpu *v)
{
	struct json_object *o = json_object_new_object(), *exits = json_object_new_object();
	uint64_t total = 0;

	for (unsigned int r = 0; r < VCPU_EXIT_REASONS; r++) {
		uint64_t n = __atomic_load_n(&v->stats.exits[r], __ATOMIC_RELAXED);
		const char *name = vcpu_exit_name(r);
		char other[24];

		if (!n)
			continue;
		if (!name) {
			snprintf(other, sizeof(other), "reason_%u", r);
			name = other;
		}
		json_object_object_add(exits, name, json_u64(n));
		total += n;
	}
	json_object_object_add(o, "id", json_object_new_int(v->id));
	json_object_object_add(o, "exits_total", json_u64(total));
	json_object_object_add(o, "exits", exits);
	json_object_object_add(o, "guest_ns",
			       json_u64(__atomic_load_n(&v->stats.guest_ns, __ATOMIC_RELAXED)));
	json_object_object_add(o, "vmm_ns",
			       json_u64(__atomic_load_n(&v->stats.vmm_ns, __ATOMIC_RELAXED)));
	return o;
}

static void stats_bus(struct json_object *buses, const struct bus *bus)
{
	struct json_object *b = json_object_new_object();

	json_object_object_add(b, "unhandled",
			       json_u64(__atomic_load_n(&bus->unhandled, __ATOMIC_RELAXED)));
	json_object_object_add(buses, bus->name, b);
}

struct json_object *stats_build(struct vmm *m)
{
	struct json_object *o = json_object_new_object(), *vcpus, *devs, *buses;
	struct vm *vm = &m->vm;

	if (!o)
		return NULL;
	json_object_object_add(o, "state", json_object_new_string(vmm_state_name(m->state)));
	json_object_object_add(o, "uptime_s", json_seconds(stats_uptime_s(m)));
	json_object_object_add(o, "memory_bytes", json_u64(m->cfg->mem_size));
	json_object_object_add(o, "rss_bytes", json_u64(stats_rss_bytes()));

	vcpus = json_object_new_array();
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i])
			json_object_array_add(vcpus, stats_vcpu(vm->vcpus[i]));
	json_object_object_add(o, "vcpus", vcpus);

	/* Devices report what they count; more join as they gain counters. */
	devs = json_object_new_object();
	if (vm->uart) {
		struct json_object *u = json_object_new_object();
		struct uart_stats us;

		uart_get_stats(vm->uart, &us);
		json_object_object_add(u, "tx_bytes", json_u64(us.tx_bytes));
		json_object_object_add(u, "tx_dropped", json_u64(us.tx_dropped));
		json_object_object_add(u, "rx_bytes", json_u64(us.rx_bytes));
		json_object_object_add(devs, "uart0", u);
	}
	json_object_object_add(o, "devices", devs);

	buses = json_object_new_object();
	stats_bus(buses, &vm->pio);
	stats_bus(buses, &vm->mmio);
	json_object_object_add(o, "buses", buses);
	return o;
}
