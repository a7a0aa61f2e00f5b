/* ELF kernels: a 64-bit x86-64 vmlinux (entered in long mode with a zero
 * page), or any ELF32/ELF64 image carrying Xen's PVH entry note (entered in
 * 32-bit protected mode with start_info).  Every field read from the file is
 * checked before use: the file is as hostile as a guest. */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "ferry/platform.h"
#include "ferry/util.h"

#include "boot_priv.h"

/* vmlinux has about five program headers; anything beyond this is not a
 * kernel we want to spend time on. */
#define ELF_MAX_PHDRS 64
#define ELF_MAX_SHDRS 4096

/* Header and program header, widened to one shape for both classes. */
struct elf_info {
	bool is64;
	uint64_t entry;
	uint64_t phoff, shoff;
	unsigned int phnum, shnum;
};

struct elf_phdr {
	uint32_t type;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

static int elf_read_header(const uint8_t *buf, size_t len, struct elf_info *ei,
			   struct ferr *e)
{
	uint16_t type, machine, phentsize, shentsize, phnum, shnum;
	size_t ehsize, phsize, shsize;

	if (len < EI_NIDENT)
		return ferr_set(e, -ENOEXEC, "truncated ELF header (%zu bytes)", len);
	if (buf[EI_CLASS] != ELFCLASS64 && buf[EI_CLASS] != ELFCLASS32)
		return ferr_set(e, -ENOEXEC, "unknown ELF class %u", buf[EI_CLASS]);
	if (buf[EI_DATA] != ELFDATA2LSB)
		return ferr_set(e, -ENOEXEC, "ELF file is not little-endian");
	if (buf[EI_VERSION] != EV_CURRENT)
		return ferr_set(e, -ENOEXEC, "unknown ELF version %u", buf[EI_VERSION]);

	ei->is64 = buf[EI_CLASS] == ELFCLASS64;
	ehsize = ei->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	phsize = ei->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	shsize = ei->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
	if (len < ehsize)
		return ferr_set(e, -ENOEXEC, "truncated ELF header (%zu of %zu bytes)",
				len, ehsize);

	if (ei->is64) {
		Elf64_Ehdr h;

		memcpy(&h, buf, sizeof(h));
		type = h.e_type; machine = h.e_machine;
		phentsize = h.e_phentsize; shentsize = h.e_shentsize;
		phnum = h.e_phnum; shnum = h.e_shnum;
		ei->entry = h.e_entry; ei->phoff = h.e_phoff; ei->shoff = h.e_shoff;
	} else {
		Elf32_Ehdr h;

		memcpy(&h, buf, sizeof(h));
		type = h.e_type; machine = h.e_machine;
		phentsize = h.e_phentsize; shentsize = h.e_shentsize;
		phnum = h.e_phnum; shnum = h.e_shnum;
		ei->entry = h.e_entry; ei->phoff = h.e_phoff; ei->shoff = h.e_shoff;
	}

	if (type != ET_EXEC)
		return ferr_set(e, -ENOEXEC, "ELF type %u is not an executable", type);
	if (ei->is64 && machine != EM_X86_64)
		return ferr_set(e, -ENOEXEC, "ELF64 machine %u is not x86-64", machine);
	if (!ei->is64 && machine != EM_386)
		return ferr_set(e, -ENOEXEC, "ELF32 machine %u is not i386", machine);
	if (phnum == 0)
		return ferr_set(e, -ENOEXEC, "ELF file has no program headers");
	if (phnum > ELF_MAX_PHDRS)
		return ferr_set(e, -ENOEXEC, "too many program headers (%u, at most %d)",
				phnum, ELF_MAX_PHDRS);
	if (phentsize != phsize)
		return ferr_set(e, -ENOEXEC, "program header size %u, expected %zu",
				phentsize, phsize);
	/* phnum * phsize is at most 64 * 56: only the offset can overflow. */
	if (ei->phoff > len || phnum * phsize > len - ei->phoff)
		return ferr_set(e, -ENOEXEC,
				"truncated program header table (%u entries at offset 0x%llx, file is %zu bytes)",
				phnum, (unsigned long long)ei->phoff, len);
	ei->phnum = phnum;

