/* libFuzzer target for virtio/queue.c: the input is a guest's memory with
 * virtqueue rings in it; ferry must pop and push whatever it finds without
 * touching anything outside guest RAM, and every iovec it hands to a device
 * must lie inside RAM.
 *
 * Input layout: 4 header bytes, then the first bytes of guest RAM (gpa 0):
 *   [0] log2(queue size) % 7 (size 1..64)   [1] bit0 INDIRECT_DESC, bit1 EVENT_IDX
 *   [2..3] starting ring index, little-endian (exercises the 16-bit wrap)
 * Guest RAM: 64 KiB at gpa 0 and 4 KiB at gpa 0x20000, both heap buffers so
 * ASan sees any access past them; the gap between plays the MMIO hole.
 *   desc table 0x0000, avail ring 0x0400, used ring 0x0500, data from 0x0800.
 *
 * Built with -DFUZZ_QUEUE_GEN_SEEDS it is instead the seed generator:
 *   ./gen DIR   writes a few well-formed inputs (see tests/fuzz/run.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "ferry/mem.h"
#include "ferry/virtio.h"
#include "fuzz_ram.h"

#define DESC       0x0000
#define AVAIL      0x0400
#define USED       0x0500
#define DATA       0x0800
#define MAX_ROUNDS 128

static bool inside(const struct guest_mem *gm, const struct iovec *v)
{
	uintptr_t b = (uintptr_t)v->iov_base;

	for (int i = 0; i < gm->nr_regions; i++) {
		uintptr_t lo = (uintptr_t)gm->regions[i].hva;

		if (b >= lo && v->iov_len <= gm->regions[i].size &&
		    b - lo <= gm->regions[i].size - v->iov_len)
			return true;
	}
	return false;
}

static void check_elem(const struct guest_mem *gm, const struct vq *vq,
		       const struct vq_elem *e)
{
	uint64_t out = 0, in = 0;

	if (e->head >= vq->size || e->out_num + e->in_num > VQ_ELEM_MAX_IOV)
		__builtin_trap();
	for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
		if (!e->iov[i].iov_len || !inside(gm, &e->iov[i]))
			__builtin_trap();
		*(i < e->out_num ? &out : &in) += e->iov[i].iov_len;
	}
	if (out != e->out_len || in != e->in_len || out + in > UINT32_MAX)
		__builtin_trap();
}

#ifndef FUZZ_QUEUE_GEN_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct vq_elem elem;
	struct guest_mem gm;
	uint16_t start, pushed = 0;
	uint32_t used_len;
	uint64_t features = 0;
	struct vq vq;

	if (len < HDR)
		return 0;
	log_set_level(LOG_ERROR);       /* a broken queue is expected here */
	fuzz_ram_init(&gm, data, len);
	if (data[1] & 1)
		features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	if (data[1] & 2)
		features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	start = data[2] | data[3] << 8;

	if (vq_init(&vq, &gm, 1u << (data[0] % 7), DESC, AVAIL, USED, features) != 0)
		__builtin_trap();       /* the fixed layout is always valid */
	vq.last_avail_idx = vq.used_idx = start;
	for (int round = 0; round < MAX_ROUNDS; round++) {
		int r = vq_pop(&vq, &elem);

		if (r < 0 && !vq.broken)
			__builtin_trap();
		if (r <= 0)
			break;
		check_elem(&gm, &vq, &elem);
		/* Claim a length that sometimes exceeds what was writable. */
		if (vq_push(&vq, elem.head, elem.in_len + (round & 1)) != 0)
			__builtin_trap();
		/* The used length never exceeds what the chain could take. */
		memcpy(&used_len, gm.regions[0].hva + USED + 8 + 8 * ((vq.used_idx - 1) & (vq.size - 1)), 4);
		if (used_len != elem.in_len)
			__builtin_trap();
		pushed++;
		if (round % 3 == 0)
			(void)vq_needs_notify(&vq);
	}
	vq_set_avail_event(&vq);
	(void)vq_needs_notify(&vq);
	if (!vq.broken && vq.used_idx != (uint16_t)(start + pushed))
		__builtin_trap();
	vq_destroy(&vq);
	fuzz_ram_free(&gm);
	return 0;
}
#else
/* Seeds: an image of RAM built with the same layout, header first. */
static uint8_t img[HDR + DATA + 0x400];

static void put(uint64_t gpa, const void *p, size_t n)
{
	memcpy(img + HDR + gpa, p, n);
}

static void desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	struct { uint64_t a; uint32_t l; uint16_t f, n; } d = { addr, len, flags, next };
	put(table + 16 * i, &d, 16);
}

static void offer(uint16_t size, uint16_t start, unsigned n, const uint16_t *heads)
{
	uint16_t idx = start + n;

	for (unsigned i = 0; i < n; i++)
		put(AVAIL + 4 + 2 * ((start + i) % size), &heads[i], 2);
	put(AVAIL + 2, &idx, 2);
}

static int emit(const char *dir, const char *name, uint8_t log2size,
		uint8_t feat, uint16_t start, size_t ram_len)
{
	char path[512];
	FILE *f;

	img[0] = log2size;
	img[1] = feat;
	img[2] = start & 0xff;
	img[3] = start >> 8;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(img, 1, HDR + ram_len, f) != HDR + ram_len || fclose(f)) {
		perror(path);
		return 1;
	}
	memset(img, 0, sizeof(img));
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	int fails = 0;

	/* out + in chain, size 8 */
	desc(DESC, 0, DATA, 64, 1, 1);
	desc(DESC, 1, DATA + 0x100, 128, 2, 0);
	offer(8, 0, 1, (uint16_t[]){ 0 });
	fails += emit(dir, "simple", 3, 0, 0, USED + 6 + 8 * 8);

	/* a direct descriptor, then an indirect table of three */
	desc(DESC, 2, DATA, 16, 1, 5);
	desc(DESC, 5, DATA + 0x200, 48, 4, 0);
	desc(DATA + 0x200, 0, DATA + 0x10, 32, 1, 2);
	desc(DATA + 0x200, 2, DATA + 0x100, 100, 3, 1);
	desc(DATA + 0x200, 1, RAM1_GPA, 1, 2, 0);
	offer(8, 0, 1, (uint16_t[]){ 2 });
	fails += emit(dir, "indirect", 3, 1, 0, DATA + 0x230);

	/* three chains across the 16-bit wrap, EVENT_IDX, size 4 */
	for (unsigned i = 0; i < 3; i++)
		desc(DESC, i, DATA + 0x40 * i, 0x40, 2, 0);
	offer(4, 65534, 3, (uint16_t[]){ 2, 0, 1 });
	put(AVAIL + 4 + 2 * 4, &(uint16_t){ 1 }, 2);        /* used_event */
	fails += emit(dir, "wrap_event_idx", 2, 2, 65534, USED + 6 + 8 * 4);
	return fails ? 1 : 0;
}
#endif
