/* Everything of a VM but its RAM, as a flattened device tree: the machine
 * description the destination checks first, and the state sent at the
 * switchover (vCPUs, irqchip, PIT, kvmclock, devices).  Named nodes and
 * properties, so a newer ferry can read an older stream; an untrusted blob
 * passes fdt_check_full() before anything in it is read.
 *
 *   /                      version = 1
 *     clock                clock = struct kvm_clock_data
 *     irqchip              pic0, pic1, ioapic = struct kvm_irqchip
 *     pit                  pit2 = struct kvm_pit_state2
 *     cpu@N                sregs regs fpu xcrs xsave msrs lapic events
 *                          mp-state debugregs (KVM's structs; msrs is an
 *                          array of struct kvm_msr_entry)
 *     devices/uart, i8042, rtc, pm    see each device's X_save()
 *     devices/<virtio name>  (blk0, rng0...): see virtio_dev_save()
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <libfdt.h>
#include <linux/kvm.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/migrate.h"
#include "ferry/util.h"
#include "ferry/vcpu.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

#define STATE_VERSION 1
#define MSR_IA32_TSC_DEADLINE 0x6e0

/* vCPU state with a fixed size, in the order KVM takes it back (TESTING.md:
 * SREGS, REGS, FPU, XCRS, then XSAVE and MSRS, then the rest). */
struct st_blob {
	const char *name;
	unsigned long get, set;
	size_t size;
	bool after_msrs;
};

static const struct st_blob st_vcpu_blobs[] = {
	{ "sregs", KVM_GET_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs), false },
	{ "regs", KVM_GET_REGS, KVM_SET_REGS, sizeof(struct kvm_regs), false },
	{ "fpu", KVM_GET_FPU, KVM_SET_FPU, sizeof(struct kvm_fpu), false },
	{ "xcrs", KVM_GET_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs), false },
	{ "lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state), true },
	{ "events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events), true },
	{ "mp-state", KVM_GET_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state), true },
	{ "debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs), true },
};

static const char *const st_chips[] = { "pic0", "pic1", "ioapic" };

/* Run @fill on a growing buffer until the tree fits. */
static int st_build(void *ctx, int (*fill)(void *ctx, void *fdt, struct ferr *e),
		    void **out, uint32_t *len, struct ferr *e)
{
	for (size_t size = 64 * KiB; size <= MIG_STATE_MAX; size *= 2) {
		void *fdt = malloc(size);
		int ret;

		if (!fdt)
			return ferr_set(e, -ENOMEM, "out of memory for the migration state");
		ret = fdt_create(fdt, size);
		if (!ret)
			ret = fdt_finish_reservemap(fdt);
		if (!ret)
			ret = fdt_begin_node(fdt, "");
		if (!ret) {
			ret = fill(ctx, fdt, e);
			if (ret < 0 && ret != -ENOSPC) {
				free(fdt);
				return ret;
			}
			ret = ret < 0 ? -FDT_ERR_NOSPACE : 0;
		}
		if (!ret)
			ret = fdt_end_node(fdt);
		if (!ret)
			ret = fdt_finish(fdt);
		if (!ret) {
			*out = fdt;
			*len = fdt_totalsize(fdt);
			return 0;
		}
		free(fdt);
		if (ret != -FDT_ERR_NOSPACE)
			return ferr_set(e, -EINVAL, "cannot build the state tree: %s",
					fdt_strerror(ret));
	}
	return ferr_set(e, -E2BIG, "the migration state exceeds %u bytes", MIG_STATE_MAX);
}

static int st_check(const void *fdt, uint32_t len, const char *what, struct ferr *e)
{
	int ret;

	if (len < sizeof(struct fdt_header) || fdt_totalsize(fdt) != len)
		return ferr_set(e, -EPROTO, "%s: not a device tree of %u bytes", what, len);
	/* ferry writes version 17; libfdt 1.6's fdt_check_full dereferences
	 * NULL on trees older than 16 (found by tests/fuzz/fuzz_state). */
	if (fdt_version(fdt) < 17)
		return ferr_set(e, -EPROTO, "%s: device tree version %u, ferry needs 17",
				what, fdt_version(fdt));
	/* ... and loops forever on a property length that wraps the offset
	 * (found by tests/fuzz/fuzz_devstate): walk the tags first. */
	if (mig_fdt_walkable(fdt, len) < 0)
		return ferr_set(e, -EPROTO, "%s: malformed device tree: its tags do not lead to FDT_END inside the structure block",
				what);
	ret = fdt_check_full(fdt, len);
	if (ret)
		return ferr_set(e, -EPROTO, "%s: malformed device tree: %s", what,
				fdt_strerror(ret));
	return 0;
}

/* ---- machine description ---- */

static int st_fill_machine(void *ctx, void *fdt, struct ferr *e)
{
	const struct vm *vm = ctx;
	fdt64_t regions[GM_MAX_REGIONS * 2];
	char names[512];
	size_t n = 0;
	int ret = 0;

	(void)e;
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		regions[2 * i] = cpu_to_fdt64(vm->mem.regions[i].gpa);
		regions[2 * i + 1] = cpu_to_fdt64(vm->mem.regions[i].size);
	}
	/* Devices by name, NUL-separated (an FDT string list). */
	n += snprintf(names + n, sizeof(names) - n, "uart%ci8042%crtc%cpm%cpci", 0, 0, 0, 0) + 1;
	for (unsigned int i = 0; i < vm->nr_virtio && n < sizeof(names); i++)
		n += snprintf(names + n, sizeof(names) - n, "%s", vm->virtio[i]->name) + 1;
	if (n > sizeof(names))
		return -ENOSPC;
	ret |= fdt_property_u32(fdt, "version", STATE_VERSION);
	ret |= fdt_property_u64(fdt, "memory-size", vm->mem.ram_size);
	ret |= fdt_property(fdt, "regions", regions, vm->mem.nr_regions * 2 * sizeof(fdt64_t));
	ret |= fdt_property_u32(fdt, "cpus", vm->nr_vcpus);
	ret |= fdt_property(fdt, "devices", names, n);
	return ret ? -ENOSPC : 0;
}

