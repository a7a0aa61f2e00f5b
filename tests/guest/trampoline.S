/* The AP trampoline: real-mode code that the BSP copies to TRAMPOLINE_PA
 * and starts with INIT-SIPI-SIPI.  It goes straight from real mode to long
 * mode (PE and PG together) on the BSP's GDT and page tables, which the BSP
 * patches into tramp_gdt_desc/tramp_cr3 after copying.  Few instructions:
 * each costs about a microsecond on PVM. */
#include "guest.h"

#define OFF(x) ((x) - trampoline_start)

	.section .rodata
	.code16
	.globl trampoline_start, trampoline_end, tramp_gdt_desc, tramp_cr3
trampoline_start:
	cli
	mov $(TRAMPOLINE_PA >> 4), %ax
	mov %ax, %ds
	lgdtl OFF(tramp_gdt_desc)
	mov $0x20, %eax                 /* CR4.PAE */
	mov %eax, %cr4
	mov OFF(tramp_cr3), %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx           /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov $0x80000011, %eax           /* PG | ET | PE; caches on */
	mov %eax, %cr0
	ljmpl $SEL_KCODE, $ap_entry64

	.p2align 3
tramp_gdt_desc:
	.word 0
	.long 0
	.p2align 2
tramp_cr3:
	.long 0
trampoline_end:
	.code64

	.section .note.GNU-stack, "", @progbits
