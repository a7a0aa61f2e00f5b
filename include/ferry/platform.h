/* The machine ferry builds: fixed addresses, ports and interrupt numbers.
 * One place, so that the ACPI tables, the device models and the boot code
 * agree. */
#ifndef FERRY_PLATFORM_H
#define FERRY_PLATFORM_H

/* Guest-physical layout below 1 MiB. */
#define PLAT_GDT_GPA          0x0500ULL   /* boot GDT for the BSP */
#define PLAT_ZERO_PAGE_GPA    0x7000ULL   /* Linux boot_params */
#define PLAT_START_INFO_GPA   0x6000ULL   /* PVH hvm_start_info + memmap */
#define PLAT_PML4_GPA         0x9000ULL   /* boot page tables (64-bit entry) */
#define PLAT_PDPT_GPA         0xA000ULL
#define PLAT_PD_GPA           0xB000ULL   /* 4 pages: identity map of 4 GiB */
#define PLAT_CMDLINE_GPA      0x20000ULL
#define PLAT_CMDLINE_MAX      0x10000ULL  /* 64 KiB */
#define PLAT_EBDA_GPA         0x9FC00ULL  /* RAM below 640 KiB ends here */
#define PLAT_ACPI_GPA         0xE0000ULL  /* RSDP first (BIOS search area) */
#define PLAT_ACPI_SIZE        0x20000ULL  /* up to 1 MiB */
#define PLAT_KERNEL_GPA       0x100000ULL /* bzImage protected-mode code */

/* 32-bit hole: [3 GiB, 4 GiB). */
#define PLAT_PCI_MMIO_GPA     0xC0000000ULL /* PCI BAR window ... */
#define PLAT_PCI_MMIO_SIZE    0x20000000ULL /* ... 512 MiB */
/* virtio-mmio devices (--transport mmio): 4 KiB each, announced to Linux on
 * the command line (virtio_mmio.device=4K@ADDR:GSI), each on its own GSI. */
#define PLAT_VIRTIO_MMIO_GPA  0xE0000000ULL
#define PLAT_VIRTIO_MMIO_SIZE 0x1000ULL
#define PLAT_VIRTIO_MMIO_MAX  8
#define PLAT_VIRTIO_MMIO_GSI(i) (16 + (i))
#define PLAT_IOAPIC_GPA       0xFEC00000ULL
#define PLAT_LAPIC_GPA        0xFEE00000ULL
#define PLAT_TSS_GPA          0xFFFBD000ULL /* KVM_SET_TSS_ADDR: 3 pages */
#define PLAT_IDENTITY_GPA     0xFFFBC000ULL /* KVM_SET_IDENTITY_MAP_ADDR */

/* Port I/O. */
#define PLAT_COM1_PORT        0x3F8
#define PLAT_COM1_IRQ         4
#define PLAT_I8042_DATA_PORT  0x60
#define PLAT_I8042_CMD_PORT   0x64
#define PLAT_RTC_PORT         0x70        /* 0x70 index, 0x71 data */
#define PLAT_RTC_IRQ          8
#define PLAT_DEBUG_PORT       0x402       /* SeaBIOS/QEMU debug console */
#define PLAT_PCI_CONFIG_PORT  0xCF8       /* 0xcf8 address, 0xcfc-0xcff data */
#define PLAT_RESET_PORT       0xCF9       /* reset control register */
#define PLAT_PCI_IO_PORT      0xC000      /* PCI I/O BAR window ... */
#define PLAT_PCI_IO_SIZE      0x4000      /* ... 16 KiB */

/* ACPI fixed hardware (PM1a event/control blocks, PM timer), in I/O space. */
#define PLAT_ACPI_PM_PORT     0x600
#define PLAT_PM1_EVT_PORT     (PLAT_ACPI_PM_PORT + 0x0) /* 4 bytes: STS, EN */
#define PLAT_PM1_CNT_PORT     (PLAT_ACPI_PM_PORT + 0x4) /* 2 bytes */
#define PLAT_PM_TMR_PORT      (PLAT_ACPI_PM_PORT + 0x8) /* 4 bytes */
#define PLAT_ACPI_SCI_IRQ     9
/* SLP_TYP value of S5 in our DSDT's \_S5 (QEMU uses 0 too). */
#define PLAT_S5_SLP_TYP       0

/* vCPUs take APIC ids 0..N-1.  The IOAPIC keeps id 0 all the same: that is
 * what KVM's in-kernel IOAPIC resets its id register to, QEMU's MADT says the
 * same, and 64-bit Linux only uses the id as a name (IOAPIC and LAPIC ids live
 * in separate spaces since the APIC bus went away). */
#define PLAT_IOAPIC_ID        0
#define PLAT_IOAPIC_PINS      24

/* PCI INTx routing (the DSDT's _PRT): pin 0..3 = INTA..INTD of the device in
 * @slot on bus 0 raises GSI 16..23.  Swizzled by slot so that the INTA pins
 * of neighbouring slots do not share a line.  Level-triggered; the
 * device asserts the line with level 1. */
#define PLAT_PCI_INTX_GSI_BASE 16
#define PLAT_PCI_INTX_GSI(slot, pin) \
	(PLAT_PCI_INTX_GSI_BASE + (((slot) + (pin)) % 8))

#endif