	/* Section headers are only looked at for notes; a table that is absent
	 * is fine, one that points outside the file means a truncated file. */
	ei->shnum = 0;
	if (ei->shoff && shnum) {
		if (shentsize != shsize)
			return ferr_set(e, -ENOEXEC, "section header size %u, expected %zu",
					shentsize, shsize);
		if (shnum > ELF_MAX_SHDRS)
			return ferr_set(e, -ENOEXEC, "too many section headers (%u)", shnum);
		if (ei->shoff > len || shnum * shsize > len - ei->shoff)
			return ferr_set(e, -ENOEXEC,
					"truncated section header table (%u entries at offset 0x%llx, file is %zu bytes)",
					shnum, (unsigned long long)ei->shoff, len);
		ei->shnum = shnum;
	}
	return 0;
}

static void elf_get_phdr(const uint8_t *buf, const struct elf_info *ei,
			 unsigned int i, struct elf_phdr *ph)
{
	if (ei->is64) {
		Elf64_Phdr p;

		memcpy(&p, buf + ei->phoff + i * sizeof(p), sizeof(p));
		*ph = (struct elf_phdr){ p.p_type, p.p_offset, p.p_vaddr, p.p_paddr,
					 p.p_filesz, p.p_memsz, p.p_align };
	} else {
		Elf32_Phdr p;

		memcpy(&p, buf + ei->phoff + i * sizeof(p), sizeof(p));
		*ph = (struct elf_phdr){ p.p_type, p.p_offset, p.p_vaddr, p.p_paddr,
					 p.p_filesz, p.p_memsz, p.p_align };
	}
}

/* Section header fields needed for notes: type, offset, size, alignment. */
static void elf_get_shdr(const uint8_t *buf, const struct elf_info *ei,
			 unsigned int i, struct elf_phdr *sh)
{
	if (ei->is64) {
		Elf64_Shdr s;

		memcpy(&s, buf + ei->shoff + i * sizeof(s), sizeof(s));
		*sh = (struct elf_phdr){ .type = s.sh_type, .offset = s.sh_offset,
					 .filesz = s.sh_size, .align = s.sh_addralign };
	} else {
		Elf32_Shdr s;

		memcpy(&s, buf + ei->shoff + i * sizeof(s), sizeof(s));
		*sh = (struct elf_phdr){ .type = s.sh_type, .offset = s.sh_offset,
					 .filesz = s.sh_size, .align = s.sh_addralign };
	}
}

/* Walk the notes in [off, off+size) looking for Xen's PHYS32_ENTRY.
 * Notes are 4-byte aligned, except in 8-aligned containers (GNU property
 * notes), where name and descriptor are padded to 8. */
static int elf_scan_notes(const uint8_t *buf, size_t len, uint64_t off,
			  uint64_t size, uint64_t align, const char *what,
			  unsigned int idx, uint64_t *entry, bool *found,
			  struct ferr *e)
{
	uint64_t a = align == 8 ? 8 : 4;
	uint64_t pos = 0;

