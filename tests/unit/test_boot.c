/* Kernel loading (src/boot/): e820 layouts, ELF (PVH and vmlinux) and
 * bzImage images synthesised in memory, the zero page and start_info they
 * produce, and every malformed or truncated variant we can think of. */
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <asm/bootparam.h>

#include "ferry/boot.h"
#include "ferry/mem.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "tap.h"

#include "../../src/boot/boot_priv.h"

#define RAM_SIZE   (128 * MiB)
#define RSDP       0xE0000ULL

static struct guest_mem gm;

/* ---- e820 ---- */

static void check_e820(uint64_t size, const struct e820_entry *want, int nwant)
{
	struct guest_mem l;
	struct e820_entry map[16];
	int n;

	gm_layout(size, &l);
	n = e820_build(&l, map, 16);
	CHECK_EQ(n, nwant);
	for (int i = 0; i < n && i < nwant; i++) {
		CHECK_EQ(map[i].addr, want[i].addr);
		CHECK_EQ(map[i].size, want[i].size);
		CHECK_EQ(map[i].type, want[i].type);
		/* Sorted, no overlaps. */
		if (i)
			CHECK(map[i].addr >= map[i - 1].addr + map[i - 1].size);
	}
	/* Never more than asked for. */
	CHECK_EQ(e820_build(&l, map, 2), 2);
	CHECK_EQ(e820_build(&l, map, 0), 0);
}

#define LOW(end) \
	{ 0, PLAT_EBDA_GPA, E820_RAM }, \
	{ PLAT_EBDA_GPA, 1 * MiB - PLAT_EBDA_GPA, E820_RESERVED }, \
	{ 1 * MiB, (end) - 1 * MiB, E820_RAM }

TEST(e820_256m)
{
	struct e820_entry w[] = { LOW(256 * MiB) };
	check_e820(256 * MiB, w, 3);
}

TEST(e820_3g)
{
	struct e820_entry w[] = { LOW(3 * GiB) };
	check_e820(3 * GiB, w, 3);
}

TEST(e820_4g)
{
	struct e820_entry w[] = { LOW(3 * GiB), { 4 * GiB, 1 * GiB, E820_RAM } };
	check_e820(4 * GiB, w, 4);
}

TEST(e820_8g)
{
	struct e820_entry w[] = { LOW(3 * GiB), { 4 * GiB, 5 * GiB, E820_RAM } };
	check_e820(8 * GiB, w, 4);
}

