/* virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): the register block a
 * driver sees at PLAT_VIRTIO_MMIO_GPA + i * 4 KiB, feature negotiation, the
 * status byte, queue set-up, QueueNotify through ioeventfds and the level
 * interrupt line (InterruptStatus/InterruptACK). */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libfdt.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/platform.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

/* Register offsets (§4.2.2 "MMIO Device Register Layout"). */
#define MMIO_MAGIC              0x000
#define MMIO_VERSION            0x004
#define MMIO_DEVICE_ID          0x008
#define MMIO_VENDOR_ID          0x00c
#define MMIO_DEVICE_FEATURES    0x010
#define MMIO_DEVICE_FEATURES_SEL 0x014
#define MMIO_DRIVER_FEATURES    0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL          0x030
#define MMIO_QUEUE_NUM_MAX      0x034
#define MMIO_QUEUE_NUM          0x038
#define MMIO_QUEUE_READY        0x044
#define MMIO_QUEUE_NOTIFY       0x050
#define MMIO_INTERRUPT_STATUS   0x060
#define MMIO_INTERRUPT_ACK      0x064
#define MMIO_STATUS             0x070
#define MMIO_QUEUE_DESC_LOW     0x080
#define MMIO_QUEUE_DESC_HIGH    0x084
#define MMIO_QUEUE_DRIVER_LOW   0x090
#define MMIO_QUEUE_DRIVER_HIGH  0x094
#define MMIO_QUEUE_DEVICE_LOW   0x0a0
#define MMIO_QUEUE_DEVICE_HIGH  0x0a4
#define MMIO_SHM_SEL            0x0ac
#define MMIO_SHM_LEN_LOW        0x0b0
#define MMIO_SHM_LEN_HIGH       0x0b4
#define MMIO_CONFIG_GENERATION  0x0fc
#define MMIO_CONFIG             0x100

#define MMIO_MAGIC_VALUE        0x74726976      /* "virt" */
#define MMIO_VENDOR             0x554d4551      /* "QEMU": what drivers expect */

#define MMIO_INT_VRING          1
#define MMIO_INT_CONFIG         2

struct mmio_queue {
	uint16_t num;
	uint64_t desc, driver, device;
	int kick_fd;                    /* eventfd: KVM ioeventfd and userspace writes */
	bool ioeventfd;                 /* registered with KVM */
};

struct virtio_mmio {
	struct virtio_dev *d;
	struct vm *vm;
	uint64_t base;
	unsigned int gsi;
	int irq_source;
	bool irq_level;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	uint64_t drv_features;          /* written so far, taken at FEATURES_OK */
	uint32_t int_status;
	uint32_t config_gen;
	struct mmio_queue q[VIRTIO_MAX_QUEUES];
};

static uint64_t mmio_device_features(struct virtio_dev *d)
{
	return d->ops->features(d) | (1ULL << VIRTIO_F_VERSION_1) |
	       (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX);
}

static void mmio_update_irq(struct virtio_mmio *m)
{
	bool level = m->int_status != 0;

	if (level == m->irq_level)
		return;
	m->irq_level = level;
	vm_irq_shared_set(m->vm, m->gsi, m->irq_source, level);
}

/* Transport ops: called with d->lock held. */
static void mmio_notify_queue(struct virtio_dev *d, unsigned int q)
{
	struct virtio_mmio *m = d->transport;

	(void)q;
	m->int_status |= MMIO_INT_VRING;
	mmio_update_irq(m);
}

static void mmio_notify_config(struct virtio_dev *d)
{
	struct virtio_mmio *m = d->transport;

	m->config_gen++;
	m->int_status |= MMIO_INT_CONFIG;
	mmio_update_irq(m);
}

/* Status 0: back to the state after power-on (§2.1.2, §4.2.3.1). */
static void mmio_reset(struct virtio_mmio *m)
{
	struct virtio_dev *d = m->d;

	if (d->ops->reset)
		d->ops->reset(d);
	for (unsigned int i = 0; i < d->num_queues; i++) {
		if (d->vq_ready[i])
			vq_destroy(&d->vqs[i]);
		d->vq_ready[i] = false;
		m->q[i].num = 0;
		m->q[i].desc = m->q[i].driver = m->q[i].device = 0;
	}
	d->status = 0;
	d->driver_features = 0;
	m->drv_features = 0;
	m->dev_feat_sel = m->drv_feat_sel = m->queue_sel = 0;
	m->int_status = 0;
	mmio_update_irq(m);
}

