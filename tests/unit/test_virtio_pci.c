/* virtio-pci modern transport with virtio-rng behind it, driven the way a
 * guest driver would: PCI config cycles on 0xcf8/0xcfc and MMIO accesses
 * through ferry's buses.  KVM is needed for the VM fd that ioeventfds, MSI
 * routes and irqfds hang on (no vCPU runs); without /dev/kvm the test skips. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <libfdt.h>

#include "ferry/devices.h"
#include "ferry/loop.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "tap.h"
#include "dev_blob.h"

#define SLOT    1
#define DESC    0x1000ULL
#define AVAIL   0x2000ULL
#define USED    0x3000ULL
#define DATA    0x10000ULL

/* Common configuration offsets (virtio 1.2 §4.1.4.3). */
#define DFSELECT  0x00
#define DF        0x04
#define GFSELECT  0x08
#define GF        0x0c
#define MSIXCFG   0x10
#define NUMQ      0x12
#define STATUS    0x14
#define QSELECT   0x16
#define QSIZE     0x18
#define QMSIX     0x1a
#define QENABLE   0x1c
#define QNOFF     0x1e
#define QDESC     0x20
#define QAVAIL    0x28
#define QUSED     0x30
#define ISR       0x1000
#define NOTIFY    0x3000

#define S_ACK   VIRTIO_STATUS_ACKNOWLEDGE
#define S_DRV   VIRTIO_STATUS_DRIVER
#define S_FOK   VIRTIO_STATUS_FEATURES_OK
#define S_DOK   VIRTIO_STATUS_DRIVER_OK

static struct vm vm;
static struct virtio_dev *dev;
static uint64_t bar0, bar1;

/* --- the guest's side --- */

static void cfg_addr(unsigned int off)
{
	uint8_t a[4];

	bus_put(a, 4, 0x80000000u | SLOT << 11 | (off & 0xfc));
	bus_access(&vm.pio, PLAT_PCI_CONFIG_PORT, a, 4, true);
}

static uint32_t cfg_rd(unsigned int off, uint32_t len)
{
	uint8_t d[4];

	cfg_addr(off);
	bus_access(&vm.pio, PLAT_PCI_CONFIG_PORT + 4 + (off & 3), d, len, false);
	return (uint32_t)bus_get(d, len);
}

static void cfg_wr(unsigned int off, uint32_t v, uint32_t len)
{
	uint8_t d[4];

	cfg_addr(off);
	bus_put(d, len, v);
	bus_access(&vm.pio, PLAT_PCI_CONFIG_PORT + 4 + (off & 3), d, len, true);
}

static uint64_t mmio_rd(uint64_t addr, uint32_t len)
{
	uint8_t d[8];

	bus_access(&vm.mmio, addr, d, len, false);
	return bus_get(d, len);
}

static void mmio_wr(uint64_t addr, uint64_t v, uint32_t len)
{
	uint8_t d[8];

	bus_put(d, len, v);
	bus_access(&vm.mmio, addr, d, len, true);
}

static uint64_t cc_rd(unsigned int off, uint32_t len)
{
	return mmio_rd(bar0 + off, len);
}

static void cc_wr(unsigned int off, uint64_t v, uint32_t len)
{
	mmio_wr(bar0 + off, v, len);
}

static void wr16(uint64_t gpa, uint16_t v)
{
	CHECK_EQ(gm_write(&vm.mem, gpa, &v, 2), 0);
}

static uint16_t rd16(uint64_t gpa)
{
	uint16_t v = 0;

	CHECK_EQ(gm_read(&vm.mem, gpa, &v, 2), 0);
	return v;
}

static uint32_t rd32(uint64_t gpa)
{
	uint32_t v = 0;

	CHECK_EQ(gm_read(&vm.mem, gpa, &v, 4), 0);
	return v;
}

/* What Linux's virtio_pci_modern does up to FEATURES_OK. */
static void negotiate(uint64_t features)
{
	cc_wr(STATUS, 0, 1);
	cc_wr(STATUS, S_ACK, 1);
	cc_wr(STATUS, S_ACK | S_DRV, 1);
	cc_wr(GFSELECT, 0, 4);
	cc_wr(GF, (uint32_t)features, 4);
	cc_wr(GFSELECT, 1, 4);
	cc_wr(GF, features >> 32, 4);
	cc_wr(STATUS, S_ACK | S_DRV | S_FOK, 1);
}

