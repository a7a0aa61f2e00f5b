/* The test guest's CPL3 side: boot sequence up to the READY line, the
 * commands chosen by testguest.run= (selftest lives in selftest.c), the AP
 * idle loop, waiting, power-off and the ACPI power button.  Every line it
 * prints on COM1 starts with "TESTGUEST "; see README.md for the protocol. */
#include "guest.h"
#include "virtio.h"

bool halt_ok;
uint64_t ready_tsc;
static bool uart_rx_irq;

uint64_t deadline_ms(uint64_t ms)
{
	return rdtsc() + ms * tsc_per_ms;
}

/* Wait until *p != old or the deadline passes; true if it changed.  Halts
 * between checks (an interrupt wakes the CPU; the BSP's timer ticks every
 * TICK_MS) unless the timer was found dead at boot, then spins. */
bool wait_change(volatile uint32_t *p, uint32_t old, uint64_t deadline)
{
	while (*p == old) {
		if (rdtsc() >= deadline)
			return false;
		if (halt_ok)
			guest_call(GC_WAIT, (uint64_t)p, old);
		else
			cpu_relax();
	}
	return true;
}

/* The same without halting: for events another CPU causes without an
 * interrupt to us (an AP coming online, an IPI acknowledged). */
bool spin_change(volatile uint32_t *p, uint32_t old, uint64_t deadline)
{
	while (*p == old)
		if (rdtsc() >= deadline)
			return false;
		else
			cpu_relax();
	return true;
}

void delay_ms(uint64_t ms)
{
	volatile uint32_t never = 0;

	wait_change(&never, 0, deadline_ms(ms));
}

/* Wait for n timer ticks of the BSP. */
static void wait_ticks(uint32_t n)
{
	volatile uint32_t *t = &cpus[0].ticks;
	uint32_t target = *t + n;

	if (!halt_ok) {
		delay_ms(n * TICK_MS);
		return;
	}
	while ((int32_t)(*t - target) < 0)
		wait_change(t, *t, UINT64_MAX);
}

void power_off(void)
{
	if (plat.pm1a_cnt) {
		outw(plat.pm1a_cnt, S5_SLP_TYP << 10 | 1 << 13);   /* SLP_EN */
		delay_ms(5000);
		kprintf("TESTGUEST FAIL poweroff: still running 5 s after writing PM1a_CNT (port 0x%x)\n",
			plat.pm1a_cnt);
	} else {
		kprintf("TESTGUEST FAIL poweroff: no PM1a control block in the FADT\n");
	}
	guest_call(GC_HALT_FOREVER, 0, 0);
	for (;;)
		;
}

/* ---- the ACPI fixed power button ---- */

#define PM1_PWRBTN      (1u << 8)       /* PWRBTN_STS / PWRBTN_EN */
#define PM1_CNT_SCI_EN  (1u << 0)

static volatile uint32_t power_button_presses;  /* written at CPL0 */
static bool power_button_armed;

/* CPL0, from VEC_SCI.  The SCI is level-triggered: clear every status bit
 * seen (write 1 to clear) before the EOI, or it fires again at once. */
void power_button_irq(void)
{
	uint16_t sts = inw(plat.pm1a_evt);

	if (sts & PM1_PWRBTN)
		power_button_presses++;
	outw(plat.pm1a_evt, sts);
}

/* Take the power button as an OS does: ACPI mode on (the SMI handshake, if
 * the FADT asks for one), a stale press cleared, the SCI routed through the
 * IOAPIC (per the MADT's override for its IRQ), PWRBTN_EN set.  Returns
 * NULL or why not.  testguest.powerbutton=ignore leaves it off, for tests
 * of a VMM's shutdown timeout. */
