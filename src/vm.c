/* Building the machine: /dev/kvm and its capabilities, the VM with its
 * in-kernel irqchip and PIT, guest RAM slots, platform devices, the kernel
 * and ACPI tables, and the vCPUs.  Also how the machine stops. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "ferry/acpi.h"
#include "ferry/boot.h"
#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/vcpu.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

#define KERNEL_MAX_SIZE (512 * MiB)
#define INITRD_MAX_SIZE (2 * GiB)

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "in-kernel irqchip" },
	{ KVM_CAP_USER_MEMORY, "user memory slots" },
	{ KVM_CAP_SET_TSS_ADDR, "TSS address" },
	{ KVM_CAP_EXT_CPUID, "extended CPUID" },
	{ KVM_CAP_PIT2, "in-kernel PIT" },
	{ KVM_CAP_IRQ_ROUTING, "GSI routing" },
	{ KVM_CAP_IRQFD, "irqfd" },
	{ KVM_CAP_IOEVENTFD, "ioeventfd" },
	{ KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
};

static int kvm_open(struct vm *vm, struct ferr *e)
{
	int ver;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int err = -errno;

		if (err == -ENOENT)
			return ferr_set(e, err,
				"cannot open /dev/kvm: No such file or directory "
				"(load kvm_intel or kvm_amd, and enable virtualization in the firmware)");
		if (err == -EACCES || err == -EPERM)
			return ferr_set(e, err,
				"cannot open /dev/kvm: Permission denied "
				"(add your user to the kvm group: sudo usermod -aG kvm $USER, then log in again)");
		return ferr_errno(e, err, "cannot open /dev/kvm");
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION)
		return ferr_set(e, -ENOTSUP, "KVM API version %d, ferry needs %d", ver,
				KVM_API_VERSION);
	for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
			return ferr_set(e, -ENOTSUP,
				"KVM lacks a capability ferry needs: %s (KVM_CAP %d); a newer kernel is required",
				required_caps[i].name, required_caps[i].cap);
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < (int)sizeof(struct kvm_run))
		return ferr_errno(e, -errno, "cannot get the vCPU run area size");
	return 0;
}

static int vm_check_cpus(struct vm *vm, unsigned int cpus, struct ferr *e)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	/* APIC ids are 8 bits in xAPIC mode and the MADT we build. */
	if (max > 255)
		max = 255;
	if (cpus > (unsigned int)max)
		return ferr_set(e, -EINVAL, "--cpus %u: this host's KVM allows at most %d vCPUs",
				cpus, max);
	return 0;
}

static int vm_setup_kvm(struct vm *vm, struct ferr *e)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return ferr_errno(e, -errno, "cannot create the VM");
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)PLAT_TSS_GPA) < 0)
		return ferr_errno(e, -errno, "cannot set the TSS address");
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ PLAT_IDENTITY_GPA }) < 0)
		return ferr_errno(e, -errno, "cannot set the identity map address");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return ferr_errno(e, -errno, "cannot create the in-kernel irqchip");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return ferr_errno(e, -errno, "cannot create the in-kernel PIT");
	return 0;
}

static int vm_setup_memory(struct vm *vm, struct ferr *e)
{
	struct gm_config gc = {
		.size = vm->cfg->mem_size,
		.hugepages = vm->cfg->hugepages,
		.backing = vm->cfg->backing,
		.prealloc = vm->cfg->prealloc,
	};
	int ret = gm_init(&vm->mem, &gc, e);

	if (ret < 0)
		return ret;
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)r->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return ferr_errno(e, -errno, "cannot register guest RAM at 0x%llx with KVM",
					  (unsigned long long)r->gpa);
	}
	return 0;
}

int vm_set_dirty_log(struct vm *vm, bool on)
{
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)r->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return -errno;
	}
	return 0;
}

void vm_irq_line(void *opaque, unsigned int gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("cannot set GSI %u to %d: %s", gsi, level, strerror(errno));
}