static void mmio_queue_ready(struct virtio_mmio *m, uint32_t v)
{
	struct virtio_dev *d = m->d;
	unsigned int qi = m->queue_sel;
	struct mmio_queue *q = &m->q[qi];
	int ret;

	if (qi >= d->num_queues)
		return;
	if (!v) {
		/* Disabling a live queue is only defined through reset in
		 * virtio 1.2; dropping it here is the safe reading. */
		if (d->vq_ready[qi])
			vq_destroy(&d->vqs[qi]);
		d->vq_ready[qi] = false;
		return;
	}
	if (d->vq_ready[qi])
		return;
	if (q->num > d->queue_max_size) {
		virtio_dev_fail(d, "queue size above QueueNumMax");
		return;
	}
	ret = vq_init(&d->vqs[qi], d->gm, q->num, q->desc, q->driver, q->device,
		      d->driver_features);
	if (ret < 0) {
		char why[128];

		snprintf(why, sizeof(why), "queue %u: bad size %u or rings not in RAM (%s)",
			 qi, q->num, strerror(-ret));
		virtio_dev_fail(d, why);
		return;
	}
	d->vq_ready[qi] = true;
}

static void mmio_kick(struct virtio_mmio *m, unsigned int qi)
{
	uint64_t one = 1;

	/* The loop thread owns queue processing: hand the kick over. */
	if (qi < m->d->num_queues && write(m->q[qi].kick_fd, &one, sizeof(one)) < 0)
		log_debug("%s: queue %u kick lost: %s", m->d->name, qi, strerror(errno));
}

static void mmio_write_status(struct virtio_mmio *m, uint32_t v)
{
	struct virtio_dev *d = m->d;
	uint8_t old = d->status, val = v & 0xff;
	int ret;

	if (val == 0) {
		mmio_reset(m);
		return;
	}
	/* NEEDS_RESET belongs to the device; the driver cannot set or clear it. */
	val = (val & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET);
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* §2.2.2: accept only offered bits, and insist on a modern
		 * driver; leaving FEATURES_OK clear tells the driver no. */
		if ((m->drv_features & ~mmio_device_features(d)) ||
		    !(m->drv_features & (1ULL << VIRTIO_F_VERSION_1)) ||
		    (old & VIRTIO_STATUS_DRIVER_OK)) {
			log_info("%s: refusing driver features 0x%" PRIx64, d->name,
				 m->drv_features);
			val &= ~VIRTIO_STATUS_FEATURES_OK;
		} else {
			d->driver_features = m->drv_features;
		}
	}
	d->status = val;
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (!(val & VIRTIO_STATUS_FEATURES_OK)) {
			virtio_dev_fail(d, "DRIVER_OK without FEATURES_OK");
			return;
		}
		ret = d->ops->activate ? d->ops->activate(d) : 0;
		if (ret < 0) {
			virtio_dev_fail(d, "device failed to start");
			return;
		}
		/* Buffers the driver queued (and kicked) before DRIVER_OK
		 * were ignored: look at every live queue once now. */
		for (unsigned int i = 0; i < d->num_queues; i++)
			if (d->vq_ready[i])
				mmio_kick(m, i);
	}
}

static uint32_t mmio_reg_read(struct virtio_mmio *m, uint64_t off)
{
	struct virtio_dev *d = m->d;
	unsigned int qi = m->queue_sel;

	switch (off) {
	case MMIO_MAGIC:
		return MMIO_MAGIC_VALUE;
	case MMIO_VERSION:
		return 2;
	case MMIO_DEVICE_ID:
		return d->device_id;
	case MMIO_VENDOR_ID:
		return MMIO_VENDOR;
	case MMIO_DEVICE_FEATURES:
		if (m->dev_feat_sel > 1)
			return 0;
		return (uint32_t)(mmio_device_features(d) >> (32 * m->dev_feat_sel));
	case MMIO_QUEUE_NUM_MAX:
		return qi < d->num_queues ? d->queue_max_size : 0;
	case MMIO_QUEUE_READY:
		return qi < d->num_queues && d->vq_ready[qi];
	case MMIO_INTERRUPT_STATUS:
		return m->int_status;
	case MMIO_STATUS:
		return d->status;
	case MMIO_CONFIG_GENERATION:
		return m->config_gen;
	case MMIO_SHM_LEN_LOW:
	case MMIO_SHM_LEN_HIGH:
		return 0xffffffff;      /* no shared memory regions */
	}
	return 0;
}