int mig_machine_save(const struct vm *vm, void **fdt, uint32_t *len, struct ferr *e)
{
	return st_build((void *)vm, st_fill_machine, fdt, len, e);
}

int mig_machine_check(const struct vm *vm, const void *fdt, uint32_t len, struct ferr *e)
{
	void *ours = NULL;
	uint32_t ours_len;
	const void *a, *b;
	int alen, blen, ret;

	ret = st_check(fdt, len, "machine description", e);
	if (ret < 0)
		return ret;
	ret = mig_machine_save(vm, &ours, &ours_len, e);
	if (ret < 0)
		return ret;
	a = fdt_getprop(fdt, 0, "memory-size", &alen);
	b = fdt_getprop(ours, 0, "memory-size", &blen);
	if (!a || alen != 8 || memcmp(a, b, 8)) {
		uint64_t src = 0;

		if (a && alen == 8) {
			fdt64_t v;

			memcpy(&v, a, sizeof(v));       /* only 4-byte aligned */
			src = fdt64_to_cpu(v);
		}
		ret = ferr_set(e, -EINVAL, "memory size differs: the source has %llu MiB, this ferry --memory %llu MiB",
			       (unsigned long long)(src / MiB),
			       (unsigned long long)(vm->mem.ram_size / MiB));
		goto out;
	}
	if (dev_state_u32(fdt, 0, "cpus", 0) != vm->nr_vcpus) {
		ret = ferr_set(e, -EINVAL, "vCPU count differs: the source has %u, this ferry --cpus %u",
			       dev_state_u32(fdt, 0, "cpus", 0), vm->nr_vcpus);
		goto out;
	}
	a = fdt_getprop(fdt, 0, "regions", &alen);
	b = fdt_getprop(ours, 0, "regions", &blen);
	if (!a || alen != blen || memcmp(a, b, blen)) {
		ret = ferr_set(e, -EINVAL, "the guest memory layout differs from the source's");
		goto out;
	}
	a = fdt_getprop(fdt, 0, "devices", &alen);
	b = fdt_getprop(ours, 0, "devices", &blen);
	if (!a || alen != blen || memcmp(a, b, blen)) {
		char list[256] = "";

		for (int i = 0, n = 0; a && i < alen && n < (int)sizeof(list) - 1; i++)
			list[n++] = ((const char *)a)[i] ? ((const char *)a)[i] : ' ';
		ret = ferr_set(e, -EINVAL, "the devices differ: the source has [%s]; give the same --disk/--net/--rng flags",
			       list);
		goto out;
	}
	ret = 0;
out:
	free(ours);
	return ret;
}

