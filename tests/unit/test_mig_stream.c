/* migrate/stream.c: CRC32C, and the destination's state machine fed by the
 * writer through a socketpair: a good stream loads, and every kind of bad
 * stream (flipped byte, bad length, range outside RAM, wrong order,
 * truncation) is rejected before the end marker. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/migrate.h"
#include "ferry/vm.h"
#include "tap.h"

/* One TAP line per outcome, with what the code under test said. */
#define ok(cond, ...) do {                                                 \
	tap_cur_failed = !(cond);                                          \
	tap_count++;                                                       \
	tap_failed += tap_cur_failed;                                      \
	printf("%s %d - ", tap_cur_failed ? "not ok" : "ok", tap_count);   \
	printf(__VA_ARGS__);                                               \
	printf("\n");                                                      \
	fflush(stdout);                                                    \
} while (0)

#define RAM_SIZE (4 * MIG_PAGE_SIZE * 64)

static uint8_t src_ram[RAM_SIZE], dst_ram[RAM_SIZE];
static uint8_t state_blob[100];

struct job {
	int fd;
	int variant;
	int flip_at;            /* byte offset to corrupt on the wire, -1: none */
};

enum { V_GOOD, V_BAD_LEN, V_OUTSIDE, V_NO_SECTION, V_TRUNCATED, V_ZERO };

static int put_stream(struct mig_writer *w, int v)
{
	struct mig_ram_hdr bad = { RAM_SIZE, 1, MIG_RAM_ZERO };
	int ret = 0;

	ret |= mig_put_preamble(w);
	ret |= mig_put_rec(w, MIG_REC_MACHINE, "machine", 7);
	ret |= mig_put_section(w);
	ret |= mig_put_ram(w, 0, src_ram, 64);
	ret |= mig_put_ram(w, 64 * MIG_PAGE_SIZE, src_ram + 64 * MIG_PAGE_SIZE, 64);
	if (v == V_ZERO)
		ret |= mig_put_zero(w, MIG_PAGE_SIZE, 2);
	if (v == V_BAD_LEN)
		ret |= mig_put_rec(w, MIG_REC_RAM, &bad, 8);
	if (v == V_OUTSIDE)
		ret |= mig_put_rec(w, MIG_REC_RAM, &bad, sizeof(bad));
	ret |= mig_put_section(w);
	if (v == V_TRUNCATED)
		return ret;
	ret |= mig_put_rec(w, MIG_REC_SYNC, NULL, 0);
	ret |= mig_put_rec(w, MIG_REC_SWITCHOVER, NULL, 0);
	ret |= mig_put_rec(w, MIG_REC_STATE, state_blob, sizeof(state_blob));
	if (v != V_NO_SECTION)
		ret |= mig_put_section(w);
	ret |= mig_put_rec(w, MIG_REC_END, NULL, 0);
	return ret | mig_flush(w);
}

struct relay {
	int in, out, flip_at;
};

/* Copies the stream and flips one byte: the writer checksums before the
 * bytes reach the wire, so this is damage in transit. */
static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	uint8_t b[4096];

	for (int off = 0;;) {
		ssize_t n = read(r->in, b, sizeof(b));

		if (n <= 0)
			break;
		if (r->flip_at >= off && r->flip_at < off + n)
			b[r->flip_at - off] ^= 0x10;
		off += n;
		if (send(r->out, b, n, MSG_NOSIGNAL) != n)
			break;
	}
	shutdown(r->out, SHUT_WR);
	shutdown(r->in, SHUT_RDWR);     /* a writer still going gets EPIPE */
	return NULL;
}

static void *writer_thread(void *arg)
{
	struct job *j = arg;
	struct relay r = { -1, j->fd, j->flip_at };
	struct mig_writer w;
	pthread_t t;
	int sv[2];

	if (j->flip_at >= 0) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			return NULL;
		r.in = sv[1];
		pthread_create(&t, NULL, relay_thread, &r);
	}
	mig_writer_init(&w, j->flip_at >= 0 ? sv[0] : j->fd, 64 * 1024);
	put_stream(&w, j->variant);
	mig_writer_free(&w);
	if (j->flip_at >= 0) {
		shutdown(sv[0], SHUT_WR);
		pthread_join(t, NULL);
		close(sv[0]);
		close(sv[1]);
	} else {
		shutdown(j->fd, SHUT_WR);
	}
	return NULL;
}

static int machine_ok(void *o, const void *fdt, uint32_t len, struct ferr *e)
{
	(void)o;
	if (len != 7 || memcmp(fdt, "machine", 7))
		return ferr_set(e, -EINVAL, "machine differs");
	return 0;
}

static int state_loaded;

