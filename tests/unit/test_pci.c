/* Unit tests for devices/pci.c, driven through a real port bus. */
#include <errno.h>
#include <stdlib.h>

#include "ferry/devices.h"
#include "ferry/platform.h"
#include "tap.h"

#define DEV_SLOT 3

struct moved {
	int bar;
	uint64_t old_addr, new_addr;
};

static struct moved moves[16];
static int nr_moves;
static uint32_t last_cfg_off, last_cfg_val, last_cfg_len;
static int nr_cfg_writes;
static uint8_t cfg_seen_stored;

static void rec_bar_moved(struct pci_dev *d, int bar, uint64_t old_addr, uint64_t new_addr)
{
	(void)d;
	if (nr_moves < 16)
		moves[nr_moves] = (struct moved){ bar, old_addr, new_addr };
	nr_moves++;
}

static void rec_cfg_write(struct pci_dev *d, uint32_t off, uint32_t val, uint32_t len)
{
	last_cfg_off = off;
	last_cfg_val = val;
	last_cfg_len = len;
	cfg_seen_stored = d->cfg[off];
	nr_cfg_writes++;
	/* The capability header at 0x40 is read-only: put it back. */
	d->cfg[0x40] = 0x09;
	d->cfg[0x41] = 0x00;
}

static const struct pci_dev_ops test_ops = {
	.cfg_write = rec_cfg_write,
	.bar_moved = rec_bar_moved,
};

struct fixture {
	struct bus pio;
	struct pci_bus *pb;
	struct pci_dev dev;
	int resets;
};

static void on_reset(void *ctx)
{
	((struct fixture *)ctx)->resets++;
}

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	nr_moves = nr_cfg_writes = 0;
	bus_init(&f->pio, "pio");
	f->pb = pci_create(&f->pio, (struct dev_event){ on_reset, f });
	if (!f->pb)
		abort();
	f->dev.devfn = DEV_SLOT << 3;
	f->dev.ops = &test_ops;
	f->dev.cfg[0] = 0xf4;	/* 1af4:1041 */
	f->dev.cfg[1] = 0x1a;
	f->dev.cfg[2] = 0x41;
	f->dev.cfg[3] = 0x10;
	f->dev.cfg[0x06] = 0x10;	/* capabilities list */
	f->dev.cfg[0x06 + 1] = 0x00;
	f->dev.cfg[0x34] = 0x40;
	f->dev.cfg[0x3d] = 1;		/* INTA */
	f->dev.cfg[0x40] = 0x09;	/* vendor capability, end of list */
	f->dev.bar_size[0] = 4096;
	f->dev.bar_size[1] = 32;
	f->dev.bar_is_io[1] = 1;
	f->dev.cfg[0x10] = 0x0f;	/* junk in the low bits: sanitised */
}

static void teardown(struct fixture *f)
{
	pci_destroy(f->pb);
	CHECK_EQ(f->pio.nr, 0);
	bus_destroy(&f->pio);
}

static uint32_t in(struct fixture *f, uint16_t port, uint32_t len)
{
	uint8_t d[4] = { 0 };

	CHECK(bus_access(&f->pio, port, d, len, false));
	return (uint32_t)bus_get(d, len);
}

static void out(struct fixture *f, uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t d[4];

	bus_put(d, len, v);
	CHECK(bus_access(&f->pio, port, d, len, true));
}

