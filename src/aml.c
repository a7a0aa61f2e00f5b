/* AML encoder: byte-level encodings of names, integers, strings, packages,
 * scopes with PkgLength, and resource templates (ACPI 6.x, chapters 6.4
 * and 20).  Scopes are written first and their PkgLength is inserted when
 * they close, since it is only known then. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/aml.h"

/* Opcodes and prefixes (ACPI 6.5, 20.3). */
#define AML_ZERO          0x00
#define AML_ONE           0x01
#define AML_NAME          0x08
#define AML_BYTE_PREFIX   0x0A
#define AML_WORD_PREFIX   0x0B
#define AML_DWORD_PREFIX  0x0C
#define AML_STRING_PREFIX 0x0D
#define AML_QWORD_PREFIX  0x0E
#define AML_SCOPE         0x10
#define AML_BUFFER        0x11
#define AML_PACKAGE       0x12
#define AML_METHOD        0x14
#define AML_DUAL_NAME     0x2E
#define AML_MULTI_NAME    0x2F
#define AML_ROOT_CHAR     0x5C
#define AML_PARENT_CHAR   0x5E
#define AML_EXT_PREFIX    0x5B
#define AML_DEVICE        0x82  /* after AML_EXT_PREFIX */
#define AML_RETURN        0xA4
#define AML_ONES          0xFF

/* Resource descriptor tags (6.4). */
#define RES_IRQ_NOFLAGS   0x22  /* small, IRQ, 2 bytes */
#define RES_IO            0x47  /* small, I/O port, 7 bytes */
#define RES_END_TAG       0x79  /* small, end, 1 byte */
#define RES_DWORD_ADDR    0x87
#define RES_WORD_ADDR     0x88
#define RES_EXT_IRQ       0x89
#define RES_QWORD_ADDR    0x8A

#define RES_TYPE_MEM      0
#define RES_TYPE_IO       1
#define RES_TYPE_BUS      2
/* General flags of a bridge window: producer, fixed min and max,
 * positive decode. */
#define RES_WINDOW_FLAGS  0x0C

enum { AML_K_PKG, AML_K_BUFFER };

static void aml_fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

int aml_finish(struct aml *a)
{
	if (!a->err && a->depth)
		aml_fail(a, -EINVAL);
	return a->err;
}

static int aml_reserve(struct aml *a, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (a->err)
		return a->err;
	if (a->cap - a->len >= n)
		return 0;
	cap = a->cap ? a->cap : 256;
	while (cap - a->len < n)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p) {
		aml_fail(a, -ENOMEM);
		return a->err;
	}
	a->buf = p;
	a->cap = cap;
	return 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (aml_reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* Little-endian integer of @n bytes. */
static void aml_le(struct aml *a, uint64_t v, int n)
{
	uint8_t b[8];

	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* --- names --- */

static int aml_seg_char_ok(char c, int first)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

static void aml_nameseg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = { '_', '_', '_', '_' };

	if (n == 0 || n > 4) {
		aml_fail(a, -EINVAL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!aml_seg_char_ok(s[i], i == 0)) {
			aml_fail(a, -EINVAL);
			return;
		}
		seg[i] = s[i];
	}
	aml_bytes(a, seg, 4);
}

void aml_namestring(struct aml *a, const char *path)
{
	const char *p = path;
	size_t nseg = 0;

	while (*p == '\\' || *p == '^')
		aml_byte(a, *p++ == '\\' ? AML_ROOT_CHAR : AML_PARENT_CHAR);
	if (*p) {
		nseg = 1;
		for (const char *q = p; *q; q++)
			nseg += *q == '.';
	}
	if (nseg == 0) {
		aml_byte(a, AML_ZERO);          /* NullName: "\" alone */
		return;
	}
	if (nseg > 255) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (nseg == 2) {
		aml_byte(a, AML_DUAL_NAME);
	} else if (nseg > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)nseg);
	}
	while (*p) {
		size_t n = strcspn(p, ".");

		aml_nameseg(a, p, n);
		p += n;
		if (*p == '.')
			p++;
	}
}

