/* The CPL0 core: final page tables, the GDT/IDT and one TSS per CPU, the
 * interrupt dispatcher and the "guest calls" (ud2 from CPL3).  On PVM hosts
 * CPL0 code is emulated at about a microsecond per instruction, so this file
 * does the least it can and hands everything else to CPL3. */
#include "guest.h"

#define PTE_P   0x001ULL
#define PTE_W   0x002ULL
#define PTE_U   0x004ULL
#define PTE_PS  0x080ULL
#define PTE_RWU (PTE_P | PTE_W | PTE_U)

#define GIB     (1ULL << 30)

/* Fully written before use, so the 32-bit entry need not zero them. */
#define NOINIT  __attribute__((section(".bss.noinit")))

/* Page tables (entry.S fills pml4[0], pdpt[0] and boot_pd). */
uint64_t pml4[512] __attribute__((aligned(4096)));
uint64_t pdpt[512] __attribute__((aligned(4096)));
uint64_t boot_pd[512] __attribute__((aligned(4096))) NOINIT;
/* Without 1 GiB pages, every GiB past the first gets one of these. */
#define MAX_PD_GIB 64
static uint64_t extra_pd[MAX_PD_GIB][512] __attribute__((aligned(4096))) NOINIT;
uint64_t mapped_top;                    /* identity map covers [0, mapped_top) */

uint8_t kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(4096))) NOINIT;
static uint8_t ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(4096))) NOINIT;

/* Flat 64-bit code and data for CPL0 and CPL3; TSS descriptors follow. */
uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16))) = {
	[1] = 0x00af9a000000ffffULL,    /* SEL_KCODE: 64-bit, DPL0 */
	[2] = 0x00cf92000000ffffULL,    /* SEL_KDATA */
	[3] = 0x00cff2000000ffffULL,    /* SEL_UDATA: DPL3 */
	[4] = 0x00affa000000ffffULL,    /* SEL_UCODE: 64-bit, DPL3 */
};

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
};
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idt_desc;

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

/* CPL3 does its own port I/O (IOPL is ignored on PVM), so every TSS needs a
 * zeroed 8 KiB I/O permission bitmap.  They all share one: CPU i's TSS sits
 * (i + 1) * 128 bytes below the bitmap and its iomap_base reaches it.  The
 * bitmap is .bss, zeroed once by entry.S. */
#define TSS_SLOT 128
static struct {
	struct { struct tss t; uint8_t pad[TSS_SLOT - sizeof(struct tss)]; } slot[MAX_CPUS];
	uint8_t io_bitmap[8192];
	uint8_t io_bitmap_end;          /* 0xff, as the SDM asks */
} tss_area __attribute__((aligned(TSS_SLOT)));

struct cpu cpus[MAX_CPUS];
uint32_t ncpus_online = 1;
uint32_t boot_start_info;
uint64_t boot_tsc;                      /* TSC at the PVH entry */
volatile uint64_t ap_boot_stack;
volatile uint32_t ap_boot_index;

/* What the stubs in entry.S push, lowest address first. */
struct frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

extern const uint64_t isr_table[], isr_table_end[];
void enter_user(void (*rip)(struct cpu *), uint64_t rsp, struct cpu *arg)
	__attribute__((noreturn));
void interrupt_dispatch(struct frame *f);

static bool cpu_has_1g_pages(void)
{
	uint32_t a = 0x80000000, b, c = 0, d;

	asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	if (a < 0x80000001)
		return false;
	a = 0x80000001;
	c = 0;
	asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return d & (1u << 26);
}

/* Extend the boot map (first GiB) to all RAM and at least the 32-bit MMIO
 * hole (IOAPIC, LAPIC), identity and user-accessible.  The hole is mapped
 * write-back like RAM: emulated MMIO traps whatever the memory type. */
static void map_memory(uint64_t ram_top)
{
	uint64_t top = ram_top > 4 * GIB ? ram_top : 4 * GIB;
	uint64_t gibs = (top + GIB - 1) / GIB;
	bool big = cpu_has_1g_pages();

	if (gibs > 512)
		gibs = 512;
	if (!big && gibs > MAX_PD_GIB + 1)
		gibs = MAX_PD_GIB + 1;
	for (uint64_t g = 1; g < gibs; g++) {
		if (big) {
			pdpt[g] = g * GIB | PTE_RWU | PTE_PS;
			continue;
		}
		uint64_t *pd = extra_pd[g - 1];
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (g * GIB + (i << 21)) | PTE_RWU | PTE_PS;
		pdpt[g] = (uint64_t)pd | PTE_RWU;
	}
	mapped_top = gibs * GIB;
	asm volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
}

/* CPL3: map [pa, pa + len) too (a 64-bit BAR above RAM), identity and
 * user-accessible.  Only not-present PDPT entries are filled, and the CPU
 * caches no not-present entries: no TLB flush (a CPL0 step) is needed. */
int map_mmio(uint64_t pa, uint64_t len)
{
	bool big = cpu_has_1g_pages();

	if (!len || pa + len < pa)
		return -1;
	for (uint64_t g = pa / GIB; g <= (pa + len - 1) / GIB; g++) {
		if (g >= 512)
			return -1;
		if (g * GIB < mapped_top || (pdpt[g] & PTE_P))
			continue;
		if (!big && g > MAX_PD_GIB)
			return -1;
		if (big) {
			pdpt[g] = g * GIB | PTE_RWU | PTE_PS;
			continue;
		}
		for (uint64_t i = 0; i < 512; i++)
			extra_pd[g - 1][i] = (g * GIB + (i << 21)) | PTE_RWU | PTE_PS;
		barrier();
		pdpt[g] = (uint64_t)extra_pd[g - 1] | PTE_RWU;
	}
	return 0;
}