TEST(page_tables)
{
	uint64_t *pml4 = gm_ptr(&gm, PLAT_PML4_GPA, 4096);
	uint64_t *pdpt = gm_ptr(&gm, PLAT_PDPT_GPA, 4096);
	uint64_t *pd = gm_ptr(&gm, PLAT_PD_GPA, 4 * 4096);

	CHECK_EQ(boot_setup_page_tables(&gm), 0);
	CHECK_EQ(pml4[0], PLAT_PDPT_GPA | 3);
	CHECK_EQ(pml4[1], 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(pdpt[i], (PLAT_PD_GPA + i * 4096) | 3);
	CHECK_EQ(pdpt[4], 0);
	CHECK_EQ(pd[0], 0x83);
	CHECK_EQ(pd[1], 2 * MiB | 0x83);
	CHECK_EQ(pd[2047], 2047 * 2 * MiB | 0x83);

	struct guest_mem tiny;
	gm_layout(0, &tiny);
	CHECK_EQ(boot_setup_page_tables(&tiny), -EFAULT);
}

/* ---- ELF images ---- */

#define ELF_LOAD_OFF  0x1000
#define ELF_FILESZ    0x2000
#define ELF_MEMSZ     0x3000
#define ELF_NOTE_OFF  (ELF_LOAD_OFF + ELF_FILESZ)
#define ELF_SIZE      (ELF_NOTE_OFF + 0x100)  /* room for the notes */
#define ELF_XEN_NOTE  (ELF_NOTE_OFF + 20)     /* after the GNU note */

struct elf_opts {
	bool is32;
	bool pvh;
	uint64_t vaddr, paddr, entry;
	uint32_t pvh_entry;
};

static uint8_t img_buf[0x10000];

/* Append a note; returns the new offset. */
static size_t put_note(uint8_t *p, size_t off, const char *name, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	Elf32_Nhdr n = { .n_namesz = (uint32_t)strlen(name) + 1,
			 .n_descsz = descsz, .n_type = type };

	memcpy(p + off, &n, sizeof(n));
	off += sizeof(n);
	memcpy(p + off, name, n.n_namesz);
	off += ALIGN_UP(n.n_namesz, 4);
	memcpy(p + off, desc, descsz);
	return off + ALIGN_UP(descsz, 4);
}

/* One PT_LOAD (with bss) and one PT_NOTE, the notes ending the file.
 * Returns the file's length. */
static size_t make_elf(uint8_t *p, const struct elf_opts *o)
{
	size_t note_end;
	uint32_t gnu = 0x1234;

	memset(p, 0, ELF_SIZE);
	for (int i = 0; i < ELF_FILESZ; i++)
		p[ELF_LOAD_OFF + i] = (uint8_t)(i * 7 + 1);
	note_end = put_note(p, ELF_NOTE_OFF, "GNU", 3, &gnu, 4);
	if (o->pvh)
		note_end = put_note(p, note_end, "Xen", XEN_ELFNOTE_PHYS32_ENTRY,
				    &o->pvh_entry, 4);

	if (!o->is32) {
		Elf64_Ehdr h = {
			.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64,
				     ELFDATA2LSB, EV_CURRENT },
			.e_type = ET_EXEC, .e_machine = EM_X86_64,
			.e_version = EV_CURRENT, .e_entry = o->entry,
			.e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
			.e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 2,
		};
		Elf64_Phdr ph[2] = {
			{ .p_type = PT_LOAD, .p_offset = ELF_LOAD_OFF,
			  .p_vaddr = o->vaddr, .p_paddr = o->paddr,
			  .p_filesz = ELF_FILESZ, .p_memsz = ELF_MEMSZ,
			  .p_align = 0x1000, .p_flags = PF_R | PF_X },
			{ .p_type = PT_NOTE, .p_offset = ELF_NOTE_OFF,
			  .p_filesz = note_end - ELF_NOTE_OFF, .p_align = 4 },
		};
		memcpy(p, &h, sizeof(h));
		memcpy(p + sizeof(h), ph, sizeof(ph));
	} else {
		Elf32_Ehdr h = {
			.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS32,
				     ELFDATA2LSB, EV_CURRENT },
			.e_type = ET_EXEC, .e_machine = EM_386,
			.e_version = EV_CURRENT, .e_entry = (uint32_t)o->entry,
			.e_phoff = sizeof(Elf32_Ehdr), .e_ehsize = sizeof(Elf32_Ehdr),
			.e_phentsize = sizeof(Elf32_Phdr), .e_phnum = 2,
		};
		Elf32_Phdr ph[2] = {
			{ .p_type = PT_LOAD, .p_offset = ELF_LOAD_OFF,
			  .p_vaddr = (uint32_t)o->vaddr, .p_paddr = (uint32_t)o->paddr,
			  .p_filesz = ELF_FILESZ, .p_memsz = ELF_MEMSZ,
			  .p_align = 0x1000, .p_flags = PF_R | PF_X },
			{ .p_type = PT_NOTE, .p_offset = ELF_NOTE_OFF,
			  .p_filesz = (uint32_t)(note_end - ELF_NOTE_OFF), .p_align = 4 },
		};
		memcpy(p, &h, sizeof(h));
		memcpy(p + sizeof(h), ph, sizeof(ph));
	}
	return note_end;
}

static Elf64_Ehdr *eh64(void) { return (Elf64_Ehdr *)img_buf; }
static Elf64_Phdr *ph64(int i) { return (Elf64_Phdr *)(img_buf + sizeof(Elf64_Ehdr)) + i; }

static const struct elf_opts pvh_opts = {
	.pvh = true, .vaddr = 0x100000, .paddr = 0x100000,
	.entry = 0x100000, .pvh_entry = 0x100010,
};
static const struct elf_opts vmlinux_opts = {
	.vaddr = 0xffffffff81000000ULL, .paddr = 0x1000000,
	.entry = 0xffffffff81000040ULL,
};