static const char *power_button_arm(void)
{
	char opt[16];
	uint16_t en;

	if (cmdline_value("testguest.powerbutton", opt, sizeof(opt)) && !strcmp(opt, "ignore"))
		return NULL;
	if (!plat.pm1a_evt || plat.pm1_evt_len < 4 || !plat.pm1a_cnt)
		return "no PM1a event block in the FADT";
	if (plat.sci_irq > 15)
		return "SCI_INT is not an ISA IRQ";
	if (plat.smi_cmd && plat.acpi_enable && !(inw(plat.pm1a_cnt) & PM1_CNT_SCI_EN)) {
		uint64_t dl = deadline_ms(1000);

		outb(plat.smi_cmd, plat.acpi_enable);
		while (!(inw(plat.pm1a_cnt) & PM1_CNT_SCI_EN))
			if (rdtsc() >= dl)
				return "SCI_EN still clear 1 s after the ACPI_ENABLE handshake";
	}
	en = plat.pm1a_evt + plat.pm1_evt_len / 2;
	outw(plat.pm1a_evt, PM1_PWRBTN);
	if (ioapic_route_isa(plat.sci_irq, VEC_SCI, lapic_id()) < 0)
		return "cannot route the SCI through the IOAPIC";
	outw(en, inw(en) | PM1_PWRBTN);
	power_button_armed = true;
	return NULL;
}

/* For the commands that wait for ever: a press powers off, as an OS would. */
static void power_button_poll(void)
{
	if (!power_button_presses)
		return;
	kprintf("TESTGUEST POWER BUTTON\n");
	power_off();
}

static void power_button_setup(const char *cmd)
{
	const char *why = power_button_arm();

	if (why)
		kprintf("TESTGUEST INFO %s: power button ignored: %s\n", cmd, why);
}