/* --- data --- */

void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v == UINT64_MAX) {
		aml_byte(a, AML_ONES);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; *p; p++) {
		/* AML strings are ASCII 0x01-0x7f. */
		if ((unsigned char)*p > 0x7f) {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int aml_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* EISA id: three letters in 5 bits each and four hex digits, stored
 * big-endian in a DWord (ACPI 6.5, 19.6.35). */
void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			aml_fail(a, -EINVAL);
			return;
		}
		v = v << 5 | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int h = aml_hex(id[i]);

		if (h < 0) {
			aml_fail(a, -EINVAL);
			return;
		}
		v = v << 4 | (uint32_t)h;
	}
	/* v now holds the 32 bits in reading order; AML wants them as bytes
	 * in that order, i.e. byte-swapped into the little-endian DWord. */
	aml_int(a, __builtin_bswap32(v));
}

void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME);
	aml_namestring(a, name);
}

void aml_return(struct aml *a)
{
	aml_byte(a, AML_RETURN);
}

/* --- scopes with a PkgLength --- */

static void aml_open(struct aml *a, int kind)
{
	if (a->depth == AML_MAX_DEPTH) {
		aml_fail(a, -EINVAL);
		return;
	}
	a->open[a->depth].start = a->len;
	a->open[a->depth].kind = kind;
	a->depth++;
}

/* PkgLength counts its own bytes: 1 byte up to 63, else 2-4 bytes with
 * the low nibble in the lead byte (20.2.4). */
static int aml_pkglen_encode(size_t body, uint8_t out[4])
{
	size_t v;
	int n;

	if (body + 1 <= 0x3f) {
		out[0] = (uint8_t)(body + 1);
		return 1;
	}
	for (n = 2; n <= 4; n++) {
		v = body + (size_t)n;
		if (v < (1ULL << (4 + 8 * (n - 1))))
			break;
	}
	if (n > 4)
		return -1;
	out[0] = (uint8_t)((n - 1) << 6 | (v & 0x0f));
	for (int i = 1; i < n; i++)
		out[i] = (uint8_t)(v >> (4 + 8 * (i - 1)));
	return n;
}

void aml_end(struct aml *a)
{
	uint8_t hdr[4 + 9];
	size_t start, body, pre = 0;
	int n;

	if (a->err)
		return;
	if (!a->depth) {
		aml_fail(a, -EINVAL);
		return;
	}
	a->depth--;
	start = a->open[a->depth].start;
	body = a->len - start;

	if (a->open[a->depth].kind == AML_K_BUFFER) {
		/* BufferSize is an integer object in front of the bytes. */
		struct aml tmp;

		aml_init(&tmp);
		aml_int(&tmp, body);
		if (tmp.err) {
			aml_fail(a, tmp.err);
			aml_free(&tmp);
			return;
		}
		pre = tmp.len;
		memcpy(hdr + 4, tmp.buf, pre);
		aml_free(&tmp);
	}
	n = aml_pkglen_encode(body + pre, hdr);
	if (n < 0) {
		aml_fail(a, -E2BIG);
		return;
	}
	memmove(hdr + n, hdr + 4, pre);
	if (aml_reserve(a, n + pre))
		return;
	memmove(a->buf + start + n + pre, a->buf + start, body);
	memcpy(a->buf + start, hdr, n + pre);
	a->len += n + pre;
}

void aml_scope(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE);
	aml_open(a, AML_K_PKG);
	aml_namestring(a, path);
}

void aml_device(struct aml *a, const char *name)
{
	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE);
	aml_open(a, AML_K_PKG);
	aml_namestring(a, name);
}

void aml_method(struct aml *a, const char *name, unsigned int nargs,
		int serialized)
{
	if (nargs > 7)
		aml_fail(a, -EINVAL);
	aml_byte(a, AML_METHOD);
	aml_open(a, AML_K_PKG);
	aml_namestring(a, name);
	aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
}

