/* vCPU threads: set up registers for the boot protocol, run KVM_RUN, and
 * dispatch each exit.  A vCPU that hits something fatal reports it with the
 * registers and the instruction bytes and stops the whole VM. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/platform.h"
#include "ferry/seccomp.h"
#include "ferry/util.h"
#include "ferry/vcpu.h"
#include "ferry/vm.h"

#define VCPU_KICK_SIGNAL SIGUSR1

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

static void vcpu_kick_handler(int sig)
{
	(void)sig;  /* its only job is to interrupt KVM_RUN */
}

int vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };

	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

int vcpu_create(struct vm *vm, unsigned int id, struct vcpu **out, struct ferr *e)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct vcpu *v;
	int ret;

	v = calloc(1, sizeof(*v));
	if (!v)
		return ferr_set(e, -ENOMEM, "out of memory");
	v->vm = vm;
	v->id = id;
	v->run = MAP_FAILED;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0) {
		ret = ferr_errno(e, -errno, "cannot create vCPU %u", id);
		goto fail;
	}
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = ferr_errno(e, -errno, "cannot map vCPU %u's run area", id);
		goto fail;
	}
	cpuid = cpuid_for_vcpu(vm->cpuid, id, vm->nr_vcpus);
	if (!cpuid) {
		ret = ferr_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
		ret = ferr_errno(e, -errno, "cannot set CPUID of vCPU %u", id);
		goto fail;
	}
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0) {
		ret = ferr_errno(e, -errno, "cannot set FPU state of vCPU %u", id);
		goto fail;
	}
	free(cpuid);
	*out = v;
	return 0;
fail:
	free(cpuid);
	vcpu_destroy(v);
	return ret;
}

void vcpu_destroy(struct vcpu *v)
{
	if (!v)
		return;
	if (v->run != MAP_FAILED)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}

/* Flat segments as the boot protocols describe them; the GDT written to
 * guest memory holds the same descriptors, in case the guest reloads them. */
enum { GDT_NULL, GDT_UNUSED, GDT_CODE, GDT_DATA, GDT_TSS, GDT_ENTRIES };

static struct kvm_segment boot_seg(unsigned int idx, uint8_t type, bool l, bool db)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = idx * 8,
		.type = type, .present = 1, .dpl = 0, .db = db, .s = 1,
		.l = l, .g = 1,
	};
}

static uint64_t seg_to_gdt(const struct kvm_segment *s)
{
	uint64_t limit = s->g ? s->limit >> 12 : s->limit;

	return (limit & 0xffffULL) | ((s->base & 0xffffffULL) << 16) |
	       ((uint64_t)s->type << 40) | ((uint64_t)s->s << 44) |
	       ((uint64_t)s->dpl << 45) | ((uint64_t)s->present << 47) |
	       ((limit & 0xf0000ULL) << 32) | ((uint64_t)s->l << 53) |
	       ((uint64_t)s->db << 54) | ((uint64_t)s->g << 55) |
	       ((s->base & 0xff000000ULL) << 32);
}

