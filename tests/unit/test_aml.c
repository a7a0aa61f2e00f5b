/* The AML encoder (src/aml.c): byte-exact encodings checked against the
 * ACPI specification's grammar, and the errors it must refuse to hide. */
#include <errno.h>
#include <stdlib.h>

#include "ferry/aml.h"
#include "tap.h"

#define CHECK_BYTES(a, ...) do {                                           \
	static const uint8_t _want[] = { __VA_ARGS__ };                     \
	CHECK_EQ((a)->len, sizeof(_want));                                 \
	CHECK((a)->len == sizeof(_want) &&                                 \
	      memcmp((a)->buf, _want, sizeof(_want)) == 0);                \
} while (0)

/* Decode a PkgLength at @p: returns its value, *n its size in bytes. */
static size_t pkglen_decode(const uint8_t *p, int *n)
{
	size_t v;

	*n = (p[0] >> 6) + 1;
	if (*n == 1)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (int i = 1; i < *n; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

TEST(integers)
{
	struct aml a;

	aml_init(&a);
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, 2);
	aml_int(&a, 0xff);
	aml_int(&a, 0x100);
	aml_int(&a, 0x12345678);
	aml_int(&a, 0x100000000ULL);
	aml_int(&a, UINT64_MAX);
	CHECK_EQ(aml_finish(&a), 0);
	CHECK_BYTES(&a, 0x00, 0x01, 0x0a, 0x02, 0x0a, 0xff, 0x0b, 0x00, 0x01,
		    0x0c, 0x78, 0x56, 0x34, 0x12,
		    0x0e, 0, 0, 0, 0, 1, 0, 0, 0, 0xff);
	aml_free(&a);
}

TEST(names)
{
	struct aml a;

	aml_init(&a);
	aml_namestring(&a, "\\_SB.PCI0");
	aml_namestring(&a, "COM");
	aml_namestring(&a, "\\");
	aml_namestring(&a, "^A.B.C");
	CHECK_EQ(aml_finish(&a), 0);
	CHECK_BYTES(&a, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0',
		    'C', 'O', 'M', '_',
		    '\\', 0x00,
		    '^', 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_');
	aml_free(&a);

	/* Bad segments: too long, lower case, leading digit, empty. */
	const char *bad[] = { "TOOLONG", "pci0", "0ABC", "A..B", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a);
		aml_name(&a, bad[i]);
		aml_int(&a, 1);
		/* "" is the null name in a path, but not a valid Name(). */
		if (bad[i][0])
			CHECK_EQ(aml_finish(&a), -EINVAL);
		aml_free(&a);
	}
}

TEST(strings_and_eisaid)
{
	struct aml a;

	aml_init(&a);
	aml_string(&a, "ab");
	aml_eisaid(&a, "PNP0A03");
	aml_eisaid(&a, "PNP0501");
	CHECK_EQ(aml_finish(&a), 0);
	/* PNP0A03 is 0x030ad041, PNP0501 0x0105d041 (ACPI tables in the wild). */
	CHECK_BYTES(&a, 0x0d, 'a', 'b', 0,
		    0x0c, 0x41, 0xd0, 0x0a, 0x03,
		    0x0c, 0x41, 0xd0, 0x05, 0x01);
	aml_free(&a);

	aml_init(&a);
	aml_eisaid(&a, "PNP0A0G");
	CHECK_EQ(aml_finish(&a), -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_eisaid(&a, "pnp0a03");
	CHECK_EQ(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

TEST(scopes)
{
	struct aml a;

	aml_init(&a);
	aml_scope(&a, "\\_SB");
	aml_device(&a, "DEV");
	aml_name(&a, "_UID");
	aml_int(&a, 1);
	aml_end(&a);
	aml_method(&a, "_STA", 0, 0);
	aml_return(&a);
	aml_int(&a, 0x0f);
	aml_end(&a);
	aml_end(&a);
	CHECK_EQ(aml_finish(&a), 0);
	CHECK_BYTES(&a,
		0x10, 29, '\\', '_', 'S', 'B', '_',              /* Scope */
		0x5b, 0x82, 11, 'D', 'E', 'V', '_',          /* Device */
		0x08, '_', 'U', 'I', 'D', 0x01,
		0x14, 9, '_', 'S', 'T', 'A', 0x00,           /* Method */
		0xa4, 0x0a, 0x0f);
	aml_free(&a);
}

/* PkgLength switches to 2 bytes at 63 content bytes, 3 at 4095-1. */
TEST(pkglength_boundaries)
{
	const size_t sizes[] = { 0, 61, 62, 63, 64, 4000, 4093, 4094, 5000, 70000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *filler = calloc(1, sizes[i] + 1);
		struct aml a;
		size_t v;
		int n;

		aml_init(&a);
		aml_package(&a, 0);
		aml_bytes(&a, filler, sizes[i]);
		aml_end(&a);
		CHECK_EQ(aml_finish(&a), 0);
		CHECK_EQ(a.buf[0], 0x12);
		v = pkglen_decode(a.buf + 1, &n);
		/* PkgLength covers itself, NumElements and the filler. */
		CHECK_EQ(v, n + 1 + sizes[i]);
		CHECK_EQ(a.len, 1 + v);
		CHECK_EQ(n, sizes[i] + 2 <= 63 ? 1 : sizes[i] + 3 < 4096 ? 2 : 3);
		aml_free(&a);
		free(filler);
	}
}

TEST(resources)
{
	struct aml a;
	uint8_t sum = 0;

	aml_init(&a);
	aml_buffer(&a);
	aml_res_io(&a, 0x3f8, 8);
	aml_res_irq_noflags(&a, 4);
	aml_res_end(&a);
	CHECK_EQ(aml_finish(&a), 0);
	/* Buffer, PkgLength, BufferSize 14, IO, IRQ, EndTag. */
	CHECK_EQ(a.len, 17);
	CHECK_EQ(a.buf[0], 0x11);
	CHECK_EQ(a.buf[1], 16);
	CHECK_EQ(a.buf[2], 0x0a);
	CHECK_EQ(a.buf[3], 13);
	CHECK(memcmp(a.buf + 4, "\x47\x01\xf8\x03\xf8\x03\x01\x08\x22\x10\x00\x79", 12) == 0);
	for (size_t i = 4; i < a.len; i++)
		sum += a.buf[i];
	CHECK_EQ(sum, 0);        /* the end tag's checksum */
	aml_free(&a);

	aml_init(&a);
	aml_buffer(&a);
	aml_res_word_bus(&a, 0, 255);
	aml_res_word_io(&a, 0xd00, 0xffff);
	aml_res_dword_mem(&a, 0xc0000000, 0xdfffffff, 0);
	aml_res_qword_mem(&a, 0x100000000ULL, 0x1ffffffffULL, 1);
	aml_res_interrupt(&a, 9, 1, 0, 1);
	aml_res_end(&a);
	CHECK_EQ(aml_finish(&a), 0);
	/* BufferOp, PkgLength, BufferSize (BytePrefix, 115 = 16 + 16 + 26 +
	 * 46 + 9 + 2 bytes of descriptors), descriptors. */
	int n;
	size_t v = pkglen_decode(a.buf + 1, &n);
	const uint8_t *r = a.buf + 1 + n + 2;

	CHECK_EQ(a.buf[0], 0x11);
	CHECK_EQ(n, 2);
	CHECK_EQ(a.len, 1 + v);
	CHECK_EQ(a.buf[1 + n], 0x0a);
	CHECK_EQ(a.buf[2 + n], 115);
	CHECK(memcmp(r, "\x88\x0d\x00\x02\x0c\x00\x00\x00\x00\x00\xff\x00\x00\x00\x00\x01", 16) == 0);
	r += 16;
	CHECK(memcmp(r, "\x88\x0d\x00\x01\x0c\x03\x00\x00\x00\x0d\xff\xff\x00\x00\x00\xf3", 16) == 0);
	r += 16;
	CHECK(memcmp(r, "\x87\x17\x00\x00\x0c\x01\x00\x00\x00\x00\x00\x00\x00\xc0"
		     "\xff\xff\xff\xdf\x00\x00\x00\x00\x00\x00\x00\x20", 26) == 0);
	r += 26;
	CHECK_EQ(r[0], 0x8a);
	CHECK_EQ(r[1], 0x2b);
	CHECK_EQ(r[5], 0x07);            /* read-write, prefetchable */
	r += 46;
	CHECK(memcmp(r, "\x89\x06\x00\x09\x01\x09\x00\x00\x00\x79", 10) == 0);
	aml_free(&a);
}

TEST(errors)
{
	struct aml a;

	/* Unbalanced scopes. */
	aml_init(&a);
	aml_device(&a, "DEV");
	CHECK_EQ(aml_finish(&a), -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_end(&a);
	CHECK_EQ(aml_finish(&a), -EINVAL);
	aml_free(&a);

	/* An I/O window of all 64 Ki ports has a length a Word cannot hold. */
	aml_init(&a);
	aml_buffer(&a);
	aml_res_word_io(&a, 0, 0xffff);
	aml_res_end(&a);
	CHECK_EQ(aml_finish(&a), -EINVAL);
	aml_free(&a);

	/* Inverted window, IRQ above 15, end tag outside a buffer. */
	aml_init(&a);
	aml_buffer(&a);
	aml_res_dword_mem(&a, 2, 1, 0);
	CHECK_EQ(a.err, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_buffer(&a);
	aml_res_irq_noflags(&a, 16);
	CHECK_EQ(a.err, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_package(&a, 1);
	aml_res_end(&a);
	CHECK_EQ(a.err, -EINVAL);
	aml_free(&a);

	/* Too deep. */
	aml_init(&a);
	for (int i = 0; i <= AML_MAX_DEPTH; i++)
		aml_package(&a, 1);
	CHECK_EQ(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

int main(void)
{
	RUN(integers);
	RUN(names);
	RUN(strings_and_eisaid);
	RUN(scopes);
	RUN(pkglength_boundaries);
	RUN(resources);
	RUN(errors);
	return tap_done();
}
