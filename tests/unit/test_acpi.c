/* ACPI tables (src/acpi.c): found the way a guest finds them (RSDP scan,
 * XSDT), every checksum, the FADT and MADT fields at their spec offsets,
 * and the DSDT round-tripped through ACPICA's iasl when it is installed. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "ferry/acpi.h"
#include "ferry/mem.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "tap.h"

static struct guest_mem gm;

static uint64_t rd(uint64_t gpa, int size)
{
	uint64_t v = 0;

	CHECK_EQ(gm_read(&gm, gpa, &v, size), 0);
	return v;
}

static bool sums_to_zero(uint64_t gpa, uint64_t len)
{
	const uint8_t *p = gm_ptr(&gm, gpa, len);
	uint8_t sum = 0;

	if (!p)
		return false;
	for (uint64_t i = 0; i < len; i++)
		sum += p[i];
	return sum == 0;
}

static bool in_area(uint64_t gpa, uint64_t len)
{
	return gpa >= PLAT_ACPI_GPA && len <= PLAT_ACPI_SIZE &&
	       gpa - PLAT_ACPI_GPA <= PLAT_ACPI_SIZE - len;
}

/* A table's sanity: inside the area, a header's worth long, sums to zero. */
static bool table_ok(uint64_t gpa, const char *sig)
{
	uint32_t len;

	if (!in_area(gpa, 36))
		return false;
	len = (uint32_t)rd(gpa + 4, 4);
	return len >= 36 && in_area(gpa, len) && sums_to_zero(gpa, len) &&
	       memcmp(gm_ptr(&gm, gpa, 4), sig, 4) == 0;
}

static int build(unsigned int nr_cpus, uint64_t *rsdp)
{
	struct acpi_config cfg = { .nr_cpus = nr_cpus };
	struct ferr e = { "" };
	int ret = acpi_build(&gm, &cfg, rsdp, &e);

	if (ret)
		CHECK(e.msg[0]);
	return ret;
}

/* Find a table through RSDP -> XSDT, as the guest does. */
static uint64_t find_table(const char *sig)
{
	uint64_t xsdt = rd(PLAT_ACPI_GPA + 24, 8);
	uint32_t len = (uint32_t)rd(xsdt + 4, 4);

	for (uint32_t off = 36; off + 8 <= len; off += 8) {
		uint64_t t = rd(xsdt + off, 8);

		if (in_area(t, 4) && memcmp(gm_ptr(&gm, t, 4), sig, 4) == 0)
			return t;
	}
	return 0;
}

TEST(rsdp_and_xsdt)
{
	uint64_t rsdp = 0, xsdt;
	uint32_t len;

	/* Stale bytes from an earlier boot must not survive. */
	memset(gm_ptr(&gm, PLAT_ACPI_GPA, PLAT_ACPI_SIZE), 0xa5, PLAT_ACPI_SIZE);
	CHECK_EQ(build(2, &rsdp), 0);
	CHECK_EQ(rsdp, 0xE0000);
	CHECK(memcmp(gm_ptr(&gm, rsdp, 8), "RSD PTR ", 8) == 0);
	CHECK(sums_to_zero(rsdp, 20));
	CHECK(sums_to_zero(rsdp, 36));
	CHECK_EQ(rd(rsdp + 15, 1), 2);          /* revision */
	CHECK_EQ(rd(rsdp + 20, 4), 36);         /* length */

	xsdt = rd(rsdp + 24, 8);
	CHECK(table_ok(xsdt, "XSDT"));
	len = (uint32_t)rd(xsdt + 4, 4);
	CHECK_EQ((len - 36) % 8, 0);
	CHECK_EQ((len - 36) / 8, 2);
	for (uint32_t off = 36; off < len; off += 8) {
		uint64_t t = rd(xsdt + off, 8);

		CHECK(table_ok(t, "FACP") || table_ok(t, "APIC"));
	}
	CHECK(find_table("FACP"));
	CHECK(find_table("APIC"));
}

