/* Interrupt hardware: the local APIC (enable, EOI, timer, IPIs), the IOAPIC
 * (routing an ISA IRQ, honouring the MADT's overrides), clock calibration
 * against the ACPI PM timer (or the PIT), and starting the APs.  APIC
 * registers are MMIO in a user-mapped page, so all of this runs at CPL3
 * except lapic_cpl0_init and lapic_eoi. */
#include "guest.h"

#define LAPIC_ID        0x020
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0b0
#define LAPIC_SVR       0x0f0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

#define LVT_MASKED      (1u << 16)
#define TIMER_PERIODIC  (1u << 17)
#define TIMER_DIV_16    0x3
#define ICR_PENDING     (1u << 12)
#define ICR_INIT        0x4500          /* INIT, level assert */
#define ICR_SIPI        0x4600          /* start-up, vector = page number */

#define TICK_MS         10              /* LAPIC timer period */
#define CAL_MS          20              /* calibration window */
#define PM_TMR_HZ       3579545
#define PIT_HZ          1193182

uint64_t tsc_per_ms;
uint32_t lapic_ticks_per_period;

extern uint8_t kstacks[MAX_CPUS][KSTACK_SIZE];
extern uint64_t pml4[];
extern const uint8_t gdt_desc[];
extern const char trampoline_start[], trampoline_end[], tramp_gdt_desc[], tramp_cr3[];

static uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_PA + reg); }
static void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_PA + reg, v); }

/* CPL0, before the CPU first enables interrupts.  KVM points the BSP's LINT0
 * at ExtINT, and an unprogrammed 8259 then delivers bogus vectors: mask
 * LINT0 (on every CPU, harmless on APs) and both PICs. */
void lapic_cpl0_init(bool bsp)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	if (bsp) {
		outb(0x21, 0xff);
		outb(0xa1, 0xff);
	}
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

/* Busy-wait `ms` (at most 50) on a fixed-frequency reference.  The spin
 * bounds keep a broken timer from hanging us; false means no reference. */
static bool reference_wait(uint32_t ms)
{
	uint32_t spins = 0;

	if (plat.pm_tmr) {
		uint32_t mask = plat.pm_tmr_32bit ? 0xffffffffu : 0xffffffu;
		uint32_t want = (uint64_t)PM_TMR_HZ * ms / 1000;
		uint32_t start = inl(plat.pm_tmr) & mask;

		while (((inl(plat.pm_tmr) - start) & mask) < want)
			if (++spins > 1000000)
				return false;
		return true;
	}
	/* PIT channel 2 in mode 0, gated by port 0x61 bit 0; OUT2 reads back
	 * in bit 5 once the count has run out. */
	uint32_t count = (uint64_t)PIT_HZ * ms / 1000;

	outb(0x61, (inb(0x61) & ~0x02) | 0x01);
	outb(0x43, 0xb0);
	outb(0x42, count & 0xff);
	outb(0x42, count >> 8);
	while (!(inb(0x61) & 0x20))
		if (++spins > 1000000)
			return false;
	return true;
}

/* Measure the TSC and the LAPIC timer (divide by 16) against the reference.
 * Without one, assume KVM's 1 GHz APIC bus and time the TSC against it. */
int clock_calibrate(void)
{
	uint64_t t0, t1;
	uint32_t cur;
	int ret = 0;

	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_16);
	lapic_write(LAPIC_TIMER_INIT, 0xffffffff);
	t0 = rdtsc();
	if (reference_wait(CAL_MS)) {
		cur = lapic_read(LAPIC_TIMER_CUR);
		t1 = rdtsc();
		lapic_ticks_per_period = (uint64_t)(0xffffffffu - cur) * TICK_MS / CAL_MS;
		tsc_per_ms = (t1 - t0) / CAL_MS;
	} else {
		uint32_t want = 1000000000 / 16 / 1000 * CAL_MS;

		ret = -1;
		while (0xffffffffu - lapic_read(LAPIC_TIMER_CUR) < want && rdtsc() - t0 < (1ULL << 34))
			cpu_relax();
		lapic_ticks_per_period = 1000000000 / 16 / 1000 * TICK_MS;
		tsc_per_ms = (rdtsc() - t0) / CAL_MS;
	}
	lapic_write(LAPIC_TIMER_INIT, 0);
	if (!lapic_ticks_per_period) {
		lapic_ticks_per_period = 1000000000 / 16 / 1000 * TICK_MS;
		ret = -1;
	}
	if (!tsc_per_ms) {
		tsc_per_ms = 1000000;
		ret = -1;
	}
	return ret;
}

