/* Platform discovery: the PVH start_info (command line, memory map) and the
 * ACPI tables (MADT: CPUs, IOAPIC, interrupt overrides; FADT: power-off,
 * power button (PM1 event block, SCI) and PM timer ports).  Runs at CPL3 and fills `plat` once; start_info_ram_top
 * is the exception, called at CPL0 to size the page tables.  Nothing is
 * hard-coded: ferry and QEMU/SeaBIOS lay these out differently. */
#include "guest.h"

#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM 1

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
	uint64_t memmap_paddr;          /* version >= 1 */
	uint32_t memmap_entries, reserved;
};

struct platform plat;

/* Only the boot map (first GiB) exists when this runs at CPL0. */
#define BOOT_MAPPED (1ULL << 30)

uint64_t start_info_ram_top(uint32_t pa)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)pa;
	const struct memmap_entry *m;
	uint64_t top = 0;

	if (pa + sizeof(*si) > BOOT_MAPPED || si->magic != HVM_START_MAGIC || si->version < 1)
		return 0;
	if (si->memmap_paddr + (uint64_t)si->memmap_entries * sizeof(*m) > BOOT_MAPPED)
		return 0;
	m = (const void *)(uintptr_t)si->memmap_paddr;
	for (uint32_t i = 0; i < si->memmap_entries; i++)
		if (m[i].type == E820_RAM && m[i].addr + m[i].size > top)
			top = m[i].addr + m[i].size;
	return top;
}

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void acpi_problem(const char *fmt, ...)
{
	va_list ap;

	if (plat.acpi_error[0])
		return;                 /* the first problem is the one to fix */
	va_start(ap, fmt);
	vformat(plat.acpi_error, sizeof(plat.acpi_error), fmt, ap);
	va_end(ap);
}

static bool sum_ok(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s == 0;
}

static bool mapped(uint64_t pa, uint64_t len)
{
	return pa && pa < mapped_top && len <= mapped_top - pa;
}

static uint64_t find_rsdp(uint64_t hint)
{
	if (hint) {
		if (mapped(hint, 20) && !memcmp((const void *)hint, "RSD PTR ", 8) &&
		    sum_ok((const void *)hint, 20))
			return hint;
		acpi_problem("start_info.rsdp_paddr 0x%lx is no valid RSDP", hint);
	}
	/* The BIOS area, on 16-byte boundaries, as the ACPI spec says. */
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
		if (!memcmp((const void *)a, "RSD PTR ", 8) && sum_ok((const void *)a, 20))
			return a;
	return 0;
}

static void parse_madt(const uint8_t *t, uint32_t len)
{
	if (len >= 40 && ld32(t + 36) != LAPIC_PA)
		acpi_problem("MADT: LAPIC at 0x%x, expected 0x%x", ld32(t + 36), LAPIC_PA);
	for (uint32_t off = 44; off + 2 <= len;) {
		const uint8_t *e = t + off;
		uint8_t type = e[0], elen = e[1];

		if (elen < 2 || off + elen > len) {
			acpi_problem("MADT: bad entry length %u at offset %u", elen, off);
			break;
		}
		if (type == 0 && elen >= 8 && (ld32(e + 4) & 1)) {
			/* Processor LAPIC, enabled (online-capable ones stay off). */
			if (plat.ncpus < MAX_CPUS)
				plat.apic_ids[plat.ncpus++] = e[3];
		} else if (type == 1 && elen >= 12 && !plat.ioapic_addr) {
			plat.ioapic_addr = ld32(e + 4);
			plat.ioapic_gsi_base = ld32(e + 8);
		} else if (type == 2 && elen >= 10 && plat.niso < MAX_ISO) {
			plat.iso[plat.niso].irq = e[3];
			plat.iso[plat.niso].gsi = ld32(e + 4);
			plat.iso[plat.niso].flags = ld16(e + 8);
			plat.niso++;
		}
		off += elen;
	}
}

static void parse_fadt(const uint8_t *t, uint32_t len)
{
	if (len >= 53) {
		plat.sci_irq = ld16(t + 46);
		plat.smi_cmd = ld32(t + 48);
		plat.acpi_enable = t[52];
	}
	/* The 32-bit port fields, else the ACPI 2.0 GAS ones in I/O space. */
	if (len >= 60)
		plat.pm1a_evt = ld32(t + 56);
	if (len >= 68)
		plat.pm1a_cnt = ld32(t + 64);
	if (len >= 89)
		plat.pm1_evt_len = t[88];
	if (len >= 80)
		plat.pm_tmr = ld32(t + 76);
	if (len >= 116)
		plat.pm_tmr_32bit = ld32(t + 112) & (1u << 8);  /* TMR_VAL_EXT */
	if (!plat.pm1a_evt && len >= 160 && t[148] == 1)
		plat.pm1a_evt = ld64(t + 152);
	if (!plat.pm1a_cnt && len >= 184 && t[172] == 1)
		plat.pm1a_cnt = ld64(t + 176);
	if (!plat.pm_tmr && len >= 220 && t[208] == 1)
		plat.pm_tmr = ld64(t + 212);
	if (!plat.pm1a_cnt)
		acpi_problem("FADT has no PM1a control block");
}