TEST(fadt)
{
	uint64_t rsdp, f, dsdt, facs;

	CHECK_EQ(build(1, &rsdp), 0);
	f = find_table("FACP");
	CHECK(table_ok(f, "FACP"));
	CHECK_EQ(rd(f + 4, 4), 276);
	CHECK_EQ(rd(f + 8, 1), 6);
	CHECK_EQ(rd(f + 46, 2), PLAT_ACPI_SCI_IRQ);
	CHECK_EQ(rd(f + 48, 4), 0);             /* SMI_CMD: ACPI always on */
	CHECK_EQ(rd(f + 56, 4), PLAT_PM1_EVT_PORT);
	CHECK_EQ(rd(f + 64, 4), PLAT_PM1_CNT_PORT);
	CHECK_EQ(rd(f + 76, 4), PLAT_PM_TMR_PORT);
	CHECK_EQ(rd(f + 88, 1), 4);             /* PM1_EVT_LEN */
	CHECK_EQ(rd(f + 89, 1), 2);             /* PM1_CNT_LEN */
	CHECK_EQ(rd(f + 91, 1), 4);             /* PM_TMR_LEN */
	CHECK(rd(f + 109, 2) & 2);              /* IAPC_BOOT_ARCH: 8042 */
	CHECK(rd(f + 112, 4) & (1 << 10));      /* RESET_REG_SUP */
	CHECK_EQ(rd(f + 112, 4) & (1 << 20), 0);/* not HW_REDUCED_ACPI */
	CHECK_EQ(rd(f + 116, 1), 1);            /* reset reg: system I/O */
	CHECK_EQ(rd(f + 117, 1), 8);
	CHECK_EQ(rd(f + 120, 8), PLAT_RESET_PORT);
	CHECK_EQ(rd(f + 128, 1), 6);            /* RESET_VALUE */
	/* X_ blocks: space I/O, width, address. */
	CHECK_EQ(rd(f + 148, 1), 1);
	CHECK_EQ(rd(f + 149, 1), 32);
	CHECK_EQ(rd(f + 152, 8), PLAT_PM1_EVT_PORT);
	CHECK_EQ(rd(f + 172, 1), 1);
	CHECK_EQ(rd(f + 173, 1), 16);
	CHECK_EQ(rd(f + 176, 8), PLAT_PM1_CNT_PORT);
	CHECK_EQ(rd(f + 208, 1), 1);
	CHECK_EQ(rd(f + 209, 1), 32);
	CHECK_EQ(rd(f + 212, 8), PLAT_PM_TMR_PORT);

	dsdt = rd(f + 140, 8);
	CHECK_EQ(rd(f + 40, 4), dsdt);
	CHECK(table_ok(dsdt, "DSDT"));
	facs = rd(f + 132, 8);
	CHECK_EQ(rd(f + 36, 4), facs);
	CHECK_EQ(facs % 64, 0);
	CHECK(in_area(facs, 64));
	CHECK(memcmp(gm_ptr(&gm, facs, 4), "FACS", 4) == 0);
	CHECK_EQ(rd(facs + 4, 4), 64);
}