/* ---- state save ---- */

struct st_save_ctx {
	struct vm *vm;
	struct kvm_msr_list *msr_list;
	int xsave_size;
};

static int st_save_msrs(struct st_save_ctx *c, struct vcpu *v, void *fdt, struct ferr *e)
{
	uint32_t n = c->msr_list->nmsrs, got = 0;
	struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + n * sizeof(struct kvm_msr_entry));
	struct kvm_msr_entry *out = calloc(n ? n : 1, sizeof(*out));
	uint32_t done = 0;
	int ret;

	if (!msrs || !out) {
		ret = ferr_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	/* KVM_GET_MSRS stops at the first MSR it cannot read: skip that one
	 * and go on with the rest. */
	while (done < n) {
		msrs->nmsrs = n - done;
		for (uint32_t i = 0; i < msrs->nmsrs; i++)
			msrs->entries[i] = (struct kvm_msr_entry){ .index = c->msr_list->indices[done + i] };
		ret = ioctl(v->fd, KVM_GET_MSRS, msrs);
		if (ret < 0) {
			ret = ferr_errno(e, -errno, "cannot read vCPU %u's MSRs", v->id);
			goto out;
		}
		memcpy(out + got, msrs->entries, ret * sizeof(*out));
		got += ret;
		done += ret + 1;        /* the one that failed, if any */
	}
	ret = fdt_property(fdt, "msrs", out, got * sizeof(*out)) ? -ENOSPC : 0;
out:
	free(msrs);
	free(out);
	return ret;
}

static int st_save_vcpu(struct st_save_ctx *c, struct vcpu *v, void *fdt, struct ferr *e)
{
	uint8_t buf[4096] __attribute__((aligned(16)));
	char name[16];
	void *xsave;
	int ret;

	snprintf(name, sizeof(name), "cpu@%u", v->id);
	if (fdt_begin_node(fdt, name))
		return -ENOSPC;
	for (size_t i = 0; i < ARRAY_SIZE(st_vcpu_blobs); i++) {
		const struct st_blob *b = &st_vcpu_blobs[i];

		if (ioctl(v->fd, b->get, buf) < 0)
			return ferr_errno(e, -errno, "cannot read vCPU %u's %s", v->id, b->name);
		if (fdt_property(fdt, b->name, buf, b->size))
			return -ENOSPC;
	}
	xsave = calloc(1, c->xsave_size);
	if (!xsave)
		return ferr_set(e, -ENOMEM, "out of memory");
	ret = ioctl(v->fd, c->xsave_size > 4096 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave);
	if (ret < 0) {
		ret = ferr_errno(e, -errno, "cannot read vCPU %u's xsave area", v->id);
		free(xsave);
		return ret;
	}
	ret = fdt_property(fdt, "xsave", xsave, c->xsave_size) ? -ENOSPC : 0;
	free(xsave);
	if (ret < 0)
		return ret;
	ret = st_save_msrs(c, v, fdt, e);
	if (ret < 0)
		return ret;
	return fdt_end_node(fdt) ? -ENOSPC : 0;
}

static int st_fill_state(void *ctx, void *fdt, struct ferr *e)
{
	struct st_save_ctx *c = ctx;
	struct vm *vm = c->vm;
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	int ret = 0;

	if (fdt_property_u32(fdt, "version", STATE_VERSION))
		return -ENOSPC;
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return ferr_errno(e, -errno, "cannot read the VM's kvmclock");
	if (fdt_begin_node(fdt, "clock") || fdt_property(fdt, "clock", &clock, sizeof(clock)) ||
	    fdt_end_node(fdt))
		return -ENOSPC;
	if (fdt_begin_node(fdt, "irqchip"))
		return -ENOSPC;
	for (unsigned int i = 0; i < ARRAY_SIZE(st_chips); i++) {
		struct kvm_irqchip chip = { .chip_id = i };

		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return ferr_errno(e, -errno, "cannot read the irqchip (%s)", st_chips[i]);
		if (fdt_property(fdt, st_chips[i], &chip, sizeof(chip)))
			return -ENOSPC;
	}
	if (fdt_end_node(fdt))
		return -ENOSPC;
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return ferr_errno(e, -errno, "cannot read the PIT");
	if (fdt_begin_node(fdt, "pit") || fdt_property(fdt, "pit2", &pit, sizeof(pit)) ||
	    fdt_end_node(fdt))
		return -ENOSPC;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		ret = st_save_vcpu(c, vm->vcpus[i], fdt, e);
		if (ret < 0)
			return ret;
	}
	if (fdt_begin_node(fdt, "devices"))
		return -ENOSPC;