/* Store one half of a 64-bit queue address. */
static void mmio_queue_addr(uint64_t *addr, bool high, uint32_t v)
{
	if (high)
		*addr = (*addr & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*addr = (*addr & ~0xffffffffULL) | v;
}

static void mmio_reg_write(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	struct virtio_dev *d = m->d;
	unsigned int qi = m->queue_sel;
	struct mmio_queue *q = qi < d->num_queues ? &m->q[qi] : NULL;
	bool q_live = q && d->vq_ready[qi];

	switch (off) {
	case MMIO_DEVICE_FEATURES_SEL:
		m->dev_feat_sel = v;
		break;
	case MMIO_DRIVER_FEATURES:
		/* Only while negotiating (DRIVER set, FEATURES_OK not yet). */
		if (m->drv_feat_sel > 1 || (d->status & VIRTIO_STATUS_FEATURES_OK))
			break;
		if (m->drv_feat_sel)
			m->drv_features = (m->drv_features & 0xffffffffULL) | ((uint64_t)v << 32);
		else
			m->drv_features = (m->drv_features & ~0xffffffffULL) | v;
		break;
	case MMIO_DRIVER_FEATURES_SEL:
		m->drv_feat_sel = v;
		break;
	case MMIO_QUEUE_SEL:
		m->queue_sel = v;
		break;
	case MMIO_QUEUE_NUM:
		if (q && !q_live)
			q->num = v > UINT16_MAX ? 0 : v;
		break;
	case MMIO_QUEUE_READY:
		if (q)
			mmio_queue_ready(m, v);
		break;
	case MMIO_QUEUE_NOTIFY:
		/* Arrives here only when the ioeventfd did not take it. */
		if (v < d->num_queues)
			mmio_kick(m, v);
		break;
	case MMIO_INTERRUPT_ACK:
		m->int_status &= ~v;
		mmio_update_irq(m);
		break;
	case MMIO_STATUS:
		mmio_write_status(m, v);
		break;
	case MMIO_QUEUE_DESC_LOW:
	case MMIO_QUEUE_DESC_HIGH:
		if (q && !q_live)
			mmio_queue_addr(&q->desc, off == MMIO_QUEUE_DESC_HIGH, v);
		break;
	case MMIO_QUEUE_DRIVER_LOW:
	case MMIO_QUEUE_DRIVER_HIGH:
		if (q && !q_live)
			mmio_queue_addr(&q->driver, off == MMIO_QUEUE_DRIVER_HIGH, v);
		break;
	case MMIO_QUEUE_DEVICE_LOW:
	case MMIO_QUEUE_DEVICE_HIGH:
		if (q && !q_live)
			mmio_queue_addr(&q->device, off == MMIO_QUEUE_DEVICE_HIGH, v);
		break;
	case MMIO_SHM_SEL:
		break;
	}
}

static void mmio_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;
	struct virtio_dev *d = m->d;

	memset(data, 0, len);
	pthread_mutex_lock(&d->lock);
	if (off >= MMIO_CONFIG) {
		uint64_t c = off - MMIO_CONFIG;

		if (c < d->config_len && len <= d->config_len - c && d->ops->config_read)
			d->ops->config_read(d, c, data, len);
	} else if (len == 4 && !(off & 3)) {
		/* §4.2.2.2: registers are read 32 bits wide and aligned. */
		bus_put(data, 4, mmio_reg_read(m, off));
	}
	pthread_mutex_unlock(&d->lock);
}

static void mmio_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;
	struct virtio_dev *d = m->d;

	pthread_mutex_lock(&d->lock);
	if (off >= MMIO_CONFIG) {
		uint64_t c = off - MMIO_CONFIG;

		if (c < d->config_len && len <= d->config_len - c && d->ops->config_write)
			d->ops->config_write(d, c, data, len);
	} else if (len == 4 && !(off & 3)) {
		mmio_reg_write(m, off, (uint32_t)bus_get(data, 4));
	}
	pthread_mutex_unlock(&d->lock);
}