int vcpu_setup_boot(struct vcpu *v, const struct boot_info *boot, struct ferr *e)
{
	bool lm = boot->mode == BOOT_LINUX64;
	struct kvm_segment code = boot_seg(GDT_CODE, 0xb, lm, !lm);
	struct kvm_segment data = boot_seg(GDT_DATA, 0x3, false, true);
	struct kvm_segment tss = {
		.base = 0, .limit = 0x67, .selector = GDT_TSS * 8, .type = 0xb,
		.present = 1, .s = 0,
	};
	uint64_t gdt[GDT_ENTRIES] = { 0 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rflags = 0x2, .rip = boot->entry };
	int ret;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return ferr_errno(e, -errno, "cannot read vCPU %u's registers", v->id);

	gdt[GDT_CODE] = seg_to_gdt(&code);
	gdt[GDT_DATA] = seg_to_gdt(&data);
	gdt[GDT_TSS] = seg_to_gdt(&tss);
	ret = gm_write(&v->vm->mem, PLAT_GDT_GPA, gdt, sizeof(gdt));
	if (ret < 0)
		return ferr_set(e, ret, "guest RAM too small for the boot GDT");
	sregs.gdt.base = PLAT_GDT_GPA;
	sregs.gdt.limit = sizeof(gdt) - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = tss;
	sregs.ldt = (struct kvm_segment){ .unusable = 1, .type = 0x2 };

	if (lm) {
		ret = boot_setup_page_tables(&v->vm->mem);
		if (ret < 0)
			return ferr_set(e, ret, "guest RAM too small for boot page tables");
		sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
		sregs.cr3 = PLAT_PML4_GPA;
		sregs.cr4 = CR4_PAE;
		sregs.efer = EFER_LME | EFER_LMA;
		regs.rsi = boot->arg;   /* boot_params */
	} else {
		sregs.cr0 = CR0_PE | CR0_ET;
		sregs.cr3 = 0;
		sregs.cr4 = 0;
		sregs.efer = 0;
		regs.rbx = boot->arg;   /* hvm_start_info */
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return ferr_errno(e, -errno, "cannot set vCPU %u's segment registers", v->id);
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return ferr_errno(e, -errno, "cannot set vCPU %u's registers", v->id);
	return 0;
}

/* Read up to 15 instruction bytes at the guest's RIP, through its own page
 * tables (KVM_TRANSLATE) and our checked guest memory access. */
static int vcpu_fetch_insn(struct vcpu *v, const struct kvm_regs *regs,
			   const struct kvm_sregs *sregs, uint8_t *buf)
{
	uint64_t la = regs->rip + (sregs->efer & EFER_LMA ? 0 : sregs->cs.base);
	int n = 0;

	while (n < 15) {
		struct kvm_translation tr = { .linear_address = la + n };
		uint64_t chunk = 4096 - ((la + n) & 4095);
		const uint8_t *p;

		if (ioctl(v->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
			break;
		chunk = MIN(chunk, (uint64_t)(15 - n));
		p = gm_ptr(&v->vm->mem, tr.physical_address, chunk);
		if (!p)
			break;
		memcpy(buf + n, p, chunk);
		n += chunk;
	}
	return n;
}

static void vcpu_report_crash(struct vcpu *v, const char *what)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	char bytes[15 * 3 + 1] = "";
	uint8_t insn[15];
	int n = 0;
	struct kvm_run *run = v->run;

	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
	    run->emulation_failure.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = MIN(run->emulation_failure.insn_size, (uint8_t)15);
		memcpy(insn, run->emulation_failure.insn_bytes, n);
	}
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		log_error("vCPU %u: %s (registers unavailable: %s)", v->id, what, strerror(errno));
		return;
	}
	if (n == 0)
		n = vcpu_fetch_insn(v, &regs, &sregs, insn);
	for (int i = 0, pos = 0; i < n; i++)
		pos += snprintf(bytes + pos, sizeof(bytes) - pos, "%s%02x", i ? " " : "", insn[i]);

	log_error("vCPU %u: %s", v->id, what);
	log_error("  rip %016llx rsp %016llx rflags %08llx cs %04x (cpl %u)",
		  regs.rip, regs.rsp, regs.rflags, sregs.cs.selector, sregs.cs.dpl);
	log_error("  rax %016llx rbx %016llx rcx %016llx rdx %016llx",
		  regs.rax, regs.rbx, regs.rcx, regs.rdx);
	log_error("  rsi %016llx rdi %016llx rbp %016llx",
		  regs.rsi, regs.rdi, regs.rbp);
	log_error("  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx",
		  sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer);
	log_error("  instruction bytes at rip: %s", n ? bytes : "(unreadable)");
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t size = run->io.size;

	/* KVM places the data inside the run page; a bogus offset from a
	 * broken kernel must not send us outside the mapping. */
	if (run->io.data_offset + (uint64_t)size * run->io.count > (uint64_t)v->vm->run_size)
		return;
	for (uint32_t i = 0; i < run->io.count; i++, data += size)
		bus_access(&v->vm->pio, run->io.port, data, size,
			   run->io.direction == KVM_EXIT_IO_OUT);
}

/* Handle one exit; returns false when the vCPU must stop. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[128];

	if (run->exit_reason < VCPU_EXIT_REASONS)
		v->stats.exits[run->exit_reason]++;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		if (run->mmio.len > 8)
			return true;
		bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data,
			   run->mmio.len, run->mmio.is_write);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; treat as a spurious exit. */
		return true;
	case KVM_EXIT_SHUTDOWN:
		vcpu_report_crash(v, "guest triple fault (shutdown)");
		vm_request_stop(v->vm, VM_STOP_CRASH);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(v->vm, VM_STOP_POWEROFF);
			return false;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(v->vm, VM_STOP_RESET);
			return false;
		default:
			snprintf(what, sizeof(what), "system event %u", run->system_event.type);
			vcpu_report_crash(v, what);
			vm_request_stop(v->vm, VM_STOP_CRASH);
			return false;
		}
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "KVM cannot enter the guest (hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_report_crash(v, what);
		vm_request_stop(v->vm, VM_STOP_CRASH);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error, suberror %u%s",
			 run->internal.suberror,
			 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
			 " (instruction emulation failed)" : "");
		vcpu_report_crash(v, what);
		vm_request_stop(v->vm, VM_STOP_CRASH);
		return false;
	default:
		snprintf(what, sizeof(what), "unexpected KVM exit reason %u", run->exit_reason);
		vcpu_report_crash(v, what);
		vm_request_stop(v->vm, VM_STOP_CRASH);
		return false;
	}
}

static bool vcpu_should_stop(const struct vcpu *v)
{
	return __atomic_load_n(&v->vm->stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE;
}

/* Park here while the VM is paused; vm_pause() waits until every running
 * vCPU has arrived, so that no vCPU touches guest state while paused. */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->run_lock);
	if (vm->pause_requested) {
		vm->parked++;
		pthread_cond_broadcast(&vm->run_cond);
		while (vm->pause_requested && !vcpu_should_stop(v))
			pthread_cond_wait(&vm->run_cond, &vm->run_lock);
		vm->parked--;
	}
	pthread_mutex_unlock(&vm->run_lock);
}