#define ST_DEV(name, fn, dev) \
	do { \
		if (fdt_begin_node(fdt, name)) \
			return -ENOSPC; \
		ret = fn(dev, fdt); \
		if (ret < 0) \
			return ret; \
		if (fdt_end_node(fdt)) \
			return -ENOSPC; \
	} while (0)
	ST_DEV("uart", uart_save, vm->uart);
	ST_DEV("i8042", i8042_save, vm->i8042);
	ST_DEV("rtc", rtc_save, vm->rtc);
	ST_DEV("pm", pm_save, vm->pm);
	for (unsigned int i = 0; i < vm->nr_virtio; i++) {
		struct virtio_dev *d = vm->virtio[i];

		if (fdt_begin_node(fdt, d->name))
			return -ENOSPC;
		ret = virtio_dev_save(d, fdt);
		if (ret == -ENOSPC)
			return ret;
		if (ret < 0)
			return ferr_errno(e, ret, "cannot save the state of %s", d->name);
		if (fdt_end_node(fdt))
			return -ENOSPC;
	}
#undef ST_DEV
	return fdt_end_node(fdt) ? -ENOSPC : 0;
}

static int st_xsave_size(struct vm *vm)
{
	int n = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return n > 4096 ? n : 4096;
}

static int st_msr_list(struct vm *vm, struct kvm_msr_list **out, struct ferr *e)
{
	struct kvm_msr_list probe = { 0 }, *l;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return ferr_errno(e, -errno, "cannot list the MSRs KVM saves");
	l = calloc(1, sizeof(*l) + (probe.nmsrs + 1) * sizeof(l->indices[0]));
	if (!l)
		return ferr_set(e, -ENOMEM, "out of memory");
	l->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return ferr_errno(e, -errno, "cannot list the MSRs KVM saves");
	}
	*out = l;
	return 0;
}

int mig_state_save(struct vm *vm, void **fdt, uint32_t *len, struct ferr *e)
{
	struct st_save_ctx c = { .vm = vm, .xsave_size = st_xsave_size(vm) };
	int ret = st_msr_list(vm, &c.msr_list, e);

	if (ret < 0)
		return ret;
	ret = st_build(&c, st_fill_state, fdt, len, e);
	free(c.msr_list);
	return ret;
}

/* ---- state load ---- */

static const void *st_prop(const void *fdt, int node, const char *name, int size,
			   const char *where, struct ferr *e)
{
	int len;
	const void *p = fdt_getprop(fdt, node, name, &len);

	if (!p) {
		ferr_set(e, -EPROTO, "state: %s lacks '%s'", where, name);
		return NULL;
	}
	if (size >= 0 && len != size) {
		ferr_set(e, -EPROTO, "state: %s/%s is %d bytes, expected %d", where, name, len, size);
		return NULL;
	}
	return p;
}

/* FDT property data is only 4-byte aligned: KVM's structs go through an
 * aligned copy. */
static int st_set(int fd, unsigned long req, const void *p, size_t size)
{
	void *buf = aligned_alloc(64, ALIGN_UP(size, 64));
	int ret;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, p, size);
	ret = ioctl(fd, req, buf) < 0 ? -errno : 0;
	free(buf);
	return ret;
}

static int st_load_msrs(struct vcpu *v, const void *fdt, int node, const char *where,
			struct ferr *e)
{
	const void *p = st_prop(fdt, node, "msrs", -1, where, e);
	struct kvm_msrs *msrs;
	int len, ret;
	uint32_t n;

