/* ACPI tables in the BIOS area at PLAT_ACPI_GPA: RSDP (first, where Linux
 * scans for it), FACS, DSDT (AML from aml.c), FADT, MADT and the XSDT that
 * lists them.  The layout mirrors platform.h; the devices in devices/
 * implement what the FADT and DSDT announce. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/acpi.h"
#include "ferry/aml.h"
#include "ferry/platform.h"
#include "ferry/util.h"

#define ACPI_OEM_ID       "FERRY "
#define ACPI_OEM_TABLE_ID "FERRYVM "
#define ACPI_CREATOR_ID   "FRRY"
/* xAPIC MADT entries carry 8-bit APIC ids and 0xff is the broadcast id. */
#define ACPI_MAX_CPUS     255

struct acpi_header {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char sig[8];                /* "RSD PTR " */
	uint8_t checksum;           /* first 20 bytes */
	char oem_id[6];
	uint8_t revision;           /* 2: ACPI 2.0+, has the XSDT */
	uint32_t rsdt_addr;
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum;       /* whole structure */
	uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;           /* 1: system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;        /* 1 byte, 2 word, 3 dword */
	uint64_t address;
} __attribute__((packed));

/* FADT, revision 6 (276 bytes). */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg, sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT rev 6 is 276 bytes");

#define FADT_WBINVD         (1u << 0)
#define FADT_PROC_C1        (1u << 2)
#define FADT_SLP_BUTTON     (1u << 5)   /* no fixed-feature sleep button */
#define FADT_RESET_REG_SUP  (1u << 10)

#define BOOT_ARCH_LEGACY_DEVICES (1u << 0)
#define BOOT_ARCH_8042           (1u << 1)
#define BOOT_ARCH_NO_VGA         (1u << 2)

