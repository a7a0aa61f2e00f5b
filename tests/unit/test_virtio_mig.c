/* Migration state of virtio devices on virtio-mmio (virtio/mmio.c save/load,
 * virtio/console.c and virtio/net_state.c): a state saved from one VM loads
 * into a fresh one and the device carries on; a damaged node (sizes out of
 * range, wrong lengths, a device moved, flipped bytes) is refused with a
 * message that says what, and never crashes or indexes out of range. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libfdt.h>

#include "ferry/loop.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "../../virtio/net.h"
#include "tap.h"

#define RAM     (16 * MiB)
#define BASE    PLAT_VIRTIO_MMIO_GPA
#define DESC    0x10000ULL
#define AVAIL   0x11000ULL
#define USED    0x12000ULL
#define QOFF    0x4000ULL
#define DATA    0x100000ULL
#define BLOB    (64 * 1024)

#include "vm_loop.h"
#include "dev_blob.h"

static uint32_t rd(uint64_t off)
{
	uint8_t b[4];

	bus_access(&vm.mmio, BASE + off, b, 4, false);
	return (uint32_t)bus_get(b, 4);
}

static void wr(uint64_t off, uint32_t v)
{
	uint8_t b[4];

	bus_put(b, 4, v);
	bus_access(&vm.mmio, BASE + off, b, 4, true);
}

static void setup_queue(unsigned int q, uint16_t num, uint64_t off)
{
	wr(0x30, q);
	wr(0x38, num);
	wr(0x80, (uint32_t)(DESC + off));
	wr(0x84, 0);
	wr(0x90, (uint32_t)(AVAIL + off));
	wr(0x94, 0);
	wr(0xa0, (uint32_t)(USED + off));
	wr(0xa4, 0);
	wr(0x44, 1);
}

#define S_ALL (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | \
	       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

static void drive_to_ok(void)
{
	wr(0x70, 0);
	wr(0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(0x24, 1);
	wr(0x20, 1);            /* VERSION_1 */
	wr(0x70, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	setup_queue(0, 8, 0);
	setup_queue(1, 8, QOFF);
	wr(0x70, S_ALL);
}

static int in_pipe[2], out_pipe[2];

static struct virtio_dev *add_console(void)
{
	struct virtio_dev *d;
	struct ferr e;

	CHECK_EQ(pipe2(in_pipe, O_NONBLOCK | O_CLOEXEC), 0);
	CHECK_EQ(pipe2(out_pipe, O_NONBLOCK | O_CLOEXEC), 0);
	d = virtio_console_create(in_pipe[0], out_pipe[1], vm.loop, &e);
	CHECK(d != NULL);
	CHECK_EQ(virtio_mmio_add(&vm, d, &e), 0);
	vm.virtio[vm.nr_virtio++] = d;
	return d;
}

static void close_pipes(void)
{
	close(in_pipe[0]);
	close(in_pipe[1]);
	close(out_pipe[0]);
	close(out_pipe[1]);
}

static struct virtio_dev *add_net(void)
{
	struct net_config cfg = { .tap = "none", .queues = 2 };
	struct net_dev *n;
	struct ferr e;

	n = net_dev_alloc(&cfg, &e);
	CHECK(n != NULL);
	CHECK_EQ(virtio_mmio_add(&vm, &n->dev, &e), 0);
	vm.virtio[vm.nr_virtio++] = &n->dev;
	return &n->dev;
}

/* As the destination does: checked whole against the bytes it has
 * (@size, not the header's claim), then loaded. */
static int load_sized(struct virtio_dev *d, const void *fdt, uint32_t size, struct ferr *e)
{
	int node;

	if (fdt_check_full(fdt, size))
		return ferr_set(e, -EPROTO, "fdt_check_full");
	node = fdt_first_subnode(fdt, 0);
	if (node < 0)
		return ferr_set(e, -EPROTO, "no node");
	return virtio_dev_load(d, fdt, node, e);
}

/* A blob this test built: its header is right. */
static int load_blob(struct virtio_dev *d, const void *fdt, struct ferr *e)
{
	return load_sized(d, fdt, fdt_totalsize(fdt), e);
}

static uint16_t gr16(uint64_t gpa)
{
	uint16_t v = 0;

	CHECK_EQ(gm_read(&vm.mem, gpa, &v, 2), 0);
	return v;
}

static void gw(uint64_t gpa, const void *p, size_t n)
{
	CHECK_EQ(gm_write(&vm.mem, gpa, p, n), 0);
}