	if (!p)
		return -EPROTO;
	fdt_getprop(fdt, node, "msrs", &len);
	if (len % sizeof(struct kvm_msr_entry) || len > 4096 * (int)sizeof(struct kvm_msr_entry))
		return ferr_set(e, -EPROTO, "state: %s/msrs has a bad size (%d)", where, len);
	n = len / sizeof(struct kvm_msr_entry);
	msrs = calloc(1, sizeof(*msrs) + len);
	if (!msrs)
		return ferr_set(e, -ENOMEM, "out of memory");
	msrs->nmsrs = n;
	memcpy(msrs->entries, p, len);
	ret = ioctl(v->fd, KVM_SET_MSRS, msrs);
	if (ret < 0)
		ret = ferr_errno(e, -errno, "cannot set vCPU %u's MSRs", v->id);
	else if ((uint32_t)ret < n)
		ret = ferr_set(e, -EINVAL, "vCPU %u: KVM refused MSR %#x (value %#llx)", v->id,
			       msrs->entries[ret].index,
			       (unsigned long long)msrs->entries[ret].data);
	else
		ret = 0;
	/* The TSC deadline only sticks once the LAPIC is in deadline mode:
	 * keep it for after the LAPIC (see st_load_vcpu). */
	free(msrs);
	return ret;
}

static int st_load_tsc_deadline(struct vcpu *v, const void *fdt, int node)
{
	const uint8_t *ent;
	struct kvm_msrs *m;
	int len, ret;

	ent = fdt_getprop(fdt, node, "msrs", &len);
	for (int i = 0; ent && i < len / (int)sizeof(struct kvm_msr_entry); i++) {
		struct kvm_msr_entry x;

		memcpy(&x, ent + i * sizeof(x), sizeof(x));
		if (x.index != MSR_IA32_TSC_DEADLINE || !x.data)
			continue;
		m = calloc(1, sizeof(*m) + sizeof(x));
		if (!m)
			return -ENOMEM;
		m->nmsrs = 1;
		m->entries[0] = x;
		ret = ioctl(v->fd, KVM_SET_MSRS, m) == 1 ? 0 : -EINVAL;
		free(m);
		return ret;
	}
	return 0;
}

static int st_load_vcpu(struct vm *vm, struct vcpu *v, const void *fdt, struct ferr *e)
{
	char where[16];
	int node, ret, xlen, want;
	const void *p;
	void *xsave;

	snprintf(where, sizeof(where), "cpu@%u", v->id);
	node = fdt_subnode_offset(fdt, 0, where);
	if (node < 0)
		return ferr_set(e, -EPROTO, "state: no node %s", where);
	for (int late = 0; late < 2; late++) {
		for (size_t i = 0; i < ARRAY_SIZE(st_vcpu_blobs); i++) {
			const struct st_blob *b = &st_vcpu_blobs[i];

			if (b->after_msrs != (bool)late)
				continue;
			p = st_prop(fdt, node, b->name, b->size, where, e);
			if (!p)
				return -EPROTO;
			ret = st_set(v->fd, b->set, p, b->size);
			if (ret < 0)
				return ferr_errno(e, ret, "cannot set vCPU %u's %s", v->id, b->name);
		}
		if (late)
			break;
		p = st_prop(fdt, node, "xsave", -1, where, e);
		if (!p)
			return -EPROTO;
		fdt_getprop(fdt, node, "xsave", &xlen);
		want = st_xsave_size(vm);
		if (xlen < 4096 || xlen > 1024 * 1024)
			return ferr_set(e, -EPROTO, "state: %s/xsave is %d bytes", where, xlen);
		xsave = aligned_alloc(64, ALIGN_UP((size_t)MAX(xlen, want), 64));
		if (!xsave)
			return ferr_set(e, -ENOMEM, "out of memory");
		memset(xsave, 0, MAX(xlen, want));
		memcpy(xsave, p, xlen);
		ret = ioctl(v->fd, KVM_SET_XSAVE, xsave) < 0 ? -errno : 0;
		free(xsave);
		if (ret < 0)
			return ferr_errno(e, ret, "cannot set vCPU %u's xsave area", v->id);
		ret = st_load_msrs(v, fdt, node, where, e);
		if (ret < 0)
			return ret;
	}
	if (st_load_tsc_deadline(v, fdt, node) < 0)
		log_warn("vCPU %u: cannot restore the TSC deadline", v->id);
	return 0;
}

