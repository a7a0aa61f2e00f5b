/* Interrupt plumbing between devices and KVM's in-kernel irqchip: the GSI
 * routing table (PIC and IOAPIC pins, then MSI routes), irqfds, and
 * ioeventfds for doorbells that should not exit to userspace. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "ferry/platform.h"
#include "ferry/vm.h"

#define ROUTES_MAX 1024

static void route_irqchip(struct kvm_irq_routing *r, unsigned int gsi,
			  unsigned int chip, unsigned int pin)
{
	r->entries[r->nr++] = (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
		.u.irqchip = { .irqchip = chip, .pin = pin },
	};
}

static int routing_commit(struct vm *vm)
{
	return ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->routing) < 0 ? -errno : 0;
}

/* Setting a routing table replaces KVM's default one, so the legacy pins go
 * in first, laid out as on a PC: GSI 0-15 drive the PICs (GSI 2 is the
 * cascade), and the IOAPIC's pins; the PIT's GSI 0 lands on IOAPIC pin 2,
 * matching the MADT's interrupt source override IRQ0 -> GSI2. */
int vm_irq_routing_init(struct vm *vm)
{
	struct kvm_irq_routing *r;

	r = calloc(1, sizeof(*r) + ROUTES_MAX * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	for (unsigned int i = 0; i < 8; i++)
		if (i != 2)
			route_irqchip(r, i, KVM_IRQCHIP_PIC_MASTER, i);
	for (unsigned int i = 8; i < 16; i++)
		route_irqchip(r, i, KVM_IRQCHIP_PIC_SLAVE, i - 8);
	for (unsigned int i = 0; i < PLAT_IOAPIC_PINS; i++) {
		if (i == 0)
			route_irqchip(r, 0, KVM_IRQCHIP_IOAPIC, 2);
		else if (i != 2)
			route_irqchip(r, i, KVM_IRQCHIP_IOAPIC, i);
	}
	vm->routing = r;
	vm->next_msi_gsi = PLAT_IOAPIC_PINS;
	pthread_mutex_init(&vm->irq_lock, NULL);
	return routing_commit(vm);
}

void vm_irq_routing_destroy(struct vm *vm)
{
	if (!vm->routing)
		return;
	free(vm->routing);
	vm->routing = NULL;
	pthread_mutex_destroy(&vm->irq_lock);
}

int vm_irq_source_alloc(struct vm *vm)
{
	int ret;

	pthread_mutex_lock(&vm->irq_lock);
	ret = vm->next_line_source < 32 ? (int)vm->next_line_source++ : -ENOSPC;
	pthread_mutex_unlock(&vm->irq_lock);
	return ret;
}

void vm_irq_shared_set(struct vm *vm, unsigned int gsi, int source, int level)
{
	uint32_t before, after;

	if (gsi >= PLAT_IOAPIC_PINS || source < 0 || source >= 32)
		return;
	pthread_mutex_lock(&vm->irq_lock);
	before = vm->line_sources[gsi];
	if (level)
		vm->line_sources[gsi] |= 1U << source;
	else
		vm->line_sources[gsi] &= ~(1U << source);
	after = vm->line_sources[gsi];
	/* Only edges of the OR reach KVM; under the lock so that two
	 * devices cannot reorder a raise and a lower. */
	if (!before != !after)
		vm_irq_line(vm, gsi, after != 0);
	pthread_mutex_unlock(&vm->irq_lock);
}

static struct kvm_irq_routing_entry msi_entry(unsigned int gsi, uint64_t addr, uint32_t data)
{
	return (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
		.u.msi = { .address_lo = (uint32_t)addr, .address_hi = addr >> 32, .data = data },
	};
}

int vm_msi_route_add(struct vm *vm, uint64_t addr, uint32_t data)
{
	int ret;

	pthread_mutex_lock(&vm->irq_lock);
	if (vm->routing->nr >= ROUTES_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	vm->routing->entries[vm->routing->nr++] = msi_entry(vm->next_msi_gsi, addr, data);
	ret = routing_commit(vm);
	if (ret < 0) {
		vm->routing->nr--;
		goto out;
	}
	ret = vm->next_msi_gsi++;
out:
	pthread_mutex_unlock(&vm->irq_lock);
	return ret;
}

int vm_msi_route_set(struct vm *vm, unsigned int gsi, uint64_t addr, uint32_t data)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&vm->irq_lock);
	for (unsigned int i = 0; i < vm->routing->nr; i++) {
		struct kvm_irq_routing_entry *ent = &vm->routing->entries[i];

		if (ent->gsi != gsi || ent->type != KVM_IRQ_ROUTING_MSI)
			continue;
		if (ent->u.msi.address_lo == (uint32_t)addr &&
		    ent->u.msi.address_hi == addr >> 32 && ent->u.msi.data == data) {
			ret = 0;  /* unchanged: spare KVM a table rebuild */
			break;
		}
		*ent = msi_entry(gsi, addr, data);
		ret = routing_commit(vm);
		break;
	}
	pthread_mutex_unlock(&vm->irq_lock);
	return ret;
}

int vm_irqfd(struct vm *vm, int fd, unsigned int gsi, bool assign)
{
	struct kvm_irqfd irqfd = {
		.fd = fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_ioeventfd(struct vm *vm, int fd, uint64_t addr, uint32_t len, bool pio,
		 int64_t datamatch, bool assign)
{
	struct kvm_ioeventfd ioev = { .addr = addr, .len = len, .fd = fd };

	if (pio)
		ioev.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (datamatch >= 0) {
		ioev.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
		ioev.datamatch = datamatch;
	}
	if (!assign)
		ioev.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioev) < 0 ? -errno : 0;
}