/* Auto-converge (migration): after each 10 ms of running, sleep so that
 * the vCPU runs (100 - pct)% of the time.  The migration kicks vCPUs
 * every slice so that even a vCPU that never exits gets here; a pause or a
 * stop cuts the sleep short. */
#define VCPU_THROTTLE_SLICE_NS 10000000ULL

static void vcpu_throttle(struct vcpu *v, uint64_t *slice_start)
{
	unsigned int pct = __atomic_load_n(&v->vm->throttle_pct, __ATOMIC_RELAXED);
	uint64_t now = now_ns(), until;
	struct timespec ts;

	if (!pct || now - *slice_start < VCPU_THROTTLE_SLICE_NS)
		return;
	pct = MIN(pct, 99u);
	until = now + VCPU_THROTTLE_SLICE_NS * pct / (100 - pct);
	while (now_ns() < until && !vcpu_should_stop(v) &&
	       !__atomic_load_n(&v->vm->pause_requested, __ATOMIC_ACQUIRE)) {
		uint64_t left = MIN(until - now_ns(), 1000000ULL);

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += left;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	*slice_start = now_ns();
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	uint64_t t_enter, t_exit = now_ns(), slice_start = t_exit;
	sigset_t set;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	/* Only the kick signal reaches vCPU threads; the rest go to the
	 * event loop's signalfd. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	seccomp_enter(SECCOMP_ROLE_VCPU);

	while (!vcpu_should_stop(v)) {
		int ret;

		if (__atomic_load_n(&v->vm->pause_requested, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&v->busy_since_ns, 0, __ATOMIC_RELAXED);
			vcpu_park(v);
			t_exit = now_ns();
			continue;
		}
		vcpu_throttle(v, &slice_start);
		t_enter = now_ns();
		v->stats.vmm_ns += t_enter - t_exit;
		__atomic_store_n(&v->busy_since_ns, 0, __ATOMIC_RELAXED);
		ret = ioctl(v->fd, KVM_RUN, 0);
		t_exit = now_ns();
		__atomic_store_n(&v->busy_since_ns, t_exit, __ATOMIC_RELAXED);
		v->stats.guest_ns += t_exit - t_enter;
		if (ret < 0) {
			if (errno == EINTR) {
				v->stats.exits[KVM_EXIT_INTR]++;
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELAXED);
				continue;
			}
			/* An AP receiving INIT returns EAGAIN; run again and
			 * KVM blocks until the SIPI. */
			if (errno == EAGAIN)
				continue;
			log_error("vCPU %u: KVM_RUN failed: %s", v->id, strerror(errno));
			vm_request_stop(v->vm, VM_STOP_ERROR);
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
	}
	/* Let a vm_pause() waiting for this vCPU see that it is gone. */
	pthread_mutex_lock(&v->vm->run_lock);
	v->vm->exited++;
	pthread_cond_broadcast(&v->vm->run_cond);
	pthread_mutex_unlock(&v->vm->run_lock);
	return NULL;
}

const char *vcpu_exit_name(unsigned int reason)
{
	static const char *const names[VCPU_EXIT_REASONS] = {
		[KVM_EXIT_UNKNOWN] = "unknown",
		[KVM_EXIT_EXCEPTION] = "exception",
		[KVM_EXIT_IO] = "io",
		[KVM_EXIT_HYPERCALL] = "hypercall",
		[KVM_EXIT_DEBUG] = "debug",
		[KVM_EXIT_HLT] = "hlt",
		[KVM_EXIT_MMIO] = "mmio",
		[KVM_EXIT_IRQ_WINDOW_OPEN] = "irq_window_open",
		[KVM_EXIT_SHUTDOWN] = "shutdown",
		[KVM_EXIT_FAIL_ENTRY] = "fail_entry",
		[KVM_EXIT_INTR] = "intr",
		[KVM_EXIT_SET_TPR] = "set_tpr",
		[KVM_EXIT_TPR_ACCESS] = "tpr_access",
		[KVM_EXIT_NMI] = "nmi",
		[KVM_EXIT_INTERNAL_ERROR] = "internal_error",
		[KVM_EXIT_SYSTEM_EVENT] = "system_event",
		[KVM_EXIT_IOAPIC_EOI] = "ioapic_eoi",
		[KVM_EXIT_DIRTY_RING_FULL] = "dirty_ring_full",
	};

	return reason < VCPU_EXIT_REASONS ? names[reason] : NULL;
}

int vcpu_start(struct vcpu *v, struct ferr *e)
{
	int ret = pthread_create(&v->thread, NULL, vcpu_thread, v);

	if (ret)
		return ferr_errno(e, -ret, "cannot start the thread of vCPU %u", v->id);
	v->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->started)
		return;
	/* immediate_exit closes the race with a signal arriving just before
	 * the thread enters KVM_RUN. */
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}
