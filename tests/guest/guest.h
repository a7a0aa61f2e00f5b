/* The test guest's shared definitions: fixed vectors and selectors, per-CPU
 * state, the platform facts discovered at boot, and the calls between the
 * CPL0 core (cpu.c), discovery (acpi.c), drivers (apic.c, serial.c) and the
 * commands (main.c).  Included from assembly too (constants only). */
#ifndef TESTGUEST_GUEST_H
#define TESTGUEST_GUEST_H

#define MAX_CPUS        32
#define KSTACK_SIZE     8192            /* CPL0 stack per CPU (TSS.RSP0) */
#define USTACK_SIZE     16384           /* CPL3 stack per CPU */

/* GDT layout, shared by all CPUs; each CPU's TSS descriptor follows. */
#define SEL_KCODE       0x08
#define SEL_KDATA       0x10
#define SEL_UDATA       0x1b            /* index 3, RPL 3 */
#define SEL_UCODE       0x23            /* index 4, RPL 3 */
#define GDT_TSS_INDEX   5
#define GDT_ENTRIES     (GDT_TSS_INDEX + 2 * MAX_CPUS)

/* Interrupt vectors (exceptions are 0..31). */
#define VEC_TIMER       0x30
#define VEC_IPI         0x31
#define VEC_UART        0x34
#define VEC_SCI         0x35            /* ACPI SCI: the power button */
#define VEC_VIRTIO      0x40            /* 16 virtio interrupt slots (virtio.h) */
#define VEC_SPURIOUS    0xff

/* The AP trampoline is copied here; the SIPI vector is its page number. */
#define TRAMPOLINE_PA   0x8000

#define LAPIC_PA        0xfee00000
#define TICK_MS         10              /* the BSP's LAPIC timer period */
#define S5_SLP_TYP      0               /* \_S5 of ferry's DSDT and QEMU's */

#ifndef __ASSEMBLER__
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- per-CPU state ---- */
struct cpu {
	uint32_t index;                 /* 0 = BSP */
	uint32_t apic_id;
	volatile uint32_t online;       /* set by the CPU itself, at CPL3 */
	volatile uint32_t ticks;        /* LAPIC timer interrupts (CPL0) */
	volatile uint32_t ipis;         /* fixed IPIs received (CPL0) */
	volatile uint32_t ipi_acks;     /* IPIs seen by the CPL3 loop */
	volatile uint64_t work;         /* result of the CPU's CPL3 work */
	void (*volatile job)(struct cpu *);     /* for an AP: run at CPL3 (smp_run) */
};

extern struct cpu cpus[MAX_CPUS];
extern uint32_t ncpus_online;

/* ---- what the platform told us (filled once, at CPL3, by acpi.c) ---- */
#define MAX_MEMMAP      64
#define CMDLINE_MAX     1024
#define MAX_ISO         16

struct memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct platform {
	char cmdline[CMDLINE_MAX];
	struct memmap_entry memmap[MAX_MEMMAP];
	uint32_t memmap_entries;
	uint64_t ram_bytes;             /* sum of type-1 entries */

	uint64_t rsdp;                  /* 0 if none found */
	uint32_t ncpus;                 /* enabled LAPICs in the MADT */
	uint32_t apic_ids[MAX_CPUS];
	uint64_t ioapic_addr;           /* 0 if none */
	uint32_t ioapic_gsi_base;
	struct { uint8_t irq; uint32_t gsi; uint16_t flags; } iso[MAX_ISO];
	uint32_t niso;
	uint16_t pm1a_cnt;              /* 0 if no FADT */
	uint16_t pm1a_evt;              /* PM1a status; enable at + pm1_evt_len / 2 */
	uint8_t pm1_evt_len;
	uint8_t acpi_enable;            /* written to smi_cmd to enter ACPI mode */
	uint16_t smi_cmd;               /* 0: ACPI mode is always on */
	uint16_t sci_irq;               /* FADT SCI_INT (an ISA IRQ) */
	uint16_t pm_tmr;
	bool pm_tmr_32bit;
	char acpi_error[96];            /* first problem seen, "" if none */
};