static int load(size_t len, const char *cmdline, const void *initrd,
		size_t initrd_len, struct boot_info *bi, struct ferr *e)
{
	struct boot_config cfg = {
		.kernel = img_buf, .kernel_len = len,
		.initrd = initrd, .initrd_len = initrd_len,
		.cmdline = cmdline, .rsdp_gpa = RSDP,
	};

	memset(e, 0, sizeof(*e));
	return boot_load(&gm, &cfg, bi, e);
}

/* A load that must fail with @err and say why. */
#define CHECK_FAIL(len, err) do {                                          \
	struct boot_info _bi;                                              \
	struct ferr _e;                                                    \
	CHECK_EQ(load((len), "", NULL, 0, &_bi, &_e), (err));              \
	CHECK(_e.msg[0] != '\0');                                          \
	if (_e.msg[0])                                                     \
		printf("#   -> %s\n", _e.msg);                         \
} while (0)

static void check_loaded(uint64_t paddr)
{
	const uint8_t *k = gm_ptr(&gm, paddr, ELF_MEMSZ);
	bool same = true, zero = true;

	for (int i = 0; i < ELF_FILESZ; i++)
		same &= k[i] == (uint8_t)(i * 7 + 1);
	for (int i = ELF_FILESZ; i < ELF_MEMSZ; i++)
		zero &= k[i] == 0;
	CHECK(same);
	CHECK(zero);
}

TEST(elf_pvh)
{
	static uint8_t initrd[10000];
	struct boot_info bi;
	struct ferr e;
	size_t len = make_elf(img_buf, &pvh_opts);

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	/* bss must be cleared even over stale RAM. */
	memset(gm_ptr(&gm, 0x100000, ELF_MEMSZ), 0xaa, ELF_MEMSZ);

	CHECK_EQ(load(len, "console=ttyS0 quiet", initrd, sizeof(initrd), &bi, &e), 0);
	CHECK_EQ(bi.mode, BOOT_PVH);
	CHECK_EQ(bi.entry, 0x100010);
	CHECK_EQ(bi.arg, PLAT_START_INFO_GPA);
	check_loaded(0x100000);
	CHECK_STR((char *)gm_ptr(&gm, PLAT_CMDLINE_GPA, 1), "console=ttyS0 quiet");

	struct hvm_start_info si;
	CHECK_EQ(gm_read(&gm, PLAT_START_INFO_GPA, &si, sizeof(si)), 0);
	CHECK_EQ(si.magic, 0x336ec578);
	CHECK_EQ(si.version, 1);
	CHECK_EQ(si.cmdline_paddr, PLAT_CMDLINE_GPA);
	CHECK_EQ(si.rsdp_paddr, RSDP);
	CHECK_EQ(si.nr_modules, 1);

	struct hvm_modlist_entry mod;
	CHECK_EQ(gm_read(&gm, si.modlist_paddr, &mod, sizeof(mod)), 0);
	CHECK_EQ(mod.size, sizeof(initrd));
	CHECK_EQ(mod.paddr % 4096, 0);
	CHECK(mod.paddr >= 0x100000 + ELF_MEMSZ);
	CHECK(mod.paddr + mod.size <= RAM_SIZE);
	CHECK(gm_ptr(&gm, mod.paddr, mod.size) &&
	      memcmp(gm_ptr(&gm, mod.paddr, mod.size), initrd, sizeof(initrd)) == 0);

	struct e820_entry map[8];
	int n = e820_build(&gm, map, 8);
	CHECK_EQ(si.memmap_entries, n);
	for (int i = 0; i < n; i++) {
		struct hvm_memmap_table_entry me;

		gm_read(&gm, si.memmap_paddr + i * sizeof(me), &me, sizeof(me));
		CHECK_EQ(me.addr, map[i].addr);
		CHECK_EQ(me.size, map[i].size);
		CHECK_EQ(me.type, map[i].type);
	}

	/* No initrd, no command line: no module, empty string. */
	CHECK_EQ(load(len, NULL, NULL, 0, &bi, &e), 0);
	CHECK_EQ(gm_read(&gm, PLAT_START_INFO_GPA, &si, sizeof(si)), 0);
	CHECK_EQ(si.nr_modules, 0);
	CHECK_EQ(si.modlist_paddr, 0);
	CHECK_STR((char *)gm_ptr(&gm, PLAT_CMDLINE_GPA, 1), "");
}