static uint32_t cfg_addr(unsigned int bus, unsigned int devfn, unsigned int reg)
{
	return 0x80000000u | bus << 16 | devfn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read(struct fixture *f, unsigned int devfn, unsigned int reg, uint32_t len)
{
	out(f, 0xcf8, 4, cfg_addr(0, devfn, reg));
	return in(f, 0xcfc + (reg & 3), len);
}

static void cfg_write(struct fixture *f, unsigned int devfn, unsigned int reg, uint32_t len,
		      uint32_t v)
{
	out(f, 0xcf8, 4, cfg_addr(0, devfn, reg));
	out(f, 0xcfc + (reg & 3), len, v);
}

TEST(host_bridge)
{
	struct fixture f;

	setup(&f);
	CHECK_EQ(cfg_read(&f, 0, 0x00, 4), 0x00081b36);
	CHECK_EQ(cfg_read(&f, 0, 0x08, 4) >> 8, 0x060000);
	CHECK_EQ(cfg_read(&f, 0, 0x0e, 1), 0);
	/* Word and byte accesses at offsets inside the dword. */
	CHECK_EQ(cfg_read(&f, 0, 0x02, 2), 0x0008);
	CHECK_EQ(cfg_read(&f, 0, 0x01, 1), 0x1b);
	CHECK_EQ(cfg_read(&f, 0, 0x0a, 2), 0x0600);
	/* Read-only IDs. */
	cfg_write(&f, 0, 0x00, 4, 0x12345678);
	CHECK_EQ(cfg_read(&f, 0, 0x00, 4), 0x00081b36);
	teardown(&f);
}

TEST(config_address)
{
	struct fixture f;

	setup(&f);
	out(&f, 0xcf8, 4, 0x80000000);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80000000);
	out(&f, 0xcf8, 4, 0xffffffff);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80fffffc);
	/* Narrow accesses do not touch CONFIG_ADDRESS. */
	out(&f, 0xcf8, 2, 0);
	out(&f, 0xcfb, 1, 0);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80fffffc);
	CHECK_EQ(in(&f, 0xcf8, 1), 0xff);
	CHECK_EQ(in(&f, 0xcfa, 2), 0xffff);
	/* Enable bit clear: config data reads all-ones. */
	out(&f, 0xcf8, 4, 0x00000000);
	CHECK_EQ(in(&f, 0xcfc, 4), 0xffffffff);
	teardown(&f);
}

TEST(absent_devices)
{
	struct fixture f;

	setup(&f);
	CHECK_EQ(cfg_read(&f, 1 << 3, 0, 4), 0xffffffff);
	CHECK_EQ(cfg_read(&f, 1, 0, 2), 0xffff);	/* function 1 of the bridge */
	out(&f, 0xcf8, 4, cfg_addr(1, 0, 0));		/* bus 1 */
	CHECK_EQ(in(&f, 0xcfc, 4), 0xffffffff);
	out(&f, 0xcfc, 4, 0);
	teardown(&f);
}

TEST(add_device)
{
	struct fixture f;
	struct pci_dev other = { .devfn = DEV_SLOT << 3 };
	struct pci_dev bad = { .devfn = 5 << 3 };
	struct pci_dev host_clash = { .devfn = 0 };

	setup(&f);
	CHECK_EQ(pci_add(f.pb, &f.dev), 0);
	CHECK_EQ(pci_add(f.pb, &other), -EEXIST);
	CHECK_EQ(pci_add(f.pb, &host_clash), -EEXIST);
	bad.bar_size[0] = 3000;
	CHECK_EQ(pci_add(f.pb, &bad), -EINVAL);
	bad.bar_size[0] = 2;
	bad.bar_is_io[0] = 1;
	CHECK_EQ(pci_add(f.pb, &bad), -EINVAL);
	CHECK_EQ(cfg_read(&f, DEV_SLOT << 3, 0, 4), 0x10411af4);
	CHECK_EQ(cfg_read(&f, DEV_SLOT << 3, 0x10, 4), 0);
	CHECK_EQ(cfg_read(&f, DEV_SLOT << 3, 0x14, 4), 1);
	teardown(&f);
}

TEST(bar_sizing)
{
	struct fixture f;
	unsigned int df = DEV_SLOT << 3;

	setup(&f);
	CHECK_EQ(pci_add(f.pb, &f.dev), 0);
	cfg_write(&f, df, 0x10, 4, 0xffffffff);
	CHECK_EQ(cfg_read(&f, df, 0x10, 4), 0xfffff000);
	cfg_write(&f, df, 0x14, 4, 0xffffffff);
	CHECK_EQ(cfg_read(&f, df, 0x14, 4), 0xffffffe1);
	for (unsigned int reg = 0x18; reg < 0x28; reg += 4) {
		cfg_write(&f, df, reg, 4, 0xffffffff);
		CHECK_EQ(cfg_read(&f, df, reg, 4), 0);
	}
	/* No ROM BAR. */
	cfg_write(&f, df, 0x30, 4, 0xffffffff);
	CHECK_EQ(cfg_read(&f, df, 0x30, 4), 0);
	cfg_write(&f, df, 0x10, 4, 0xc0001234);
	CHECK_EQ(cfg_read(&f, df, 0x10, 4), 0xc0001000);
	/* A word write to the upper half of a BAR. */
	cfg_write(&f, df, 0x12, 2, 0xc010);
	CHECK_EQ(cfg_read(&f, df, 0x10, 4), 0xc0101000);
	/* Decode was off the whole time. */
	CHECK_EQ(nr_moves, 0);
	teardown(&f);
}

