/* Split virtqueues: well-formed chains become the right iovecs, and every way
 * a guest can break the rules ends in an error with the queue broken, never
 * in an access outside guest RAM (guard pages on both sides of RAM make such
 * an access crash the test). */
#include <errno.h>
#include <sys/mman.h>

#include "ferry/mem.h"
#include "ferry/util.h"
#include "ferry/virtio.h"
#include "tap.h"

#define RAM     (16 * MiB)
#define QSZ     8
#define DESC    0x1000ULL
#define AVAIL   0x2000ULL
#define USED    0x3000ULL
#define ITABLE  0x8000ULL       /* an indirect table */
#define DATA    0x10000ULL

#define F_NEXT  1
#define F_WRITE 2
#define F_IND   4

#define FEAT_IND   (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define FEAT_EVENT (1ULL << VIRTIO_RING_F_EVENT_IDX)

static struct guest_mem gm;
static struct vq vq;
static struct vq_elem elem;

static uint16_t rd16(uint64_t gpa)
{
	uint16_t v = 0;
	CHECK_EQ(gm_read(&gm, gpa, &v, 2), 0);
	return v;
}

static uint32_t rd32(uint64_t gpa)
{
	uint32_t v = 0;
	CHECK_EQ(gm_read(&gm, gpa, &v, 4), 0);
	return v;
}

static void wr16(uint64_t gpa, uint16_t v)
{
	CHECK_EQ(gm_write(&gm, gpa, &v, 2), 0);
}

/* Fresh rings of @size at the fixed addresses, indexes starting at @start. */
static void setup_at(uint16_t size, uint64_t features, uint16_t start)
{
	vq_destroy(&vq);
	memset(gm_ptr(&gm, DESC, 0x8000), 0, 0x8000);
	CHECK_EQ(vq_init(&vq, &gm, size, DESC, AVAIL, USED, features), 0);
	vq.last_avail_idx = vq.used_idx = start;
	wr16(AVAIL + 2, start);
	wr16(USED + 2, start);
}

static void setup(uint64_t features)
{
	setup_at(QSZ, features, 0);
}

static void desc_at(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	struct { uint64_t a; uint32_t l; uint16_t f, n; } d = { addr, len, flags, next };
	CHECK_EQ(gm_write(&gm, table + 16 * i, &d, 16), 0);
}

static void desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	desc_at(DESC, i, addr, len, flags, next);
}

/* Driver side: put @head in the avail ring and publish it. */
static void offer(uint16_t head)
{
	uint16_t idx = rd16(AVAIL + 2);

	wr16(AVAIL + 4 + 2 * (idx % vq.size), head);
	wr16(AVAIL + 2, idx + 1);
}

/* The guest broke a rule: an error, the queue broken, and it stays broken. */
static void expect_broken(int err)
{
	int r = vq_pop(&vq, &elem);

	CHECK_EQ(r, err);
	CHECK(vq.broken);
	CHECK_EQ(vq_pop(&vq, &elem), -EIO);
	CHECK_EQ(vq.last_avail_idx, 0);
}

TEST(out_only_chain)
{
	setup(0);
	desc(0, DATA, 100, F_NEXT, 3);
	desc(3, DATA + 100, 50, 0, 0);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(elem.head, 0);
	CHECK_EQ(elem.out_num, 2);
	CHECK_EQ(elem.in_num, 0);
	CHECK_EQ(elem.out_len, 150);
	CHECK(elem.iov[0].iov_base == gm_ptr(&gm, DATA, 1));
	CHECK_EQ(elem.iov[1].iov_len, 50);
	CHECK_EQ(vq_push(&vq, 0, 10), 0);
	CHECK_EQ(rd16(USED + 2), 1);
	CHECK_EQ(rd32(USED + 4), 0);            /* id */
	CHECK_EQ(rd32(USED + 8), 0);            /* nothing writable: len 0 */
	CHECK_EQ(vq_pop(&vq, &elem), 0);
	CHECK(!vq.broken);
}

TEST(in_only_chain)
{
	setup(0);
	desc(5, DATA, 4096, F_WRITE, 0);
	offer(5);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(elem.head, 5);
	CHECK_EQ(elem.out_num, 0);
	CHECK_EQ(elem.in_num, 1);
	CHECK(vq_elem_in(&elem) == elem.iov);
	CHECK_EQ(elem.in_len, 4096);
	CHECK_EQ(vq_push(&vq, 5, 5000), 0);
	CHECK_EQ(rd32(USED + 4), 5);
	CHECK_EQ(rd32(USED + 8), 4096);         /* clamped to writable */
}