static void parse_table(uint64_t pa)
{
	const uint8_t *t = (const void *)pa;
	uint32_t len;

	if (!mapped(pa, 36)) {
		acpi_problem("table at 0x%lx is outside memory", pa);
		return;
	}
	len = ld32(t + 4);
	if (len < 36 || !mapped(pa, len)) {
		acpi_problem("table %.4s at 0x%lx has bad length %u", (const char *)t, pa, len);
		return;
	}
	if (!sum_ok(t, len))
		acpi_problem("table %.4s at 0x%lx has a bad checksum", (const char *)t, pa);
	if (!memcmp(t, "APIC", 4))
		parse_madt(t, len);
	else if (!memcmp(t, "FACP", 4))
		parse_fadt(t, len);
}

static void parse_acpi(uint64_t rsdp)
{
	const uint8_t *r = (const void *)rsdp;
	uint64_t root = ld32(r + 16);
	unsigned int esz = 4;
	const uint8_t *t;
	uint32_t len;

	/* ACPI 2.0+: prefer the XSDT, if its extended checksum holds. */
	if (r[15] >= 2 && mapped(rsdp, 36) && ld32(r + 20) >= 36 &&
	    sum_ok(r, ld32(r + 20)) && ld64(r + 24)) {
		root = ld64(r + 24);
		esz = 8;
	}
	if (!mapped(root, 36)) {
		acpi_problem("root table at 0x%lx is outside memory", root);
		return;
	}
	t = (const void *)root;
	len = ld32(t + 4);
	if (memcmp(t, esz == 8 ? "XSDT" : "RSDT", 4) || len < 36 || !mapped(root, len)) {
		acpi_problem("bad %s at 0x%lx", esz == 8 ? "XSDT" : "RSDT", root);
		return;
	}
	if (!sum_ok(t, len))
		acpi_problem("%.4s has a bad checksum", (const char *)t);
	for (uint32_t off = 36; off + esz <= len; off += esz)
		parse_table(esz == 8 ? ld64(t + off) : ld32(t + off));
}

int platform_discover(uint32_t pa)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)pa;
	bool valid = mapped(pa, sizeof(*si)) && si->magic == HVM_START_MAGIC;
	uint64_t rsdp_hint = 0;

	if (valid) {
		if (si->cmdline_paddr && mapped(si->cmdline_paddr, CMDLINE_MAX)) {
			const char *s = (const char *)si->cmdline_paddr;
			size_t n = 0;

			while (n < CMDLINE_MAX - 1 && s[n])
				n++;
			memcpy(plat.cmdline, s, n);
			plat.cmdline[n] = 0;
		}
		if (si->version >= 1 && mapped(si->memmap_paddr, sizeof(struct memmap_entry))) {
			const struct memmap_entry *m = (const void *)si->memmap_paddr;

			for (uint32_t i = 0; i < si->memmap_entries && i < MAX_MEMMAP; i++) {
				plat.memmap[i] = m[i];
				if (m[i].type == E820_RAM)
					plat.ram_bytes += m[i].size;
			}
			plat.memmap_entries = si->memmap_entries < MAX_MEMMAP ?
					      si->memmap_entries : MAX_MEMMAP;
		}
		rsdp_hint = si->rsdp_paddr;
	}

	plat.rsdp = find_rsdp(rsdp_hint);
	if (plat.rsdp)
		parse_acpi(plat.rsdp);
	else
		acpi_problem("no RSDP (start_info or 0xe0000-0xfffff)");
	if (!plat.ncpus)
		acpi_problem("MADT lists no enabled CPU");
	if (!plat.ioapic_addr)
		acpi_problem("MADT lists no IOAPIC");
	return valid ? 0 : -1;
}

/* The value of KEY=VALUE among the space-separated command-line tokens. */
const char *cmdline_value(const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);

	for (const char *p = plat.cmdline; *p;) {
		const char *end = p;
		size_t n = 0;

		while (*end && *end != ' ')
			end++;
		if ((size_t)(end - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
			for (p += klen + 1; p < end && n + 1 < len; p++)
				buf[n++] = *p;
			buf[n] = 0;
			return buf;
		}
		p = *end ? end + 1 : end;
	}
	return NULL;
}