static void vm_on_poweroff(void *opaque)
{
	vm_request_stop(opaque, VM_STOP_POWEROFF);
}

static void vm_on_reset(void *opaque)
{
	vm_request_stop(opaque, VM_STOP_RESET);
}

static int vm_open_serial(struct vm *vm, struct ferr *e)
{
	switch (vm->cfg->serial) {
	case SERIAL_STDIO:
		vm->serial_fd = STDOUT_FILENO;
		return 0;
	case SERIAL_NONE:
		vm->serial_fd = -1;
		return 0;
	case SERIAL_FILE:
		vm->serial_fd = open(vm->cfg->serial_path,
				     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (vm->serial_fd < 0)
			return ferr_errno(e, -errno, "--serial file:%s: cannot open", vm->cfg->serial_path);
		return 0;
	}
	return -EINVAL;
}

static int vm_setup_devices(struct vm *vm, struct ferr *e)
{
	struct irq_line com1 = { vm_irq_line, vm, PLAT_COM1_IRQ };
	struct irq_line rtc = { vm_irq_line, vm, PLAT_RTC_IRQ };
	struct irq_line sci = { vm_irq_line, vm, PLAT_ACPI_SCI_IRQ };
	struct dev_event poweroff = { vm_on_poweroff, vm };
	struct dev_event reset = { vm_on_reset, vm };
	int ret;

	ret = vm_open_serial(vm, e);
	if (ret < 0)
		return ret;
	vm->uart = uart_create(&vm->pio, PLAT_COM1_PORT, com1, vm->serial_fd);
	vm->i8042 = i8042_create(&vm->pio, reset);
	vm->rtc = rtc_create(&vm->pio, rtc, vm->mem.ram_size);
	vm->pm = pm_create(&vm->pio, sci, poweroff);
	vm->pci = pci_create(&vm->pio, reset);
	vm->debugport = debugport_create(&vm->pio);
	if (!vm->uart || !vm->i8042 || !vm->rtc || !vm->pm || !vm->pci || !vm->debugport)
		return ferr_set(e, -ENOMEM, "cannot create the platform devices");
	return 0;
}

/* Give the device its stable name (blk0, blk1, net0...: migration matches
 * state by name) and attach it to the transport. */
static int vm_add_virtio(struct vm *vm, struct virtio_dev *d, const char *kind,
			 unsigned int index, struct ferr *e)
{
	char *name = vm->virtio_names[vm->nr_virtio];
	int ret;

	if (!d)
		return -EINVAL;  /* the create function filled @e */
	snprintf(name, sizeof(vm->virtio_names[0]), "%s%u", kind, index);
	d->name = name;
	if (vm->cfg->transport == VIRTIO_TRANSPORT_MMIO)
		ret = virtio_mmio_add(vm, d, e);
	else
		ret = virtio_pci_add(vm, d, e);
	if (ret < 0) {
		virtio_dev_destroy(d);
		return ret;
	}
	vm->virtio[vm->nr_virtio++] = d;
	return 0;
}

/* Disks, NICs, the rng and the virtio console, on the chosen transport.
 * Before the kernel is loaded: virtio-mmio extends the command line. */
static int vm_setup_virtio(struct vm *vm, struct ferr *e)
{
	const struct vm_config *cfg = vm->cfg;
	const struct dev_env env = { .loop = vm->loop, .vm = vm, .incoming = cfg->incoming != NULL };
	int ret;

	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		ret = vm_add_virtio(vm, virtio_blk_create(&cfg->disks[i], &env, e), "blk", i, e);
		if (ret < 0)
			return ret;
	}
	for (unsigned int i = 0; i < cfg->nr_nets; i++) {
		ret = vm_add_virtio(vm, virtio_net_create(&cfg->nets[i], &env, e), "net", i, e);
		if (ret < 0)
			return ret;
	}
	if (cfg->rng) {
		ret = vm_add_virtio(vm, virtio_rng_create(e), "rng", 0, e);
		if (ret < 0)
			return ret;
	}
	if (cfg->console == CONSOLE_VIRTIO) {
		ret = vm_add_virtio(vm, virtio_console_create(STDIN_FILENO, STDOUT_FILENO,
							      vm->loop, e), "console", 0, e);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int vm_load_kernel(struct vm *vm, struct boot_info *boot, struct ferr *e)
{
	const struct vm_config *cfg = vm->cfg;
	struct acpi_config acpi = { .nr_cpus = cfg->cpus };
	struct boot_config bc = { .cmdline = cfg->cmdline };
	void *kernel = NULL, *initrd = NULL;
	char *cmdline = NULL;
	struct ferr why;
	int ret;

	ret = read_file(cfg->kernel, KERNEL_MAX_SIZE, &kernel, &bc.kernel_len);
	if (ret < 0) {
		if (ret == -EFBIG)
			return ferr_set(e, ret, "--kernel %s: larger than %llu MiB, not a kernel",
					cfg->kernel, KERNEL_MAX_SIZE / MiB);
		return ferr_errno(e, ret, "--kernel %s: cannot read", cfg->kernel);
	}
	bc.kernel = kernel;
	if (vm->extra_cmdline[0]) {
		if (asprintf(&cmdline, "%s%s", cfg->cmdline ? cfg->cmdline : "",
			     vm->extra_cmdline) < 0) {
			cmdline = NULL;
			ret = ferr_set(e, -ENOMEM, "out of memory");
			goto out;
		}
		bc.cmdline = cmdline;
	}
	if (cfg->initrd) {
		ret = read_file(cfg->initrd, INITRD_MAX_SIZE, &initrd, &bc.initrd_len);
		if (ret < 0) {
			ferr_errno(e, ret, "--initrd %s: cannot read", cfg->initrd);
			goto out;
		}
		bc.initrd = initrd;
	}
	ret = acpi_build(&vm->mem, &acpi, &bc.rsdp_gpa, &why);
	if (ret < 0) {
		ferr_set(e, ret, "cannot build the ACPI tables: %s", why.msg);
		goto out;
	}
	ret = boot_load(&vm->mem, &bc, boot, &why);
	if (ret < 0)
		ferr_set(e, ret, "--kernel %s: %s", cfg->kernel, why.msg);
out:
	free(cmdline);
	free(kernel);
	free(initrd);
	return ret;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct loop *loop,
	      struct ferr *e)
{
	struct boot_info boot;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->loop = loop;
	vm->next_pci_slot = 1;
	vm->next_pci_mmio = PLAT_PCI_MMIO_GPA;
	pthread_mutex_init(&vm->run_lock, NULL);
	pthread_cond_init(&vm->run_cond, NULL);
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->serial_fd = -1;
	vm->mem.memfd = -1;
	vm->mem.pagemap_fd = -1;
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");

	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0)
		return ferr_errno(e, -errno, "cannot create an eventfd");
	ret = kvm_open(vm, e);
	if (ret < 0)
		return ret;
	ret = vm_check_cpus(vm, cfg->cpus, e);
	if (ret < 0)
		return ret;
	ret = cpuid_get_supported(vm->kvm_fd, &vm->cpuid);
	if (ret < 0)
		return ferr_errno(e, ret, "cannot read the CPUID KVM supports");
	ret = vm_setup_kvm(vm, e);
	if (ret < 0)
		return ret;
	ret = vm_irq_routing_init(vm);
	if (ret < 0)
		return ferr_errno(e, ret, "cannot set up GSI routing");
	ret = vm_setup_memory(vm, e);
	if (ret < 0)
		return ret;
	ret = vm_setup_devices(vm, e);
	if (ret < 0)
		return ret;
	ret = vm_setup_virtio(vm, e);
	if (ret < 0)
		return ret;
	/* A migration brings RAM (kernel, ACPI tables) and registers. */
	if (!cfg->incoming) {
		ret = vm_load_kernel(vm, &boot, e);
		if (ret < 0)
			return ret;
	}

	vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return ferr_set(e, -ENOMEM, "out of memory");
	vm->nr_vcpus = cfg->cpus;
	for (unsigned int i = 0; i < cfg->cpus; i++) {
		ret = vcpu_create(vm, i, &vm->vcpus[i], e);
		if (ret < 0)
			return ret;
	}
	/* APs wait for INIT/SIPI from the guest; only the BSP gets registers. */
	return cfg->incoming ? 0 : vcpu_setup_boot(vm->vcpus[0], &boot, e);
}

int vm_start(struct vm *vm, struct ferr *e)
{
	int ret = vcpu_signals_init();

	if (ret < 0)
		return ferr_errno(e, ret, "cannot install the vCPU kick signal");
	vm->start_ns = now_ns();
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_start(vm->vcpus[i], e);
		if (ret < 0) {
			vm_request_stop(vm, VM_STOP_ERROR);
			return ret;
		}
	}
	return 0;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
	int none = VM_STOP_NONE;

	if (!__atomic_compare_exchange_n(&vm->stop_reason, &none, reason, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
	/* Wake parked vCPUs so that they can see the stop and exit. */
	pthread_mutex_lock(&vm->run_lock);
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
	if (eventfd_write(vm->stop_efd, 1) < 0)
		log_warn("cannot signal the VM's stop: %s", strerror(errno));
}

int vm_pause(struct vm *vm)
{
	unsigned int started = 0;

	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		started += vm->vcpus[i]->started;
	pthread_mutex_lock(&vm->run_lock);
	__atomic_store_n(&vm->pause_requested, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->run_lock);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(vm->vcpus[i]);

	pthread_mutex_lock(&vm->run_lock);
	while (vm->parked + vm->exited < started)
		pthread_cond_wait(&vm->run_cond, &vm->run_lock);
	pthread_mutex_unlock(&vm->run_lock);
	if (__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE) {
		vm_resume(vm);
		return -ESHUTDOWN;
	}
	return 0;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	__atomic_store_n(&vm->pause_requested, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
}

bool vm_is_paused(const struct vm *vm)
{
	return __atomic_load_n(&vm->pause_requested, __ATOMIC_ACQUIRE);
}

void vm_join(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		if (v && v->started) {
			/* Kick again: a vCPU may have entered KVM_RUN after the
			 * first kick cleared its immediate_exit. */
			vcpu_kick(v);
			pthread_join(v->thread, NULL);
			v->started = false;
		}
	}
}

int vm_exit_status(const struct vm *vm)
{
	switch (__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE)) {
	case VM_STOP_POWEROFF: return FERRY_EXIT_POWEROFF;
	case VM_STOP_RESET:    return FERRY_EXIT_RESET;
	case VM_STOP_CRASH:    return FERRY_EXIT_CRASH;
	case VM_STOP_HOST:     return FERRY_EXIT_STOPPED;
	case VM_STOP_MIGRATED: return FERRY_EXIT_POWEROFF;
	default:               return FERRY_EXIT_ERROR;
	}
}

void vm_destroy(struct vm *vm)
{
	vm_join(vm);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(vm->vcpus[i]);
	free(vm->vcpus);
	for (unsigned int i = 0; i < vm->nr_virtio; i++)
		virtio_dev_destroy(vm->virtio[i]);
	if (vm->debugport)
		debugport_destroy(vm->debugport);
	if (vm->pci)
		pci_destroy(vm->pci);
	if (vm->pm)
		pm_destroy(vm->pm);
	if (vm->rtc)
		rtc_destroy(vm->rtc);
	if (vm->i8042)
		i8042_destroy(vm->i8042);
	if (vm->uart)
		uart_destroy(vm->uart);
	if (vm->serial_fd > STDERR_FILENO)
		close(vm->serial_fd);
	free(vm->cpuid);
	vm_irq_routing_destroy(vm);
	gm_destroy(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	pthread_cond_destroy(&vm->run_cond);
	pthread_mutex_destroy(&vm->run_lock);
}