TEST(mixed_chain_skips_empty_buffers)
{
	setup(0);
	desc(1, DATA, 16, F_NEXT, 2);
	desc(2, 0xdead0000000ULL, 0, F_NEXT, 4);  /* len 0: ignored */
	desc(4, DATA + 0x1000, 512, F_NEXT | F_WRITE, 6);
	desc(6, DATA + 0x2000, 1, F_WRITE, 0);
	offer(1);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(elem.out_num, 1);
	CHECK_EQ(elem.in_num, 2);
	CHECK(vq_elem_in(&elem) == elem.iov + 1);
	CHECK(vq_elem_in(&elem)[0].iov_base == gm_ptr(&gm, DATA + 0x1000, 1));
	CHECK_EQ(elem.in_len, 513);
	CHECK_EQ(elem.out_len, 16);
	CHECK_EQ(vq_push(&vq, 1, 513), 0);
	CHECK_EQ(rd32(USED + 8), 513);
}

TEST(chain_as_long_as_the_queue)
{
	setup(0);
	for (unsigned i = 0; i < QSZ; i++)
		desc(i, DATA + i, 1, i + 1 < QSZ ? F_NEXT : 0, i + 1);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(elem.out_num, QSZ);
}

TEST(indexes_wrap_at_16_bits)
{
	setup_at(QSZ, 0, 65534);
	for (unsigned i = 0; i < 4; i++) {
		desc(i, DATA, 8, F_WRITE, 0);
		offer(i);
	}
	CHECK_EQ(rd16(AVAIL + 2), 2);
	for (unsigned i = 0; i < 4; i++) {
		CHECK_EQ(vq_pop(&vq, &elem), 1);
		CHECK_EQ(elem.head, i);
		CHECK_EQ(vq_push(&vq, i, 8), 0);
	}
	CHECK_EQ(vq_pop(&vq, &elem), 0);
	CHECK_EQ(rd16(USED + 2), 2);
	CHECK_EQ(rd32(USED + 4 + 8 * 6), 0);    /* 65534 % 8 */
	CHECK_EQ(rd32(USED + 4 + 8 * 1), 3);    /* 1 after the wrap */
	CHECK(!vq.broken);
}

TEST(event_idx_notify)
{
	setup(FEAT_EVENT);
	for (unsigned i = 0; i < 4; i++) {
		desc(i, DATA, 8, F_WRITE, 0);
		offer(i);
		CHECK_EQ(vq_pop(&vq, &elem), 1);
	}
	/* used_event sits after the avail ring. */
	wr16(AVAIL + 4 + 2 * QSZ, 100);
	CHECK_EQ(vq_push(&vq, 0, 0), 0);
	CHECK(vq_needs_notify(&vq));            /* the first decision notifies */
	CHECK_EQ(vq_push(&vq, 1, 0), 0);
	CHECK(!vq_needs_notify(&vq));           /* driver wants idx 100 */
	wr16(AVAIL + 4 + 2 * QSZ, 2);           /* "tell me when entry 2 is used" */
	CHECK_EQ(vq_push(&vq, 2, 0), 0);
	CHECK(vq_needs_notify(&vq));
	CHECK_EQ(vq_push(&vq, 3, 0), 0);
	CHECK(!vq_needs_notify(&vq));           /* event 2 already passed */
	CHECK(!vq_needs_notify(&vq));           /* nothing new */
}

TEST(event_idx_batch_crossing_event)
{
	setup(FEAT_EVENT);
	for (unsigned i = 0; i < 3; i++) {
		desc(i, DATA, 8, F_WRITE, 0);
		offer(i);
		CHECK_EQ(vq_pop(&vq, &elem), 1);
	}
	CHECK_EQ(vq_push(&vq, 0, 0), 0);
	CHECK(vq_needs_notify(&vq));
	wr16(AVAIL + 4 + 2 * QSZ, 1);
	CHECK_EQ(vq_push(&vq, 1, 0), 0);        /* used 1 -> 3 passes event 1 */
	CHECK_EQ(vq_push(&vq, 2, 0), 0);
	CHECK(vq_needs_notify(&vq));
}