static void queue_setup(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	cc_wr(QSELECT, 0, 2);
	cc_wr(QSIZE, size, 2);
	cc_wr(QDESC, (uint32_t)desc, 4);
	cc_wr(QDESC + 4, desc >> 32, 4);
	cc_wr(QAVAIL, avail, 8);
	cc_wr(QUSED, (uint32_t)used, 4);
	cc_wr(QUSED + 4, used >> 32, 4);
	cc_wr(QENABLE, 1, 2);
}

static bool intx_high(void)
{
	return vm.line_sources[PLAT_PCI_INTX_GSI(SLOT, 0)] != 0;
}

/* Run the event loop on a thread until the used ring reaches @idx. */
static void quit_fn(struct loop *l, int fd, uint32_t events, void *opaque)
{
	eventfd_t v;

	(void)events;
	(void)opaque;
	eventfd_read(fd, &v);
	loop_quit(l);
}

static void *loop_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

static uint16_t want_used;

static bool used_reached(void)
{
	return __atomic_load_n((uint16_t *)gm_ptr(&vm.mem, USED + 2, 2), __ATOMIC_ACQUIRE) ==
	       want_used;
}

static bool needs_reset(void)
{
	return __atomic_load_n(&dev->status, __ATOMIC_ACQUIRE) & VIRTIO_STATUS_NEEDS_RESET;
}

/* Run the event loop on a thread until @done() holds (at most 5 s). */
static bool run_loop_until(bool (*done)(void))
{
	int qfd = eventfd(0, EFD_NONBLOCK);
	pthread_t t;
	bool ok = false;

	loop_add(vm.loop, qfd, EPOLLIN, quit_fn, NULL);
	pthread_create(&t, NULL, loop_thread, vm.loop);
	for (int i = 0; i < 5000 && !ok; i++) {
		ok = done();
		if (!ok)
			usleep(1000);
	}
	eventfd_write(qfd, 1);
	pthread_join(t, NULL);
	loop_del(vm.loop, qfd);
	close(qfd);
	return ok;
}

/* --- tests --- */

TEST(pci_header)
{
	CHECK_EQ(cfg_rd(0x00, 2), 0x1af4);
	CHECK_EQ(cfg_rd(0x02, 2), 0x1040 + VIRTIO_ID_RNG);
	CHECK_EQ(cfg_rd(0x08, 4), 0x00ff0001);          /* class, revision 1 */
	CHECK_EQ(cfg_rd(0x0e, 1), 0);
	CHECK_EQ(cfg_rd(0x2c, 2), 0x1af4);
	CHECK_EQ(cfg_rd(0x2e, 2), VIRTIO_ID_RNG);
	CHECK_EQ(cfg_rd(0x3c, 1), PLAT_PCI_INTX_GSI(SLOT, 0));
	CHECK_EQ(cfg_rd(0x3d, 1), 1);
	CHECK(cfg_rd(0x06, 2) & 0x10);                  /* capability list */
	CHECK(cfg_rd(0x04, 2) & 2);                     /* memory decode on */
	CHECK_EQ(bar0 % 0x4000, 0);
	CHECK_EQ(bar1 % 0x1000, 0);
	CHECK(bar0 >= PLAT_PCI_MMIO_GPA && bar1 + 0x1000 <= PLAT_PCI_MMIO_GPA + PLAT_PCI_MMIO_SIZE);
	CHECK(bar0 + 0x4000 <= bar1);
	CHECK_EQ(vm.next_pci_slot, SLOT + 1);
	CHECK(vm.next_pci_mmio >= bar1 + 0x1000);
}