TEST(bar_moved)
{
	struct fixture f;
	unsigned int df = DEV_SLOT << 3;

	setup(&f);
	CHECK_EQ(pci_add(f.pb, &f.dev), 0);
	cfg_write(&f, df, 0x10, 4, 0xc0000000);
	cfg_write(&f, df, 0x14, 4, 0xc040);
	CHECK_EQ(nr_moves, 0);
	/* Enabling memory decode maps BAR0 only. */
	cfg_write(&f, df, 0x04, 2, 0x0006);
	CHECK_EQ(nr_moves, 1);
	CHECK_EQ(moves[0].bar, 0);
	CHECK_EQ(moves[0].old_addr, 0);
	CHECK_EQ(moves[0].new_addr, 0xc0000000);
	/* Moving while decoding. */
	cfg_write(&f, df, 0x10, 4, 0xc0002000);
	CHECK_EQ(nr_moves, 2);
	CHECK_EQ(moves[1].old_addr, 0xc0000000);
	CHECK_EQ(moves[1].new_addr, 0xc0002000);
	/* Rewriting the same address is not a move. */
	cfg_write(&f, df, 0x10, 4, 0xc0002000);
	CHECK_EQ(nr_moves, 2);
	/* I/O decode on: BAR1 too. */
	cfg_write(&f, df, 0x04, 1, 0x07);
	CHECK_EQ(nr_moves, 3);
	CHECK_EQ(moves[2].bar, 1);
	CHECK_EQ(moves[2].new_addr, 0xc040);
	/* Linux's sizing: decode off, all-ones, restore, decode on. */
	cfg_write(&f, df, 0x04, 2, 0x0000);
	cfg_write(&f, df, 0x10, 4, 0xffffffff);
	cfg_write(&f, df, 0x10, 4, 0xc0002000);
	CHECK_EQ(nr_moves, 3);
	cfg_write(&f, df, 0x04, 2, 0x0002);
	CHECK_EQ(nr_moves, 4);
	CHECK_EQ(moves[3].old_addr, 0xc0002000);
	CHECK_EQ(moves[3].new_addr, 0xc0002000);
	/* Reprogrammed while off: the move is reported from where the
	 * device last was. */
	cfg_write(&f, df, 0x04, 2, 0x0000);
	cfg_write(&f, df, 0x10, 4, 0xd0000000);
	cfg_write(&f, df, 0x04, 2, 0x0002);
	CHECK_EQ(nr_moves, 5);
	CHECK_EQ(moves[4].old_addr, 0xc0002000);
	CHECK_EQ(moves[4].new_addr, 0xd0000000);
	teardown(&f);
}

TEST(header_write_rules)
{
	struct fixture f;
	unsigned int df = DEV_SLOT << 3;

	setup(&f);
	f.dev.cfg[0x07] = 0xf9;			/* every error bit set */
	CHECK_EQ(pci_add(f.pb, &f.dev), 0);
	cfg_write(&f, df, 0x04, 2, 0xffff);
	CHECK_EQ(cfg_read(&f, df, 0x04, 2), 0x0547);
	/* Status: W1C for error bits, capability bit read-only. */
	cfg_write(&f, df, 0x06, 2, 0x0110);
	CHECK_EQ(cfg_read(&f, df, 0x06, 2), 0xf810);
	cfg_write(&f, df, 0x06, 2, 0xffff);
	CHECK_EQ(cfg_read(&f, df, 0x06, 2), 0x0010);
	/* Cache line, latency, interrupt line writable; pin and class not. */
	cfg_write(&f, df, 0x0c, 4, 0xffffffff);
	CHECK_EQ(cfg_read(&f, df, 0x0c, 4), 0x0000ffff);
	cfg_write(&f, df, 0x3c, 4, 0xffffff0b);
	CHECK_EQ(cfg_read(&f, df, 0x3c, 4), 0x0000010b);
	cfg_write(&f, df, 0x08, 4, 0);
	cfg_write(&f, df, 0x34, 1, 0);
	CHECK_EQ(cfg_read(&f, df, 0x34, 1), 0x40);
	CHECK_EQ(nr_cfg_writes, 0);
	teardown(&f);
}