TEST(no_interrupt_flag)
{
	setup(0);
	desc(0, DATA, 8, F_WRITE, 0);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(vq_push(&vq, 0, 0), 0);
	wr16(AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
	CHECK(!vq_needs_notify(&vq));
	wr16(AVAIL, 0);
	CHECK(vq_needs_notify(&vq));
}

TEST(avail_event)
{
	setup(FEAT_EVENT);
	for (unsigned i = 0; i < 3; i++) {
		desc(i, DATA, 8, F_WRITE, 0);
		offer(i);
		CHECK_EQ(vq_pop(&vq, &elem), 1);
	}
	vq_set_avail_event(&vq);
	CHECK_EQ(rd16(USED + 4 + 8 * QSZ), 3);
	setup(0);
	wr16(USED + 4 + 8 * QSZ, 77);
	vq_set_avail_event(&vq);                /* not negotiated: untouched */
	CHECK_EQ(rd16(USED + 4 + 8 * QSZ), 77);
}

TEST(push_checks_the_head)
{
	setup(0);
	desc(0, DATA, 8, F_WRITE, 0);
	CHECK_EQ(vq_push(&vq, 0, 0), -EINVAL);  /* never popped */
	CHECK_EQ(vq_push(&vq, QSZ, 0), -EINVAL);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(vq_push(&vq, 0, 0), 0);
	CHECK_EQ(vq_push(&vq, 0, 0), -EINVAL);  /* twice */
	CHECK_EQ(rd16(USED + 2), 1);
}

TEST(head_offered_twice_while_in_flight)
{
	setup(0);
	desc(0, DATA, 8, F_WRITE, 0);
	offer(0);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(vq_pop(&vq, &elem), -EINVAL);
	CHECK(vq.broken);
	CHECK_EQ(vq_push(&vq, 0, 0), -EIO);
}

TEST(bad_buffer_addresses)
{
	static const struct { uint64_t addr; uint32_t len; } bad[] = {
		{ 32 * MiB, 1 },                /* beyond RAM */
		{ RAM - 8, 16 },                /* straddles the end of RAM */
		{ RAM, 1 },
		{ UINT64_MAX - 4, 16 },         /* addr + len overflows */
		{ UINT64_MAX, 1 },
		{ MEM_HOLE_START, 1 },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		setup(0);
		desc(0, DATA, 8, F_NEXT, 1);
		desc(1, bad[i].addr, bad[i].len, F_WRITE, 0);
		offer(0);
		expect_broken(-EFAULT);
	}
}

TEST(buffer_into_the_hole)
{
	struct gm_config cfg = { .size = MEM_HOLE_START + 16 * MiB };
	struct guest_mem big, saved = gm;
	struct ferr e;

	CHECK_EQ(gm_init(&big, &cfg, &e), 0);
	gm = big;
	setup(0);
	desc(0, MEM_HOLE_END, 4096, F_WRITE, 0);        /* RAM above 4 GiB */
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK(elem.iov[0].iov_base == gm_ptr(&gm, MEM_HOLE_END, 1));
	setup(0);
	desc(0, MEM_HOLE_START - 8, 16, F_WRITE, 0);    /* runs into the hole */
	offer(0);
	expect_broken(-EFAULT);
	setup(0);
	desc(0, MEM_HOLE_END - 8, 16, 0, 0);            /* starts in it */
	offer(0);
	expect_broken(-EFAULT);
	vq_destroy(&vq);
	gm = saved;
	gm_destroy(&big);
	setup(0);
}

TEST(loops_and_long_chains)
{
	setup(0);
	desc(0, DATA, 8, F_NEXT, 1);            /* A -> B -> A */
	desc(1, DATA, 8, F_NEXT, 0);
	offer(0);
	expect_broken(-ELOOP);

	setup(0);
	desc(0, DATA, 8, F_NEXT, 0);            /* A -> A */
	offer(0);
	expect_broken(-ELOOP);

	setup(0);                               /* every descriptor, then back */
	for (unsigned i = 0; i < QSZ; i++)
		desc(i, DATA, 8, F_NEXT, (i + 1) % QSZ);
	offer(0);
	expect_broken(-ELOOP);
}

TEST(bad_ring_indexes)
{
	setup(0);
	desc(0, DATA, 8, F_NEXT, QSZ);          /* next >= size */
	offer(0);
	expect_broken(-EINVAL);

	setup(0);
	offer(QSZ);                             /* head >= size */
	expect_broken(-EINVAL);

	setup(0);
	wr16(AVAIL + 2, QSZ + 1);               /* avail idx jumps too far */
	expect_broken(-EINVAL);

	setup_at(QSZ, 0, 65530);                /* ... also across the wrap */
	wr16(AVAIL + 2, (uint16_t)(65530 + QSZ + 1));
	CHECK(vq_pop(&vq, &elem) == -EINVAL && vq.broken);
}

TEST(writable_before_readable)
{
	setup(0);
	desc(0, DATA, 8, F_WRITE | F_NEXT, 1);
	desc(1, DATA, 8, 0, 0);
	offer(0);
	expect_broken(-EINVAL);
}

TEST(indirect_chains)
{
	setup(FEAT_IND);
	desc(0, DATA, 16, F_NEXT, 1);           /* direct, then an indirect */
	desc(1, ITABLE, 3 * 16, F_IND | F_WRITE, 0);    /* WRITE ignored */
	desc_at(ITABLE, 0, DATA + 16, 32, F_NEXT, 2);
	desc_at(ITABLE, 2, DATA + 0x1000, 100, F_WRITE | F_NEXT, 1);
	desc_at(ITABLE, 1, DATA + 0x2000, 1, F_WRITE, 0);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(elem.out_num, 2);
	CHECK_EQ(elem.in_num, 2);
	CHECK_EQ(elem.out_len, 48);
	CHECK_EQ(elem.in_len, 101);
	CHECK(vq_elem_in(&elem)[1].iov_base == gm_ptr(&gm, DATA + 0x2000, 1));
	CHECK_EQ(vq_push(&vq, 0, 101), 0);
	CHECK_EQ(rd32(USED + 8), 101);

	setup(FEAT_IND);                        /* as many buffers as allowed */
	for (unsigned i = 0; i < VQ_ELEM_MAX_IOV; i++)
		desc_at(ITABLE, i, DATA, 1, F_NEXT, i + 1);
	desc_at(ITABLE, VQ_ELEM_MAX_IOV - 1, DATA, 1, 0, 0);
	desc(0, ITABLE, 16 * VQ_ELEM_MAX_IOV, F_IND, 0);
	offer(0);
	CHECK_EQ(vq_pop(&vq, &elem), 1);
	CHECK_EQ(elem.out_num, VQ_ELEM_MAX_IOV);
}

TEST(bad_indirect)
{
	static const struct { uint64_t feat, addr; uint32_t len; uint16_t flags; int err; } bad[] = {
		{ 0, ITABLE, 16, F_IND, -EINVAL },                 /* not negotiated */
		{ FEAT_IND, ITABLE, 24, F_IND, -EINVAL },          /* not 16-multiple */
		{ FEAT_IND, ITABLE, 0, F_IND, -EINVAL },
		{ FEAT_IND, ITABLE, 16 * (VQ_INDIRECT_MAX + 1), F_IND, -EINVAL },
		{ FEAT_IND, RAM - 16, 32, F_IND, -EFAULT },        /* outside RAM */
		{ FEAT_IND, UINT64_MAX - 15, 32, F_IND, -EFAULT },
		{ FEAT_IND, ITABLE, 16, F_IND | F_NEXT, -EINVAL }, /* with NEXT */
	};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		setup(bad[i].feat);
		desc_at(ITABLE, 0, DATA, 8, 0, 0);
		desc(0, bad[i].addr, bad[i].len, bad[i].flags, 1);
		desc(1, DATA, 8, 0, 0);
		offer(0);
		expect_broken(bad[i].err);
	}

	setup(FEAT_IND);                        /* nested */
	desc(0, ITABLE, 32, F_IND, 0);
	desc_at(ITABLE, 0, DATA, 8, F_NEXT, 1);
	desc_at(ITABLE, 1, ITABLE, 32, F_IND, 0);
	offer(0);
	expect_broken(-EINVAL);

	setup(FEAT_IND);                        /* next past the table */
	desc(0, ITABLE, 32, F_IND, 0);
	desc_at(ITABLE, 0, DATA, 8, F_NEXT, 2);
	offer(0);
	expect_broken(-EINVAL);

	setup(FEAT_IND);                        /* loop inside the table */
	desc(0, ITABLE, 32, F_IND, 0);
	desc_at(ITABLE, 0, DATA, 8, F_NEXT, 1);
	desc_at(ITABLE, 1, DATA, 8, F_NEXT, 0);
	offer(0);
	expect_broken(-ELOOP);

	setup(FEAT_IND);                        /* more buffers than an elem holds */
	for (unsigned i = 0; i <= VQ_ELEM_MAX_IOV; i++)
		desc_at(ITABLE, i, DATA, 1, F_NEXT, i + 1);
	desc_at(ITABLE, VQ_ELEM_MAX_IOV, DATA, 1, 0, 0);
	desc(0, ITABLE, 16 * (VQ_ELEM_MAX_IOV + 1), F_IND, 0);
	offer(0);
	expect_broken(-E2BIG);
}