/* Periodic TICK_MS interrupts on this CPU (only the BSP uses them: they pace
 * the heartbeat and bound every wait). */
void lapic_timer_start(void)
{
	lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_16);
	lapic_write(LAPIC_LVT_TIMER, TIMER_PERIODIC | VEC_TIMER);
	lapic_write(LAPIC_TIMER_INIT, lapic_ticks_per_period);
}

/* Only the BSP sends IPIs, and never from an interrupt handler, so the two
 * ICR writes cannot interleave with another sender. */
void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low)
{
	for (int i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LO) & ICR_PENDING); i++)
		cpu_relax();
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr_low);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(plat.ioapic_addr, reg);
	mmio_write32(plat.ioapic_addr + 0x10, v);
}

static uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(plat.ioapic_addr, reg);
	return mmio_read32(plat.ioapic_addr + 0x10);
}

/* Route one GSI to `vector` on one CPU, fixed delivery. */
int ioapic_route_gsi(uint32_t gsi, uint8_t vector, bool level, bool low, uint32_t apic_id)
{
	uint32_t pin, pins;

	if (!plat.ioapic_addr)
		return -1;
	pins = ((ioapic_read(1) >> 16) & 0xff) + 1;
	pin = gsi - plat.ioapic_gsi_base;
	if (gsi < plat.ioapic_gsi_base || pin >= pins)
		return -1;
	ioapic_write(0x10 + 2 * pin + 1, apic_id << 24);
	ioapic_write(0x10 + 2 * pin, vector | (uint32_t)low << 13 | (uint32_t)level << 15);
	return (int)gsi;
}

/* Route ISA IRQ `irq` to `vector` on one CPU.  ISA IRQs are edge and
 * active-high unless the MADT overrides them (and their GSI). */
int ioapic_route_isa(uint8_t irq, uint8_t vector, uint32_t apic_id)
{
	uint32_t gsi = irq;
	uint16_t flags = 0;

	for (uint32_t i = 0; i < plat.niso; i++)
		if (plat.iso[i].irq == irq) {
			gsi = plat.iso[i].gsi;
			flags = plat.iso[i].flags;
		}
	return ioapic_route_gsi(gsi, vector, ((flags >> 2) & 3) == 3, (flags & 3) == 3, apic_id);
}

/* Start one AP; true once it reports in from CPL3 (its `online` flag). */
static bool start_ap(struct cpu *c)
{
	ap_boot_index = c->index;
	ap_boot_stack = (uint64_t)kstacks[c->index] + KSTACK_SIZE;
	barrier();
	lapic_send_ipi(c->apic_id, ICR_INIT);
	delay_ms(10);
	lapic_send_ipi(c->apic_id, ICR_SIPI | (TRAMPOLINE_PA >> 12));
	if (wait_change(&c->online, 0, deadline_ms(1)))
		return true;
	/* The second SIPI of the MP protocol; ignored by a CPU already out of
	 * wait-for-SIPI. */
	lapic_send_ipi(c->apic_id, ICR_SIPI | (TRAMPOLINE_PA >> 12));
	return wait_change(&c->online, 0, deadline_ms(2000));
}

/* Start every enabled CPU of the MADT, one at a time (they share the
 * trampoline and ap_boot_*).  One that does not come up stops the rest, so
 * that a late one cannot land on another's stack. */
void smp_start_aps(void)
{
	uint8_t *t = (uint8_t *)TRAMPOLINE_PA;
	uint32_t cr3 = (uint32_t)(uintptr_t)pml4;
	uint32_t bsp = lapic_id();

	memcpy(t, trampoline_start, trampoline_end - trampoline_start);
	memcpy(t + (tramp_gdt_desc - trampoline_start), gdt_desc, 6);  /* limit, base 31:0 */
	memcpy(t + (tramp_cr3 - trampoline_start), &cr3, 4);
	cpus[0].apic_id = bsp;

	for (uint32_t i = 0; i < plat.ncpus && ncpus_online < MAX_CPUS; i++) {
		struct cpu *c = &cpus[ncpus_online];

		if (plat.apic_ids[i] == bsp)
			continue;
		c->index = ncpus_online;
		c->apic_id = plat.apic_ids[i];
		if (!start_ap(c)) {
			kprintf("TESTGUEST INFO cpu %u (APIC id %u) did not come online\n",
				c->index, c->apic_id);
			break;
		}
		ncpus_online++;
	}
}
