/* The migration workload: testguest.run=dirty:<MiB>:<MiB/s>[:once] rewrites
 * a working set of <MiB> page by page at <MiB/s> (0: as fast as it can)
 * from CPL3, and checks each page before rewriting it: every page holds
 * its generation in every word, so a page that a migration lost or left
 * stale shows up.  ":once" writes the set once, then only verifies it.
 *
 * Lines (BSP, about every second, numbered without gaps so that a test
 * can check continuity across a migration):
 *   TESTGUEST DIRTY READY mib=M rate=R       after the first full pass
 *   TESTGUEST DIRTY <seq> pass=<n> errors=<e>
 *   TESTGUEST FAIL dirty: page <gpa> holds <v>, expected <w>   (first few) */
#include "guest.h"

#define PAGE 4096ull
#define DIRTY_BASE (32ull << 20)        /* above the image, its stacks and buffers */
#define CHUNK (1ull << 20)

static uint64_t parse_num(const char **s)
{
	uint64_t v = 0;

	while (**s >= '0' && **s <= '9')
		v = v * 10 + (uint64_t)(*(*s)++ - '0');
	if (**s == ':')
		(*s)++;
	return v;
}

static inline uint64_t dirty_word(uint64_t gen, uint64_t page)
{
	return gen * 0x9e3779b97f4a7c15ull ^ page << 12;
}

void cmd_dirty(const char *args)
{
	uint64_t mib = parse_num(&args), rate = parse_num(&args);
	bool once = !strcmp(args, "once");
	uint64_t bytes = mib << 20, errors = 0, seq = 0, pass = 0;
	uint64_t next_line, t_start;
	volatile uint64_t *base = (volatile uint64_t *)DIRTY_BASE;

	if (!mib || DIRTY_BASE + bytes > mapped_top || DIRTY_BASE + bytes > plat.ram_bytes) {
		kprintf("TESTGUEST FAIL dirty: %lu MiB do not fit above 32 MiB (RAM %lu MiB)\n",
			mib, plat.ram_bytes >> 20);
		return;
	}
	next_line = rdtsc() + 1000 * tsc_per_ms;
	t_start = rdtsc();
	for (uint64_t gen = 1;; gen++) {
		bool write = !once || gen == 1;

		for (uint64_t off = 0; off < bytes; off += CHUNK) {
			for (uint64_t p = off / PAGE; p < (off + CHUNK) / PAGE && p * PAGE < bytes; p++) {
				volatile uint64_t *q = base + p * (PAGE / 8);
				uint64_t want = gen == 1 ? 0 : dirty_word(once ? 1 : gen - 1, p);

				/* Generation 1 finds zeroed RAM (or a prior boot's
				 * pattern, which it just overwrites). */
				if (gen > 1 && (q[0] != want || q[PAGE / 16] != want ||
						q[PAGE / 8 - 1] != want)) {
					if (errors++ < 5)
						kprintf("TESTGUEST FAIL dirty: page %lx holds %lx, expected %lx\n",
							(uint64_t)(uintptr_t)q, q[0], want);
				}
				if (write) {
					uint64_t w = dirty_word(gen, p);

					for (unsigned int i = 0; i < PAGE / 8; i++)
						q[i] = w;
				}
			}
			/* Pace: chunk k of the run is due at k MiB / rate. */
			if (write && rate) {
				uint64_t done = (gen - 1) * bytes + off + CHUNK;
				uint64_t due = t_start + done * 1000 / (rate << 20) * tsc_per_ms;

				while (rdtsc() < due) {
					if (due - rdtsc() > 2 * tsc_per_ms && halt_ok)
						delay_ms(1);
					else
						cpu_relax();
				}
			}
			if (rdtsc() >= next_line) {
				kprintf("TESTGUEST DIRTY %lu pass=%lu errors=%lu\n", seq++, pass, errors);
				next_line += 1000 * tsc_per_ms;
				if (rdtsc() > next_line)
					next_line = rdtsc() + 1000 * tsc_per_ms;
			}
		}
		if (gen == 1)
			kprintf("TESTGUEST DIRTY READY mib=%lu rate=%lu\n", mib, rate);
		pass++;
		if (once) {
			/* Only reads from here: pace them to the line rate. */
			while (rdtsc() < next_line)
				delay_ms(10);
		}
	}
}