TEST(capabilities)
{
	unsigned int seen = 0, n = 0;
	uint8_t p = (uint8_t)cfg_rd(0x34, 1);

	while (p && n++ < 16) {
		uint8_t id = (uint8_t)cfg_rd(p, 1);

		CHECK(p >= 0x40);
		if (id == 0x11) {
			CHECK_EQ(cfg_rd(p + 2, 2) & 0x7ff, 1);          /* 2 vectors */
			CHECK_EQ(cfg_rd(p + 4, 4), 1);                  /* table: BAR 1 @0 */
			CHECK_EQ(cfg_rd(p + 8, 4), 0x801);              /* PBA: BAR 1 @0x800 */
			seen |= 1u << 0;
		} else if (id == 0x09) {
			uint8_t type = (uint8_t)cfg_rd(p + 3, 1);
			uint32_t off = cfg_rd(p + 8, 4), len = cfg_rd(p + 12, 4);

			CHECK_EQ(cfg_rd(p + 4, 1), 0);                  /* BAR 0 */
			seen |= 1u << type;
			if (type == 1) {
				CHECK_EQ(off, 0);
				CHECK(len >= 0x38);
			} else if (type == 2) {
				CHECK_EQ(cfg_rd(p + 2, 1), 20);
				CHECK_EQ(off, NOTIFY);
				CHECK_EQ(cfg_rd(p + 16, 4), 4);         /* multiplier */
				CHECK(len >= 2);
			} else if (type == 3) {
				CHECK_EQ(off, ISR);
			}
		}
		p = (uint8_t)cfg_rd(p + 1, 1);
	}
	CHECK_EQ(seen, 0xf);    /* MSI-X, common, notify, ISR; rng has no device cfg */
}

TEST(config_space_read_only)
{
	uint8_t p = (uint8_t)cfg_rd(0x34, 1);

	/* A capability's bytes do not change under writes ... */
	cfg_wr(0x50, 0xffffffff, 4);
	CHECK_EQ(cfg_rd(0x50, 1), 0x09);
	cfg_wr(0x44, 0xdeadbeef, 4);
	CHECK_EQ(cfg_rd(0x44, 4), 1);
	/* ... except MSI-X enable and function mask. */
	CHECK_EQ(p, 0x40);
	cfg_wr(0x42, 0xffff, 2);
	CHECK_EQ(cfg_rd(0x42, 2), 0xc001);
	cfg_wr(0x42, 0, 2);
	CHECK_EQ(cfg_rd(0x42, 2), 0x0001);
}

TEST(bar_sizing)
{
	cfg_wr(0x04, 0, 2);                     /* decode off, as Linux sizes */
	cfg_wr(0x10, 0xffffffff, 4);
	CHECK_EQ(cfg_rd(0x10, 4), 0xffffc000);
	cfg_wr(0x14, 0xffffffff, 4);
	CHECK_EQ(cfg_rd(0x14, 4), 0xfffff000);
	cfg_wr(0x10, (uint32_t)bar0, 4);
	cfg_wr(0x14, (uint32_t)bar1, 4);
	cfg_wr(0x04, 2, 2);
	CHECK_EQ(cc_rd(NUMQ, 2), 1);
}

