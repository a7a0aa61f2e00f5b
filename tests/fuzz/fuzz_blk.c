/* libFuzzer target for virtio/blk.c: the input is a guest's memory holding a
 * virtio-blk request queue; ferry must parse, check and complete whatever
 * requests it finds (against a sync backend on a small memfd disk) without
 * touching anything outside guest RAM or the disk, and a reset must return
 * the device to a working state.
 *
 * Input layout: 4 header bytes, then the first bytes of guest RAM (gpa 0):
 *   [0] log2(queue size) % 6 (size 1..32)
 *   [1] bit0 INDIRECT_DESC, bit1 EVENT_IDX, bit2 refuse DISCARD/WRITE_ZEROES
 *   [2..3] starting ring index, little-endian
 * Guest RAM: 64 KiB at gpa 0 and 4 KiB at gpa 0x20000 (heap buffers, so
 * ASan sees any access past them).  desc table 0x0000, avail 0x0400, used
 * 0x0500, data from 0x0800.  The disk is 64 KiB (128 sectors).
 *
 * Built with -DFUZZ_BLK_GEN_SEEDS it writes seeds instead: ./gen DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/mem.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "fuzz_ram.h"

#define DESC       0x0000
#define AVAIL      0x0400
#define USED       0x0500
#define DATA       0x0800
#define DISK_SIZE  0x10000

#ifndef FUZZ_BLK_GEN_SEEDS
static struct virtio_dev *dev;
static struct loop *loop;
static int disk_fd = -1;

static void fake_notify(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
}

static void fake_config(struct virtio_dev *d)
{
	(void)d;
}

static const struct virtio_transport_ops fake_transport = {
	.notify_queue = fake_notify,
	.notify_config = fake_config,
};

static void setup_once(void)
{
	struct disk_config cfg = { .engine = BLK_ENGINE_SYNC, .queues = 1 };
	struct ferr e = { "" };
	static char path[64];

	log_set_level(LOG_ERROR);
	disk_fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	loop = loop_create();
	if (disk_fd < 0 || !loop || ftruncate(disk_fd, DISK_SIZE))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", disk_fd);
	cfg.path = path;
	strcpy(cfg.serial, "fuzz");
	dev = virtio_blk_create(&cfg, &(struct dev_env){ .loop = loop }, &e);
	if (!dev) {
		fprintf(stderr, "fuzz_blk: %s\n", e.msg);
		abort();
	}
	dev->t_ops = &fake_transport;
	dev->loop = loop;
}

static void finish_all(void)
{
	struct blk_backend *be = virtio_blk_backend(dev);

	for (int i = 0; i < 8; i++) {
		blk_drain(be);
		blk_complete(be);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct guest_mem gm;
	struct vq *vq;
	uint16_t start;
	uint64_t requests;
	uint64_t ring = 0;

	if (len < HDR)
		return 0;
	if (!dev)
		setup_once();
	fuzz_ram_init(&gm, data, len);
	if (data[1] & 1)
		ring |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	if (data[1] & 2)
		ring |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	start = data[2] | data[3] << 8;
	/* A fresh, zeroed disk each time: inputs reproduce. */
	if (ftruncate(disk_fd, 0) || ftruncate(disk_fd, DISK_SIZE))
		abort();

	pthread_mutex_lock(&dev->lock);
	requests = dev->requests;
	dev->gm = &gm;
	dev->driver_features = dev->ops->features(dev) | ring | 1ULL << VIRTIO_F_VERSION_1;
	if (data[1] & 4)
		dev->driver_features &= ~(3ULL << 13);
	vq = &dev->vqs[0];
	if (vq_init(vq, &gm, 1u << (data[0] % 6), DESC, AVAIL, USED, ring) != 0)
		__builtin_trap();
	vq->last_avail_idx = vq->used_idx = start;
	dev->vq_ready[0] = true;
	dev->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	dev->ops->activate(dev);
	pthread_mutex_unlock(&dev->lock);
	finish_all();

	/* Every request counted was pushed, unless the queue broke meanwhile
	 * (the guest's ring indexes prove nothing: a read may overwrite them). */
	if (!vq->broken && (uint16_t)(vq->used_idx - start) != (uint16_t)(dev->requests - requests))
		__builtin_trap();

	pthread_mutex_lock(&dev->lock);
	dev->ops->reset(dev);
	vq_destroy(vq);
	dev->vq_ready[0] = false;
	dev->status = 0;
	dev->driver_features = 0;
	pthread_mutex_unlock(&dev->lock);
	finish_all();
	fuzz_ram_free(&gm);
	return 0;
}
#else
/* Seeds: an image of RAM in the same layout, header first. */
static uint8_t img[8192];        /* run.sh passes -max_len=8192 */