static int state_ok(void *o, const void *fdt, uint32_t len, struct ferr *e)
{
	(void)o; (void)e;
	state_loaded = len == sizeof(state_blob) && !memcmp(fdt, state_blob, len);
	return 0;
}

static int run(int variant, int flip_at, struct ferr *e)
{
	struct guest_mem gm = { .nr_regions = 1, .ram_size = RAM_SIZE, .memfd = -1 };
	struct job j = { .variant = variant, .flip_at = flip_at };
	struct mig_sink sink = { .mem = &gm, .machine = machine_ok, .state = state_ok };
	struct mig_reader r;
	pthread_t t;
	int sv[2], ret;

	gm.regions[0] = (struct mem_region){ 0, RAM_SIZE, dst_ram };
	memset(dst_ram, 0xee, sizeof(dst_ram));
	state_loaded = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -errno;
	j.fd = sv[0];
	pthread_create(&t, NULL, writer_thread, &j);
	mig_reader_init(&r, sv[1], 64 * 1024);
	ret = mig_receive(&r, sv[1], &sink, e);
	/* Close our end so that a writer blocked on a reader that gave up
	 * gets EPIPE. */
	close(sv[1]);
	pthread_join(t, NULL);
	mig_reader_free(&r);
	close(sv[0]);
	return ret;
}

/* A stream of the preamble, then (@sectioned) a MACHINE record and its
 * SECTION, then @raw as it is (a forged record header, or more), and the
 * end: what mig_receive() makes of it, its reason in @e. */
static int receive_forged(bool sectioned, const void *raw, size_t raw_len, struct ferr *e)
{
	struct guest_mem gm = { .nr_regions = 1, .ram_size = RAM_SIZE, .memfd = -1 };
	struct mig_sink sink = { .mem = &gm, .machine = machine_ok, .state = state_ok };
	struct mig_writer w;
	struct mig_reader r;
	int sv[2], ret;

	gm.regions[0] = (struct mem_region){ 0, RAM_SIZE, dst_ram };
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -errno;
	mig_writer_init(&w, sv[0], 0);
	mig_put_preamble(&w);
	if (sectioned) {
		mig_put_rec(&w, MIG_REC_MACHINE, "machine", 7);
		mig_put_section(&w);
	}
	mig_flush(&w);
	if (write(sv[0], raw, raw_len) != (ssize_t)raw_len) {
		ret = ferr_set(e, -EIO, "cannot write the forged record");
		goto out;
	}
	shutdown(sv[0], SHUT_WR);
	mig_reader_init(&r, sv[1], 0);
	ret = mig_receive(&r, sv[1], &sink, e);
	mig_reader_free(&r);
out:
	mig_writer_free(&w);
	close(sv[0]);
	close(sv[1]);
	return ret;
}