static void check_madt(unsigned int nr_cpus)
{
	uint64_t rsdp, m;
	uint32_t len;
	unsigned int nlapic = 0, nioapic = 0, nnmi = 0;
	bool irq0 = false, sci = false, ids_ok = true;

	CHECK_EQ(build(nr_cpus, &rsdp), 0);
	m = find_table("APIC");
	CHECK(table_ok(m, "APIC"));
	len = (uint32_t)rd(m + 4, 4);
	CHECK_EQ(rd(m + 36, 4), PLAT_LAPIC_GPA);
	CHECK_EQ(rd(m + 40, 4) & 1, 1);         /* PCAT_COMPAT */

	for (uint32_t off = 44; off < len; ) {
		uint8_t type = (uint8_t)rd(m + off, 1), elen = (uint8_t)rd(m + off + 1, 1);

		CHECK(elen >= 2);
		if (elen < 2)
			break;
		switch (type) {
		case 0:
			ids_ok &= rd(m + off + 2, 1) == nlapic &&  /* uid */
				  rd(m + off + 3, 1) == nlapic &&  /* APIC id */
				  rd(m + off + 4, 4) == 1;         /* enabled */
			nlapic++;
			break;
		case 1:
			CHECK_EQ(rd(m + off + 2, 1), PLAT_IOAPIC_ID);
			CHECK_EQ(rd(m + off + 4, 4), PLAT_IOAPIC_GPA);
			CHECK_EQ(rd(m + off + 8, 4), 0);
			nioapic++;
			break;
		case 2:
			if (rd(m + off + 3, 1) == 0)
				irq0 = rd(m + off + 4, 4) == 2;
			if (rd(m + off + 3, 1) == PLAT_ACPI_SCI_IRQ)
				sci = rd(m + off + 4, 4) == PLAT_ACPI_SCI_IRQ &&
				      rd(m + off + 8, 2) == 0x000d;  /* level, high */
			break;
		case 4:
			CHECK_EQ(rd(m + off + 2, 1), 0xff);
			CHECK_EQ(rd(m + off + 5, 1), 1);    /* LINT1 */
			nnmi++;
			break;
		}
		off += elen;
	}
	CHECK_EQ(nlapic, nr_cpus);
	CHECK(ids_ok);
	CHECK_EQ(nioapic, 1);
	CHECK_EQ(nnmi, 1);
	CHECK(irq0);
	CHECK(sci);
}

TEST(madt_1) { check_madt(1); }
TEST(madt_2) { check_madt(2); }
TEST(madt_64) { check_madt(64); }
TEST(madt_255) { check_madt(255); }

TEST(bad_config)
{
	struct guest_mem none;
	struct acpi_config cfg = { .nr_cpus = 1 };
	struct ferr e = { "" };
	uint64_t rsdp;

	CHECK_EQ(build(0, &rsdp), -EINVAL);
	CHECK_EQ(build(256, &rsdp), -EINVAL);
	gm_layout(0, &none);
	CHECK_EQ(acpi_build(&none, &cfg, &rsdp, &e), -ENOMEM);
	CHECK(e.msg[0]);
}

static const uint8_t *dsdt_bytes(uint32_t *len)
{
	uint64_t dsdt = rd(find_table("FACP") + 140, 8);

	*len = (uint32_t)rd(dsdt + 4, 4);
	return gm_ptr(&gm, dsdt, *len);
}

static bool contains(const uint8_t *p, size_t len, const void *what, size_t n)
{
	return memmem(p, len, what, n) != NULL;
}

TEST(dsdt_names)
{
	uint64_t rsdp;
	uint32_t len;
	const uint8_t *d;

	CHECK_EQ(build(2, &rsdp), 0);
	d = dsdt_bytes(&len);
	CHECK(d && len > 36);
	if (!d)
		return;
	CHECK(contains(d, len, "\\_SB_", 5));         /* Scope (\_SB) */
	const char *names[] = { "PCI0", "_HID", "_CRS", "_PRT", "_BBN", "COM1",
				"PWRB", "_S5_", "_UID" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (!contains(d, len, names[i], 4))
			printf("# DSDT lacks %s\n", names[i]);
		CHECK(contains(d, len, names[i], 4));
	}
	/* EISA ids as DWords: PNP0A03, PNP0501, PNP0C0C. */
	CHECK(contains(d, len, "\x0c\x41\xd0\x0a\x03", 5));
	CHECK(contains(d, len, "\x0c\x41\xd0\x05\x01", 5));
	CHECK(contains(d, len, "\x0c\x41\xd0\x0c\x0c", 5));
	/* COM1's resources: IO 0x3f8 len 8, IRQ 4. */
	CHECK(contains(d, len, "\x47\x01\xf8\x03\xf8\x03\x01\x08\x22\x10\x00", 11));
	/* The MMIO window: DWordMemory min PLAT_PCI_MMIO_GPA. */
	uint32_t mmio = (uint32_t)PLAT_PCI_MMIO_GPA;
	uint8_t want[4];
	memcpy(want, &mmio, 4);
	CHECK(contains(d, len, want, 4));
	/* The routing formula, documented in platform.h. */
	CHECK_EQ(PLAT_PCI_INTX_GSI(1, 0), 17);
	CHECK_EQ(PLAT_PCI_INTX_GSI(7, 1), 16);
	CHECK_EQ(PLAT_PCI_INTX_GSI(31, 3), 18);
}

