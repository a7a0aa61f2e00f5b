/* The migration workload, testguest.run=dirty:<MiB>:<MiB/s>[:once|:corrupt]:
 * every online CPU rewrites its share of a <MiB> working set, at its share
 * of <MiB/s> (0: as fast as it can), at CPL3, and verifies each page before
 * rewriting it.  A page holds its generation (word 0), a checksum over its
 * page number, generation and data (word 1), then data: a torn or damaged
 * page fails the checksum, a stale one (a page a migration did not resend)
 * holds an older generation.  ":once" writes the set once, then only
 * verifies it, a pass a second; ":corrupt" is ":once" that damages two
 * pages on purpose and must see both reported (the verify's own test).
 *
 * Lines, all from the BSP:
 *   TESTGUEST DIRTY READY mib=M rate=R cpus=N    every page written once
 *   TESTGUEST DIRTY <seq> pass=<p> errors=<e>    about every second, <seq>
 *       without gaps (a test checks continuity across a migration), <p> the
 *       full passes done over the whole set, <e> pages found bad so far
 *   TESTGUEST FAIL dirty: page <gpa> ...         the first few bad pages
 *   TESTGUEST VERIFY ok pages=<N> passes=<p>     answer to the input line
 *       "verify" on COM1, once every page was checked again after it came
 *       (or TESTGUEST FAIL verify: ...) */
#include "guest.h"

#define PAGE            4096ull
#define PAGE_Q          (PAGE / 8)
#define DIRTY_BASE      (32ull << 20)   /* above the image, its stacks and buffers */
#define PACE_PAGES      256             /* pace (and let the BSP report) every 1 MiB */
#define ERR_KEEP        4               /* bad pages remembered per CPU */
#define FNV_PRIME       0x100000001b3ull
#define CORRUPT_WAIT_MS 10000

enum { BAD_SUM = 1, BAD_GEN };

struct dirty_err {
	uint64_t gpa, gen, want, kind;
};

/* One per CPU, written by that CPU only (pass, errors, err[]). */
struct dirty_worker {
	uint64_t first, npages;         /* its pages, numbered from DIRTY_BASE */
	uint64_t rate;                  /* bytes/s, 0: flat out */
	volatile uint64_t pass;         /* full passes done over its pages */
	volatile uint64_t errors;       /* bad pages seen; err[] keeps the first */
	struct dirty_err err[ERR_KEEP];
} __attribute__((aligned(64)));

static struct dirty_worker workers[MAX_CPUS];
static uint32_t nworkers;
static bool once, corrupt;
static uint64_t total_pages, rate_mib;

/* BSP-only reporting state. */
static uint64_t next_line, seq;
static bool ready_printed;
static uint64_t printed[MAX_CPUS];
static bool verify_pending;
static uint64_t verify_from[MAX_CPUS];
static char in_line[16];
static uint32_t in_len;
static uint32_t corrupt_stage;
static uint64_t corrupt_gpa[2], corrupt_deadline;

static uint64_t parse_num(const char **s)
{
	uint64_t v = 0;

	while (**s >= '0' && **s <= '9')
		v = v * 10 + (uint64_t)(*(*s)++ - '0');
	if (**s == ':')
		(*s)++;
	return v;
}

static inline volatile uint64_t *page_at(uint64_t page)
{
	return (volatile uint64_t *)(DIRTY_BASE + page * PAGE);
}

static inline uint64_t page_seed(uint64_t page, uint64_t gen)
{
	return ((0xcbf29ce484222325ull ^ page) * FNV_PRIME ^ gen) * FNV_PRIME;
}

/* Each step of the checksum is a bijection of the running value: any one
 * changed word changes the result. */
static void page_write(uint64_t page, uint64_t gen)
{
	volatile uint64_t *q = page_at(page);
	uint64_t h = page_seed(page, gen), w = gen * 0x9e3779b97f4a7c15ull ^ page << 12;

	for (uint64_t i = 2; i < PAGE_Q; i++) {
		q[i] = w + i;
		h = (h ^ (w + i)) * FNV_PRIME;
	}
	q[0] = gen;
	q[1] = h;
}

static int page_check(uint64_t page, uint64_t want, struct dirty_err *e)
{
	const volatile uint64_t *q = page_at(page);
	uint64_t gen = q[0], h = page_seed(page, gen);

	for (uint64_t i = 2; i < PAGE_Q; i++)
		h = (h ^ q[i]) * FNV_PRIME;
	*e = (struct dirty_err){ (uint64_t)(uintptr_t)q, gen, want, 0 };
	if (h != q[1])
		e->kind = BAD_SUM;
	else if (gen != want)
		e->kind = BAD_GEN;
	return e->kind ? -1 : 0;
}