TEST(elf32_pvh)
{
	struct elf_opts o = pvh_opts;
	struct boot_info bi;
	struct ferr e;
	size_t len;

	o.is32 = true;
	len = make_elf(img_buf, &o);
	CHECK_EQ(load(len, "x", NULL, 0, &bi, &e), 0);
	CHECK_EQ(bi.mode, BOOT_PVH);
	CHECK_EQ(bi.entry, 0x100010);
	check_loaded(0x100000);

	/* Without the note, a 32-bit ELF has no way in. */
	o.pvh = false;
	len = make_elf(img_buf, &o);
	CHECK_FAIL(len, -ENOEXEC);
}

/* The note is found through the section table when no PT_NOTE exists. */
TEST(elf_pvh_note_section)
{
	size_t len = make_elf(img_buf, &pvh_opts);
	struct boot_info bi;
	struct ferr e;
	Elf64_Shdr sh[2] = {
		{ 0 },
		{ .sh_type = SHT_NOTE, .sh_offset = ph64(1)->p_offset,
		  .sh_size = ph64(1)->p_filesz, .sh_addralign = 4 },
	};

	ph64(1)->p_type = PT_NULL;
	memcpy(img_buf + len, sh, sizeof(sh));
	eh64()->e_shoff = len;
	eh64()->e_shnum = 2;
	eh64()->e_shentsize = sizeof(Elf64_Shdr);
	CHECK_EQ(load(len + sizeof(sh), "", NULL, 0, &bi, &e), 0);
	CHECK_EQ(bi.mode, BOOT_PVH);
	CHECK_EQ(bi.entry, 0x100010);

	/* ... and that table must lie inside the file. */
	CHECK_FAIL(len + sizeof(sh) - 1, -ENOEXEC);
}

static void check_zero_page(uint64_t initrd_len)
{
	struct boot_params *bp = gm_ptr(&gm, PLAT_ZERO_PAGE_GPA, sizeof(*bp));
	struct e820_entry map[8];
	int n = e820_build(&gm, map, 8);

	CHECK_EQ(bp->hdr.boot_flag, 0xAA55);
	CHECK_EQ(bp->hdr.header, 0x53726448);
	CHECK_EQ(bp->hdr.type_of_loader, 0xff);
	CHECK(bp->hdr.loadflags & LOADED_HIGH);
	CHECK(bp->hdr.loadflags & CAN_USE_HEAP);
	CHECK_EQ(bp->hdr.cmd_line_ptr, PLAT_CMDLINE_GPA);
	CHECK_EQ(bp->ext_cmd_line_ptr, 0);
	CHECK_EQ(bp->hdr.ramdisk_size, initrd_len);
	CHECK_EQ(bp->acpi_rsdp_addr, RSDP);
	CHECK_EQ(bp->e820_entries, n);
	for (int i = 0; i < n; i++) {
		CHECK_EQ(bp->e820_table[i].addr, map[i].addr);
		CHECK_EQ(bp->e820_table[i].size, map[i].size);
		CHECK_EQ(bp->e820_table[i].type, map[i].type);
	}
}

TEST(elf_vmlinux)
{
	static uint8_t initrd[5000];
	struct boot_info bi;
	struct ferr e;
	size_t len = make_elf(img_buf, &vmlinux_opts);

	memset(initrd, 0x11, sizeof(initrd));
	CHECK_EQ(load(len, "root=/dev/vda", initrd, sizeof(initrd), &bi, &e), 0);
	CHECK_EQ(bi.mode, BOOT_LINUX64);
	CHECK_EQ(bi.entry, 0x1000040);      /* virtual e_entry, translated */
	CHECK_EQ(bi.arg, PLAT_ZERO_PAGE_GPA);
	check_loaded(0x1000000);
	check_zero_page(sizeof(initrd));

	struct boot_params *bp = gm_ptr(&gm, PLAT_ZERO_PAGE_GPA, sizeof(*bp));
	CHECK(bp->hdr.version >= 0x020c);
	CHECK_EQ(bp->hdr.ramdisk_image % 4096, 0);
	CHECK(bp->hdr.ramdisk_image >= 0x1000000 + ELF_MEMSZ);
	CHECK(bp->hdr.ramdisk_image + sizeof(initrd) <= RAM_SIZE);
	CHECK_STR((char *)gm_ptr(&gm, PLAT_CMDLINE_GPA, 1), "root=/dev/vda");
	/* The 64-bit entry needs the identity map. */
	CHECK_EQ(*(uint64_t *)gm_ptr(&gm, PLAT_PML4_GPA, 8), PLAT_PDPT_GPA | 3);

	/* vmlinux's own style: e_entry already physical (phys_startup_64). */
	eh64()->e_entry = 0x1000000;
	CHECK_EQ(load(len, "", NULL, 0, &bi, &e), 0);
	CHECK_EQ(bi.entry, 0x1000000);
	CHECK_EQ(bp->hdr.ramdisk_image, 0);
	CHECK_EQ(bp->hdr.ramdisk_size, 0);

	/* An entry in no segment at all. */
	eh64()->e_entry = 0xffffffff80000000ULL;
	CHECK_FAIL(len, -ENOEXEC);
}

