/* libFuzzer target for the migration stream reader (migrate/stream.c
 * mig_receive): whatever the source sends, the destination must reject or
 * accept it without crashing, writing outside guest RAM or allocating past
 * the record bounds, and must hand the state over only after END.
 *
 * Input: [0] bit0: recompute the SECTION checksums (so that the fuzzer gets
 * past them and reaches the records behind), then the stream as it comes
 * off the socket.  Guest RAM: 64 KiB at gpa 0 and 16 KiB at gpa 0x40000,
 * heap buffers so that ASan sees any write past them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/migrate.h"

#define RAM0_SIZE 0x10000
#define RAM1_GPA  0x40000
#define RAM1_SIZE 0x4000
#define PREAMBLE  16

struct sink_state {
	int machines, states;
	bool switched;
};

static int f_machine(void *o, const void *fdt, uint32_t len, struct ferr *e)
{
	struct sink_state *s = o;

	if (!fdt || !len || len > MIG_MACHINE_MAX || s->machines++)
		__builtin_trap();
	/* Both verdicts: a machine that differs ends the stream here. */
	if (((const uint8_t *)fdt)[0] == 'X')
		return ferr_set(e, -22, "fake: machine differs");
	return 0;
}

static void f_switchover(void *o)
{
	((struct sink_state *)o)->switched = true;
}

static int f_state(void *o, const void *fdt, uint32_t len, struct ferr *e)
{
	struct sink_state *s = o;

	(void)e;
	if (!fdt || !len || len > MIG_STATE_MAX || s->states++ || s->machines != 1)
		__builtin_trap();
	/* Touch every byte: the blob must be as long as it claims. */
	volatile uint8_t x = 0;
	for (uint32_t i = 0; i < len; i++)
		x ^= ((const uint8_t *)fdt)[i];
	(void)x;
	return 0;
}

/* Put the right CRC32C into each well-formed SECTION record, the way the
 * writer computes it: every byte since the previous SECTION's payload, up
 * to and including this record's header. */
static void fix_sections(uint8_t *p, size_t n)
{
	size_t start = 0, off = PREAMBLE;

	while (off + sizeof(struct mig_rec_hdr) <= n) {
		struct mig_rec_hdr h;

		memcpy(&h, p + off, sizeof(h));
		off += sizeof(h);
		if (h.type == MIG_REC_SECTION && h.len == 8 && off + 8 <= n) {
			uint32_t crc = mig_crc32c(0, p + start, off - start);

			memcpy(p + off, &crc, 4);
			start = off + 8;
		}
		if (h.len > n - off)
			break;
		off += h.len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct guest_mem gm = { .nr_regions = 2, .ram_size = RAM0_SIZE + RAM1_SIZE,
				.memfd = -1 };
	struct sink_state st = { 0 };
	struct mig_sink sink = { .mem = &gm, .machine = f_machine,
				 .switchover = f_switchover, .state = f_state, .opaque = &st };
	struct mig_reader r;
	struct ferr e = { 0 };
	uint8_t *buf, *ram0, *ram1;
	int sv[2] = { -1, -1 }, ret;
	size_t n;

	if (len < 1)
		return 0;
	log_set_level(LOG_ERROR);
	n = len - 1;
	buf = malloc(n + 1);
	ram0 = calloc(1, RAM0_SIZE);
	ram1 = calloc(1, RAM1_SIZE);
	if (!buf || !ram0 || !ram1)
		goto out;
	memcpy(buf, data + 1, n);
	if (data[0] & 1)
		fix_sections(buf, n);
	gm.regions[0] = (struct mem_region){ 0, RAM0_SIZE, ram0 };
	gm.regions[1] = (struct mem_region){ RAM1_GPA, RAM1_SIZE, ram1 };
	/* The whole stream fits in the socket buffer (libFuzzer's -max_len
	 * keeps inputs small): write it, close, then receive. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto out;
	if (n && write(sv[0], buf, n) != (ssize_t)n)
		goto out;
	shutdown(sv[0], SHUT_WR);
	if (mig_reader_init(&r, sv[1], 0) < 0)
		goto out;
	/* Replies go back to sv[0], where nobody reads them: a few bytes. */
	ret = mig_receive(&r, sv[1], &sink, &e);
	if (ret == 0 && st.states != 1)
		__builtin_trap();       /* success means the state was loaded */
	if (ret < 0 && !e.msg[0])
		__builtin_trap();       /* every refusal says why */
	mig_reader_free(&r);
out:
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	free(buf);
	free(ram0);
	free(ram1);
	return 0;
}
