/* libFuzzer target for the virtio devices' migration state loaders:
 * virtio_dev_load (virtio/virtio.c: status, features, queue indexes), the
 * virtio-mmio transport's (virtio/mmio.c) and the devices' own
 * (virtio/console.c, virtio/net_state.c; rng has none), and the
 * virtio-pci transport's (virtio/pci_state.c), on a fixture VM
 * without KVM (vm_fd -1, as tests/unit/test_virtio_mig.c builds it) whose
 * RAM is two heap regions (ASan sees any access outside them).  What loads
 * must then serve the guest: its registers are read and every ready queue
 * is processed once, as the first kick after the switchover would.
 *
 * Input: an FDT blob as the STATE record carries it (nodes under /devices
 * named console0, net0, rng0 on virtio-mmio, rngpci on virtio-pci), then the
 * guest RAM's first bytes (rings and
 * buffers).  -DFUZZ_DEVSTATE_GEN_SEEDS builds a seed writer instead. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfdt.h>

#include "ferry/bus.h"
#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/migrate.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "../../virtio/net.h"

#define RAM0_SIZE  0x10000
#define RAM1_GPA   0x20000
#define RAM1_SIZE  0x1000
#define MMIO_SLOT  PLAT_VIRTIO_MMIO_SIZE

static struct vm vm;
static struct virtio_dev *devs[4];
static unsigned int nr_devs;
static int cons_in[2], cons_out[2];

/* src/vm.c's, which would need the whole VMM: there is no KVM VM here,
 * and the line's level is of no interest. */
void vm_irq_line(void *opaque, unsigned int gsi, int level)
{
	(void)opaque; (void)gsi; (void)level;
}

static void add(struct virtio_dev *d)
{
	struct ferr e;

	if (!d || virtio_mmio_add(&vm, d, &e) < 0)
		abort();
	vm.virtio[vm.nr_virtio++] = d;
	devs[nr_devs++] = d;
}

static void setup(void)
{
	struct net_config ncfg = { .tap = "none", .queues = 1 };
	struct ferr e;
	struct net_dev *n;

	log_set_level(LOG_ERROR);
	vm.vm_fd = vm.kvm_fd = -1;
	pthread_mutex_init(&vm.irq_lock, NULL);
	bus_init(&vm.mmio, "mmio");
	vm.loop = loop_create();
	vm.mem = (struct guest_mem){ .nr_regions = 2, .memfd = -1,
				     .ram_size = RAM0_SIZE + RAM1_SIZE };
	vm.mem.regions[0] = (struct mem_region){ 0, RAM0_SIZE, calloc(1, RAM0_SIZE) };
	vm.mem.regions[1] = (struct mem_region){ RAM1_GPA, RAM1_SIZE, calloc(1, RAM1_SIZE) };
	if (!vm.loop || !vm.mem.regions[0].hva || !vm.mem.regions[1].hva ||
	    pipe2(cons_in, O_NONBLOCK | O_CLOEXEC) || pipe2(cons_out, O_NONBLOCK | O_CLOEXEC))
		abort();
	add(virtio_console_create(cons_in[0], cons_out[1], vm.loop, &e));
	n = net_dev_alloc(&ncfg, &e);
	add(n ? &n->dev : NULL);
	add(virtio_rng_create(&e));
	/* virtio-pci (virtio/pci_state.c's loader): another rng.  Its MSI-X
	 * routes and irqfds fail without KVM, as on a host that refuses
	 * them; the loaded BARs land on the same MMIO bus as the others. */
	bus_init(&vm.pio, "pio");
	vm.pci = pci_create(&vm.pio, (struct dev_event){ 0 });
	vm_irq_routing_init(&vm);
	vm.next_pci_slot = 1;
	vm.next_pci_mmio = PLAT_PCI_MMIO_GPA;
	devs[nr_devs] = virtio_rng_create(&e);
	if (!vm.pci || !devs[nr_devs])
		abort();
	devs[nr_devs]->name = "rngpci";
	if (virtio_pci_add(&vm, devs[nr_devs], &e) < 0)
		abort();
	vm.virtio[vm.nr_virtio++] = devs[nr_devs++];
}

static bool is_mmio(unsigned int i)
{
	return i < 3;
}

static uint64_t base_of(unsigned int i)
{
	return PLAT_VIRTIO_MMIO_GPA + i * MMIO_SLOT;
}

static void wr(unsigned int i, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	bus_put(b, 4, v);
	bus_access(&vm.mmio, base_of(i) + off, b, 4, true);
}

#ifndef FUZZ_DEVSTATE_GEN_SEEDS
static uint32_t rd(unsigned int i, uint64_t off)
{
	uint8_t b[4] = { 0 };

	bus_access(&vm.mmio, base_of(i) + off, b, 4, false);
	return (uint32_t)bus_get(b, 4);
}

/* What the guest does after the switchover: read the registers, then
 * kick every queue (as the loop's kick handler in mmio.c does). */