extern struct platform plat;

/* ---- cpu.c: CPL0 core and the CPL3 -> CPL0 "guest calls" ---- */
void bsp_init_cpl0(uint32_t start_info);            /* from entry.S */
void ap_init_cpl0(uint32_t index);                  /* from entry.S */
extern volatile uint64_t ap_boot_stack;             /* read by entry.S */
extern volatile uint32_t ap_boot_index;
extern uint32_t boot_start_info;
extern uint64_t boot_tsc, ready_tsc;
extern uint64_t mapped_top;                         /* identity map: [0, top) */
int map_mmio(uint64_t pa, uint64_t len);            /* CPL3: extend it */

enum guest_call_nr {
	GC_WAIT = 1,            /* (ptr, old): halt until an interrupt if *ptr == old */
	GC_HALT_FOREVER,        /* cli; hlt, for good */
	GC_TRIPLEFAULT,         /* empty IDT, then a fault */
};
#define GC_MAGIC 0x7e570000u

/* A CPL3 -> CPL0 call: ud2 with the call number in rax (see cpu.c). */
static inline uint64_t guest_call(uint32_t nr, uint64_t a, uint64_t b)
{
	uint64_t ret;

	asm volatile("ud2" : "=a"(ret) : "a"((uint64_t)(GC_MAGIC | nr)), "D"(a), "S"(b)
		     : "memory");
	return ret;
}

/* ---- main.c, selftest.c (CPL3) ---- */
void bsp_main(struct cpu *c) __attribute__((noreturn));
void ap_main(struct cpu *c) __attribute__((noreturn));
void power_off(void) __attribute__((noreturn));
void power_button_irq(void);                        /* CPL0 */
void virtio_irq(uint32_t slot);                     /* CPL0, virtio.c */
uint64_t cpu_work(uint32_t index);
void smp_run(struct cpu *c, void (*job)(struct cpu *));
void cmd_selftest(void);
void cmd_dirty(const char *args);                   /* dirty.c */
extern int uart_gsi;                                /* -1: IRQ 4 not routed */

/* ---- acpi.c (CPL3, except ram_top at CPL0) ---- */
uint64_t start_info_ram_top(uint32_t start_info);
int platform_discover(uint32_t start_info);
const char *cmdline_value(const char *key, char *buf, size_t len);

/* ---- apic.c (CPL3 unless noted) ---- */
void lapic_cpl0_init(bool bsp);                     /* CPL0 */
void lapic_eoi(void);                               /* CPL0 */
uint32_t lapic_id(void);
int clock_calibrate(void);
void lapic_timer_start(void);
void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low);
int ioapic_route_isa(uint8_t irq, uint8_t vector, uint32_t apic_id);
int ioapic_route_gsi(uint32_t gsi, uint8_t vector, bool level, bool low, uint32_t apic_id);
void smp_start_aps(void);
extern uint64_t tsc_per_ms;
extern uint32_t lapic_ticks_per_period;

/* ---- serial.c ---- */
void serial_init(void);
void serial_putc(char c);
void serial_irq(void);                              /* CPL0 */
void serial_enable_rx_irq(void);
void serial_set_thre_irq(bool on);
bool serial_getc(char *c);
extern volatile uint32_t serial_thre_irqs;
extern volatile uint32_t serial_rx_head;
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- lib.c ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int vformat(char *buf, size_t len, const char *fmt, va_list ap);
int format(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- time and waiting (main.c; CPL3) ---- */
extern bool halt_ok;
bool wait_change(volatile uint32_t *p, uint32_t old, uint64_t deadline);
bool spin_change(volatile uint32_t *p, uint32_t old, uint64_t deadline);
uint64_t deadline_ms(uint64_t ms);
void delay_ms(uint64_t ms);

/* ---- small instructions ---- */
static inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void cpu_relax(void) { asm volatile("pause" ::: "memory"); }
static inline void barrier(void) { asm volatile("" ::: "memory"); }
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

#endif /* __ASSEMBLER__ */
#endif
