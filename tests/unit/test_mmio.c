/* virtio-mmio: the register block, feature/status rules, queue set-up,
 * notifications and the interrupt line, on a VM without KVM (vm_fd -1: no
 * ioeventfd, so QueueNotify takes the userspace path; the shared line's
 * state is read back from vm->line_sources).  virtio-console is driven
 * through it with pipes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "tap.h"

#define RAM     (16 * MiB)
#define BASE    PLAT_VIRTIO_MMIO_GPA
#define GSI0    PLAT_VIRTIO_MMIO_GSI(0)

#include "vm_loop.h"

/* ---- a minimal device ------------------------------------------------- */

struct dummy {
	struct virtio_dev dev;
	int activated, resets, notified[4];
	int activate_ret;
};

static uint64_t dummy_features(struct virtio_dev *d)
{
	(void)d;
	return 1ULL << 3;
}

static void dummy_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	(void)d;
	for (uint32_t i = 0; i < len; i++)
		data[i] = 0xa0 + off + i;
}

static int dummy_activate(struct virtio_dev *d)
{
	struct dummy *x = d->priv;

	x->activated++;
	return x->activate_ret;
}

static void dummy_notify(struct virtio_dev *d, unsigned int q)
{
	struct dummy *x = d->priv;

	x->notified[q]++;
}

static void dummy_reset(struct virtio_dev *d)
{
	((struct dummy *)d->priv)->resets++;
}

static int dummies_destroyed;

static void dummy_destroy(struct virtio_dev *d)
{
	dummies_destroyed++;
	free(d->priv);
}

static const struct virtio_dev_ops dummy_ops = {
	.features = dummy_features,
	.config_read = dummy_config_read,
	.activate = dummy_activate,
	.queue_notify = dummy_notify,
	.reset = dummy_reset,
	.destroy = dummy_destroy,
};

/* ---- driver helpers (the VM is vm_loop.h's) ------------------------ */

static uint32_t rd(unsigned int dev, uint64_t off)
{
	uint8_t b[4];

	bus_access(&vm.mmio, BASE + dev * 0x1000 + off, b, 4, false);
	return (uint32_t)bus_get(b, 4);
}

static void wr(unsigned int dev, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	bus_put(b, 4, v);
	bus_access(&vm.mmio, BASE + dev * 0x1000 + off, b, 4, true);
}

static bool line_high(unsigned int gsi)
{
	return vm.line_sources[gsi] != 0;
}

static struct dummy *add_dummy(void)
{
	struct dummy *x = calloc(1, sizeof(*x));
	struct ferr e;

	virtio_dev_init(&x->dev, "dummy", 42, 2, 16, 8, &dummy_ops, x);
	CHECK_EQ(virtio_mmio_add(&vm, &x->dev, &e), 0);
	vm.virtio[vm.nr_virtio++] = &x->dev;
	return x;
}

/* The driver's side of §3.1.1 up to FEATURES_OK; returns the status read
 * back after writing FEATURES_OK. */