	if (off > len || size > len - off)
		return ferr_set(e, -ENOEXEC,
				"%s %u: notes at [0x%llx, +0x%llx) lie outside the file (%zu bytes)",
				what, idx, (unsigned long long)off,
				(unsigned long long)size, len);
	while (size - pos >= sizeof(Elf32_Nhdr)) {
		Elf32_Nhdr n;
		uint64_t name_len, desc_len;
		const uint8_t *name, *desc;

		memcpy(&n, buf + off + pos, sizeof(n));
		pos += sizeof(n);
		/* 32-bit sizes widened to 64 bits: the sums cannot wrap. */
		name_len = ALIGN_UP((uint64_t)n.n_namesz, a);
		desc_len = ALIGN_UP((uint64_t)n.n_descsz, a);
		if (name_len > size - pos || desc_len > size - pos - name_len)
			return ferr_set(e, -ENOEXEC,
					"%s %u: malformed note (name %u bytes, descriptor %u bytes, %llu left)",
					what, idx, n.n_namesz, n.n_descsz,
					(unsigned long long)(size - pos));
		name = buf + off + pos;
		desc = name + name_len;
		pos += name_len + desc_len;

		if (n.n_type != XEN_ELFNOTE_PHYS32_ENTRY || n.n_namesz != 4 ||
		    memcmp(name, "Xen", 4) != 0)
			continue;
		if (n.n_descsz == 4) {
			uint32_t v;

			memcpy(&v, desc, 4);
			*entry = v;
		} else if (n.n_descsz == 8) {
			memcpy(entry, desc, 8);
			if (*entry >> 32)
				return ferr_set(e, -ENOEXEC,
						"PVH entry 0x%llx is above 4 GiB",
						(unsigned long long)*entry);
		} else {
			return ferr_set(e, -ENOEXEC,
					"PVH entry note has a %u-byte descriptor (expected 4 or 8)",
					n.n_descsz);
		}
		*found = true;
		return 0;
	}
	return 0;
}

static int elf_find_pvh_entry(const uint8_t *buf, size_t len,
			      const struct elf_info *ei, uint64_t *entry,
			      bool *found, struct ferr *e)
{
	bool have_pt_note = false;
	struct elf_phdr ph;
	int ret;

	*found = false;
	for (unsigned int i = 0; i < ei->phnum && !*found; i++) {
		elf_get_phdr(buf, ei, i, &ph);
		if (ph.type != PT_NOTE)
			continue;
		have_pt_note = true;
		ret = elf_scan_notes(buf, len, ph.offset, ph.filesz, ph.align,
				     "note segment", i, entry, found, e);
		if (ret)
			return ret;
	}
	/* Linkers put every SHT_NOTE section in a PT_NOTE segment; the
	 * sections only matter for images that lack the segment. */
	if (have_pt_note)
		return 0;
	for (unsigned int i = 0; i < ei->shnum && !*found; i++) {
		elf_get_shdr(buf, ei, i, &ph);
		if (ph.type != SHT_NOTE)
			continue;
		ret = elf_scan_notes(buf, len, ph.offset, ph.filesz, ph.align,
				     "note section", i, entry, found, e);
		if (ret)
			return ret;
	}
	return 0;
}

/* Check one PT_LOAD against the file, guest RAM and the segments before
 * it.  Nothing is written until every segment has passed. */
static int elf_check_load(const struct guest_mem *gm, size_t len,
			  const struct elf_phdr *ph, unsigned int i,
			  const struct elf_phdr *prev, unsigned int nr_prev,
			  struct ferr *e)
{
	uint64_t end;

