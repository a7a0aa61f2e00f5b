/* testguest.run=selftest: sub-tests of what a VMM must provide (ACPI
 * tables, RAM, LAPIC timer, SMP with IPIs, an IOAPIC-routed device
 * interrupt), each reported as TESTGUEST PASS <sub> or FAIL <sub>: <why>,
 * then the verdict and power-off.  Every wait is bounded. */
#include "guest.h"

#define NOINIT __attribute__((section(".bss.noinit")))
#define PAGE   4096ULL
#define LINE   64

int uart_gsi = -1;
extern char __image_start[], __image_end[];

static char reason[192];

static const char *fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return reason;
}

static uint64_t ms_since(uint64_t t0)
{
	return (rdtsc() - t0) / tsc_per_ms;
}

static const char *test_acpi(void)
{
	if (plat.acpi_error[0])
		return fail("%s", plat.acpi_error);
	if (!plat.memmap_entries)
		return fail("start_info has no memory map");
	return NULL;
}

/* ---- memory: one cache line in every 64th page of each RAM region (or a
 * wider power-of-two stride, so that about MEM_BUDGET lines are touched in
 * all), plus its first and last page.  The budget matters: the first touch
 * of each 2 MiB of a THP-backed guest costs the host ~5 ms on PVM hosts, so
 * touching every 2 MiB of a 4 GiB guest would take 10 s.  All lines are
 * written before any is checked, so that two addresses backed by the same
 * memory show up; each line's old contents are put back afterwards
 * (firmware tables may live in "RAM"). */

#define MEM_STRIDE_PAGES 64
#define MEM_BUDGET       512
#define MEM_MAX_SAMPLES  (MEM_BUDGET + 2 * MAX_MEMMAP)
static uint64_t mem_addr[MEM_MAX_SAMPLES] NOINIT;
static uint64_t mem_save[MEM_MAX_SAMPLES][LINE / 8] NOINIT;

static uint64_t mem_pattern(uint64_t a)
{
	return (a * 0x9e3779b97f4a7c15ULL) ^ 0xa5a5a5a55a5a5a5aULL;
}

static bool mem_excluded(uint64_t a)
{
	return a < 0x100000 ||                                  /* BIOS, trampoline */
	       (a + LINE > (uint64_t)__image_start && a < (uint64_t)__image_end) ||
	       a + LINE > mapped_top;
}

/* Fill mem_addr; returns the number of samples (maybe more than fit). */
static size_t mem_collect(uint64_t stride)
{
	size_t n = 0;

	for (uint32_t i = 0; i < plat.memmap_entries; i++) {
		const struct memmap_entry *e = &plat.memmap[i];
		uint64_t first = (e->addr + PAGE - 1) & ~(PAGE - 1);
		uint64_t end = (e->addr + e->size) & ~(PAGE - 1);

		if (e->type != 1 || end <= first)
			continue;
		for (uint64_t p = first;; p += stride * PAGE) {
			uint64_t a;

			if (p > end - PAGE)
				p = end - PAGE;
			a = p + (p / PAGE % (PAGE / LINE)) * LINE;     /* vary the line */
			if (!mem_excluded(a)) {
				if (n < MEM_MAX_SAMPLES)
					mem_addr[n] = a;
				n++;
			}
			if (p == end - PAGE)
				break;
		}
	}
	return n;
}

static const char *test_memory(void)
{
	uint64_t t0 = rdtsc(), stride = MEM_STRIDE_PAGES;
	size_t n, bad = 0;
	uint64_t bad_addr = 0, bad_val = 0;

	if (!plat.memmap_entries)
		return fail("no memory map");
	while ((plat.ram_bytes / PAGE) / stride > MEM_BUDGET)
		stride *= 2;
	while ((n = mem_collect(stride)) > MEM_MAX_SAMPLES)
		stride *= 2;
	if (!n)
		return fail("no RAM outside the guest image to test");

	for (size_t i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)mem_addr[i];

		for (int k = 0; k < LINE / 8; k++) {
			mem_save[i][k] = q[k];
			q[k] = mem_pattern(mem_addr[i] + 8 * k);
		}
	}
	for (size_t i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)mem_addr[i];

		for (int k = 0; k < LINE / 8; k++)
			if (q[k] != mem_pattern(mem_addr[i] + 8 * k) && !bad++) {
				bad_addr = mem_addr[i] + 8 * k;
				bad_val = q[k];
			}
	}
	for (size_t i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)mem_addr[i];

		for (int k = 0; k < LINE / 8; k++)
			q[k] = mem_save[i][k];
	}
	if (bad)
		return fail("%lu of %lu words wrong, first at 0x%lx: read 0x%lx, wrote 0x%lx",
			    (uint64_t)bad, (uint64_t)n * LINE / 8, bad_addr, bad_val,
			    mem_pattern(bad_addr));
	kprintf("TESTGUEST INFO memory: %lu lines over %lu MiB (every %lu pages) in %lu ms\n",
		(uint64_t)n, plat.ram_bytes >> 20, stride, ms_since(t0));
	return NULL;
}

