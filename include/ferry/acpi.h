/* ACPI tables for the guest: RSDP, XSDT, FADT (with FACS and DSDT), MADT.
 * Linux without MP-table support finds its CPUs, IOAPIC, PCI root bridge,
 * COM1 and power button here. */
#ifndef FERRY_ACPI_H
#define FERRY_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/err.h"
#include "ferry/mem.h"

struct acpi_config {
	unsigned int nr_cpus;      /* APIC ids 0..nr_cpus-1 */
};

/* Build all tables at PLAT_ACPI_GPA; *rsdp_gpa receives the RSDP address. */
int acpi_build(struct guest_mem *gm, const struct acpi_config *cfg,
	       uint64_t *rsdp_gpa, struct ferr *e);

/* Table checksum helper: the byte that makes the sum of @len bytes zero. */
uint8_t acpi_checksum(const void *buf, size_t len);

#endif