/* A device-writable buffer in receiveq slot @slot, made available. */
static void offer_rx(uint16_t slot, uint64_t addr, uint32_t len)
{
	uint8_t desc[16] = { 0 };
	uint16_t idx = gr16(AVAIL + 2), flags = 2;     /* VRING_DESC_F_WRITE */

	memcpy(desc, &addr, 8);
	memcpy(desc + 8, &len, 4);
	memcpy(desc + 12, &flags, 2);
	gw(DESC + slot * 16, desc, 16);
	gw(AVAIL + 4 + (idx % 8) * 2, &slot, 2);
	idx++;
	gw(AVAIL + 2, &idx, 2);
}

static void *console_state;

TEST(console_mmio_roundtrip)
{
	struct virtio_dev *d;
	struct ferr e = { { 0 } };
	char buf[16] = { 0 };
	uint32_t len = 0;

	vm_setup();
	d = add_console();
	drive_to_ok();
	/* Typed on the source, no receive buffer yet: pending. */
	CHECK_EQ(write(in_pipe[1], "abc", 3), 3);
	pump();
	wr(0x30, 1);            /* leave the selector on queue 1 */
	CHECK(virtio_dev_migratable(d));
	CHECK_EQ(virtio_dev_quiesce(d), 0);
	/* Quiesced: input typed now stays in the pipe for the source. */
	console_state = dev_save_blob(d, BLOB);
	vm_teardown();
	close_pipes();

	vm_setup();
	d = add_console();
	/* Typed on the destination while it waited. */
	CHECK_EQ(write(in_pipe[1], "xy", 2), 2);
	pump();
	CHECK_EQ(load_blob(d, console_state, &e), 0);
	if (e.msg[0])
		printf("# %s\n", e.msg);
	CHECK_EQ(rd(0x70), S_ALL);
	CHECK_EQ(rd(0x30 + 0x14), 1);   /* QueueReady of the selected queue 1 */
	wr(0x30, 0);
	CHECK_EQ(rd(0x44), 1);
	virtio_dev_resume(d);
	offer_rx(0, DATA, 64);
	wr(0x50, 0);
	pump();
	CHECK_EQ(gr16(USED + 2), 1);
	CHECK_EQ(gm_read(&vm.mem, USED + 8, &len, 4), 0);
	CHECK_EQ(len, 5);
	CHECK_EQ(gm_read(&vm.mem, DATA, buf, 5), 0);
	CHECK_STR(buf, "abcxy");
	CHECK(rd(0x60) & 1);
	vm_teardown();
	close_pipes();
}

/* Set property @name of @blob's first device node to @val (@len bytes);
 * returns a new blob. */
static void *with_prop(const void *blob, const char *name, const void *val, int len)
{
	void *fdt = malloc(BLOB + 8192);
	int node;

	CHECK_EQ(fdt_open_into(blob, fdt, BLOB + 8192), 0);
	node = fdt_first_subnode(fdt, 0);
	CHECK(node >= 0);
	if (val)
		CHECK_EQ(fdt_setprop(fdt, node, name, val, len), 0);
	else
		CHECK_EQ(fdt_delprop(fdt, node, name), 0);
	CHECK_EQ(fdt_pack(fdt), 0);
	return fdt;
}

static void *with_queue_word(const void *blob, const char *prop, unsigned int word, uint32_t v)
{
	const fdt32_t *q;
	fdt32_t w[64];
	int len;

	q = fdt_getprop(blob, fdt_first_subnode(blob, 0), prop, &len);
	CHECK(q && len <= (int)sizeof(w));
	memcpy(w, q, len);
	w[word] = cpu_to_fdt32(v);
	return with_prop(blob, prop, w, len);
}

/* A fresh console refuses @bad, saying @why. */
static void refused(void *bad, const char *why)
{
	struct ferr e = { { 0 } };
	struct virtio_dev *d;

	vm_setup();
	d = add_console();
	CHECK(load_blob(d, bad, &e) < 0);
	if (!strstr(e.msg, why)) {
		printf("# '%s' does not say '%s'\n", e.msg, why);
		CHECK(0);
	}
	vm_teardown();
	close_pipes();
	free(bad);
}

TEST(console_mmio_corrupt_refused)
{
	const void *s = console_state;
	uint8_t big[5000] = { 0 };
	uint64_t addr = cpu_to_fdt64(BASE + 0x1000);
	uint32_t three = cpu_to_fdt32(3);
	const void *q;
	int len;

	CHECK(s != NULL);
	if (!s)
		return;
	/* Queue 0: num, ready, desc (hi, lo)... (MMQ_WORDS = 8 per queue). */
	refused(with_queue_word(s, "mmio-queues", 0, 1024), "size 1024");
	refused(with_queue_word(s, "mmio-queues", 0, 6), "size 6");
	refused(with_queue_word(s, "mmio-queues", 8 + 1, 7), "queue 1");
	refused(with_queue_word(s, "mmio-queues", 0, 0x10000), "size 65536");
	refused(with_queue_word(s, "mmio-queues", 2, 0xffff), "not in RAM");
	q = fdt_getprop(s, fdt_first_subnode(s, 0), "mmio-queues", &len);
	refused(with_prop(s, "mmio-queues", q, len - 4), "malformed");
	refused(with_prop(s, "mmio-base", &addr, 8), "same order");
	refused(with_prop(s, "staged-features", NULL, 0), "malformed");
	refused(with_prop(s, "pending-input", big, sizeof(big)), "pending input");
	refused(with_prop(s, "pending-input", NULL, 0), "malformed");
	refused(with_prop(s, "num-queues", &three, 4), "queues");
	q = fdt_getprop(s, fdt_first_subnode(s, 0), "vq-state", &len);
	refused(with_prop(s, "vq-state", q, len + 4), "malformed");
}