TEST(chain_over_4_gib)
{
	/* 256 overlapping 16 MiB buffers add up to 4 GiB: one byte too many
	 * for a 32-bit used length. */
	setup(FEAT_IND);
	for (unsigned i = 0; i < VQ_ELEM_MAX_IOV; i++)
		desc_at(ITABLE, i, 0, (uint32_t)RAM, F_WRITE | F_NEXT, i + 1);
	desc_at(ITABLE, VQ_ELEM_MAX_IOV - 1, 0, (uint32_t)RAM, F_WRITE, 0);
	desc(0, ITABLE, 16 * VQ_ELEM_MAX_IOV, F_IND, 0);
	offer(0);
	expect_broken(-EINVAL);
}

TEST(init_checks_the_rings)
{
	struct vq q;

	CHECK_EQ(vq_init(&q, &gm, 0, DESC, AVAIL, USED, 0), -EINVAL);
	CHECK_EQ(vq_init(&q, &gm, 3, DESC, AVAIL, USED, 0), -EINVAL);
	CHECK_EQ(vq_init(&q, &gm, 65535, DESC, AVAIL, USED, 0), -EINVAL);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC + 8, AVAIL, USED, 0), -EINVAL);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, AVAIL + 1, USED, 0), -EINVAL);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, AVAIL, USED + 2, 0), -EINVAL);
	CHECK_EQ(vq_init(&q, &gm, QSZ, RAM, AVAIL, USED, 0), -EFAULT);
	CHECK_EQ(vq_init(&q, &gm, QSZ, RAM - 16 * QSZ + 16, AVAIL, USED, 0), -EFAULT);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, MEM_HOLE_START, USED, 0), -EFAULT);
	/* avail/used rings whose event field alone falls outside RAM */
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, RAM - (4 + 2 * QSZ), USED, 0), -EFAULT);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, AVAIL, RAM - (4 + 8 * QSZ), 0), -EFAULT);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, AVAIL, UINT64_MAX - 3, 0), -EFAULT);
	CHECK_EQ(vq_init(&q, &gm, 32768, 0x100000, AVAIL, 0x200000, 0), 0);
	vq_destroy(&q);
	CHECK_EQ(vq_init(&q, &gm, QSZ, DESC, RAM - (6 + 2 * QSZ), RAM - 0x1000, 0), 0);
	vq_destroy(&q);
}