static const struct bus_ops mmio_bus_ops = {
	.read = mmio_read,
	.write = mmio_write,
};

/* A kick (from KVM's ioeventfd or mmio_kick) on the loop thread. */
static void mmio_on_kick(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct virtio_mmio *m = opaque;
	struct virtio_dev *d = m->d;
	uint64_t cnt;
	unsigned int qi;

	(void)l;
	(void)events;
	if (read(fd, &cnt, sizeof(cnt)) < 0)
		return;
	pthread_mutex_lock(&d->lock);
	for (qi = 0; qi < d->num_queues; qi++)
		if (m->q[qi].kick_fd == fd)
			break;
	if (qi < d->num_queues && d->vq_ready[qi] && !d->quiesced &&
	    (d->status & VIRTIO_STATUS_DRIVER_OK) &&
	    !(d->status & VIRTIO_STATUS_NEEDS_RESET) && d->ops->queue_notify)
		d->ops->queue_notify(d, qi);
	pthread_mutex_unlock(&d->lock);
}

static void mmio_free(struct virtio_mmio *m)
{
	struct virtio_dev *d = m->d;

	for (unsigned int i = 0; i < d->num_queues; i++) {
		struct mmio_queue *q = &m->q[i];

		if (q->kick_fd < 0)
			continue;
		if (q->ioeventfd)
			vm_ioeventfd(m->vm, q->kick_fd, m->base + MMIO_QUEUE_NOTIFY, 4, false, i, false);
		loop_del(m->vm->loop, q->kick_fd);
		close(q->kick_fd);
	}
	free(m);
}

static void mmio_remove(struct virtio_dev *d)
{
	struct virtio_mmio *m = d->transport;

	if (!m)
		return;
	bus_unregister(&m->vm->mmio, m->base, m);
	/* The queues stay for virtio_dev_destroy(), which resets the device
	 * first. */
	pthread_mutex_lock(&d->lock);
	m->int_status = 0;
	mmio_update_irq(m);
	d->transport = NULL;
	pthread_mutex_unlock(&d->lock);
	mmio_free(m);
}

static void mmio_requeue(struct virtio_dev *d, unsigned int q)
{
	mmio_kick(d->transport, q);
}

/* ---- migration ----
 * The registers the driver wrote (selectors, staged features, each queue's
 * size, ready bit and ring addresses), the interrupt status and the config
 * generation.  The register block's place and line follow from the device
 * order on the command line: checked, since a different order would move
 * the guest's device under it.  Per queue in "mmio-queues": num, ready,
 * then desc, driver and device as 64-bit values (two cells each). */
#define MMQ_WORDS 8

static void mmio_put64(fdt32_t *w, uint64_t v)
{
	w[0] = cpu_to_fdt32((uint32_t)(v >> 32));
	w[1] = cpu_to_fdt32((uint32_t)v);
}

static uint64_t mmio_get64(const fdt32_t *w)
{
	return (uint64_t)fdt32_ld(&w[0]) << 32 | fdt32_ld(&w[1]);
}

static int mmio_save(struct virtio_dev *d, void *fdt)
{
	struct virtio_mmio *m = d->transport;
	fdt32_t q[VIRTIO_MAX_QUEUES * MMQ_WORDS];
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	for (unsigned int i = 0; i < d->num_queues; i++) {
		fdt32_t *w = &q[i * MMQ_WORDS];

		w[0] = cpu_to_fdt32(m->q[i].num);
		w[1] = cpu_to_fdt32(d->vq_ready[i]);
		mmio_put64(w + 2, m->q[i].desc);
		mmio_put64(w + 4, m->q[i].driver);
		mmio_put64(w + 6, m->q[i].device);
	}
	ret |= fdt_property_u64(fdt, "mmio-base", m->base);
	ret |= fdt_property_u32(fdt, "mmio-gsi", m->gsi);
	ret |= fdt_property_u32(fdt, "dev-feat-sel", m->dev_feat_sel);
	ret |= fdt_property_u32(fdt, "drv-feat-sel", m->drv_feat_sel);
	ret |= fdt_property_u32(fdt, "queue-sel", m->queue_sel);
	ret |= fdt_property_u64(fdt, "staged-features", m->drv_features);
	ret |= fdt_property_u32(fdt, "int-status", m->int_status);
	ret |= fdt_property_u32(fdt, "config-generation", m->config_gen);
	ret |= fdt_property(fdt, "mmio-queues", q, d->num_queues * MMQ_WORDS * sizeof(fdt32_t));
	pthread_mutex_unlock(&d->lock);
	return ret ? -ENOSPC : 0;
}