/* Every single flipped byte: refused, or loaded into a device that can be
 * torn down; never a crash or an out-of-range access (ASan builds). */
TEST(console_mmio_byte_flips)
{
	const uint8_t *s = console_state;
	uint32_t size;
	unsigned int loaded = 0, refused_n = 0;

	CHECK(s != NULL);
	if (!s)
		return;
	size = fdt_totalsize(s);
	for (uint32_t off = 0; off < size; off++) {
		uint8_t *b = malloc(size);
		struct ferr e = { { 0 } };
		struct virtio_dev *d;

		memcpy(b, s, size);
		b[off] ^= 0x40;
		vm_setup();
		d = add_console();
		if (load_sized(d, b, size, &e) < 0) {
			refused_n++;
		} else {
			loaded++;
			virtio_dev_resume(d);
			pump();
		}
		vm_teardown();
		close_pipes();
		free(b);
	}
	printf("# %u flips refused, %u loaded (harmless bits)\n", refused_n, loaded);
	CHECK(refused_n > 0);
}

TEST(net_state)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
	struct virtio_dev *d;
	struct net_dev *n;
	struct ferr e = { { 0 } };
	uint32_t v;
	void *s;

	vm_setup();
	d = add_net();
	n = d->priv;
	memcpy(n->mac, mac, 6);
	n->active_pairs = 2;
	n->status |= 2;         /* ANNOUNCE pending */
	CHECK_EQ(virtio_dev_quiesce(d), 0);
	s = dev_save_blob(d, BLOB);
	vm_teardown();

	vm_setup();
	d = add_net();
	n = d->priv;
	CHECK_EQ(load_blob(d, s, &e), 0);
	CHECK(!memcmp(n->mac, mac, 6));
	CHECK_EQ(n->active_pairs, 2);
	CHECK_EQ(n->status, 3);
	vm_teardown();

#define NET_REFUSED(blob, why) do { \
		void *_b = (blob); \
		struct ferr _e = { { 0 } }; \
		vm_setup(); \
		d = add_net(); \
		CHECK(load_blob(d, _b, &_e) < 0); \
		if (!strstr(_e.msg, why)) { \
			printf("# '%s' does not say '%s'\n", _e.msg, why); \
			CHECK(0); \
		} \
		vm_teardown(); \
		free(_b); \
	} while (0)
	NET_REFUSED(with_prop(s, "mac", mac, 5), "malformed");
	v = cpu_to_fdt32(9);
	NET_REFUSED(with_prop(s, "active-pairs", &v, 4), "malformed");
	v = cpu_to_fdt32(0x80);
	NET_REFUSED(with_prop(s, "net-status", &v, 4), "malformed");
	v = cpu_to_fdt32(3);
	NET_REFUSED(with_prop(s, "max-pairs", &v, 4), "queue pairs");
#undef NET_REFUSED
	free(s);
}

/* A ready queue's state must be drained: chains taken == chains used.
 * Apart (here with the used ring moved onto the avail ring), the first
 * kick after the load looped forever (found by tests/fuzz/fuzz_devstate;
 * virtio/virtio.c's virtio_dev_load refuses it). */
TEST(queue_indexes_apart_refused)
{
	const void *s = console_state;
	void *apart;

	CHECK(s != NULL);
	if (!s)
		return;
	/* vq-state: per queue last_avail, used, signalled, flags. */
	apart = with_queue_word(s, "vq-state", 1, 5);
	refused(with_queue_word(apart, "mmio-queues", 7, AVAIL), "chains taken");
	free(apart);
	refused(with_queue_word(s, "vq-state", 4, 1), "queue 1");
}

int main(void)
{
	log_set_level(LOG_ERROR);
	RUN(console_mmio_roundtrip);
	RUN(console_mmio_corrupt_refused);
	RUN(queue_indexes_apart_refused);
	RUN(console_mmio_byte_flips);
	RUN(net_state);
	free(console_state);
	return tap_done();
}