static void serve(unsigned int i)
{
	struct virtio_dev *d = devs[i];
	char sink[4096];

	for (uint64_t off = 0; is_mmio(i) && off < 0x100; off += 4)
		rd(i, off);
	for (unsigned int q = 0; is_mmio(i) && q < d->num_queues; q++) {
		wr(i, 0x30, q);
		rd(i, 0x34);
		rd(i, 0x44);
	}
	virtio_dev_resume(d);
	pthread_mutex_lock(&d->lock);
	for (unsigned int q = 0; q < d->num_queues; q++)
		if (d->vq_ready[q] && !d->quiesced && (d->status & VIRTIO_STATUS_DRIVER_OK) &&
		    !(d->status & VIRTIO_STATUS_NEEDS_RESET) && d->ops->queue_notify)
			d->ops->queue_notify(d, q);
	pthread_mutex_unlock(&d->lock);
	while (read(cons_out[0], sink, sizeof(sink)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	uint32_t fdt_len;
	struct ferr e;
	void *fdt;
	int devices;

	if (!ready) {
		setup();
		ready = true;
	}
	if (len < sizeof(struct fdt_header))
		return 0;
	fdt_len = fdt_totalsize(data);
	if (fdt_len < sizeof(struct fdt_header) || fdt_len > len || fdt_len > MIG_STATE_MAX)
		return 0;
	/* An aligned copy of the blob, as mig_rx_blob hands it over. */
	fdt = malloc(fdt_len);
	if (!fdt)
		return 0;
	memcpy(fdt, data, fdt_len);
	memset(vm.mem.regions[0].hva, 0, RAM0_SIZE);
	memset(vm.mem.regions[1].hva, 0, RAM1_SIZE);
	memcpy(vm.mem.regions[0].hva, data + fdt_len, MIN(len - fdt_len, (size_t)RAM0_SIZE));
	/* The checks migrate/state.c makes before any node is read. */
	if (fdt_version(fdt) < 17 || mig_fdt_walkable(fdt, fdt_len) || fdt_check_full(fdt, fdt_len))
		goto out;
	devices = fdt_subnode_offset(fdt, 0, "devices");
	if (devices < 0)
		goto out;
	for (unsigned int i = 0; i < nr_devs; i++) {
		int node = fdt_subnode_offset(fdt, devices, devs[i]->name);

		if (node < 0)
			continue;
		e.msg[0] = '\0';
		if (virtio_dev_load(devs[i], fdt, node, &e) < 0) {
			if (!e.msg[0])
				__builtin_trap();       /* every refusal says why */
		} else {
			serve(i);
		}
		if (is_mmio(i))
			wr(i, 0x70, 0);         /* reset for the next input */
		virtio_dev_resume(devs[i]);
	}
out:
	free(fdt);
	return 0;
}
#else
/* Seeds: each device driven to DRIVER_OK with its queues in RAM, saved as
 * the source would, then the RAM image. */
static void drive(unsigned int i)
{
	struct virtio_dev *d = devs[i];

	wr(i, 0x70, 0);
	wr(i, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(i, 0x24, 1);
	wr(i, 0x20, 1);                 /* VERSION_1 */
	wr(i, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_FEATURES_OK);
	for (unsigned int q = 0; q < d->num_queues; q++) {
		uint64_t at = 0x1000 + q * 0x1000 + i * 0x4000;

		wr(i, 0x30, q);
		wr(i, 0x38, 8);
		wr(i, 0x80, (uint32_t)at);
		wr(i, 0x90, (uint32_t)at + 0x400);
		wr(i, 0xa0, (uint32_t)at + 0x800);
		wr(i, 0x44, 1);
	}
	wr(i, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void write_seed(const char *dir, const char *name, unsigned int mask)
{
	size_t cap = 64 * 1024;
	void *fdt = calloc(1, cap);
	char path[512];
	FILE *f;

	if (!fdt || fdt_create(fdt, cap) || fdt_finish_reservemap(fdt) ||
	    fdt_begin_node(fdt, "") || fdt_property_u32(fdt, "version", 1) ||
	    fdt_begin_node(fdt, "devices"))
		abort();
	for (unsigned int i = 0; i < nr_devs; i++) {
		if (!(mask & (1u << i)))
			continue;
		if (fdt_begin_node(fdt, devs[i]->name) || virtio_dev_quiesce(devs[i]) ||
		    virtio_dev_save(devs[i], fdt) || fdt_end_node(fdt))
			abort();
		virtio_dev_resume(devs[i]);
	}
	if (fdt_end_node(fdt) || fdt_end_node(fdt) || fdt_finish(fdt))
		abort();
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(fdt, fdt_totalsize(fdt), 1, f) != 1 ||
	    fwrite(vm.mem.regions[0].hva, 1, 0x100, f) != 0x100 || fclose(f))
		abort();
	free(fdt);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	setup();
	for (unsigned int i = 0; i < nr_devs; i++)
		if (is_mmio(i))
			drive(i);
	write_seed(argv[1], "console", 1);
	write_seed(argv[1], "net", 2);
	write_seed(argv[1], "rng", 4);
	write_seed(argv[1], "pci", 8);
	write_seed(argv[1], "all", 15);
	return 0;
}
#endif