/* The queues, checked as the register writes would be; the ones the driver
 * had made ready get their rings set up again. */
static int mmio_load_queues(struct virtio_mmio *m, const fdt32_t *q, struct ferr *e)
{
	struct virtio_dev *d = m->d;

	for (unsigned int i = 0; i < d->num_queues; i++) {
		const fdt32_t *w = &q[i * MMQ_WORDS];
		struct mmio_queue *mq = &m->q[i];
		uint32_t num = fdt32_ld(&w[0]), ready = fdt32_ld(&w[1]);
		int ret;

		if (num > UINT16_MAX || ready > 1 ||
		    (ready && (!num || (num & (num - 1)) || num > d->queue_max_size)))
			return ferr_set(e, -EPROTO, "%s: virtio-mmio queue %u has size %u%s (at most %u here)",
					d->name, i, num, ready ? " and is ready" : "",
					d->queue_max_size);
		mq->num = (uint16_t)num;
		mq->desc = mmio_get64(w + 2);
		mq->driver = mmio_get64(w + 4);
		mq->device = mmio_get64(w + 6);
		if (d->vq_ready[i])
			vq_destroy(&d->vqs[i]);
		d->vq_ready[i] = false;
		if (!ready)
			continue;
		ret = vq_init(&d->vqs[i], d->gm, mq->num, mq->desc, mq->driver, mq->device,
			      d->driver_features);
		if (ret < 0) {
			/* The source had failed the device already: so be it. */
			if (d->status & VIRTIO_STATUS_NEEDS_RESET)
				continue;
			return ferr_set(e, -EPROTO, "%s: virtio-mmio queue %u's rings at 0x%" PRIx64
					" are not in RAM", d->name, i, mq->desc);
		}
		d->vq_ready[i] = true;
	}
	return 0;
}