TEST(device_area_forwarded)
{
	struct fixture f;
	unsigned int df = DEV_SLOT << 3;

	setup(&f);
	CHECK_EQ(pci_add(f.pb, &f.dev), 0);
	cfg_write(&f, df, 0x46, 2, 0xbeef);
	CHECK_EQ(nr_cfg_writes, 1);
	CHECK_EQ(last_cfg_off, 0x46);
	CHECK_EQ(last_cfg_val, 0xbeef);
	CHECK_EQ(last_cfg_len, 2);
	CHECK_EQ(cfg_seen_stored, 0xef);	/* stored before the call */
	CHECK_EQ(cfg_read(&f, df, 0x44, 4), 0xbeef0000);
	/* The device undid a write to its read-only header. */
	cfg_write(&f, df, 0x40, 4, 0xffffffff);
	CHECK_EQ(cfg_read(&f, df, 0x40, 2), 0x0009);
	teardown(&f);
}

TEST(reset_register)
{
	struct fixture f;

	setup(&f);
	out(&f, PLAT_RESET_PORT, 1, 0x02);
	CHECK_EQ(f.resets, 0);
	CHECK_EQ(in(&f, PLAT_RESET_PORT, 1), 0x02);
	out(&f, PLAT_RESET_PORT, 1, 0x06);
	CHECK_EQ(f.resets, 1);
	out(&f, PLAT_RESET_PORT, 1, 0x0e);
	CHECK_EQ(f.resets, 2);
	CHECK_EQ(in(&f, PLAT_RESET_PORT, 1), 0x0a);
	/* Bits other than RST_CPU only set the kind of reset. */
	for (uint32_t v = 0; v < 0x100; v++) {
		if (v & 0x04)
			continue;
		out(&f, PLAT_RESET_PORT, 1, v);
		CHECK_EQ(in(&f, PLAT_RESET_PORT, 1), v);
	}
	CHECK_EQ(f.resets, 2);
	teardown(&f);
}

TEST(reset_register_shares_config_address_dword)
{
	struct fixture f;

	setup(&f);
	out(&f, 0xcf8, 4, 0x80000000);
	out(&f, PLAT_RESET_PORT, 1, 0x02);
	/* A dword at 0xcf8 is CONFIG_ADDRESS, even with RST_CPU in the byte
	 * that would be 0xcf9. */
	out(&f, 0xcf8, 4, 0x80000600);
	CHECK_EQ(f.resets, 0);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80000600);
	CHECK_EQ(in(&f, PLAT_RESET_PORT, 1), 0x02);
	/* A byte at 0xcf9 is the reset register and leaves CONFIG_ADDRESS
	 * alone. */
	out(&f, PLAT_RESET_PORT, 1, 0x08);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80000600);
	out(&f, PLAT_RESET_PORT, 1, 0x06);
	CHECK_EQ(f.resets, 1);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80000600);
	CHECK_EQ(in(&f, PLAT_RESET_PORT, 1), 0x02);
	/* Other widths and offsets are nobody's: no reset, CONFIG_ADDRESS
	 * and the reset register as they were. */
	out(&f, 0xcf8, 1, 0xff);
	out(&f, 0xcf8, 2, 0xffff);
	out(&f, PLAT_RESET_PORT, 2, 0x0606);
	out(&f, 0xcfa, 1, 0x06);
	out(&f, 0xcfa, 2, 0x0606);
	out(&f, 0xcfb, 1, 0x06);
	CHECK_EQ(f.resets, 1);
	CHECK_EQ(in(&f, 0xcf8, 4), 0x80000600);
	CHECK_EQ(in(&f, PLAT_RESET_PORT, 1), 0x02);
	CHECK_EQ(in(&f, 0xcf8, 1), 0xff);
	CHECK_EQ(in(&f, 0xcf8, 2), 0xffff);
	CHECK_EQ(in(&f, PLAT_RESET_PORT, 2), 0xffff);
	CHECK_EQ(in(&f, 0xcfa, 1), 0xff);
	/* Config cycles still go where CONFIG_ADDRESS points. */
	CHECK_EQ(cfg_read(&f, 0, 0x00, 4), 0x00081b36);
	CHECK_EQ(f.resets, 1);
	teardown(&f);
}