static void record_error(struct dirty_worker *w, const struct dirty_err *e)
{
	if (w->errors < ERR_KEEP)
		w->err[w->errors] = *e;
	barrier();                      /* the BSP reads err[] below errors */
	w->errors++;
}

static uint64_t min_pass(void)
{
	uint64_t m = UINT64_MAX;

	for (uint32_t i = 0; i < nworkers; i++)
		if (workers[i].pass < m)
			m = workers[i].pass;
	return m;
}

static uint64_t sum_errors(void)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < nworkers; i++)
		n += workers[i].errors;
	return n;
}

static void print_errors(void)
{
	for (uint32_t i = 0; i < nworkers; i++) {
		struct dirty_worker *w = &workers[i];

		for (; printed[i] < w->errors && printed[i] < ERR_KEEP; printed[i]++) {
			const struct dirty_err *e = &w->err[printed[i]];

			if (e->kind == BAD_SUM)
				kprintf("TESTGUEST FAIL dirty: page %lx (cpu %u) does not match its checksum (generation word %lu, expected %lu)\n",
					e->gpa, i, e->gen, e->want);
			else
				kprintf("TESTGUEST FAIL dirty: page %lx (cpu %u) holds generation %lu, expected %lu (stale)\n",
					e->gpa, i, e->gen, e->want);
		}
	}
}

/* The input line "verify": answer once every CPU has done a whole pass
 * that began after it (its pass count up by two). */
static void verify_poll(void)
{
	char ch;

	while (serial_getc(&ch)) {
		if (ch != '\r' && ch != '\n') {
			if (in_len < sizeof(in_line) - 1)
				in_line[in_len++] = ch;
			continue;
		}
		in_line[in_len] = 0;
		if (in_len && !strcmp(in_line, "verify") && !verify_pending) {
			for (uint32_t i = 0; i < nworkers; i++)
				verify_from[i] = workers[i].pass;
			verify_pending = true;
		}
		in_len = 0;
	}
	if (!verify_pending)
		return;
	for (uint32_t i = 0; i < nworkers; i++)
		if (workers[i].pass < verify_from[i] + 2)
			return;
	verify_pending = false;
	if (sum_errors())
		kprintf("TESTGUEST FAIL verify: %lu bad pages seen (of %lu)\n", sum_errors(),
			total_pages);
	else
		kprintf("TESTGUEST VERIFY ok pages=%lu passes=%lu\n", total_pages, min_pass());
}

static bool error_seen(uint64_t gpa, uint64_t kind)
{
	for (uint32_t i = 0; i < nworkers; i++)
		for (uint64_t k = 0; k < workers[i].errors && k < ERR_KEEP; k++)
			if (workers[i].err[k].gpa == gpa && workers[i].err[k].kind == kind)
				return true;
	return false;
}

/* ":corrupt": once every page is written, flip one bit in a page of the
 * last CPU (checksum) and rewrite one of the BSP's with generation 0 and a
 * right checksum (stale); both must be reported, and nothing else. */
static void corrupt_step(void)
{
	const struct dirty_worker *a = &workers[nworkers - 1], *b = &workers[0];

	if (corrupt_stage == 0) {
		uint64_t pa = a->first + a->npages / 2, pb = b->first + b->npages / 4;

		page_at(pa)[9] ^= 1ull << 17;
		page_write(pb, 0);
		corrupt_gpa[0] = (uint64_t)(uintptr_t)page_at(pa);
		corrupt_gpa[1] = (uint64_t)(uintptr_t)page_at(pb);
		kprintf("TESTGUEST INFO dirty: flipped a bit in page %lx, made page %lx stale\n",
			corrupt_gpa[0], corrupt_gpa[1]);
		corrupt_deadline = deadline_ms(CORRUPT_WAIT_MS);
		corrupt_stage = 1;
		return;
	}
	if (error_seen(corrupt_gpa[0], BAD_SUM) && error_seen(corrupt_gpa[1], BAD_GEN)) {
		print_errors();
		for (uint32_t i = 0; i < nworkers; i++)
			for (uint64_t k = 0; k < workers[i].errors && k < ERR_KEEP; k++)
				if (workers[i].err[k].gpa != corrupt_gpa[0] &&
				    workers[i].err[k].gpa != corrupt_gpa[1]) {
					kprintf("TESTGUEST FAIL dirty-corrupt: page %lx reported, it was not touched\n",
						workers[i].err[k].gpa);
					power_off();
				}
		kprintf("TESTGUEST PASS dirty-corrupt: both damaged pages reported\n");
		power_off();
	}
	if (rdtsc() >= corrupt_deadline) {
		print_errors();
		kprintf("TESTGUEST FAIL dirty-corrupt: damaged pages %lx (bit flip) and %lx (stale) not both reported within %u ms\n",
			corrupt_gpa[0], corrupt_gpa[1], CORRUPT_WAIT_MS);
		power_off();
	}
}