/* Each mutation of a valid image must be refused with the right code. */
TEST(elf_malformed)
{
	size_t len;
	static const uint8_t junk[] = "hello, world";

	memcpy(img_buf, junk, sizeof(junk));
	CHECK_FAIL(sizeof(junk), -ENOEXEC);              /* not a kernel */
	CHECK_FAIL(0, -ENOEXEC);                         /* empty */

#define MUTATE(stmt, err) do {                                             \
	len = make_elf(img_buf, &pvh_opts);                                \
	stmt;                                                              \
	CHECK_FAIL(len, err);                                              \
} while (0)

	MUTATE(len = 20, -ENOEXEC);                              /* truncated header */
	MUTATE(len = sizeof(Elf64_Ehdr) - 1, -ENOEXEC);
	MUTATE(img_buf[EI_CLASS] = 7, -ENOEXEC);                 /* class */
	MUTATE(img_buf[EI_DATA] = ELFDATA2MSB, -ENOEXEC);
	MUTATE(img_buf[EI_VERSION] = 0, -ENOEXEC);
	MUTATE(eh64()->e_machine = EM_AARCH64, -ENOEXEC);
	MUTATE(eh64()->e_type = ET_DYN, -ENOEXEC);
	MUTATE(eh64()->e_phnum = 0, -ENOEXEC);
	MUTATE(eh64()->e_phnum = 65, -ENOEXEC);                  /* too many */
	MUTATE(eh64()->e_phnum = 0xffff, -ENOEXEC);
	MUTATE(eh64()->e_phentsize = 32, -ENOEXEC);
	MUTATE(eh64()->e_phoff = len - 8, -ENOEXEC);        /* table truncated */
	MUTATE(eh64()->e_phoff = UINT64_MAX - 8, -ENOEXEC);      /* offset overflow */
	MUTATE(eh64()->e_shoff = len; eh64()->e_shnum = 3;
	       eh64()->e_shentsize = sizeof(Elf64_Shdr), -ENOEXEC);
	MUTATE(eh64()->e_shoff = 64; eh64()->e_shnum = 3;
	       eh64()->e_shentsize = 12, -ENOEXEC);
	MUTATE(ph64(0)->p_offset = len, -ENOEXEC);              /* outside file */
	MUTATE(ph64(0)->p_offset = UINT64_MAX - 0x10, -ENOEXEC); /* offset + size wraps */
	MUTATE(ph64(0)->p_filesz = len - ELF_LOAD_OFF + 1, -ENOEXEC);
	MUTATE(ph64(0)->p_filesz = ELF_MEMSZ + 1, -ENOEXEC);     /* filesz > memsz */
	MUTATE(ph64(0)->p_paddr = UINT64_MAX - 0x1000, -ENOEXEC);/* paddr + memsz wraps */
	MUTATE(ph64(0)->p_paddr = 0x7000, -ENOEXEC);             /* over boot data */
	MUTATE(ph64(0)->p_paddr = RAM_SIZE, -ENOMEM);            /* past RAM */
	MUTATE(ph64(0)->p_paddr = RAM_SIZE - 0x1000, -ENOMEM);   /* straddles RAM end */
	MUTATE(ph64(0)->p_paddr = 0xFEC00000, -ENOMEM);          /* in the MMIO hole */
	MUTATE(ph64(0)->p_memsz = UINT64_MAX, -ENOEXEC);
	MUTATE(ph64(1)->p_type = PT_LOAD;
	       ph64(1)->p_memsz = 0x100, -ENOEXEC);              /* paddr 0 < 1 MiB */
	MUTATE(ph64(1)->p_type = PT_LOAD; ph64(1)->p_paddr = 0x101000;
	       ph64(1)->p_memsz = 0x100, -ENOEXEC);              /* overlap */
	MUTATE(ph64(0)->p_type = PT_NULL, -ENOEXEC);             /* nothing to load */
	MUTATE(ph64(1)->p_offset = len + 4, -ENOEXEC);        /* notes outside file */
	MUTATE(ph64(1)->p_offset = UINT64_MAX - 4, -ENOEXEC);
	MUTATE(ph64(1)->p_filesz = 0x100000, -ENOEXEC);
	/* Note sizes that run past the segment. */
	MUTATE(((Elf32_Nhdr *)(img_buf + ELF_NOTE_OFF))->n_namesz = 0xffffffff, -ENOEXEC);
	MUTATE(((Elf32_Nhdr *)(img_buf + ELF_NOTE_OFF))->n_descsz = 0xfffffffc, -ENOEXEC);
	MUTATE(((Elf32_Nhdr *)(img_buf + ELF_XEN_NOTE))->n_descsz = 2, -ENOEXEC);
	MUTATE(memcpy(img_buf + ELF_XEN_NOTE + 12 + 4, "\x00\x00\x00\x01", 4),
	       -ENOEXEC);                                        /* PVH entry outside */