static uint32_t negotiate(unsigned int dev, uint64_t features)
{
	wr(dev, 0x70, 0);
	wr(dev, 0x70, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(dev, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(dev, 0x24, 0);
	wr(dev, 0x20, (uint32_t)features);
	wr(dev, 0x24, 1);
	wr(dev, 0x20, (uint32_t)(features >> 32));
	wr(dev, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return rd(dev, 0x70);
}

static void setup_queue(unsigned int dev, unsigned int q, uint16_t num, uint64_t desc,
			uint64_t avail, uint64_t used)
{
	wr(dev, 0x30, q);
	wr(dev, 0x38, num);
	wr(dev, 0x80, (uint32_t)desc);
	wr(dev, 0x84, desc >> 32);
	wr(dev, 0x90, (uint32_t)avail);
	wr(dev, 0x94, avail >> 32);
	wr(dev, 0xa0, (uint32_t)used);
	wr(dev, 0xa4, used >> 32);
	wr(dev, 0x44, 1);
}

#define V1 (1ULL << VIRTIO_F_VERSION_1)
#define S_ALL (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | \
	       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

/* ---- tests ------------------------------------------------------------- */

TEST(identity_and_cmdline)
{
	char want[128];

	vm_setup();
	add_dummy();
	add_dummy();
	CHECK_EQ(rd(0, 0x000), 0x74726976);
	CHECK_EQ(rd(0, 0x004), 2);
	CHECK_EQ(rd(0, 0x008), 42);
	CHECK_EQ(rd(0, 0x00c), 0x554d4551);
	CHECK_EQ(vm.next_mmio_dev, 2);
	snprintf(want, sizeof(want), " virtio_mmio.device=4K@0x%llx:%u virtio_mmio.device=4K@0x%llx:%u",
		 (unsigned long long)BASE, GSI0, (unsigned long long)BASE + 0x1000,
		 PLAT_VIRTIO_MMIO_GSI(1));
	CHECK_STR(vm.extra_cmdline, want);
	/* Unaligned or narrow register reads are harmless zeros. */
	uint8_t b[8] = { 0xff, 0xff };
	bus_access(&vm.mmio, BASE + 1, b, 2, false);
	CHECK_EQ(b[0] | b[1], 0);
	dummies_destroyed = 0;
	vm_teardown();
	CHECK_EQ(dummies_destroyed, 2);
}

TEST(slots_and_cmdline_run_out)
{
	struct dummy extra;
	struct ferr e;

	vm_setup();
	for (int i = 0; i < PLAT_VIRTIO_MMIO_MAX; i++)
		add_dummy();
	virtio_dev_init(&extra.dev, "extra", 42, 1, 16, 0, &dummy_ops, &extra);
	CHECK_EQ(virtio_mmio_add(&vm, &extra.dev, &e), -ENOSPC);
	vm_teardown();

	vm_setup();
	memset(vm.extra_cmdline, 'x', sizeof(vm.extra_cmdline) - 10);
	CHECK_EQ(virtio_mmio_add(&vm, &extra.dev, &e), -ENOSPC);
	CHECK(strstr(e.msg, "command line") != NULL);
	CHECK_EQ(vm.next_mmio_dev, 0);
	vm_teardown();
}

TEST(feature_negotiation)
{
	struct dummy *x;

	vm_setup();
	x = add_dummy();
	wr(0, 0x14, 0);
	CHECK_EQ(rd(0, 0x10) & (1U << 3), 1U << 3);
	wr(0, 0x14, 1);
	CHECK_EQ(rd(0, 0x10) & 1, 1);           /* VERSION_1 */
	wr(0, 0x14, 7);
	CHECK_EQ(rd(0, 0x10), 0);
	/* A legacy driver (no VERSION_1) is refused. */
	CHECK_EQ(negotiate(0, 1ULL << 3) & VIRTIO_STATUS_FEATURES_OK, 0);
	/* A bit that was never offered is refused. */
	CHECK_EQ(negotiate(0, V1 | (1ULL << 5)) & VIRTIO_STATUS_FEATURES_OK, 0);
	CHECK_EQ(negotiate(0, V1 | (1ULL << 3)) & VIRTIO_STATUS_FEATURES_OK,
		 VIRTIO_STATUS_FEATURES_OK);
	CHECK_EQ(x->dev.driver_features, V1 | (1ULL << 3));
	/* After FEATURES_OK the features are frozen. */
	wr(0, 0x24, 0);
	wr(0, 0x20, 0);
	wr(0, 0x70, S_ALL);
	CHECK_EQ(x->dev.driver_features, V1 | (1ULL << 3));
	CHECK_EQ(x->activated, 1);
	/* DRIVER_OK without FEATURES_OK is a failed device. */
	wr(0, 0x70, 0);
	wr(0, 0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	CHECK(rd(0, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(x->activated, 1);
	/* A device that cannot start says so. */
	x->activate_ret = -EIO;
	negotiate(0, V1);
	wr(0, 0x70, S_ALL);
	CHECK(rd(0, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	wr(0, 0x70, 0);
	CHECK_EQ(rd(0, 0x70), 0);
	vm_teardown();
}

TEST(queues_notify_and_interrupts)
{
	struct dummy *x;
	uint32_t gen;

	vm_setup();
	x = add_dummy();
	negotiate(0, V1);
	wr(0, 0x30, 0);
	CHECK_EQ(rd(0, 0x34), 16);
	wr(0, 0x30, 2);                         /* no such queue */
	CHECK_EQ(rd(0, 0x34), 0);
	wr(0, 0x44, 1);
	CHECK_EQ(rd(0, 0x44), 0);
	setup_queue(0, 0, 8, 0x1000, 0x2000, 0x3000);
	CHECK_EQ(rd(0, 0x44), 1);
	CHECK(x->dev.vq_ready[0]);
	CHECK_EQ(x->dev.vqs[0].desc_gpa, 0x1000);
	/* Addresses of a live queue do not move. */
	wr(0, 0x80, 0x5000);
	CHECK_EQ(x->dev.vqs[0].desc_gpa, 0x1000);
	/* Kicks before DRIVER_OK are not delivered... */
	wr(0, 0x50, 0);
	pump();
	CHECK_EQ(x->notified[0], 0);
	/* ... DRIVER_OK looks at every live queue once ... */
	wr(0, 0x70, S_ALL);
	pump();
	CHECK_EQ(x->notified[0], 1);
	CHECK_EQ(x->notified[1], 0);
	/* ... and a kick reaches the device on the loop; a bad index not. */
	wr(0, 0x50, 0);
	wr(0, 0x50, 9);
	pump();
	CHECK_EQ(x->notified[0], 2);

	/* Used-buffer interrupt: status bit 0, the line up until ACK. */
	pthread_mutex_lock(&x->dev.lock);
	x->dev.t_ops->notify_queue(&x->dev, 0);
	pthread_mutex_unlock(&x->dev.lock);
	CHECK_EQ(rd(0, 0x60), 1);
	CHECK(line_high(GSI0));
	gen = rd(0, 0xfc);
	pthread_mutex_lock(&x->dev.lock);
	x->dev.t_ops->notify_config(&x->dev);
	pthread_mutex_unlock(&x->dev.lock);
	CHECK_EQ(rd(0, 0x60), 3);
	CHECK(rd(0, 0xfc) != gen);
	wr(0, 0x64, 1);
	CHECK_EQ(rd(0, 0x60), 2);
	CHECK(line_high(GSI0));
	wr(0, 0x64, 2);
	CHECK_EQ(rd(0, 0x60), 0);
	CHECK(!line_high(GSI0));

	/* Reset drops queues and the interrupt. */
	pthread_mutex_lock(&x->dev.lock);
	x->dev.t_ops->notify_queue(&x->dev, 0);
	pthread_mutex_unlock(&x->dev.lock);
	wr(0, 0x70, 0);
	CHECK_EQ(x->resets, 2);         /* negotiate() reset it once */
	CHECK(!x->dev.vq_ready[0]);
	CHECK_EQ(rd(0, 0x60), 0);
	CHECK(!line_high(GSI0));
	vm_teardown();
}

TEST(bad_queue_setup_needs_reset)
{
	struct dummy *x;

	vm_setup();
	x = add_dummy();
	negotiate(0, V1);
	setup_queue(0, 0, 8, RAM - 16, 0x2000, 0x3000);        /* desc past RAM */
	CHECK(!x->dev.vq_ready[0]);
	CHECK(rd(0, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	negotiate(0, V1);
	CHECK_EQ(rd(0, 0x70) & VIRTIO_STATUS_NEEDS_RESET, 0);
	setup_queue(0, 1, 32, 0x1000, 0x2000, 0x3000);         /* above max 16 */
	CHECK(rd(0, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	negotiate(0, V1);
	setup_queue(0, 0, 6, 0x1000, 0x2000, 0x3000);          /* not a power of 2 */
	CHECK(rd(0, 0x70) & VIRTIO_STATUS_NEEDS_RESET);
	vm_teardown();
}

TEST(config_space_and_odd_accesses)
{
	uint8_t b[8];

	vm_setup();
	add_dummy();
	memset(b, 0, sizeof(b));
	bus_access(&vm.mmio, BASE + 0x102, b, 2, false);
	CHECK_EQ(b[0], 0xa2);
	CHECK_EQ(b[1], 0xa3);
	bus_access(&vm.mmio, BASE + 0x100, b, 8, false);
	CHECK_EQ(b[7], 0xa7);
	memset(b, 0x55, sizeof(b));
	bus_access(&vm.mmio, BASE + 0x104, b, 8, false);       /* runs past config_len */
	CHECK_EQ(b[0], 0);
	/* Every offset and size, read and write, is safe. */
	for (uint64_t off = 0; off < 0x1000; off++)
		for (uint32_t len = 1; len <= 8; len *= 2) {
			if (off == 0x70 || off == 0x50)
				continue;
			memset(b, 0xff, sizeof(b));
			bus_access(&vm.mmio, BASE + off, b, len, true);
			bus_access(&vm.mmio, BASE + off, b, len, false);
		}
	vm_teardown();
}

/* ---- virtio-console over mmio, with pipes ---------------------------- */

#define DESC  0x1000ULL
#define AVAIL 0x2000ULL
#define USED  0x3000ULL
#define QOFF  0x4000ULL         /* second queue's rings are this far on */
#define DATA  0x10000ULL

static void gw(uint64_t gpa, const void *p, size_t n)
{
	CHECK_EQ(gm_write(&vm.mem, gpa, p, n), 0);
}

static uint16_t gr16(uint64_t gpa)
{
	uint16_t v = 0;

	CHECK_EQ(gm_read(&vm.mem, gpa, &v, 2), 0);
	return v;
}

/* Offer one single-buffer chain on queue @q (rings at DESC + q * QOFF). */
static void offer(unsigned int q, uint16_t slot, uint64_t addr, uint32_t len, bool write)
{
	uint64_t base = q * QOFF;
	struct { uint64_t a; uint32_t l; uint16_t f, n; } d = { addr, len, write ? 2 : 0, 0 };
	uint16_t idx = gr16(base + AVAIL + 2);

	gw(base + DESC + 16 * slot, &d, 16);
	gw(base + AVAIL + 4 + 2 * (idx % 8), &slot, 2);
	idx++;
	gw(base + AVAIL + 2, &idx, 2);
}

TEST(console_pipes)
{
	struct virtio_dev *d;
	int in[2], out[2];
	struct ferr e;
	char buf[64];
	uint32_t len;

	vm_setup();
	CHECK_EQ(pipe2(in, O_NONBLOCK), 0);
	CHECK_EQ(pipe2(out, O_NONBLOCK), 0);
	d = virtio_console_create(in[0], out[1], vm.loop, &e);
	CHECK(d != NULL);
	CHECK_EQ(virtio_mmio_add(&vm, d, &e), 0);
	vm.virtio[vm.nr_virtio++] = d;
	CHECK_EQ(rd(0, 0x08), VIRTIO_ID_CONSOLE);
	/* Host input before the driver exists waits. */
	CHECK_EQ(write(in[1], "hello", 5), 5);
	pump();
	CHECK_EQ(negotiate(0, V1) & VIRTIO_STATUS_FEATURES_OK, VIRTIO_STATUS_FEATURES_OK);
	setup_queue(0, 0, 8, DESC, AVAIL, USED);
	setup_queue(0, 1, 8, DESC + QOFF, AVAIL + QOFF, USED + QOFF);
	wr(0, 0x70, S_ALL);
	pump();
	/* No receive buffer yet: nothing used. */
	CHECK_EQ(gr16(USED + 2), 0);
	/* A 3-byte buffer takes "hel", the next one "lo". */
	offer(0, 0, DATA, 3, true);
	wr(0, 0x50, 0);
	pump();
	CHECK_EQ(gr16(USED + 2), 1);
	CHECK_EQ(gm_read(&vm.mem, USED + 8, &len, 4), 0);
	CHECK_EQ(len, 3);
	offer(0, 1, DATA + 0x100, 64, true);
	wr(0, 0x50, 0);
	pump();
	CHECK_EQ(gr16(USED + 2), 2);
	CHECK_EQ(gm_read(&vm.mem, DATA, buf, 3), 0);
	CHECK(!memcmp(buf, "hel", 3));
	CHECK_EQ(gm_read(&vm.mem, DATA + 0x100, buf, 2), 0);
	CHECK(!memcmp(buf, "lo", 2));
	CHECK(rd(0, 0x60) & 1);
	/* More input goes straight into a waiting buffer. */
	offer(0, 2, DATA + 0x200, 64, true);
	wr(0, 0x50, 0);
	pump();
	CHECK_EQ(write(in[1], "!", 1), 1);
	pump();
	CHECK_EQ(gr16(USED + 2), 3);

	/* Guest output reaches the pipe. */
	gw(DATA + 0x1000, "guest says hi\n", 14);
	offer(1, 0, DATA + 0x1000, 14, false);
	wr(0, 0x50, 1);
	pump();
	CHECK_EQ(read(out[0], buf, sizeof(buf)), 14);
	CHECK(!memcmp(buf, "guest says hi\n", 14));
	CHECK_EQ(gr16(QOFF + USED + 2), 1);

	/* A full pipe drops output instead of blocking the loop. */
	CHECK(fcntl(out[1], F_SETPIPE_SZ, 4096) > 0);
	static char big[65536];
	memset(big, 'x', sizeof(big));
	gw(DATA + 0x20000, big, sizeof(big));
	offer(1, 1, DATA + 0x20000, sizeof(big), false);
	wr(0, 0x50, 1);
	pump();
	CHECK_EQ(gr16(QOFF + USED + 2), 2);
	vm_teardown();
	close(in[0]); close(in[1]); close(out[0]); close(out[1]);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	RUN(identity_and_cmdline);
	RUN(slots_and_cmdline_run_out);
	RUN(feature_negotiation);
	RUN(queues_notify_and_interrupts);
	RUN(bad_queue_setup_needs_reset);
	RUN(config_space_and_odd_accesses);
	RUN(console_pipes);
	return tap_done();
}
