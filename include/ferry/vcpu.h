/* vCPUs: one thread each, running KVM_RUN and dispatching exits to the
 * buses.  Everything else (device queues, host I/O) belongs to the event
 * loop. */
#ifndef FERRY_VCPU_H
#define FERRY_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry/boot.h"
#include "ferry/err.h"

struct vm;

/* Exits are counted by KVM exit reason (KVM_EXIT_*), below this bound. */
#define VCPU_EXIT_REASONS 64

struct vcpu_stats {
	uint64_t exits[VCPU_EXIT_REASONS];
	uint64_t guest_ns;        /* time inside KVM_RUN */
	uint64_t vmm_ns;          /* time handling exits in ferry */
};

struct vcpu {
	struct vm *vm;
	unsigned int id;          /* also its APIC id */
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	struct vcpu_stats stats;  /* written by the vCPU thread only */
	/* When the thread last left KVM_RUN, or 0 while it is in KVM_RUN or
	 * parked: a vCPU stuck in ferry's exit handling shows here. */
	uint64_t busy_since_ns;
};

/* Name of a KVM exit reason for stats ("io", "mmio", ...), NULL if none. */
const char *vcpu_exit_name(unsigned int reason);

int vcpu_create(struct vm *vm, unsigned int id, struct vcpu **out, struct ferr *e);
/* Put the boot vCPU in the state @boot asks for (PVH or 64-bit Linux). */
int vcpu_setup_boot(struct vcpu *v, const struct boot_info *boot, struct ferr *e);
int vcpu_start(struct vcpu *v, struct ferr *e);
/* Make KVM_RUN return soon; safe from any thread. */
void vcpu_kick(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);

/* Install the kick signal handler; once per process, before vcpu_start. */
int vcpu_signals_init(void);

/* CPUID for vCPU @id out of @n in the VM (cpuid.c).  @supported comes from
 * KVM_GET_SUPPORTED_CPUID; the result is a malloc'd copy with the APIC id
 * and topology leaves filled in. */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
				  unsigned int id, unsigned int n);
/* KVM_GET_SUPPORTED_CPUID, grown until it fits. */
int cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **out);

#endif