static int st_load_devices(struct vm *vm, const void *fdt, struct ferr *e)
{
	int devs = fdt_subnode_offset(fdt, 0, "devices"), node, ret;

	if (devs < 0)
		return ferr_set(e, -EPROTO, "state: no devices node");
#define ST_DEV(name, fn, dev) \
	do { \
		node = fdt_subnode_offset(fdt, devs, name); \
		if (node < 0) \
			return ferr_set(e, -EPROTO, "state: no state for device '%s'", name); \
		ret = fn(dev, fdt, node); \
		if (ret < 0) \
			return ferr_errno(e, ret, "state: device '%s'", name); \
	} while (0)
	ST_DEV("uart", uart_load, vm->uart);
	ST_DEV("i8042", i8042_load, vm->i8042);
	ST_DEV("rtc", rtc_load, vm->rtc);
	ST_DEV("pm", pm_load, vm->pm);
#undef ST_DEV
	for (unsigned int i = 0; i < vm->nr_virtio; i++) {
		struct virtio_dev *d = vm->virtio[i];

		node = fdt_subnode_offset(fdt, devs, d->name);
		if (node < 0)
			return ferr_set(e, -EPROTO, "state: no state for device '%s'", d->name);
		ret = virtio_dev_load(d, fdt, node, e);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int mig_state_load(struct vm *vm, const void *fdt, uint32_t len, struct ferr *e)
{
	struct kvm_clock_data clock;
	const void *p;
	int node, ret;

	ret = st_check(fdt, len, "state", e);
	if (ret < 0)
		return ret;
	if (dev_state_u32(fdt, 0, "version", 0) != STATE_VERSION)
		return ferr_set(e, -EPROTO, "state version %u, this ferry reads %u",
				dev_state_u32(fdt, 0, "version", 0), STATE_VERSION);
	/* The order that works (TESTING.md): clock, irqchip, PIT, vCPUs. */
	node = fdt_subnode_offset(fdt, 0, "clock");
	p = node < 0 ? NULL : st_prop(fdt, node, "clock", sizeof(clock), "clock", e);
	if (!p)
		return ferr_set(e, -EPROTO, "state: no kvmclock");
	memcpy(&clock, p, sizeof(clock));
	/* REALTIME lets KVM add the time the migration took. */
	clock.flags &= KVM_CLOCK_REALTIME;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
		clock.flags = 0;
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
			return ferr_errno(e, -errno, "cannot set the kvmclock");
	}
	node = fdt_subnode_offset(fdt, 0, "irqchip");
	if (node < 0)
		return ferr_set(e, -EPROTO, "state: no irqchip");
	for (unsigned int i = 0; i < ARRAY_SIZE(st_chips); i++) {
		struct kvm_irqchip chip;

		p = st_prop(fdt, node, st_chips[i], sizeof(chip), "irqchip", e);
		if (!p)
			return -EPROTO;
		memcpy(&chip, p, sizeof(chip));
		if (chip.chip_id != i)
			return ferr_set(e, -EPROTO, "state: irqchip/%s has chip id %u", st_chips[i],
					chip.chip_id);
		ret = st_set(vm->vm_fd, KVM_SET_IRQCHIP, &chip, sizeof(chip));
		if (ret < 0)
			return ferr_errno(e, ret, "cannot set the irqchip (%s)", st_chips[i]);
	}
	node = fdt_subnode_offset(fdt, 0, "pit");
	p = node < 0 ? NULL : st_prop(fdt, node, "pit2", sizeof(struct kvm_pit_state2), "pit", e);
	if (!p)
		return -EPROTO;
	ret = st_set(vm->vm_fd, KVM_SET_PIT2, p, sizeof(struct kvm_pit_state2));
	if (ret < 0)
		return ferr_errno(e, ret, "cannot set the PIT");
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		ret = st_load_vcpu(vm, vm->vcpus[i], fdt, e);
		if (ret < 0)
			return ret;
	}
	return st_load_devices(vm, fdt, e);
}
