/* A small AML (ACPI Machine Language) encoder: enough of ACPI 6.x chapter 20
 * and the resource descriptors of chapter 6.4 to build a DSDT that declares
 * devices, their names and resources.  Errors (allocation, unbalanced
 * nesting, bad names) are sticky and reported once by aml_finish(), so
 * building code reads like the ASL it encodes:
 *
 *   aml_scope(a, "\\_SB");
 *     aml_device(a, "COM1");
 *       aml_name(a, "_HID"); aml_eisaid(a, "PNP0501");
 *       aml_name(a, "_CRS"); aml_buffer(a);
 *         aml_res_io(a, 0x3f8, 8); aml_res_irq_noflags(a, 4);
 *         aml_res_end(a);          (closes the buffer)
 *     aml_end(a);                  (closes COM1)
 *   aml_end(a);                    (closes \_SB)
 */
#ifndef FERRY_AML_H
#define FERRY_AML_H

#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml {
	uint8_t *buf;
	size_t len, cap;
	/* Open PkgLength scopes: where their contents start. */
	struct {
		size_t start;
		int kind;
	} open[AML_MAX_DEPTH];
	int depth;
	int err;               /* first error, sticky; 0 while all is well */
};

void aml_init(struct aml *a);
/* 0 if every scope was closed and nothing failed, else a negative errno.
 * The bytes stay in a->buf / a->len until aml_free(). */
int aml_finish(struct aml *a);
void aml_free(struct aml *a);

/* Raw bytes, for what the helpers below do not cover. */
void aml_bytes(struct aml *a, const void *p, size_t n);

/* A name path: "PCI0", "\\_SB", "\\_SB.PCI0", "^PCI0".  Segments shorter
 * than four characters are padded with '_'. */
void aml_namestring(struct aml *a, const char *path);

/* Data objects. */
void aml_int(struct aml *a, uint64_t v);      /* smallest encoding */
void aml_string(struct aml *a, const char *s);
void aml_eisaid(struct aml *a, const char *id); /* "PNP0A03" -> DWord */

/* Name (NAME, <next object>) */
void aml_name(struct aml *a, const char *name);
/* Return (<next object>) */
void aml_return(struct aml *a);

/* Scopes with a PkgLength; each is closed by aml_end(). */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *name);
void aml_method(struct aml *a, const char *name, unsigned int nargs,
		int serialized);
void aml_package(struct aml *a, unsigned int nelems);
void aml_buffer(struct aml *a);     /* size is filled in by aml_end() */
void aml_end(struct aml *a);

/* Resource descriptors, inside aml_buffer() ... aml_res_end(). */
void aml_res_io(struct aml *a, uint16_t base, uint8_t len);
void aml_res_irq_noflags(struct aml *a, unsigned int irq);
/* Extended interrupt, consumer: @level 0 edge / 1 level,
 * @active_low, @shared. */
void aml_res_interrupt(struct aml *a, uint32_t gsi, int level,
		       int active_low, int shared);
/* Producer windows of a bridge: [min, max]. */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max,
		       int prefetchable);
void aml_res_qword_mem(struct aml *a, uint64_t min, uint64_t max,
		       int prefetchable);
/* End tag with the checksum of the template, then closes the buffer. */
void aml_res_end(struct aml *a);

#endif