/* The BSP between chunks of its own work: everything that is printed. */
static void dirty_report(void)
{
	if (!ready_printed && min_pass() >= 1) {
		kprintf("TESTGUEST DIRTY READY mib=%lu rate=%lu cpus=%u\n", total_pages >> 8,
			rate_mib, nworkers);
		ready_printed = true;
	}
	print_errors();
	verify_poll();
	if (corrupt && ready_printed)
		corrupt_step();
	if (rdtsc() >= next_line) {
		kprintf("TESTGUEST DIRTY %lu pass=%lu errors=%lu\n", seq++, min_pass(), sum_errors());
		next_line += 1000 * tsc_per_ms;
		if (rdtsc() > next_line)
			next_line = rdtsc() + 1000 * tsc_per_ms;
	}
}

/* Wait until the TSC reaches @due, halting when there is time (an AP runs
 * its own LAPIC timer for that, see dirty_work); the BSP keeps reporting. */
static void wait_until(struct cpu *c, uint64_t due)
{
	for (;;) {
		uint64_t now;

		if (c->index == 0)
			dirty_report();
		now = rdtsc();
		if (now >= due)
			return;
		if (due - now > 2 * tsc_per_ms && halt_ok)
			delay_ms(1);
		else
			cpu_relax();
	}
}

static void dirty_work(struct cpu *c)
{
	struct dirty_worker *w = &workers[c->index];
	uint64_t t_start, done = 0;

	/* Only the BSP's timer runs at boot: an AP that halted while pacing
	 * would never wake. */
	if (c->index && halt_ok)
		lapic_timer_start();
	t_start = rdtsc();
	for (uint64_t gen = 1;; gen++) {
		bool write = !once || gen == 1;

		for (uint64_t k = 0; k < w->npages; k++) {
			uint64_t p = w->first + k;
			struct dirty_err e;

			/* Generation 1 finds zeroed RAM (or a prior boot's
			 * pages, which it just overwrites). */
			if (gen > 1 && page_check(p, once ? 1 : gen - 1, &e) < 0)
				record_error(w, &e);
			if (write)
				page_write(p, gen);
			if ((k + 1) % PACE_PAGES && k + 1 != w->npages)
				continue;
			/* Pace: byte n of this CPU's writes is due at n / rate. */
			if (write && w->rate) {
				done += ((k % PACE_PAGES) + 1) * PAGE;
				wait_until(c, t_start + done * 1000 / w->rate * tsc_per_ms);
			} else if (c->index == 0) {
				dirty_report();
			}
		}
		w->pass = gen;
		if (!write)             /* only reads from here: a pass a second */
			wait_until(c, rdtsc() + 1000 * tsc_per_ms);
	}
}

void cmd_dirty(const char *args)
{
	uint64_t mib = parse_num(&args), per;

	rate_mib = parse_num(&args);

	once = !strcmp(args, "once");
	corrupt = !strcmp(args, "corrupt");
	if (*args && !once && !corrupt) {
		kprintf("TESTGUEST FAIL dirty: unknown mode '%s' (once or corrupt)\n", args);
		return;
	}
	once |= corrupt;
	if (rate_mib > (1ull << 20)) {
		kprintf("TESTGUEST FAIL dirty: rate %lu MiB/s is over 2^20\n", rate_mib);
		return;
	}
	if (!mib || mib > (1ull << 20) || DIRTY_BASE + (mib << 20) > mapped_top ||
	    DIRTY_BASE + (mib << 20) > plat.ram_bytes) {
		kprintf("TESTGUEST FAIL dirty: %lu MiB do not fit above 32 MiB (RAM %lu MiB)\n",
			mib, plat.ram_bytes >> 20);
		return;
	}
	total_pages = mib << 8;
	nworkers = ncpus_online;
	per = total_pages / nworkers;
	for (uint32_t i = 0; i < nworkers; i++) {
		struct dirty_worker *w = &workers[i];

		w->first = i * per;
		w->npages = i == nworkers - 1 ? total_pages - w->first : per;
		/* Its share of the rate (pages/s, then bytes/s), by its
		 * share of the pages. */
		w->rate = ((rate_mib << 8) * w->npages / total_pages) << 12;
		if (rate_mib && !w->rate)
			w->rate = PAGE;
	}
	next_line = rdtsc() + 1000 * tsc_per_ms;
	for (uint32_t i = 1; i < nworkers; i++)
		smp_run(&cpus[i], dirty_work);
	dirty_work(&cpus[0]);
}