TEST(features)
{
	uint64_t f;

	cc_wr(STATUS, 0, 1);
	cc_wr(DFSELECT, 0, 4);
	f = cc_rd(DF, 4);
	cc_wr(DFSELECT, 1, 4);
	f |= cc_rd(DF, 4) << 32;
	CHECK(f & (1ULL << VIRTIO_F_VERSION_1));
	CHECK(f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	CHECK(f & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	CHECK(!(f & (1ULL << VIRTIO_F_ACCESS_PLATFORM)));
	cc_wr(DFSELECT, 7, 4);
	CHECK_EQ(cc_rd(DF, 4), 0);
	CHECK_EQ(cc_rd(DFSELECT, 4), 7);
	/* An 8-byte read of the pair of select/feature is still consistent. */
	CHECK_EQ(cc_rd(DFSELECT, 8), 7);
}

TEST(feature_negotiation)
{
	/* A bit not offered: FEATURES_OK refused. */
	negotiate(1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
	CHECK_EQ(cc_rd(STATUS, 1), S_ACK | S_DRV);
	CHECK_EQ(dev->driver_features, 0);
	/* Without VERSION_1 (a legacy driver): refused. */
	negotiate(1ULL << VIRTIO_RING_F_EVENT_IDX);
	CHECK_EQ(cc_rd(STATUS, 1), S_ACK | S_DRV);
	/* Accepted, read back, then frozen. */
	negotiate(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_RING_F_EVENT_IDX);
	CHECK_EQ(cc_rd(STATUS, 1), S_ACK | S_DRV | S_FOK);
	CHECK_EQ(dev->driver_features, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_RING_F_EVENT_IDX);
	cc_wr(GFSELECT, 1, 4);
	CHECK_EQ(cc_rd(GF, 4), 1);
	cc_wr(GF, 0, 4);
	CHECK_EQ(cc_rd(GF, 4), 1);
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(cc_rd(STATUS, 1), 0);
	CHECK_EQ(dev->driver_features, 0);
}

TEST(queue_registers)
{
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(cc_rd(NUMQ, 2), 1);
	cc_wr(QSELECT, 0, 2);
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	CHECK_EQ(cc_rd(QMSIX, 2), 0xffff);
	CHECK_EQ(cc_rd(QNOFF, 2), 0);
	CHECK_EQ(cc_rd(QENABLE, 2), 0);
	cc_wr(QSIZE, 100, 2);                   /* not a power of 2 */
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	cc_wr(QSIZE, 512, 2);                   /* above the maximum */
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	cc_wr(QSIZE, 0, 2);
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	cc_wr(QSIZE, 16, 4);                    /* wrong width */
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	cc_wr(QSIZE, 16, 2);
	CHECK_EQ(cc_rd(QSIZE, 2), 16);
	cc_wr(QDESC, 0x12345000, 4);
	cc_wr(QDESC + 4, 0x1, 4);
	CHECK_EQ(cc_rd(QDESC, 8), 0x112345000ULL);
	cc_wr(QAVAIL, 0xabcdef000ULL, 8);
	CHECK_EQ(cc_rd(QAVAIL, 4), 0xbcdef000);
	CHECK_EQ(cc_rd(QAVAIL + 4, 4), 0xa);
	cc_wr(QDESC + 2, 0xffff, 2);            /* not a half: dropped */
	CHECK_EQ(cc_rd(QDESC, 8), 0x112345000ULL);
	/* A queue that does not exist reads 0 and ignores writes. */
	cc_wr(QSELECT, 3, 2);
	CHECK_EQ(cc_rd(QSELECT, 2), 3);
	CHECK_EQ(cc_rd(QSIZE, 2), 0);
	CHECK_EQ(cc_rd(QDESC, 8), 0);
	cc_wr(QSIZE, 8, 2);
	cc_wr(QDESC, 0x5000, 4);
	cc_wr(QENABLE, 1, 2);
	CHECK_EQ(cc_rd(QSIZE, 2), 0);
	CHECK_EQ(cc_rd(QENABLE, 2), 0);
	cc_wr(QSELECT, 0xffff, 2);
	CHECK_EQ(cc_rd(QSIZE, 2), 0);
	cc_wr(QSELECT, 0, 2);
	CHECK_EQ(cc_rd(QSIZE, 2), 16);
	/* Reset brings the defaults back. */
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	CHECK_EQ(cc_rd(QDESC, 8), 0);
}

TEST(any_offset_any_width)
{
	static const uint32_t lens[] = { 1, 2, 4, 8 };

	/* Reads anywhere are harmless; unknown offsets read 0. */
	for (uint64_t off = 0; off < 0x4000; off++)
		for (unsigned int i = 0; i < 4; i++)
			if (off + lens[i] <= 0x4000)
				(void)cc_rd((unsigned int)off, lens[i]);
	for (uint64_t off = 0; off < 0x1000; off++)
		for (unsigned int i = 0; i < 4; i++)
			if (off + lens[i] <= 0x1000)
				(void)mmio_rd(bar1 + off, lens[i]);
	CHECK_EQ(cc_rd(0x38, 8), 0);
	CHECK_EQ(cc_rd(0x800, 4), 0);
	CHECK_EQ(cc_rd(ISR + 1, 2), 0);
	CHECK_EQ(cc_rd(0x2000, 4), 0);          /* no device config */
	CHECK_EQ(cc_rd(NOTIFY, 2), 0);
	CHECK_EQ(mmio_rd(bar1 + 0x20, 4), 0);   /* past the 2-entry table */
	CHECK_EQ(mmio_rd(bar1 + 0x900, 4), 0);
	/* Garbage writes everywhere (status included, so DRIVER_OK with
	 * nonsense rings): the device survives and resets cleanly. */
	for (uint64_t off = 0; off < 0x4000; off += 1)
		for (unsigned int i = 0; i < 4; i++)
			if (off + lens[i] <= 0x4000)
				cc_wr((unsigned int)off, 0xffffffffffffffffULL - off, lens[i]);
	for (uint64_t off = 0; off < 0x1000; off++)
		for (unsigned int i = 0; i < 4; i++)
			if (off + lens[i] <= 0x1000)
				mmio_wr(bar1 + off, 0x5555555555555555ULL ^ off, lens[i]);
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(cc_rd(STATUS, 1), 0);
	CHECK_EQ(cc_rd(NUMQ, 2), 1);
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
	/* The table kept only the mask bit of vector control. */
	CHECK_EQ(mmio_rd(bar1 + 12, 4) & ~1u, 0);
	mmio_wr(bar1 + 12, 1, 4);
	mmio_wr(bar1 + 28, 1, 4);
}

TEST(rng_request_and_intx)
{
	uint8_t buf[128];
	bool nonzero = false;

	negotiate(1ULL << VIRTIO_F_VERSION_1);
	CHECK_EQ(cc_rd(STATUS, 1), S_ACK | S_DRV | S_FOK);
	memset(gm_ptr(&vm.mem, DESC, 0x4000), 0, 0x4000);
	memset(gm_ptr(&vm.mem, DATA, sizeof(buf)), 0, sizeof(buf));
	queue_setup(8, DESC, AVAIL, USED);
	cc_wr(STATUS, S_ACK | S_DRV | S_FOK | S_DOK, 1);
	CHECK_EQ(cc_rd(STATUS, 1), S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK(dev->vq_ready[0]);

	/* One 100-byte writable buffer. */
	struct { uint64_t a; uint32_t l; uint16_t f, n; } desc = { DATA, 100, 2, 0 };
	CHECK_EQ(gm_write(&vm.mem, DESC, &desc, sizeof(desc)), 0);
	wr16(AVAIL + 4, 0);
	wr16(AVAIL + 2, 1);
	CHECK(!intx_high());
	/* A kick KVM did not catch (bus path, as with a 4-byte write). */
	cc_wr(NOTIFY, 0, 4);
	want_used = 1;
	CHECK(run_loop_until(used_reached));
	CHECK_EQ(rd16(USED + 2), 1);
	CHECK_EQ(rd32(USED + 4), 0);            /* id */
	CHECK_EQ(rd32(USED + 8), 100);          /* len */
	CHECK_EQ(gm_read(&vm.mem, DATA, buf, sizeof(buf)), 0);
	for (int i = 0; i < 100; i++)
		nonzero |= buf[i] != 0;
	CHECK(nonzero);
	for (int i = 100; i < 128; i++)
		CHECK_EQ(buf[i], 0);
	CHECK_EQ(dev->requests, 1);
	/* No MSI-X: the INTx line and ISR bit 0; reading ISR lowers it. */
	CHECK(intx_high());
	CHECK_EQ(cc_rd(ISR, 1), 1);
	CHECK(!intx_high());
	CHECK_EQ(cc_rd(ISR, 1), 0);

	/* A kick on a queue that does not exist is dropped. */
	cc_wr(NOTIFY + 4, 1, 2);
	/* A broken chain: descriptor index out of range. */
	wr16(AVAIL + 6, 9);
	wr16(AVAIL + 2, 2);
	cc_wr(NOTIFY, 0, 2);
	CHECK(run_loop_until(needs_reset));
	CHECK(cc_rd(STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* The config interrupt went out too. */
	CHECK_EQ(cc_rd(ISR, 1), 2);
	CHECK_EQ(dev->errors, 1);
	/* Reset clears NEEDS_RESET. */
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(cc_rd(STATUS, 1), 0);
	CHECK(!dev->vq_ready[0]);
}

static int ticks;

static bool after_20_ticks(void)
{
	return ++ticks > 20;
}

/* A driver that kicks before DRIVER_OK (the kick is dropped then) still has
 * its request served once the device starts. */
TEST(kick_before_driver_ok)
{
	struct { uint64_t a; uint32_t l; uint16_t f, n; } desc = { DATA, 16, 2, 0 };
	uint64_t requests = dev->requests;

	negotiate(1ULL << VIRTIO_F_VERSION_1);
	memset(gm_ptr(&vm.mem, DESC, 0x4000), 0, 0x4000);
	queue_setup(8, DESC, AVAIL, USED);
	CHECK_EQ(gm_write(&vm.mem, DESC, &desc, sizeof(desc)), 0);
	wr16(AVAIL + 4, 0);
	wr16(AVAIL + 2, 1);
	cc_wr(NOTIFY, 0, 2);
	ticks = 0;
	run_loop_until(after_20_ticks);
	CHECK_EQ(rd16(USED + 2), 0);
	CHECK_EQ(dev->requests, requests);
	cc_wr(STATUS, S_ACK | S_DRV | S_FOK | S_DOK, 1);
	want_used = 1;
	CHECK(run_loop_until(used_reached));
	CHECK_EQ(rd32(USED + 8), 16);
	CHECK_EQ(dev->requests, requests + 1);
	CHECK_EQ(cc_rd(ISR, 1), 1);
	cc_wr(STATUS, 0, 1);
}

TEST(driver_ok_with_bad_rings)
{
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	queue_setup(8, 0xffff000000000000ULL, AVAIL, USED);
	cc_wr(STATUS, S_ACK | S_DRV | S_FOK | S_DOK, 1);
	CHECK(cc_rd(STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(!dev->vq_ready[0]);
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	queue_setup(8, DESC + 1, AVAIL, USED); /* misaligned */
	cc_wr(STATUS, S_ACK | S_DRV | S_FOK | S_DOK, 1);
	CHECK(cc_rd(STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* DRIVER_OK without FEATURES_OK. */
	cc_wr(STATUS, 0, 1);
	cc_wr(STATUS, S_ACK | S_DRV | S_DOK, 1);
	CHECK(cc_rd(STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(cc_rd(ISR, 1), 0);
	CHECK(!intx_high());
}

static unsigned int msi_routes(uint64_t addr, uint32_t data)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < vm.routing->nr; i++) {
		struct kvm_irq_routing_entry *e = &vm.routing->entries[i];

		if (e->type == KVM_IRQ_ROUTING_MSI && e->u.msi.address_lo == (uint32_t)addr &&
		    e->u.msi.data == data)
			n++;
	}
	return n;
}

TEST(msix)
{
	unsigned int before = vm.routing->nr;

	cc_wr(STATUS, 0, 1);
	/* Vector 0: programmed while masked, then unmasked. */
	mmio_wr(bar1 + 0, 0xfee00000, 4);
	mmio_wr(bar1 + 4, 0, 4);
	mmio_wr(bar1 + 8, 0x41, 4);
	CHECK_EQ(vm.routing->nr, before);
	cfg_wr(0x42, 0x8000, 2);                /* MSI-X on */
	mmio_wr(bar1 + 12, 0, 4);
	CHECK_EQ(msi_routes(0xfee00000, 0x41), 1);
	/* Reprogramming repoints the route, it does not add one. */
	mmio_wr(bar1 + 8, 0x42, 4);
	CHECK_EQ(msi_routes(0xfee00000, 0x42), 1);
	CHECK_EQ(vm.routing->nr, before + 1);

	negotiate(1ULL << VIRTIO_F_VERSION_1);
	cc_wr(MSIXCFG, 1, 2);
	CHECK_EQ(cc_rd(MSIXCFG, 2), 1);
	cc_wr(QSELECT, 0, 2);
	cc_wr(QMSIX, 2, 2);                     /* only 0 and 1 exist */
	CHECK_EQ(cc_rd(QMSIX, 2), 0xffff);
	cc_wr(QMSIX, 0, 2);
	CHECK_EQ(cc_rd(QMSIX, 2), 0);

	/* With MSI-X on, INTx stays low. */
	pthread_mutex_lock(&dev->lock);
	dev->t_ops->notify_queue(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	CHECK(!intx_high());
	CHECK_EQ(cc_rd(ISR, 1), 0);

	/* Vector 1 is masked: a config interrupt waits in the PBA ... */
	mmio_wr(bar1 + 16, 0xfee01000, 4);
	mmio_wr(bar1 + 24, 0x51, 4);
	pthread_mutex_lock(&dev->lock);
	dev->t_ops->notify_config(dev);
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(mmio_rd(bar1 + 0x800, 4), 2);
	/* ... until the vector is unmasked. */
	mmio_wr(bar1 + 28, 0, 4);
	CHECK_EQ(mmio_rd(bar1 + 0x800, 4), 0);
	CHECK_EQ(msi_routes(0xfee01000, 0x51), 1);
	/* Function mask holds back every vector. */
	cfg_wr(0x42, 0xc000, 2);
	pthread_mutex_lock(&dev->lock);
	dev->t_ops->notify_queue(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(mmio_rd(bar1 + 0x800, 4), 1);
	cfg_wr(0x42, 0x8000, 2);
	CHECK_EQ(mmio_rd(bar1 + 0x800, 4), 0);
	/* MSI-X off again: back to INTx. */
	cfg_wr(0x42, 0, 2);
	cc_wr(STATUS, 0, 1);
	CHECK_EQ(vm.routing->nr, before + 2);
}

TEST(bar_move)
{
	uint64_t nb0 = 0xd0000000ULL;
	int efd = eventfd(0, EFD_NONBLOCK);

	cfg_wr(0x04, 0, 2);
	cfg_wr(0x10, (uint32_t)nb0, 4);
	/* Decode off: nothing moved yet. */
	CHECK_EQ(cc_rd(NUMQ, 2), 1);
	cfg_wr(0x04, 2, 2);
	CHECK(bus_access(&vm.mmio, nb0 + NUMQ, (uint8_t[2]){ 0 }, 2, false));
	CHECK_EQ(mmio_rd(nb0 + NUMQ, 2), 1);
	CHECK(!bus_access(&vm.mmio, bar0 + NUMQ, (uint8_t[2]){ 0 }, 2, false));
	/* The doorbell's ioeventfd moved along. */
	CHECK_EQ(vm_ioeventfd(&vm, efd, nb0 + NOTIFY, 2, false, -1, true), -EEXIST);
	CHECK_EQ(vm_ioeventfd(&vm, efd, bar0 + NOTIFY, 2, false, -1, true), 0);
	CHECK_EQ(vm_ioeventfd(&vm, efd, bar0 + NOTIFY, 2, false, -1, false), 0);
	close(efd);
	bar0 = nb0;
	CHECK_EQ(cc_rd(QSIZE, 2), 256);
}

TEST(fail_logs_once)
{
	uint64_t errors = dev->errors;

	negotiate(1ULL << VIRTIO_F_VERSION_1);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "test failure");
	virtio_dev_fail(dev, "test failure again");
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(dev->errors, errors + 1);
	CHECK(cc_rd(STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	cc_wr(STATUS, 0, 1);
}

/* virtio/pci_state.c: a state loaded into a device whose queue a first
 * load had set up replaces that queue (it leaked it before: found by
 * tests/fuzz/fuzz_devstate; an ASan build's leak check sees it), and the
 * device serves requests after it. */
TEST(state_loads_twice)
{
	struct { uint64_t a; uint32_t l; uint16_t f, n; } desc = { DATA, 16, 2, 0 };
	struct ferr e = { { 0 } };
	void *fdt;
	uint16_t used;
	int node;

	cc_wr(STATUS, 0, 1);
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	memset(gm_ptr(&vm.mem, DESC, 0x4000), 0, 0x4000);
	queue_setup(8, DESC, AVAIL, USED);
	cc_wr(STATUS, S_ACK | S_DRV | S_FOK | S_DOK, 1);
	CHECK(dev->vq_ready[0]);
	CHECK_EQ(virtio_dev_quiesce(dev), 0);
	fdt = dev_save_blob(dev, 64 * 1024);
	if (!fdt)
		return;
	node = fdt_first_subnode(fdt, 0);
	CHECK(node >= 0);
	CHECK_EQ(virtio_dev_load(dev, fdt, node, &e), 0);
	CHECK_EQ(virtio_dev_load(dev, fdt, node, &e), 0);
	if (e.msg[0])
		printf("# %s\n", e.msg);
	CHECK(dev->vq_ready[0]);
	virtio_dev_resume(dev);
	used = rd16(USED + 2);
	CHECK_EQ(gm_write(&vm.mem, DESC, &desc, sizeof(desc)), 0);
	wr16(AVAIL + 4 + (rd16(AVAIL + 2) % 8) * 2, 0);
	wr16(AVAIL + 2, rd16(AVAIL + 2) + 1);
	cc_wr(NOTIFY, 0, 4);
	want_used = used + 1;
	CHECK(run_loop_until(used_reached));
	CHECK_EQ(rd16(USED + 2), used + 1);
	cc_wr(STATUS, 0, 1);
	free(fdt);
}

TEST(teardown)
{
	virtio_dev_destroy(dev);
	dev = NULL;
	CHECK_EQ(vm.mmio.nr, 0);
	CHECK(!intx_high());
}

static int setup(void)
{
	struct gm_config gc = { .size = 16 * MiB };
	struct ferr e = { { 0 } };

	vm.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm.kvm_fd < 0)
		return -errno;
	vm.vm_fd = ioctl(vm.kvm_fd, KVM_CREATE_VM, 0);
	if (vm.vm_fd < 0 || ioctl(vm.vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	if (vm_irq_routing_init(&vm) < 0)
		return -EIO;
	bus_init(&vm.pio, "pio");
	bus_init(&vm.mmio, "mmio");
	if (gm_init(&vm.mem, &gc, &e) < 0)
		return -ENOMEM;
	vm.pci = pci_create(&vm.pio, (struct dev_event){ 0 });
	vm.loop = loop_create();
	vm.next_pci_slot = SLOT;
	vm.next_pci_mmio = PLAT_PCI_MMIO_GPA;
	if (!vm.pci || !vm.loop)
		return -ENOMEM;
	dev = virtio_rng_create(&e);
	if (!dev || virtio_pci_add(&vm, dev, &e) < 0) {
		printf("# %s\n", e.msg);
		return -EIO;
	}
	bar0 = cfg_rd(0x10, 4) & ~0xfu;
	bar1 = cfg_rd(0x14, 4) & ~0xfu;
	return 0;
}

int main(void)
{
	int ret;

	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;
	ret = setup();
	if (ret == -ENOENT || ret == -EACCES || ret == -EPERM || ret == -ENXIO) {
		printf("1..0 # SKIP no usable /dev/kvm (%s)\n", strerror(-ret));
		return 0;
	}
	if (ret < 0) {
		printf("Bail out! setup failed: %s\n", strerror(-ret));
		return 1;
	}
	RUN(pci_header);
	RUN(capabilities);
	RUN(config_space_read_only);
	RUN(bar_sizing);
	RUN(features);
	RUN(feature_negotiation);
	RUN(queue_registers);
	RUN(any_offset_any_width);
	RUN(rng_request_and_intx);
	RUN(kick_before_driver_ok);
	RUN(driver_ok_with_bad_rings);
	RUN(msix);
	RUN(bar_move);
	RUN(fail_logs_once);
	RUN(state_loads_twice);
	RUN(teardown);
	pci_destroy(vm.pci);
	loop_destroy(vm.loop);
	gm_destroy(&vm.mem);
	vm_irq_routing_destroy(&vm);
	close(vm.vm_fd);
	close(vm.kvm_fd);
	bus_destroy(&vm.mmio);
	bus_destroy(&vm.pio);
	return tap_done();
}