/* Some real CPL3 work for each CPU, checked by the BSP (selftest smp). */
uint64_t cpu_work(uint32_t index)
{
	uint64_t x = 0x243f6a8885a308d3ULL ^ index;

	for (uint32_t i = 0; i < 1000000; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL + i;
	return x;
}

/* An AP idles here at CPL3, acknowledging IPIs, until the BSP hands it a
 * job (smp_run); a job may run for ever (the dirty workload). */
void ap_main(struct cpu *c)
{
	c->work = cpu_work(c->index);
	barrier();
	c->online = 1;
	for (;;) {
		uint32_t seen = c->ipis;
		void (*job)(struct cpu *) = c->job;

		if (job) {
			c->job = NULL;
			job(c);
		}
		c->ipi_acks = seen;
		wait_change(&c->ipis, seen, UINT64_MAX);
	}
}

/* BSP: have AP @c run @job at CPL3.  The job is stored before the IPI is
 * sent (stores stay in order on x86, the fence keeps the compiler's too),
 * and an AP halted in ap_main wakes on the IPI and finds it. */
void smp_run(struct cpu *c, void (*job)(struct cpu *))
{
	c->job = job;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	lapic_send_ipi(c->apic_id, 0x4000 | VEC_IPI);      /* fixed, assert */
}

/* ---- commands ---- */

#define HB_QWORDS  (1u << 17)           /* 1 MiB */
#define HB_STRIPES 16
static uint64_t hb_buf[HB_QWORDS] __attribute__((section(".bss.noinit")));

/* Each beat rewrites one stripe (64 KiB) from its old contents and n, then
 * checksums all of it: the sequence of checksums depends on the buffer's
 * whole history, so a page lost or stale after migration changes it. */
static void cmd_heartbeat(void)
{
	power_button_setup("heartbeat");
	for (uint32_t i = 0; i < HB_QWORDS; i++)
		hb_buf[i] = i * 0x9e3779b97f4a7c15ULL;
	for (uint64_t n = 0;; n++) {
		uint32_t per = HB_QWORDS / HB_STRIPES, s = n % HB_STRIPES;
		uint64_t h = 0xcbf29ce484222325ULL;

		wait_ticks(100 / TICK_MS);
		power_button_poll();
		for (uint32_t i = s * per; i < (s + 1) * per; i++)
			hb_buf[i] = hb_buf[i] * 6364136223846793005ULL + n + i;
		for (uint32_t i = 0; i < HB_QWORDS; i++) {
			h = (h ^ hb_buf[i]) * 0x100000001b3ULL;
			h ^= h >> 29;   /* let high bits reach the low ones */
		}
		kprintf("TESTGUEST HEARTBEAT %lu %016lx\n", n, h);
	}
}

static void echo_line(char *line, size_t n)
{
	line[n] = 0;
	kprintf("TESTGUEST ECHO %s\n", line);
	if (!strcmp(line, "quit")) {
		kprintf("TESTGUEST PASS echo\n");
		power_off();
	}
}

/* Lines end at CR or LF; empty lines (the LF of a CRLF) are skipped,
 * unprintable bytes dropped, over-long lines split. */
static void cmd_echo(void)
{
	char line[200];
	size_t n = 0;

	power_button_setup("echo");
	kprintf("TESTGUEST ECHO READY\n");
	for (;;) {
		uint32_t head = serial_rx_head;
		char c;

		power_button_poll();
		while (serial_getc(&c)) {
			if (c == '\r' || c == '\n') {
				if (n)
					echo_line(line, n);
				n = 0;
			} else if (c >= 0x20 && c < 0x7f) {
				line[n++] = c;
				if (n == sizeof(line) - 1) {
					echo_line(line, n);
					n = 0;
				}
			}
		}
		if (uart_rx_irq)        /* bounded: to see the power button */
			wait_change(&serial_rx_head, head, power_button_armed ?
				    deadline_ms(100) : UINT64_MAX);
		else
			delay_ms(1);
	}
}

static void cmd_poweroff(void)
{
	kprintf("TESTGUEST PASS poweroff\n");
	power_off();
}

static void cmd_reset(void)
{
	outb(0x64, 0xfe);               /* i8042: pulse the reset line */
	delay_ms(1000);
	kprintf("TESTGUEST FAIL reset: still running 1 s after the i8042 reset command\n");
	power_off();
}

static void cmd_reset_cf9(void)
{
	outb(0xcf9, 0x06);              /* reset control: full reset, do it */
	delay_ms(1000);
	kprintf("TESTGUEST FAIL reset-cf9: still running 1 s after writing 0x6 to port 0xcf9\n");
	power_off();
}

static void cmd_triplefault(void)
{
	guest_call(GC_TRIPLEFAULT, 0, 0);
	kprintf("TESTGUEST FAIL triplefault: survived a fault with an empty IDT\n");
	power_off();
}

static const struct {
	const char *name;
	void (*run)(void);
} commands[] = {
	{ "selftest", cmd_selftest },
	{ "heartbeat", cmd_heartbeat },
	{ "echo", cmd_echo },
	{ "poweroff", cmd_poweroff },
	{ "reset", cmd_reset },
	{ "reset-cf9", cmd_reset_cf9 },
	{ "triplefault", cmd_triplefault },
	{ "rng", cmd_rng },
	{ "blk", cmd_blk },
	{ "console", cmd_console },
	{ "net", cmd_net },
	{ "netbench", cmd_netbench },
	{ "virtio-bad", cmd_virtio_bad },
	{ "blkloop", cmd_blkloop },
	{ "rngloop", cmd_rngloop },
	{ "netloop", cmd_netloop },
	{ "consoleloop", cmd_consoleloop },
};

/* Spin (the halt path needs the timer) up to 500 ms for two ticks. */
static bool timer_ticking(struct cpu *c)
{
	uint32_t start = c->ticks;
	uint64_t dl = deadline_ms(500);

	while (c->ticks - start < 2 && rdtsc() < dl)
		cpu_relax();
	return c->ticks - start >= 2;
}

void bsp_main(struct cpu *c)
{
	char cmd[64];
	bool have_start_info;

	serial_init();
	c->online = 1;
	have_start_info = platform_discover(boot_start_info) == 0;
	clock_calibrate();
	lapic_timer_start();
	halt_ok = timer_ticking(c);
	uart_gsi = ioapic_route_isa(4, VEC_UART, lapic_id());
	if (uart_gsi >= 0) {
		serial_enable_rx_irq();
		uart_rx_irq = true;
	}
	smp_start_aps();
	ready_tsc = rdtsc();
	kprintf("TESTGUEST READY cpus=%u mem=%lu\n", ncpus_online, plat.ram_bytes >> 20);

	if (!have_start_info) {
		kprintf("TESTGUEST FAIL cmdline: no valid PVH start_info at 0x%x\n", boot_start_info);
		power_off();
	}
	if (!cmdline_value("testguest.run", cmd, sizeof(cmd))) {
		kprintf("TESTGUEST FAIL cmdline: no testguest.run= in \"%s\"\n", plat.cmdline);
		power_off();
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name)) {
			commands[i].run();
			power_off();
		}
	if (!memcmp(cmd, "dirty:", 6)) {
		cmd_dirty(cmd + 6);
		power_off();
	}
	if (!memcmp(cmd, "blkbench:", 9)) {
		cmd_blkbench(cmd + 9);
		power_off();
	}
	kprintf("TESTGUEST FAIL %s: unknown command\n", cmd);
	power_off();
}