static void put(uint64_t gpa, const void *p, size_t n)
{
	memcpy(img + HDR + gpa, p, n);
}

static void desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct { uint64_t a; uint32_t l; uint16_t f, n; } d = { addr, len, flags, next };

	put(DESC + 16 * i, &d, 16);
}

static void hdr(uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct { uint32_t t, r; uint64_t s; } h = { type, 0, sector };

	put(gpa, &h, 16);
}

static void offer(unsigned n, const uint16_t *heads)
{
	uint16_t idx = n;

	for (unsigned i = 0; i < n; i++)
		put(AVAIL + 4 + 2 * i, &heads[i], 2);
	put(AVAIL + 2, &idx, 2);
}

static int emit(const char *dir, const char *name, uint8_t log2size, uint8_t feat)
{
	char path[512];
	FILE *f;

	img[0] = log2size;
	img[1] = feat;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(img, 1, sizeof(img), f) != sizeof(img) || fclose(f)) {
		perror(path);
		return 1;
	}
	memset(img, 0, sizeof(img));
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	struct { uint64_t s; uint32_t n, f; } seg = { 2, 4, 1 };
	int fails = 0;

	/* write 1 KiB at sector 4, then read it back, then flush */
	hdr(DATA, 1, 4);
	desc(0, DATA, 16, 1, 1);
	desc(1, DATA + 0x100, 1024, 1, 2);
	desc(2, DATA + 0x80, 1, 2, 0);
	hdr(DATA + 0x20, 0, 4);
	desc(3, DATA + 0x20, 16, 1, 4);
	desc(4, DATA + 0x600, 1024, 3, 5);
	desc(5, DATA + 0x81, 1, 2, 0);
	hdr(DATA + 0x40, 4, 0);
	desc(6, DATA + 0x40, 16, 1, 7);
	desc(7, DATA + 0x82, 1, 2, 0);
	offer(3, (uint16_t[]){ 0, 3, 6 });
	fails += emit(dir, "write_read_flush", 3, 0);

	/* get-id, write-zeroes with unmap, discard */
	hdr(DATA, 8, 0);
	desc(0, DATA, 16, 1, 1);
	desc(1, DATA + 0x100, 21, 2, 0);
	hdr(DATA + 0x20, 13, 0);
	put(DATA + 0x30, &seg, 16);
	desc(2, DATA + 0x20, 32, 1, 3);
	desc(3, DATA + 0x81, 1, 2, 0);
	hdr(DATA + 0x40, 11, 0);
	seg.f = 0;
	put(DATA + 0x50, &seg, 16);
	desc(4, DATA + 0x40, 32, 1, 5);
	desc(5, DATA + 0x82, 1, 2, 0);
	offer(3, (uint16_t[]){ 0, 2, 4 });
	fails += emit(dir, "id_zeroes_discard", 3, 0);

	/* a read through an indirect table, header split in two */
	hdr(DATA, 0, 1);
	desc(0, DATA + 0x400, 64, 4, 0);
	{
		struct { uint64_t a; uint32_t l; uint16_t f, n; } t[4] = {
			{ DATA, 6, 1, 1 }, { DATA + 6, 10, 1, 2 },
			{ RAM1_GPA, 512, 3, 3 }, { DATA + 0x80, 1, 2, 0 },
		};
		put(DATA + 0x400, t, sizeof(t));
	}
	offer(1, (uint16_t[]){ 0 });
	fails += emit(dir, "indirect_split_header", 2, 1);
	return fails ? 1 : 0;
}
#endif