/* Disassemble the tables with iasl and compile the DSDT back: ACPICA
 * rejecting our AML is exactly what a Linux guest would do. */
TEST(iasl_round_trip)
{
	static const char *sigs[] = { "FACP", "APIC", "XSDT" };
	char dir[] = "/tmp/ferry-acpi-XXXXXX";
	char cmd[512], path[256];
	uint64_t rsdp;
	uint32_t len;
	const uint8_t *d;
	FILE *f;

	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		printf("# iasl not installed (apt-get install acpica-tools): skipping the ACPICA check\n");
		return;
	}
	CHECK_EQ(build(4, &rsdp), 0);
	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}

	d = dsdt_bytes(&len);
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	f = fopen(path, "w");
	CHECK(f && fwrite(d, 1, len, f) == len);
	if (f)
		fclose(f);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		uint64_t t = strcmp(sigs[i], "XSDT") ? find_table(sigs[i]) : rd(rsdp + 24, 8);
		uint32_t tl = (uint32_t)rd(t + 4, 4);

		snprintf(path, sizeof(path), "%s/%s.dat", dir, sigs[i]);
		f = fopen(path, "w");
		CHECK(f && fwrite(gm_ptr(&gm, t, tl), 1, tl, f) == tl);
		if (f)
			fclose(f);
		snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat >%s.log 2>&1", dir,
			 sigs[i], sigs[i]);
		CHECK_EQ(system(cmd), 0);
	}

	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >dis.log 2>&1", dir);
	CHECK_EQ(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && grep -q 'Device (PCI0)' dsdt.dsl && grep -q 'PNP0501' dsdt.dsl"
		 " && grep -q 'Name (_S5' dsdt.dsl && grep -q 'WordBusNumber' dsdt.dsl", dir);
	CHECK_EQ(system(cmd), 0);
	/* Recompile: any error in what we encoded surfaces here. */
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -p again dsdt.dsl >asl.log 2>&1", dir);
	if (system(cmd) != 0) {
		printf("# iasl could not recompile the DSDT; see %s/asl.log\n", dir);
		CHECK(!"DSDT recompiles");
		return;
	}
	/* Warnings depend on the iasl version: shown, not judged. */
	snprintf(cmd, sizeof(cmd), "grep -h -A1 -i '^warning\\|Warning ' %s/asl.log | sed 's/^/# /'", dir);
	if (system(cmd) < 0)
		printf("# cannot show iasl's warnings\n");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

int main(void)
{
	struct gm_config gc = { .size = 64 * MiB };
	struct ferr e;

	if (gm_init(&gm, &gc, &e)) {
		printf("Bail out! %s\n", e.msg);
		return 1;
	}
	RUN(rsdp_and_xsdt);
	RUN(fadt);
	RUN(madt_1);
	RUN(madt_2);
	RUN(madt_64);
	RUN(madt_255);
	RUN(bad_config);
	RUN(dsdt_names);
	RUN(iasl_round_trip);
	gm_destroy(&gm);
	return tap_done();
}