int main(void)
{
	struct ferr e;
	int ret;

	ok(mig_crc32c(0, "123456789", 9) == 0xe3069283, "CRC32C check value");
	{
		uint8_t a[1000], b[1000];

		for (int i = 0; i < 1000; i++)
			a[i] = i * 7;
		ok(mig_crc32c_copy(0, b, a, 1000) == mig_crc32c(0, a, 1000) && !memcmp(a, b, 1000),
		   "copy with CRC copies and checksums the same");
	}
	{
		/* Lengths across the copy's 64 KiB steps and odd tails, in
		 * pieces, against the bitwise definition. */
		static const size_t lens[] = { 0, 1, 7, 65535, 65536, 65537, 200001 };
		static uint8_t a[200001], b[200001];
		bool good = true;

		for (size_t i = 0; i < sizeof(a); i++)
			a[i] = (uint8_t)(i * 131 + (i >> 9));
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			size_t n = lens[k], half = n / 3;
			uint32_t ref = 0xffffffffu;

			for (size_t i = 0; i < n; i++) {
				ref ^= a[i];
				for (int j = 0; j < 8; j++)
					ref = ref & 1 ? (ref >> 1) ^ 0x82f63b78u : ref >> 1;
			}
			ref = ~ref;
			memset(b, 0, n);
			good &= mig_crc32c(mig_crc32c(0, a, half), a + half, n - half) == ref;
			good &= mig_crc32c_copy(0, b, a, n) == ref && !memcmp(a, b, n);
		}
		ok(good, "CRC32C matches its definition across lengths and in pieces");
	}
	for (size_t i = 0; i < sizeof(src_ram); i++)
		src_ram[i] = (uint8_t)(i * 31 + i / 4096);
	for (size_t i = 0; i < sizeof(state_blob); i++)
		state_blob[i] = i;

	ret = run(V_GOOD, -1, &e);
	ok(ret == 0 && state_loaded, "a good stream loads (%s)", ret ? e.msg : "ok");
	ok(!memcmp(dst_ram, src_ram, 128 * MIG_PAGE_SIZE), "RAM arrives intact");
	ret = run(V_ZERO, -1, &e);
	ok(ret == 0 && dst_ram[MIG_PAGE_SIZE] == 0 && dst_ram[2 * MIG_PAGE_SIZE + 100] == 0 &&
	   dst_ram[3 * MIG_PAGE_SIZE + 5] == src_ram[3 * MIG_PAGE_SIZE + 5],
	   "zero records clear pages");
	ret = run(V_GOOD, 40000, &e);
	ok(ret == -EBADMSG && !state_loaded, "a flipped data byte fails the checksum (%s)", e.msg);
	ret = run(V_GOOD, 20, &e);
	ok(ret < 0 && !state_loaded, "a flipped header byte is rejected (%s)", e.msg);
	ret = run(V_GOOD, 3, &e);
	ok(ret == -EPROTO, "bad magic is rejected (%s)", e.msg);
	ret = run(V_BAD_LEN, -1, &e);
	ok(ret == -EPROTO && !state_loaded, "a short RAM record is rejected (%s)", e.msg);
	ret = run(V_OUTSIDE, -1, &e);
	ok(ret == -EPROTO && strstr(e.msg, "outside guest RAM"), "RAM outside the guest is rejected (%s)", e.msg);
	ret = run(V_NO_SECTION, -1, &e);
	ok(ret == -EPROTO && !state_loaded, "END without the state's checksum is rejected (%s)", e.msg);
	ret = run(V_TRUNCATED, -1, &e);
	ok(ret == -EPIPE && !state_loaded, "a truncated stream is rejected (%s)", e.msg);
	{
		struct mig_rec_hdr h = { MIG_REC_STATE, MIG_STATE_MAX + 1 };

		ret = receive_forged(true, &h, sizeof(h), &e);
		ok(ret == -EPROTO && strstr(e.msg, "at most"),
		   "an oversized state record is refused before allocating (%s)", e.msg);
	}
	{
		/* Found by tests/fuzz/fuzz_stream: type 0x406 right after the
		 * preamble aliased (END state, END) in the receiver's switch
		 * and handed over the state without machine check or checksum. */
		struct mig_rec_hdr h = { 0x406, 0 };

		state_loaded = -1;
		ret = receive_forged(false, &h, sizeof(h), &e);
		ok(ret == -EPROTO && state_loaded == -1,
		   "a record type past 8 bits is not taken for another (%s)", e.msg);
	}
	{
		/* libfdt 1.6 crashes on trees older than version 16: the
		 * receiver refuses anything but what ferry writes (17). */
		struct vm vm;
		void *fdt = NULL;
		uint32_t len = 0;

		memset(&vm, 0, sizeof(vm));
		gm_layout(64 * MIG_PAGE_SIZE * 64, &vm.mem);
		vm.nr_vcpus = 1;
		ret = mig_machine_save(&vm, &fdt, &len, &e);
		ok(ret == 0 && mig_machine_check(&vm, fdt, len, &e) == 0,
		   "a saved machine description checks (%s)", ret ? e.msg : "ok");
		if (fdt && len >= 0x18) {
			((uint8_t *)fdt)[0x14] = 0;
			((uint8_t *)fdt)[0x17] = 8;  /* big-endian version field */
			ret = mig_machine_check(&vm, fdt, len, &e);
			ok(ret == -EPROTO && strstr(e.msg, "version 8"),
			   "an old device tree version is refused (%s)", e.msg);
		}
		free(fdt);
	}
	{
		/* Resource limits (helper limits): a MACHINE record past
		 * MIG_MACHINE_MAX and a RAM record of more than
		 * MIG_RAM_MAX_PAGES data pages are refused from their
		 * headers, before any allocation or copy. */
		static const struct { uint32_t type, len, npages; const char *why; } bad[] = {
			{ MIG_REC_MACHINE, MIG_MACHINE_MAX + 1, 0, "at most" },
			{ MIG_REC_RAM, 16 + (MIG_RAM_MAX_PAGES + 1) * MIG_PAGE_SIZE,
			  MIG_RAM_MAX_PAGES + 1, "malformed RAM record" },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct {
				struct mig_rec_hdr h;
				struct mig_ram_hdr rh;
			} __attribute__((packed)) rec = { { bad[i].type, bad[i].len },
							  { 0, bad[i].npages, 0 } };
			bool ram = bad[i].type == MIG_REC_RAM;

			ret = receive_forged(ram, &rec, ram ? sizeof(rec) : sizeof(rec.h), &e);
			ok(ret == -EPROTO && strstr(e.msg, bad[i].why),
			   "record type %u of %u bytes is refused from its header (%s)", bad[i].type,
			   bad[i].len, e.msg);
		}
	}
	return tap_done();
}