void aml_package(struct aml *a, unsigned int nelems)
{
	/* Past 255 elements a VarPackage would be needed. */
	if (nelems > 255)
		aml_fail(a, -EINVAL);
	aml_byte(a, AML_PACKAGE);
	aml_open(a, AML_K_PKG);
	aml_byte(a, (uint8_t)nelems);
}

void aml_buffer(struct aml *a)
{
	aml_byte(a, AML_BUFFER);
	aml_open(a, AML_K_BUFFER);
}

/* --- resource descriptors --- */

void aml_res_io(struct aml *a, uint16_t base, uint8_t len)
{
	aml_byte(a, RES_IO);
	aml_byte(a, 0x01);                  /* decodes 16 address bits */
	aml_le(a, base, 2);                 /* minimum base */
	aml_le(a, base, 2);                 /* maximum base: fixed */
	aml_byte(a, 1);                     /* alignment */
	aml_byte(a, len);
}

void aml_res_irq_noflags(struct aml *a, unsigned int irq)
{
	if (irq > 15) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, RES_IRQ_NOFLAGS);
	aml_le(a, 1u << irq, 2);
}

void aml_res_interrupt(struct aml *a, uint32_t gsi, int level,
		       int active_low, int shared)
{
	uint8_t flags = 0x01;               /* consumer */

	if (!level)
		flags |= 0x02;
	if (active_low)
		flags |= 0x04;
	if (shared)
		flags |= 0x08;
	aml_byte(a, RES_EXT_IRQ);
	aml_le(a, 6, 2);                    /* length after this field */
	aml_byte(a, flags);
	aml_byte(a, 1);                     /* one interrupt */
	aml_le(a, gsi, 4);
}

/* Word/DWord/QWord address space descriptors share one shape: header,
 * then granularity, min, max, translation, length in @w-byte fields. */
static void aml_res_addr(struct aml *a, uint8_t tag, int w, uint8_t type,
			 uint8_t type_flags, uint64_t min, uint64_t max)
{
	uint64_t field_max = w == 8 ? UINT64_MAX : (1ULL << (8 * w)) - 1;
	uint64_t len = max - min + 1;

	/* The length must be representable, so [0, field_max] is not. */
	if (min > max || max > field_max || len > field_max || len == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, tag);
	aml_le(a, 3 + 5 * (uint64_t)w, 2);  /* bytes after the length field */
	aml_byte(a, type);
	aml_byte(a, RES_WINDOW_FLAGS);
	aml_byte(a, type_flags);
	aml_le(a, 0, w);                    /* granularity */
	aml_le(a, min, w);
	aml_le(a, max, w);
	aml_le(a, 0, w);                    /* translation offset */
	aml_le(a, len, w);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_addr(a, RES_WORD_ADDR, 2, RES_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	/* Type flags 3: the window covers ISA and non-ISA ranges. */
	aml_res_addr(a, RES_WORD_ADDR, 2, RES_TYPE_IO, 0x03, min, max);
}

/* Memory type flags: bit 0 read-write; bits 1-2 cacheability, 3 being
 * "prefetchable". */
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max,
		       int prefetchable)
{
	aml_res_addr(a, RES_DWORD_ADDR, 4, RES_TYPE_MEM,
		     0x01 | (prefetchable ? 0x06 : 0), min, max);
}

void aml_res_qword_mem(struct aml *a, uint64_t min, uint64_t max,
		       int prefetchable)
{
	aml_res_addr(a, RES_QWORD_ADDR, 8, RES_TYPE_MEM,
		     0x01 | (prefetchable ? 0x06 : 0), min, max);
}

void aml_res_end(struct aml *a)
{
	uint8_t sum = RES_END_TAG;

	if (a->err)
		return;
	if (!a->depth || a->open[a->depth - 1].kind != AML_K_BUFFER) {
		aml_fail(a, -EINVAL);
		return;
	}
	for (size_t i = a->open[a->depth - 1].start; i < a->len; i++)
		sum += a->buf[i];
	aml_byte(a, RES_END_TAG);
	aml_byte(a, (uint8_t)-sum);
	aml_end(a);
}