static void build_idt(void)
{
	for (const uint64_t *e = isr_table; e < isr_table_end; e += 2) {
		uint64_t v = e[0], a = e[1];

		idt[v] = (struct idt_gate){
			.off0 = a, .sel = SEL_KCODE, .type = 0x8e,   /* interrupt gate, DPL0 */
			.off1 = a >> 16, .off2 = a >> 32,
		};
	}
	idt_desc.limit = sizeof(idt) - 1;
	idt_desc.base = (uint64_t)idt;
}

/* Per-CPU CPL0 state: TSS (RSP0 + I/O bitmap), IDT, LAPIC enabled. */
static void cpu_init_cpl0(uint32_t i)
{
	struct tss *t = &tss_area.slot[MAX_CPUS - 1 - i].t;
	uint64_t base = (uint64_t)t;
	uint64_t limit = (i + 1) * TSS_SLOT + sizeof(tss_area.io_bitmap);
	uint32_t sel = (GDT_TSS_INDEX + 2 * i) * 8;

	t->rsp[0] = (uint64_t)kstacks[i] + KSTACK_SIZE;
	t->iomap_base = (i + 1) * TSS_SLOT;
	gdt[sel / 8] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
		       ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt[sel / 8 + 1] = base >> 32;
	asm volatile("lidt %0" :: "m"(idt_desc));
	asm volatile("ltr %w0" :: "r"(sel));
	lapic_cpl0_init(i == 0);
}

static uint64_t user_stack(uint32_t i)
{
	/* As if called: rsp % 16 == 8 at the entry of the CPL3 function. */
	return (uint64_t)ustacks[i] + USTACK_SIZE - 8;
}

void bsp_init_cpl0(uint32_t start_info)
{
	boot_start_info = start_info;
	map_memory(start_info_ram_top(start_info));
	build_idt();
	tss_area.io_bitmap_end = 0xff;
	cpus[0].index = 0;
	cpu_init_cpl0(0);
	enter_user(bsp_main, user_stack(0), &cpus[0]);
}

void ap_init_cpl0(uint32_t index)
{
	cpu_init_cpl0(index);
	enter_user(ap_main, user_stack(index), &cpus[index]);
}

/* Interrupts from CPL3 land at the top of this CPU's kernel stack, and
 * nested ones (during GC_WAIT) further down the same stack. */
static struct cpu *this_cpu(void)
{
	uintptr_t i = ((uintptr_t)__builtin_frame_address(0) - (uintptr_t)kstacks) / KSTACK_SIZE;

	return &cpus[i < MAX_CPUS ? i : 0];
}

static void __attribute__((noreturn)) fatal(struct frame *f, struct cpu *c)
{
	static volatile uint32_t dying;

	if (!dying++) {
		kprintf("TESTGUEST FAIL exception: vector %lu error 0x%lx rip 0x%lx rsp 0x%lx cpu %u\n",
			f->vector, f->error, f->rip, f->rsp, c->index);
		if (plat.pm1a_cnt)
			outw(plat.pm1a_cnt, 1 << 13);   /* SLP_TYP 0 (S5) | SLP_EN */
	}
	for (;;)
		asm volatile("cli; hlt");
}

/* CPL3 cannot enter CPL0 by syscall or int n on PVM, but exceptions work:
 * a ud2 with GC_MAGIC | nr in rax is a call, arguments in rdi and rsi. */
static void guest_call_cpl0(struct frame *f)
{
	static const struct { uint16_t limit; uint64_t base; } __attribute__((packed)) no_idt;

	switch (f->rax & 0xffff) {
	case GC_WAIT:
		/* Checked with interrupts off, and sti's shadow covers hlt: an
		 * interrupt that changes *ptr cannot slip in between. */
		if (*(volatile uint32_t *)f->rdi == (uint32_t)f->rsi)
			asm volatile("sti; hlt; cli" ::: "memory");
		break;
	case GC_HALT_FOREVER:
		for (;;)
			asm volatile("cli; hlt");
	case GC_TRIPLEFAULT:
		/* #UD cannot be delivered through an empty IDT, nor can #GP or
		 * #DF after it: the CPU shuts down. */
		asm volatile("lidt %0; ud2" :: "m"(no_idt));
		break;
	}
	f->rax = 0;
}

void interrupt_dispatch(struct frame *f)
{
	struct cpu *c = this_cpu();

	switch (f->vector) {
	case VEC_TIMER:
		c->ticks++;
		lapic_eoi();
		return;
	case VEC_IPI:
		c->ipis++;
		lapic_eoi();
		return;
	case VEC_UART:
		serial_irq();
		lapic_eoi();
		return;
	case VEC_SCI:
		power_button_irq();
		lapic_eoi();
		return;
	case VEC_VIRTIO ... VEC_VIRTIO + 15:
		virtio_irq(f->vector - VEC_VIRTIO);
		lapic_eoi();
		return;
	case VEC_SPURIOUS:
		return;                 /* no EOI for spurious interrupts */
	case 6:
		if ((f->rax & 0xffff0000) == GC_MAGIC && *(const uint16_t *)f->rip == 0x0b0f) {
			f->rip += 2;
			guest_call_cpl0(f);
			return;
		}
		break;
	}
	fatal(f, c);
}