/* Guest RAM laid out by gm_layout() but mapped by hand between two
 * PROT_NONE guard pages: any access just outside RAM crashes the test. */
static uint8_t *guarded;

static int ram_with_guards(void)
{
	guarded = mmap(NULL, RAM + 2 * 4096, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guarded == MAP_FAILED ||
	    mprotect(guarded + 4096, RAM, PROT_READ | PROT_WRITE) < 0)
		return -1;
	gm_layout(RAM, &gm);
	gm.regions[0].hva = guarded + 4096;
	return 0;
}

int main(void)
{
	if (ram_with_guards() < 0) {
		printf("Bail out! cannot map guest RAM\n");
		return 1;
	}
	RUN(out_only_chain);
	RUN(in_only_chain);
	RUN(mixed_chain_skips_empty_buffers);
	RUN(chain_as_long_as_the_queue);
	RUN(indexes_wrap_at_16_bits);
	RUN(event_idx_notify);
	RUN(event_idx_batch_crossing_event);
	RUN(no_interrupt_flag);
	RUN(avail_event);
	RUN(push_checks_the_head);
	RUN(head_offered_twice_while_in_flight);
	RUN(bad_buffer_addresses);
	RUN(buffer_into_the_hole);
	RUN(loops_and_long_chains);
	RUN(bad_ring_indexes);
	RUN(writable_before_readable);
	RUN(indirect_chains);
	RUN(bad_indirect);
	RUN(chain_over_4_gib);
	RUN(init_checks_the_rings);
	vq_destroy(&vq);
	munmap(guarded, RAM + 2 * 4096);
	return tap_done();
}