static int mmio_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e)
{
	struct virtio_mmio *m = d->transport;
	const fdt64_t *base, *staged;
	const fdt32_t *q;
	int base_len, staged_len, q_len, ret;

	base = fdt_getprop(fdt, node, "mmio-base", &base_len);
	staged = fdt_getprop(fdt, node, "staged-features", &staged_len);
	q = fdt_getprop(fdt, node, "mmio-queues", &q_len);
	if (!base || base_len != 8 || !staged || staged_len != 8 || !q ||
	    q_len != (int)(d->num_queues * MMQ_WORDS * sizeof(fdt32_t)))
		return ferr_set(e, -EPROTO, "%s: virtio-mmio state missing or malformed (not a virtio-mmio device on the source?)",
				d->name);
	if (fdt64_ld(base) != m->base || dev_state_u32(fdt, node, "mmio-gsi", 0) != m->gsi)
		return ferr_set(e, -EINVAL, "%s: the source has it at 0x%" PRIx64 " GSI %u, here it is at 0x%" PRIx64
				" GSI %u (give the devices in the same order)", d->name,
				(uint64_t)fdt64_ld(base), dev_state_u32(fdt, node, "mmio-gsi", 0),
				m->base, m->gsi);

	pthread_mutex_lock(&d->lock);
	m->dev_feat_sel = dev_state_u32(fdt, node, "dev-feat-sel", 0);
	m->drv_feat_sel = dev_state_u32(fdt, node, "drv-feat-sel", 0);
	m->queue_sel = dev_state_u32(fdt, node, "queue-sel", 0);
	m->drv_features = fdt64_ld(staged);
	m->config_gen = dev_state_u32(fdt, node, "config-generation", 0);
	/* Only the two defined causes; anything else would hold the line
	 * up with nothing the driver can acknowledge. */
	m->int_status = dev_state_u32(fdt, node, "int-status", 0) &
			(MMIO_INT_VRING | MMIO_INT_CONFIG);
	ret = mmio_load_queues(m, q, e);
	if (ret == 0)
		mmio_update_irq(m);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static const struct virtio_transport_ops mmio_transport_ops = {
	.requeue = mmio_requeue,
	.notify_queue = mmio_notify_queue,
	.notify_config = mmio_notify_config,
	.remove = mmio_remove,
	.save = mmio_save,
	.load = mmio_load,
};

int virtio_mmio_add(struct vm *vm, struct virtio_dev *d, struct ferr *e)
{
	struct virtio_mmio *m;
	unsigned int idx = vm->next_mmio_dev;
	size_t used = strnlen(vm->extra_cmdline, sizeof(vm->extra_cmdline));
	char arg[64];
	int ret, n;

	if (idx >= PLAT_VIRTIO_MMIO_MAX)
		return ferr_set(e, -ENOSPC, "%s: no virtio-mmio slot left (at most %d devices)",
				d->name, PLAT_VIRTIO_MMIO_MAX);
	if (d->num_queues > VIRTIO_MAX_QUEUES)
		return ferr_set(e, -EINVAL, "%s: %u queues, virtio-mmio supports %d",
				d->name, d->num_queues, VIRTIO_MAX_QUEUES);
	m = calloc(1, sizeof(*m));
	if (!m)
		return ferr_errno(e, -ENOMEM, "%s: virtio-mmio state", d->name);
	m->d = d;
	m->vm = vm;
	m->base = PLAT_VIRTIO_MMIO_GPA + idx * PLAT_VIRTIO_MMIO_SIZE;
	m->gsi = PLAT_VIRTIO_MMIO_GSI(idx);
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		m->q[i].kick_fd = -1;

	n = snprintf(arg, sizeof(arg), " virtio_mmio.device=4K@0x%" PRIx64 ":%u",
		     m->base, m->gsi);
	if (n < 0 || used + (size_t)n >= sizeof(vm->extra_cmdline)) {
		ret = ferr_set(e, -ENOSPC, "%s: kernel command line addition full (%zu bytes)",
			       d->name, sizeof(vm->extra_cmdline));
		goto out;
	}
	ret = vm_irq_source_alloc(vm);
	if (ret < 0) {
		ferr_set(e, ret, "%s: no interrupt source left for virtio-mmio", d->name);
		goto out;
	}
	m->irq_source = ret;

	for (unsigned int i = 0; i < d->num_queues; i++) {
		struct mmio_queue *q = &m->q[i];

		q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->kick_fd < 0) {
			ret = ferr_errno(e, -errno, "%s: queue %u eventfd", d->name, i);
			goto out;
		}
		ret = loop_add(vm->loop, q->kick_fd, EPOLLIN, mmio_on_kick, m);
		if (ret < 0) {
			close(q->kick_fd);
			q->kick_fd = -1;
			ferr_errno(e, ret, "%s: queue %u on the event loop", d->name, i);
			goto out;
		}
		/* Without an ioeventfd the write exits to ferry and takes the
		 * slower mmio_kick path: worth a note, not a failure. */
		ret = vm_ioeventfd(vm, q->kick_fd, m->base + MMIO_QUEUE_NOTIFY, 4, false, i, true);
		if (ret < 0)
			log_debug("%s: queue %u: no ioeventfd (%s); notifications exit to ferry",
				  d->name, i, strerror(-ret));
		q->ioeventfd = ret == 0;
	}

	d->gm = &vm->mem;
	d->loop = vm->loop;
	d->t_ops = &mmio_transport_ops;
	d->transport = m;
	ret = bus_register(&vm->mmio, m->base, PLAT_VIRTIO_MMIO_SIZE, &mmio_bus_ops, m, d->name);
	if (ret < 0) {
		d->t_ops = NULL;
		d->transport = NULL;
		ferr_errno(e, ret, "%s: virtio-mmio registers at 0x%" PRIx64, d->name, m->base);
		goto out;
	}
	memcpy(vm->extra_cmdline + used, arg, (size_t)n + 1);
	vm->next_mmio_dev++;
	log_debug("%s: virtio-mmio at 0x%" PRIx64 ", GSI %u", d->name, m->base, m->gsi);
	return 0;
out:
	mmio_free(m);
	return ret;
}