#undef MUTATE
}

TEST(cmdline_and_initrd_limits)
{
	size_t len = make_elf(img_buf, &vmlinux_opts);
	char *cmd = malloc(PLAT_CMDLINE_MAX + 1);
	static const uint8_t one;
	struct boot_info bi;
	struct ferr e;

	memset(cmd, 'a', PLAT_CMDLINE_MAX);
	cmd[PLAT_CMDLINE_MAX] = '\0';
	CHECK_EQ(load(len, cmd, NULL, 0, &bi, &e), -E2BIG);
	CHECK(e.msg[0]);
	cmd[PLAT_CMDLINE_MAX - 1] = '\0';        /* exactly fills the buffer */
	CHECK_EQ(load(len, cmd, NULL, 0, &bi, &e), 0);
	CHECK_EQ(strlen(gm_ptr(&gm, PLAT_CMDLINE_GPA, 1)), PLAT_CMDLINE_MAX - 1);
	free(cmd);

	/* Lengths are checked before a byte of the initrd is read, so a one
	 * byte buffer with a huge length is safe here. */
	CHECK_EQ(load(len, "", &one, RAM_SIZE, &bi, &e), -E2BIG);
	CHECK(e.msg[0]);
	CHECK_EQ(load(len, "", &one, UINT64_MAX / 2, &bi, &e), -E2BIG);
	/* Between the kernel's end and the top of RAM, not a byte more. */
	CHECK_EQ(load(len, "", &one, RAM_SIZE - (0x1000000 + ELF_MEMSZ) + 1, &bi, &e),
		 -E2BIG);
	CHECK_EQ(load(len, "", NULL, 5, &bi, &e), -EINVAL);
}

/* Cut a valid image at every length: always an error, never a crash. */
static void truncation_sweep(size_t full)
{
	struct boot_info bi;
	struct ferr e;
	int bad = 0;

	for (size_t l = 0; l < full; l++) {
		int ret = load(l, "", NULL, 0, &bi, &e);

		if (ret >= 0 || !e.msg[0]) {
			if (!bad++)
				printf("# length %zu: ret %d msg '%s'\n", l, ret, e.msg);
		}
		/* Past the header, every few bytes are enough. */
		if (l > 0x400)
			l += 13;
	}
	CHECK_EQ(bad, 0);
}

TEST(elf_truncated)
{
	truncation_sweep(make_elf(img_buf, &pvh_opts));
	truncation_sweep(make_elf(img_buf, &vmlinux_opts));
}

/* ---- bzImage ---- */

