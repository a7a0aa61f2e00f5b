/* Entry points of the test guest: the PVH note and 32-bit entry that switch
 * the boot CPU to long mode, the 64-bit landing of the APs, the way down to
 * CPL3 (iretq), and the interrupt/exception stubs.  CPL0 code runs emulated
 * (~1 us per instruction on PVM hosts), so every loop here is tight. */
#include "guest.h"

#define PTE_P   0x001
#define PTE_W   0x002
#define PTE_U   0x004   /* everything is user-accessible: work runs at CPL3 */
#define PTE_PS  0x080

/* Xen PVH entry note, read by ferry's and QEMU's ELF loaders.  An 8-byte
 * descriptor like Linux's: QEMU reads a whole size_t from it, ferry accepts
 * 4 or 8 bytes. */
	.section .note.Xen, "a"
	.p2align 2
	.long 4                         /* namesz */
	.long 8                         /* descsz */
	.long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.quad pvh_entry

	.section .data
	.p2align 3
	.globl gdt_desc
gdt_desc:
	.word GDT_ENTRIES * 8 - 1
	.quad gdt

/* PVH: 32-bit protected mode, paging off, flat segments, EBX = start_info. */
	.section .text.entry, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	lgdt gdt_desc
	mov $SEL_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $(kstacks + KSTACK_SIZE), %esp

	/* Zero .bss (page tables, IDT, TSSs, per-CPU state). */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	shr $2, %ecx
	xor %eax, %eax
	rep stosl
	rdtsc                           /* for the boot time in selftest */
	mov %eax, boot_tsc
	mov %edx, boot_tsc + 4

	/* Boot map: the first GiB identity-mapped with 2 MiB pages; bsp_init_cpl0
	 * extends it to all RAM and the MMIO hole once it has read the memmap. */
	mov $boot_pd, %edi
	mov $(PTE_P | PTE_W | PTE_U | PTE_PS), %eax
	mov $512, %ecx
1:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 1b
	movl $(boot_pd + PTE_P + PTE_W + PTE_U), pdpt
	movl $(pdpt + PTE_P + PTE_W + PTE_U), pml4

	/* Long mode: PAE, CR3, EFER.LME, then paging. */
	mov %cr4, %eax
	or $0x20, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax
	mov %eax, %cr0
	ljmp $SEL_KCODE, $bsp_entry64

	.code64
bsp_entry64:
	mov $(kstacks + KSTACK_SIZE), %rsp
	mov %ebx, %edi
	call bsp_init_cpl0
	ud2

/* APs arrive here from the trampoline, already in long mode on our GDT and
 * page tables; the BSP left their stack and index in ap_boot_*. */
	.globl ap_entry64
ap_entry64:
	mov $SEL_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov ap_boot_stack(%rip), %rsp
	mov ap_boot_index(%rip), %edi
	call ap_init_cpl0
	ud2

/* enter_user(rip, rsp, arg): iretq to CPL3 with interrupts enabled; the
 * argument arrives in rdi. */
	.globl enter_user
enter_user:
	push $SEL_UDATA
	push %rsi
	push $0x202
	push $SEL_UCODE
	push %rdi
	mov %rdx, %rdi
	iretq

/* Interrupt and exception stubs.  Each pushes a dummy error code where the
 * CPU pushes none, then its vector, so interrupt_dispatch sees one frame
 * shape.  Only caller-saved registers are saved: the C handler preserves the
 * rest, and fewer pushes mean fewer emulated instructions. */
	.macro STUB vec, err=0
isr_\vec:
	.if !\err
	push $0
	.endif
	push $\vec
	jmp isr_common
	.endm

	.irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,VEC_TIMER,VEC_IPI,VEC_UART,VEC_SCI,0x40,0x41,0x42,0x43,0x44,0x45,0x46,0x47,0x48,0x49,0x4a,0x4b,0x4c,0x4d,0x4e,0x4f,VEC_SPURIOUS
	STUB \v
	.endr
	.irp v, 8,10,11,12,13,14,17,21,29,30
	STUB \v, 1
	.endr

isr_common:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	mov %rsp, %rdi
	call interrupt_dispatch
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	add $16, %rsp
	iretq

/* (vector, stub) pairs for the IDT builder in cpu.c. */
	.section .rodata
	.p2align 3
	.globl isr_table, isr_table_end
isr_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,VEC_TIMER,VEC_IPI,VEC_UART,VEC_SCI,0x40,0x41,0x42,0x43,0x44,0x45,0x46,0x47,0x48,0x49,0x4a,0x4b,0x4c,0x4d,0x4e,0x4f,VEC_SPURIOUS
	.quad \v, isr_\v
	.endr
isr_table_end:

	.section .note.GNU-stack, "", @progbits