	if (ph->filesz > ph->memsz)
		return ferr_set(e, -ENOEXEC,
				"segment %u: file size 0x%llx is larger than its memory size 0x%llx",
				i, (unsigned long long)ph->filesz,
				(unsigned long long)ph->memsz);
	if (ph->offset > len || ph->filesz > len - ph->offset)
		return ferr_set(e, -ENOEXEC,
				"segment %u: bytes [0x%llx, +0x%llx) lie outside the file (%zu bytes)",
				i, (unsigned long long)ph->offset,
				(unsigned long long)ph->filesz, len);
	if (ph->memsz > UINT64_MAX - ph->paddr)
		return ferr_set(e, -ENOEXEC,
				"segment %u: physical range 0x%llx + 0x%llx wraps around",
				i, (unsigned long long)ph->paddr,
				(unsigned long long)ph->memsz);
	end = ph->paddr + ph->memsz;
	if (ph->paddr < BOOT_KERNEL_MIN_GPA)
		return ferr_set(e, -ENOEXEC,
				"segment %u at 0x%llx: kernels must load at or above 1 MiB (boot data lives below)",
				i, (unsigned long long)ph->paddr);
	if (!gm_ptr(gm, ph->paddr, ph->memsz))
		return ferr_set(e, -ENOMEM,
				"segment %u [0x%llx, 0x%llx) does not fit in guest RAM (%llu MiB below 4 GiB)",
				i, (unsigned long long)ph->paddr,
				(unsigned long long)end,
				(unsigned long long)(gm_low_end(gm) / MiB));
	for (unsigned int j = 0; j < nr_prev; j++) {
		if (ph->paddr < prev[j].paddr + prev[j].memsz &&
		    prev[j].paddr < end)
			return ferr_set(e, -ENOEXEC,
					"segment %u [0x%llx, 0x%llx) overlaps an earlier segment at 0x%llx",
					i, (unsigned long long)ph->paddr,
					(unsigned long long)end,
					(unsigned long long)prev[j].paddr);
	}
	return 0;
}

/* vmlinux links e_entry either as a physical address (phys_startup_64) or,
 * in other images, as a virtual one: accept what falls in a segment. */
static int elf_linux_entry(const struct elf_info *ei, const struct elf_phdr *loads,
			   unsigned int nr, uint64_t *entry, struct ferr *e)
{
	for (unsigned int i = 0; i < nr; i++) {
		if (ei->entry - loads[i].vaddr < loads[i].memsz) {
			*entry = loads[i].paddr + (ei->entry - loads[i].vaddr);
			return 0;
		}
	}
	for (unsigned int i = 0; i < nr; i++) {
		if (ei->entry - loads[i].paddr < loads[i].memsz) {
			*entry = ei->entry;
			return 0;
		}
	}
	return ferr_set(e, -ENOEXEC,
			"entry point 0x%llx is outside every loadable segment",
			(unsigned long long)ei->entry);
}

int elf_load(struct guest_mem *gm, const void *file, size_t len,
	     struct boot_image *img, struct ferr *e)
{
	const uint8_t *buf = file;
	struct elf_phdr loads[ELF_MAX_PHDRS];
	unsigned int nr = 0;
	struct elf_info ei = { 0 };
	uint64_t pvh_entry = 0;
	bool pvh = false;
	int ret;

	ret = elf_read_header(buf, len, &ei, e);
	if (ret)
		return ret;
	ret = elf_find_pvh_entry(buf, len, &ei, &pvh_entry, &pvh, e);
	if (ret)
		return ret;
	if (!ei.is64 && !pvh)
		return ferr_set(e, -ENOEXEC,
				"32-bit ELF without a PVH entry note (Xen note type 18): cannot boot it");

	for (unsigned int i = 0; i < ei.phnum; i++) {
		struct elf_phdr ph;

		elf_get_phdr(buf, &ei, i, &ph);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		ret = elf_check_load(gm, len, &ph, i, loads, nr, e);
		if (ret)
			return ret;
		loads[nr++] = ph;
	}
	if (!nr)
		return ferr_set(e, -ENOEXEC, "ELF file has no loadable segment");

	memset(img, 0, sizeof(*img));
	if (pvh) {
		unsigned int i;

		for (i = 0; i < nr; i++)
			if (pvh_entry - loads[i].paddr < loads[i].memsz)
				break;
		if (i == nr)
			return ferr_set(e, -ENOEXEC,
					"PVH entry 0x%llx is outside every loadable segment",
					(unsigned long long)pvh_entry);
		img->mode = BOOT_PVH;
		img->entry = pvh_entry;
	} else {
		ret = elf_linux_entry(&ei, loads, nr, &img->entry, e);
		if (ret)
			return ret;
		img->mode = BOOT_LINUX64;
	}

	for (unsigned int i = 0; i < nr; i++) {
		uint8_t *dst = gm_ptr(gm, loads[i].paddr, loads[i].memsz);
		uint64_t end = loads[i].paddr + loads[i].memsz;

		/* Checked by elf_check_load(); RAM cannot shrink meanwhile. */
		memcpy(dst, buf + loads[i].offset, loads[i].filesz);
		memset(dst + loads[i].filesz, 0, loads[i].memsz - loads[i].filesz);
		img->kernel_end = MAX(img->kernel_end, end);
	}
	img->initrd_limit = MEM_HOLE_END;
	img->cmdline_max = PLAT_CMDLINE_MAX;
	return 0;
}