#define BZ_SETUP_SECTS 4
#define BZ_SETUP_SIZE  ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PAYLOAD     0x3000
#define BZ_SIZE        (BZ_SETUP_SIZE + BZ_PAYLOAD)
#define BZ_INIT_SIZE   0x2000000

static struct setup_header *bzh(void)
{
	return (struct setup_header *)(img_buf + 0x1f1);
}

static size_t make_bzimage(uint8_t *p)
{
	struct setup_header *h = (struct setup_header *)(p + 0x1f1);

	memset(p, 0, BZ_SIZE);
	for (int i = 0; i < BZ_PAYLOAD; i++)
		p[BZ_SETUP_SIZE + i] = (uint8_t)(i * 13 + 5);
	h->setup_sects = BZ_SETUP_SECTS;
	h->root_dev = 0x1234;
	h->vid_mode = 0xffff;
	h->syssize = BZ_PAYLOAD / 16;
	h->boot_flag = 0xAA55;
	h->jump = 0x6aeb;                   /* jmp to 0x26c: header ends there */
	h->header = 0x53726448;
	h->version = 0x020f;
	h->kernel_version = 0x0abc;
	h->loadflags = LOADED_HIGH;
	h->code32_start = 0x100000;
	h->initrd_addr_max = 0x7fffffff;
	h->kernel_alignment = 0x200000;
	h->relocatable_kernel = 1;
	h->min_alignment = 21;
	h->xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	h->cmdline_size = 2047;
	h->pref_address = 0x1000000;
	h->init_size = BZ_INIT_SIZE;
	h->handover_offset = 0x190;
	return BZ_SIZE;
}

