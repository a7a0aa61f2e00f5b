/* CPUID for each vCPU: what KVM supports, with the APIC id and a simple
 * topology (one socket, one thread per core, N cores) made consistent across
 * leaves 1, 4, 0xB, 0x1F and 0x80000008. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "ferry/vcpu.h"

#define CPUID_HYPERVISOR_BIT  (1U << 31)  /* leaf 1 ECX */
#define CPUID_HTT_BIT         (1U << 28)  /* leaf 1 EDX */

int cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **out)
{
	unsigned int nent = 128;

	for (;;) {
		struct kvm_cpuid2 *c;

		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return -errno;
		nent *= 2;
	}
}

/* Bits needed to number @n things (0 for 1). */
static unsigned int order_base_2(unsigned int n)
{
	unsigned int bits = 0;

	while ((1U << bits) < n)
		bits++;
	return bits;
}

static void topology_leaf(struct kvm_cpuid_entry2 *ent, unsigned int id,
			  unsigned int n)
{
	unsigned int core_bits = order_base_2(n);

	ent->edx = id;  /* x2APIC id */
	switch (ent->index) {
	case 0:  /* SMT level: one thread per core */
		ent->eax = 0;
		ent->ebx = 1;
		ent->ecx = (1 << 8) | 0;
		break;
	case 1:  /* core level: every vCPU a core of one package */
		ent->eax = core_bits;
		ent->ebx = n;
		ent->ecx = (2 << 8) | 1;
		break;
	default: /* no further levels */
		ent->eax = 0;
		ent->ebx = 0;
		ent->ecx = ent->index;
		break;
	}
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
				  unsigned int id, unsigned int n)
{
	size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);

	if (!c)
		return NULL;
	memcpy(c, supported, size);
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *ent = &c->entries[i];

		switch (ent->function) {
		case 1:
			ent->ebx &= 0x0000ffff;
			ent->ebx |= (id << 24) | ((1U << order_base_2(n)) << 16);
			ent->ecx |= CPUID_HYPERVISOR_BIT;
			if (n > 1)
				ent->edx |= CPUID_HTT_BIT;
			else
				ent->edx &= ~CPUID_HTT_BIT;
			break;
		case 4:
			/* Cores per package - 1 in bits 31:26; caches shared by
			 * one thread (bits 25:14 = 0). */
			if (ent->eax & 0x1f) {
				ent->eax &= 0x3ff;
				ent->eax |= ((1U << order_base_2(n)) - 1) << 26;
			}
			break;
		case 0xb:
		case 0x1f:
			topology_leaf(ent, id, n);
			break;
		case 0x80000008:
			ent->ecx &= ~0xf0ffU;
			ent->ecx |= (n - 1) | (order_base_2(n) << 12);
			break;
		}
	}
	return c;
}