TEST(reset_without_handler)
{
	struct bus pio;
	struct pci_bus *pb;
	uint8_t d = 0x06;

	bus_init(&pio, "pio");
	pb = pci_create(&pio, (struct dev_event){ 0 });
	CHECK(pb != NULL);
	CHECK(bus_access(&pio, PLAT_RESET_PORT, &d, 1, true));
	CHECK(bus_access(&pio, PLAT_RESET_PORT, &d, 1, false));
	CHECK_EQ(d, 0x02);
	pci_destroy(pb);
	CHECK_EQ(pio.nr, 0);
	bus_destroy(&pio);
}

static void nop_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
}

static const struct bus_ops nop_ops = { .read = nop_read };

TEST(ports_conflict)
{
	struct bus pio;
	struct pci_bus *pb;
	struct pm *pm;
	int token;

	bus_init(&pio, "pio");
	/* Somebody else at 0xcf9: pci does not take it over. */
	CHECK_EQ(bus_register(&pio, PLAT_RESET_PORT, 1, &nop_ops, &token, "other"), 0);
	errno = 0;
	CHECK(pci_create(&pio, (struct dev_event){ 0 }) == NULL);
	CHECK_EQ(errno, EEXIST);
	CHECK_EQ(pio.nr, 1);
	CHECK_EQ(bus_unregister(&pio, PLAT_RESET_PORT, &token), 0);
	/* pm and pci no longer depend on the order they are created in. */
	pb = pci_create(&pio, (struct dev_event){ 0 });
	CHECK(pb != NULL);
	pm = pm_create(&pio, (struct irq_line){ 0 }, (struct dev_event){ 0 });
	CHECK(pm != NULL);
	pm_destroy(pm);
	pci_destroy(pb);
	CHECK_EQ(pio.nr, 0);
	bus_destroy(&pio);
}

TEST(hostile_accesses)
{
	struct fixture f;
	uint8_t d[8];

	setup(&f);
	CHECK_EQ(pci_add(f.pb, &f.dev), 0);
	/* Every register of the device and the bridge, every width. */
	for (unsigned int devfn = 0; devfn < 32; devfn += DEV_SLOT << 3)
		for (unsigned int reg = 0; reg < 256; reg++)
			for (uint32_t len = 1; len <= 4; len *= 2) {
				out(&f, 0xcf8, 4, cfg_addr(0, devfn, reg));
				memset(d, 0xff, sizeof(d));
				bus_access(&f.pio, 0xcfc + (reg & 3), d, len, true);
				bus_access(&f.pio, 0xcfc + (reg & 3), d, len, false);
				memset(d, 0x00, sizeof(d));
				bus_access(&f.pio, 0xcfc + (reg & 3), d, len, true);
			}
	CHECK(!bus_access(&f.pio, 0xcfc, d, 8, false));
	CHECK(!bus_access(&f.pio, 0xcfe, d, 4, false));
	/* The bridge's IDs survived. */
	CHECK_EQ(cfg_read(&f, 0, 0, 4), 0x00081b36);
	/* Nothing in config space is the reset register. */
	CHECK_EQ(f.resets, 0);
	teardown(&f);
}

int main(void)
{
	RUN(host_bridge);
	RUN(config_address);
	RUN(absent_devices);
	RUN(add_device);
	RUN(bar_sizing);
	RUN(bar_moved);
	RUN(header_write_rules);
	RUN(device_area_forwarded);
	RUN(reset_register);
	RUN(reset_register_shares_config_address_dword);
	RUN(reset_without_handler);
	RUN(ports_conflict);
	RUN(hostile_accesses);
	return tap_done();
}