TEST(bzimage)
{
	static uint8_t initrd[8192 + 3];
	struct boot_info bi;
	struct ferr e;
	size_t len = make_bzimage(img_buf);
	struct boot_params *bp = gm_ptr(&gm, PLAT_ZERO_PAGE_GPA, sizeof(*bp));
	const uint8_t *k = gm_ptr(&gm, PLAT_KERNEL_GPA, BZ_PAYLOAD);
	bool same = true;

	memset(initrd, 0x77, sizeof(initrd));
	CHECK_EQ(load(len, "console=ttyS0", initrd, sizeof(initrd), &bi, &e), 0);
	CHECK_EQ(bi.mode, BOOT_LINUX64);
	CHECK_EQ(bi.entry, PLAT_KERNEL_GPA + 0x200);
	CHECK_EQ(bi.arg, PLAT_ZERO_PAGE_GPA);
	for (int i = 0; i < BZ_PAYLOAD; i++)
		same &= k[i] == (uint8_t)(i * 13 + 5);
	CHECK(same);

	/* The file's header round-trips... */
	CHECK_EQ(bp->hdr.setup_sects, BZ_SETUP_SECTS);
	CHECK_EQ(bp->hdr.root_dev, 0x1234);
	CHECK_EQ(bp->hdr.version, 0x020f);
	CHECK_EQ(bp->hdr.kernel_version, 0x0abc);
	CHECK_EQ(bp->hdr.xloadflags, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	CHECK_EQ(bp->hdr.kernel_alignment, 0x200000);
	CHECK_EQ(bp->hdr.init_size, BZ_INIT_SIZE);
	CHECK_EQ(bp->hdr.pref_address, 0x1000000);
	CHECK_EQ(bp->hdr.handover_offset, 0x190);
	CHECK_EQ(bp->hdr.cmdline_size, 2047);
	/* ... with the loader's fields filled in. */
	check_zero_page(sizeof(initrd));
	CHECK_EQ(bp->hdr.heap_end_ptr, 0xfe00);
	CHECK_STR((char *)gm_ptr(&gm, bp->hdr.cmd_line_ptr, 1), "console=ttyS0");
	CHECK_EQ(bp->hdr.ramdisk_image % 4096, 0);
	/* Above where the kernel decompresses, below RAM's end. */
	CHECK(bp->hdr.ramdisk_image >= 0x1000000 + BZ_INIT_SIZE);
	CHECK(bp->hdr.ramdisk_image + sizeof(initrd) <= RAM_SIZE);
	CHECK(memcmp(gm_ptr(&gm, bp->hdr.ramdisk_image, sizeof(initrd)), initrd,
		     sizeof(initrd)) == 0);

	/* initrd_addr_max is honoured. */
	len = make_bzimage(img_buf);
	bzh()->initrd_addr_max = 0x4000000 - 1;
	CHECK_EQ(load(len, "", initrd, sizeof(initrd), &bi, &e), 0);
	CHECK(bp->hdr.ramdisk_image + sizeof(initrd) <= 0x4000000);
	CHECK(bp->hdr.ramdisk_image >= 0x4000000 - 3 * 4096);

	/* setup_sects 0 means 4. */
	len = make_bzimage(img_buf);
	bzh()->setup_sects = 0;
	CHECK_EQ(load(len, "", NULL, 0, &bi, &e), 0);
	CHECK_EQ(k[0], 5);

	/* A non-relocatable kernel goes to its pref_address. */
	len = make_bzimage(img_buf);
	bzh()->relocatable_kernel = 0;
	CHECK_EQ(load(len, "", NULL, 0, &bi, &e), 0);
	CHECK_EQ(bi.entry, 0x1000200);

	/* The command line limit is the kernel's cmdline_size. */
	char cmd[2049];
	len = make_bzimage(img_buf);
	memset(cmd, 'c', sizeof(cmd));
	cmd[2047] = '\0';
	CHECK_EQ(load(len, cmd, NULL, 0, &bi, &e), 0);
	cmd[2047] = 'c';
	cmd[2048] = '\0';
	CHECK_EQ(load(len, cmd, NULL, 0, &bi, &e), -E2BIG);
	CHECK(e.msg[0]);
}

TEST(bzimage_malformed)
{
	size_t len;

#define MUTATE(stmt, err) do {                                             \
	len = make_bzimage(img_buf);                                       \
	stmt;                                                              \
	CHECK_FAIL(len, err);                                              \
} while (0)

	MUTATE(bzh()->version = 0x020b, -ENOEXEC);               /* too old */
	MUTATE(bzh()->version = 0x0200, -ENOEXEC);
	MUTATE(bzh()->xloadflags = 0, -ENOEXEC);                 /* no 64-bit entry */
	MUTATE(bzh()->loadflags = 0, -ENOEXEC);                  /* zImage */
	MUTATE(bzh()->setup_sects = 200, -ENOEXEC);              /* past EOF */
	MUTATE(len = BZ_SETUP_SIZE, -ENOEXEC);                   /* no payload */
	MUTATE(bzh()->kernel_alignment = 0, -ENOEXEC);
	MUTATE(bzh()->kernel_alignment = 0x300000, -ENOEXEC);
	MUTATE(bzh()->relocatable_kernel = 0; bzh()->pref_address = 0x8000, -ENOEXEC);
	MUTATE(bzh()->relocatable_kernel = 0;
	       bzh()->pref_address = UINT64_MAX - 0x100, -ENOEXEC);
	MUTATE(bzh()->init_size = 0xF0000000, -ENOMEM);          /* RAM too small */
	MUTATE(bzh()->pref_address = RAM_SIZE, -ENOMEM);
	/* Magic broken: then it is not a kernel at all. */
	MUTATE(bzh()->header = 0x12345678, -ENOEXEC);
	MUTATE(bzh()->boot_flag = 0, -ENOEXEC);
#undef MUTATE
}

TEST(bzimage_truncated)
{
	truncation_sweep(make_bzimage(img_buf));
}

int main(void)
{
	struct gm_config gc = { .size = RAM_SIZE };
	struct ferr e;

	if (gm_init(&gm, &gc, &e)) {
		printf("Bail out! %s\n", e.msg);
		return 1;
	}
	RUN(e820_256m);
	RUN(e820_3g);
	RUN(e820_4g);
	RUN(e820_8g);
	RUN(page_tables);
	RUN(elf_pvh);
	RUN(elf32_pvh);
	RUN(elf_pvh_note_section);
	RUN(elf_vmlinux);
	RUN(elf_malformed);
	RUN(cmdline_and_initrd_limits);
	RUN(elf_truncated);
	RUN(bzimage);
	RUN(bzimage_malformed);
	RUN(bzimage_truncated);
	gm_destroy(&gm);
	return tap_done();
}