struct acpi_facs {
	char sig[4];
	uint32_t length;
	uint32_t hw_signature;
	uint32_t fw_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_fw_waking_vector;
	uint8_t version;
	uint8_t reserved[3];
	uint32_t ospm_flags;
	uint8_t reserved2[24];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

#define MADT_PCAT_COMPAT 1u

enum {
	MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4,
};

struct madt_lapic {
	uint8_t type, length;
	uint8_t uid, apic_id;
	uint32_t flags;             /* 1: enabled */
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length;
	uint8_t id, reserved;
	uint32_t addr;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, length;
	uint8_t bus, source;        /* bus 0: ISA */
	uint32_t gsi;
	uint16_t flags;             /* MPS INTI flags: polarity, trigger */
} __attribute__((packed));

#define MPS_ACTIVE_HIGH   0x1
#define MPS_LEVEL         (0x3 << 2)

struct madt_lapic_nmi {
	uint8_t type, length;
	uint8_t uid;                /* 0xff: all processors */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

/* The table area, built in host memory and copied to the guest at once. */
struct acpi_area {
	uint8_t *buf;
	size_t used;
};

static int acpi_alloc(struct acpi_area *ar, size_t len, size_t align,
		      uint64_t *gpa, struct ferr *e)
{
	size_t off = ALIGN_UP(ar->used, align);

	if (off > PLAT_ACPI_SIZE || len > PLAT_ACPI_SIZE - off)
		return ferr_set(e, -E2BIG, "ACPI tables exceed their %llu KiB area",
				(unsigned long long)(PLAT_ACPI_SIZE / KiB));
	ar->used = off + len;
	*gpa = PLAT_ACPI_GPA + off;
	return 0;
}

static void *acpi_at(struct acpi_area *ar, uint64_t gpa)
{
	return ar->buf + (gpa - PLAT_ACPI_GPA);
}

uint8_t acpi_checksum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

static void acpi_header_init(struct acpi_header *h, const char *sig,
			     uint32_t len, uint8_t rev)
{
	memcpy(h->sig, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

/* Sum the finished table to zero. */
static void acpi_seal(void *table)
{
	struct acpi_header *h = table;

	h->checksum = 0;
	h->checksum = acpi_checksum(table, h->length);
}

static struct acpi_gas acpi_io_gas(uint16_t port, uint8_t bytes)
{
	return (struct acpi_gas){
		.space_id = 1,
		.bit_width = (uint8_t)(bytes * 8),
		.access_size = bytes == 4 ? 3 : bytes == 2 ? 2 : 1,
		.address = port,
	};
}

/* \_SB.PCI0: bus 0, its windows, and INTx routing to GSIs 16..23.
 * PNP0A03 (PCI, not PCIe's PNP0A08): there is no MCFG/ECAM.  No _ADR: a
 * device has a _HID or an _ADR, never both (ACPI 6.5, 6.1). */
static void acpi_dsdt_pci(struct aml *a)
{
	aml_device(a, "PCI0");
	aml_name(a, "_HID"); aml_eisaid(a, "PNP0A03");
	aml_name(a, "_UID"); aml_int(a, 0);
	aml_name(a, "_BBN"); aml_int(a, 0);

	aml_name(a, "_CRS");
	aml_buffer(a);
	aml_res_word_bus(a, 0, 255);
	aml_res_io(a, PLAT_PCI_CONFIG_PORT, 8);
	/* All ports but the config mechanism's pass through the bridge. */
	aml_res_word_io(a, 0x0000, PLAT_PCI_CONFIG_PORT - 1);
	aml_res_word_io(a, 0x0d00, 0xffff);
	aml_res_dword_mem(a, (uint32_t)PLAT_PCI_MMIO_GPA,
			  (uint32_t)(PLAT_PCI_MMIO_GPA + PLAT_PCI_MMIO_SIZE - 1), 0);
	aml_res_end(a);

	/* _PRT entries: {slot << 16 | 0xffff (any function), pin, 0 (no link
	 * device: the last field is a GSI), GSI}. */
	aml_name(a, "_PRT");
	aml_package(a, 31 * 4);
	for (unsigned int slot = 1; slot < 32; slot++) {
		for (unsigned int pin = 0; pin < 4; pin++) {
			aml_package(a, 4);
			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, PLAT_PCI_INTX_GSI(slot, pin));
			aml_end(a);
		}
	}
	aml_end(a);
	aml_end(a);
}

/* A device with a fixed _HID, _UID and one I/O range plus an ISA IRQ. */
static void acpi_dsdt_isa_dev(struct aml *a, const char *name, const char *hid,
			      unsigned int uid, uint16_t port, uint8_t len,
			      unsigned int irq)
{
	aml_device(a, name);
	aml_name(a, "_HID"); aml_eisaid(a, hid);
	aml_name(a, "_UID"); aml_int(a, uid);
	aml_name(a, "_CRS");
	aml_buffer(a);
	aml_res_io(a, port, len);
	aml_res_irq_noflags(a, irq);
	aml_res_end(a);
	aml_end(a);
}

static int acpi_build_dsdt(struct aml *a, struct ferr *e)
{
	int ret;

	aml_scope(a, "\\_SB");
	acpi_dsdt_pci(a);
	acpi_dsdt_isa_dev(a, "COM1", "PNP0501", 1, PLAT_COM1_PORT, 8, PLAT_COM1_IRQ);
	acpi_dsdt_isa_dev(a, "RTC", "PNP0B00", 0, PLAT_RTC_PORT, 2, PLAT_RTC_IRQ);
	/* The button's presses arrive as the FADT's fixed-feature power
	 * button event (PM1 PWRBTN_STS); the device names it for the OS. */
	aml_device(a, "PWRB");
	aml_name(a, "_HID"); aml_eisaid(a, "PNP0C0C");
	aml_name(a, "_UID"); aml_int(a, 0);
	aml_end(a);
	aml_end(a);

	/* \_S5: SLP_TYPa, SLP_TYPb, reserved, reserved. */
	aml_name(a, "_S5");
	aml_package(a, 4);
	aml_int(a, PLAT_S5_SLP_TYP);
	aml_int(a, PLAT_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_end(a);

	ret = aml_finish(a);
	if (ret)
		return ferr_errno(e, ret, "cannot encode the DSDT");
	return 0;
}

static void acpi_fill_fadt(struct acpi_fadt *f, uint64_t facs, uint64_t dsdt)
{
	acpi_header_init(&f->h, "FACP", sizeof(*f), 6);
	f->firmware_ctrl = (uint32_t)facs;
	f->dsdt = (uint32_t)dsdt;
	f->x_firmware_ctrl = facs;
	f->x_dsdt = dsdt;
	f->sci_int = PLAT_ACPI_SCI_IRQ;
	/* SMI_CMD 0: no SMM handshake, ACPI mode is always on (SCI_EN). */
	f->smi_cmd = 0;
	f->pm1a_evt_blk = PLAT_PM1_EVT_PORT;
	f->pm1a_cnt_blk = PLAT_PM1_CNT_PORT;
	f->pm_tmr_blk = PLAT_PM_TMR_PORT;
	f->pm1_evt_len = 4;
	f->pm1_cnt_len = 2;
	f->pm_tmr_len = 4;
	f->x_pm1a_evt_blk = acpi_io_gas(PLAT_PM1_EVT_PORT, 4);
	f->x_pm1a_cnt_blk = acpi_io_gas(PLAT_PM1_CNT_PORT, 2);
	f->x_pm_tmr_blk = acpi_io_gas(PLAT_PM_TMR_PORT, 4);
	/* C2/C3 latencies above 100/1000 us say "not supported". */
	f->p_lvl2_lat = 101;
	f->p_lvl3_lat = 1001;
	f->iapc_boot_arch = BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042 |
			    BOOT_ARCH_NO_VGA;
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON |
		   FADT_RESET_REG_SUP;
	f->reset_reg = acpi_io_gas(PLAT_RESET_PORT, 1);
	f->reset_value = 6;         /* 0xcf9: full reset (bit 2) + system reset (bit 1) */
	f->minor_version = 0;
}

static int acpi_build_madt(struct acpi_area *ar, unsigned int nr_cpus,
			   uint64_t *gpa, struct ferr *e)
{
	size_t len = sizeof(struct acpi_madt) + nr_cpus * sizeof(struct madt_lapic) +
		     sizeof(struct madt_ioapic) + 2 * sizeof(struct madt_iso) +
		     sizeof(struct madt_lapic_nmi);
	struct acpi_madt *m;
	uint8_t *p;
	int ret;

	ret = acpi_alloc(ar, len, 8, gpa, e);
	if (ret)
		return ret;
	m = acpi_at(ar, *gpa);
	acpi_header_init(&m->h, "APIC", (uint32_t)len, 4);
	m->lapic_addr = (uint32_t)PLAT_LAPIC_GPA;
	m->flags = MADT_PCAT_COMPAT;    /* dual 8259s present */
	p = (uint8_t *)(m + 1);

	for (unsigned int i = 0; i < nr_cpus; i++) {
		struct madt_lapic l = {
			.type = MADT_LAPIC, .length = sizeof(l),
			.uid = (uint8_t)i, .apic_id = (uint8_t)i, .flags = 1,
		};

		memcpy(p, &l, sizeof(l));
		p += sizeof(l);
	}

	struct madt_ioapic io = {
		.type = MADT_IOAPIC, .length = sizeof(io),
		.id = PLAT_IOAPIC_ID, .addr = (uint32_t)PLAT_IOAPIC_GPA,
		.gsi_base = 0,
	};
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);

	/* The PIT's IRQ 0 is wired to IOAPIC pin 2, as on every PC; the SCI
	 * is level-triggered, active high (the ACPI default for IRQ 9). */
	struct madt_iso isos[2] = {
		{ .type = MADT_ISO, .length = sizeof(isos[0]), .source = 0,
		  .gsi = 2, .flags = 0 },
		{ .type = MADT_ISO, .length = sizeof(isos[0]),
		  .source = PLAT_ACPI_SCI_IRQ, .gsi = PLAT_ACPI_SCI_IRQ,
		  .flags = MPS_ACTIVE_HIGH | MPS_LEVEL },
	};
	memcpy(p, isos, sizeof(isos));
	p += sizeof(isos);

	/* NMIs arrive on LINT1 of every CPU. */
	struct madt_lapic_nmi nmi = {
		.type = MADT_LAPIC_NMI, .length = sizeof(nmi),
		.uid = 0xff, .flags = 0, .lint = 1,
	};
	memcpy(p, &nmi, sizeof(nmi));

	acpi_seal(m);
	return 0;
}

/* The RSDP: revision 2, pointing at the XSDT only (no RSDT: every
 * ACPI 2.0+ OS takes the XSDT). */
static void acpi_fill_rsdp(struct acpi_rsdp *rp, uint64_t xsdt)
{
	memcpy(rp->sig, "RSD PTR ", 8);
	memcpy(rp->oem_id, ACPI_OEM_ID, 6);
	rp->revision = 2;
	rp->length = sizeof(*rp);
	rp->xsdt_addr = xsdt;
	rp->checksum = acpi_checksum(rp, 20);
	rp->ext_checksum = acpi_checksum(rp, sizeof(*rp));
}

/* A table whose body is @body: header, bytes, checksum. */
static int acpi_add_table(struct acpi_area *ar, const char *sig, uint8_t rev,
			  const void *body, size_t len, uint64_t *gpa,
			  struct ferr *e)
{
	size_t total = sizeof(struct acpi_header) + len;
	int ret = acpi_alloc(ar, total, 8, gpa, e);

	if (ret)
		return ret;
	acpi_header_init(acpi_at(ar, *gpa), sig, (uint32_t)total, rev);
	memcpy((uint8_t *)acpi_at(ar, *gpa) + sizeof(struct acpi_header), body, len);
	acpi_seal(acpi_at(ar, *gpa));
	return 0;
}

int acpi_build(struct guest_mem *gm, const struct acpi_config *cfg,
	       uint64_t *rsdp_gpa, struct ferr *e)
{
	struct acpi_area ar = { 0 };
	uint64_t rsdp = 0, facs = 0, dsdt = 0, fadt = 0, madt = 0, xsdt = 0;
	uint64_t xsdt_entries[2];
	struct acpi_facs *fc;
	struct aml a;
	int ret;

	aml_init(&a);
	if (cfg->nr_cpus < 1 || cfg->nr_cpus > ACPI_MAX_CPUS)
		return ferr_set(e, -EINVAL, "%u vCPUs: the MADT describes 1 to %d",
				cfg->nr_cpus, ACPI_MAX_CPUS);
	if (!gm_ptr(gm, PLAT_ACPI_GPA, PLAT_ACPI_SIZE))
		return ferr_set(e, -ENOMEM, "no RAM for the ACPI tables at 0x%llx",
				(unsigned long long)PLAT_ACPI_GPA);
	ar.buf = calloc(1, PLAT_ACPI_SIZE);
	if (!ar.buf)
		return ferr_errno(e, -ENOMEM, "cannot build the ACPI tables");

	/* The RSDP must start the area: Linux without a boot protocol
	 * pointer scans 0xe0000-0xfffff on 16-byte boundaries. */
	ret = acpi_alloc(&ar, sizeof(struct acpi_rsdp), 16, &rsdp, e);
	if (ret)
		goto out;
	ret = acpi_alloc(&ar, sizeof(*fc), 64, &facs, e);
	if (ret)
		goto out;
	fc = acpi_at(&ar, facs);
	memcpy(fc->sig, "FACS", 4);
	fc->length = sizeof(*fc);
	fc->version = 2;

	ret = acpi_build_dsdt(&a, e);
	if (ret)
		goto out;
	ret = acpi_add_table(&ar, "DSDT", 2, a.buf, a.len, &dsdt, e);
	if (ret)
		goto out;

	ret = acpi_alloc(&ar, sizeof(struct acpi_fadt), 8, &fadt, e);
	if (ret)
		goto out;
	acpi_fill_fadt(acpi_at(&ar, fadt), facs, dsdt);
	acpi_seal(acpi_at(&ar, fadt));

	ret = acpi_build_madt(&ar, cfg->nr_cpus, &madt, e);
	if (ret)
		goto out;

	xsdt_entries[0] = fadt;
	xsdt_entries[1] = madt;
	ret = acpi_add_table(&ar, "XSDT", 1, xsdt_entries, sizeof(xsdt_entries),
			     &xsdt, e);
	if (ret)
		goto out;
	acpi_fill_rsdp(acpi_at(&ar, rsdp), xsdt);

	/* The whole area, so that tables of an earlier boot do not linger. */
	if (gm_write(gm, PLAT_ACPI_GPA, ar.buf, PLAT_ACPI_SIZE)) {
		ret = ferr_set(e, -ENOMEM, "no RAM for the ACPI tables");
		goto out;
	}
	*rsdp_gpa = rsdp;
out:
	aml_free(&a);
	free(ar.buf);
	return ret;
}