/* ---- timer: ten periodic LAPIC timer interrupts on the BSP ---- */
static const char *test_timer(void)
{
	volatile uint32_t *ticks = &cpus[0].ticks;
	uint32_t start = *ticks;
	uint64_t t0 = rdtsc(), dl = deadline_ms(2000);

	if (!halt_ok)
		return fail("no LAPIC timer interrupt within 500 ms of starting it (period %u ms)",
			    TICK_MS);
	while (*ticks - start < 10)
		if (!wait_change(ticks, *ticks, dl))
			return fail("%u of 10 timer interrupts in 2 s", *ticks - start);
	kprintf("TESTGUEST INFO timer: 10 ticks of %u ms in %lu ms\n", TICK_MS, ms_since(t0));
	return NULL;
}

/* ---- smp: every MADT CPU online, its CPL3 work right, and fixed IPIs
 * to each AP acknowledged from its CPL3 loop ---- */
#define IPI_ROUNDS 3
#define ICR_FIXED_ASSERT 0x4000

static const char *test_smp(void)
{
	uint64_t t0, ipis = 0;

	if (ncpus_online != plat.ncpus)
		return fail("%u of the MADT's %u CPUs came online", ncpus_online, plat.ncpus);
	for (uint32_t i = 1; i < ncpus_online; i++)
		if (cpus[i].work != cpu_work(i))
			return fail("cpu %u: CPL3 work gave 0x%lx, expected 0x%lx", i,
				    cpus[i].work, cpu_work(i));
	t0 = rdtsc();
	for (int round = 0; round < IPI_ROUNDS; round++)
		for (uint32_t i = 1; i < ncpus_online; i++) {
			volatile uint32_t *acks = &cpus[i].ipi_acks;
			uint32_t want = *acks + 1;
			uint64_t dl = deadline_ms(1000);

			lapic_send_ipi(cpus[i].apic_id, ICR_FIXED_ASSERT | VEC_IPI);
			while (*acks != want)
				if (!spin_change(acks, *acks, dl))
					return fail("cpu %u (APIC id %u) did not acknowledge IPI %d within 1 s",
						    i, cpus[i].apic_id, round);
			ipis++;
		}
	if (ipis)
		kprintf("TESTGUEST INFO smp: %lu IPIs acknowledged, %lu us per round trip\n",
			ipis, (rdtsc() - t0) * 1000 / tsc_per_ms / ipis);
	return NULL;
}

/* ---- interrupts: the UART's THR-empty interrupt, IRQ 4 through the
 * IOAPIC.  Nothing is printed while it is enabled. ---- */
static const char *test_interrupts(void)
{
	uint32_t before = serial_thre_irqs;
	bool ok;

	if (uart_gsi < 0)
		return fail("cannot route IRQ 4 through the IOAPIC (%s)",
			    plat.ioapic_addr ? "GSI beyond its pins" : "no IOAPIC");
	serial_set_thre_irq(true);
	ok = wait_change(&serial_thre_irqs, before, deadline_ms(1000));
	serial_set_thre_irq(false);
	if (!ok)
		return fail("no UART THR-empty interrupt (IRQ 4, GSI %d) within 1 s", uart_gsi);
	return NULL;
}

static int report(const char *name, const char *why)
{
	if (why) {
		kprintf("TESTGUEST FAIL %s: %s\n", name, why);
		return 1;
	}
	kprintf("TESTGUEST PASS %s\n", name);
	return 0;
}

void cmd_selftest(void)
{
	uint64_t t0 = rdtsc();
	int failed = 0;

	kprintf("TESTGUEST INFO boot: %lu ms from the PVH entry to READY\n",
		(ready_tsc - boot_tsc) / tsc_per_ms);
	failed += report("acpi", test_acpi());
	failed += report("memory", test_memory());
	failed += report("timer", test_timer());
	failed += report("smp", test_smp());
	failed += report("interrupts", test_interrupts());
	kprintf("TESTGUEST INFO selftest took %lu ms\n", ms_since(t0));
	if (failed)
		kprintf("TESTGUEST FAIL selftest: %d sub-test%s failed\n", failed,
			failed > 1 ? "s" : "");
	else
		kprintf("TESTGUEST PASS selftest\n");
	power_off();
}
