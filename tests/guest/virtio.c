/* The transport-neutral virtio layer of the test guest: finding a device,
 * the status/feature handshake (3.1.1), split rings in guest RAM (2.7)
 * with indirect descriptors and event-index suppression when negotiated,
 * bounded waits on the used ring, and the CPL0 interrupt hook. */
#include "virtio.h"

#define NOINIT __attribute__((section(".bss.noinit")))
#define POOL_SIZE (6u << 20)

struct virq virqs[NR_VIRQ];
static int nvirq;
static uint8_t pool[POOL_SIZE] __attribute__((aligned(4096))) NOINIT;
static size_t pool_used;

/* CPL0: as few instructions as will do.  A level-triggered source (INTx,
 * virtio-mmio) must be quiet before the EOI: reading the PCI ISR clears
 * it, virtio-mmio needs the bits written back to InterruptACK. */
void virtio_irq(uint32_t slot)
{
	struct virq *v = &virqs[slot];

	if (v->isr_addr) {
		uint32_t s;

		if (v->ack_addr) {
			s = mmio_read32(v->isr_addr);
			mmio_write32(v->ack_addr, s);
		} else {
			s = mmio_read8(v->isr_addr);
		}
		v->isr |= s;
	}
	v->count++;
}

int virq_alloc(void)
{
	if (nvirq >= NR_VIRQ)
		return -1;
	virqs[nvirq].isr_addr = 0;
	virqs[nvirq].ack_addr = 0;
	return nvirq++;
}

void *virtio_alloc(size_t bytes)
{
	void *p;

	bytes = (bytes + 4095) & ~4095ul;
	if (bytes > POOL_SIZE - pool_used)
		return NULL;
	p = pool + pool_used;
	pool_used += bytes;
	memset(p, 0, bytes);
	return p;
}

/* Forget every ring and slot: only once the devices using them are reset. */
void virtio_alloc_reset(void)
{
	pool_used = 0;
	nvirq = 0;
}

static char test_reason[200];

const char *test_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(test_reason, sizeof(test_reason), fmt, ap);
	va_end(ap);
	return test_reason;
}

void test_report(const char *name, const char *why)
{
	if (why)
		kprintf("TESTGUEST FAIL %s: %s\n", name, why);
	else
		kprintf("TESTGUEST PASS %s\n", name);
}

int virtio_find(uint16_t type, struct vdev *d, char *why, size_t len)
{
	if (!virtio_pci_find(type, d) || !virtio_mmio_find(type, d))
		return 0;
	kprintf("TESTGUEST INFO cmdline: %s\n", plat.cmdline);
	format(why, len, "no virtio device of type %u (PCI bus 0 or virtio_mmio.device=)", type);
	return -1;
}

bool vdev_has(struct vdev *d, int bit)
{
	return d->features & BIT(bit);
}

/* Device configuration: natural-width accesses (virtio-mmio wants them);
 * 64-bit fields as two halves under the generation counter (2.5.1). */
uint8_t vcfg8(struct vdev *d, uint32_t off) { return mmio_read8(d->devcfg + off); }
uint16_t vcfg16(struct vdev *d, uint32_t off) { return mmio_read16(d->devcfg + off); }
uint32_t vcfg32(struct vdev *d, uint32_t off) { return mmio_read32(d->devcfg + off); }

uint64_t vcfg64(struct vdev *d, uint32_t off)
{
	uint64_t v;
	uint8_t gen;
	int tries = 0;

	do {
		gen = d->t->config_gen(d);
		v = mmio_read32(d->devcfg + off) | (uint64_t)mmio_read32(d->devcfg + off + 4) << 32;
	} while (gen != d->t->config_gen(d) && ++tries < 100);
	return v;
}

void vdev_reset(struct vdev *d)
{
	uint64_t dl = deadline_ms(1000);

	d->t->set_status(d, 0);
	while (d->t->get_status(d) && rdtsc() < dl)
		cpu_relax();
}

static const char *vq_create(struct vdev *d, struct vq *q)
{
	const char *why = d->t->queue_size(d, q, VQ_MAX_SIZE);
	uint16_t n;

	if (why)
		return why;
	n = q->size;
	q->desc = virtio_alloc(16 * n);
	q->avail = virtio_alloc(6 + 2 * n);
	q->used = virtio_alloc(6 + 8 * n);
	if (vdev_has(d, VF_INDIRECT_DESC))
		q->indirect = virtio_alloc(16 * VQ_INDIRECT * n);
	if (!q->desc || !q->avail || !q->used || (vdev_has(d, VF_INDIRECT_DESC) && !q->indirect))
		return "out of ring memory";
	for (uint16_t i = 0; i < n; i++)
		q->desc[i].next = i + 1;
	q->num_free = n;
	if (q->poll) {
		q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
		q->avail->ring[n] = 0x8000;     /* used_event, far ahead */
	}
	return d->t->queue_enable(d, q);
}

/* Reset, acknowledge, negotiate (VERSION_1 required, plus what the device
 * offers of `want`), set up nq queues and their interrupts, DRIVER_OK.
 * NULL or why it failed (the device is then left FAILED). */
const char *vdev_start(struct vdev *d, uint64_t want, int nq, int flags)
{
	const struct vtransport *t = d->t;
	const char *why = NULL;

	if (nq > VDEV_MAX_VQ)
		return "too many queues";
	vdev_reset(d);
	if (t->get_status(d))
		return "status not 0 one second after a reset";
	t->set_status(d, VS_ACKNOWLEDGE);
	t->set_status(d, VS_ACKNOWLEDGE | VS_DRIVER);
	d->offered = t->get_features(d);
	if (!(d->offered & BIT(VF_VERSION_1))) {
		why = "VERSION_1 not offered";
		goto fail;
	}
	d->features = d->offered & (want | BIT(VF_VERSION_1));
	t->set_features(d, d->features);
	t->set_status(d, VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK);
	if (!(t->get_status(d) & VS_FEATURES_OK)) {
		why = "FEATURES_OK not kept";
		goto fail;
	}
	d->nq = nq;
	d->cfg_slot = -1;
	for (int i = 0; i < nq; i++) {
		struct vq *q = &d->vq[i];

		memset(q, 0, sizeof(*q));
		q->dev = d;
		q->index = i;
		q->slot = -1;
		q->poll = flags & VDEV_POLL;
	}
	why = t->irq_setup(d, nq);
	for (int i = 0; i < nq && !why; i++)
		why = vq_create(d, &d->vq[i]);
	if (why)
		goto fail;
	t->set_status(d, VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK);
	kprintf("TESTGUEST INFO virtio type %u at %s: features offered 0x%lx, taken 0x%lx, %s\n",
		d->type, d->where, d->offered, d->features,
		d->msix ? "MSI-X" : d->t == &virtio_pci_transport ? "INTx" : "GSI");
	return NULL;
fail:
	t->set_status(d, t->get_status(d) | VS_FAILED);
	return why;
}

/* Queue a chain of n buffers (through one indirect descriptor if asked and
 * negotiated); -1 if the ring is full. */
int vq_add(struct vq *q, const struct vbuf *b, int n, bool indirect, uint32_t token)
{
	uint16_t head = q->free_head, i = head;

	if (n < 1)
		return -1;
	if (indirect && q->indirect && n <= VQ_INDIRECT) {
		struct vring_desc *t = &q->indirect[head * VQ_INDIRECT];

		if (!q->num_free)
			return -1;
		for (int k = 0; k < n; k++) {
			t[k].addr = (uint64_t)b[k].addr;
			t[k].len = b[k].len;
			t[k].flags = (b[k].write ? VRING_DESC_F_WRITE : 0) |
				     (k + 1 < n ? VRING_DESC_F_NEXT : 0);
			t[k].next = k + 1;
		}
		q->desc[head].addr = (uint64_t)t;
		q->desc[head].len = n * sizeof(*t);
		q->desc[head].flags = VRING_DESC_F_INDIRECT;
		q->free_head = q->desc[head].next;
		q->num_free--;
		q->chain_len[head] = 1;
	} else {
		if (q->num_free < n)
			return -1;
		for (int k = 0; k < n; k++) {
			q->desc[i].addr = (uint64_t)b[k].addr;
			q->desc[i].len = b[k].len;
			q->desc[i].flags = (b[k].write ? VRING_DESC_F_WRITE : 0) |
					   (k + 1 < n ? VRING_DESC_F_NEXT : 0);
			i = q->desc[i].next;    /* the free list's link doubles as ours */
		}
		q->free_head = i;
		q->num_free -= n;
		q->chain_len[head] = n;
	}
	q->token[head] = token;
	q->avail->ring[q->avail_idx % q->size] = head;
	barrier();                      /* x86 keeps stores in order */
	q->avail_idx++;
	*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
	return 0;
}

void vq_kick(struct vq *q)
{
	uint16_t old = q->kicked_idx, now = q->avail_idx;
	bool need;

	mb();                           /* idx store before the flags/event load */
	if (vdev_has(q->dev, VF_EVENT_IDX)) {
		uint16_t ev = *(volatile uint16_t *)((uint8_t *)q->used + 4 + 8 * q->size);

		need = (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	} else {
		need = !(*(volatile uint16_t *)&q->used->flags & VRING_USED_F_NO_NOTIFY);
	}
	q->kicked_idx = now;
	if (need) {
		q->dev->t->notify(q);
		q->kicks++;
	}
}

/* Take one used chain back; false if none is there. */
bool vq_get(struct vq *q, uint32_t *token, uint32_t *len)
{
	volatile struct vring_used_elem *e;
	uint16_t id, last;

	if (*(volatile uint16_t *)&q->used->idx == q->last_used)
		return false;
	barrier();
	e = &q->used->ring[q->last_used % q->size];
	id = e->id;
	if (len)
		*len = e->len;
	q->last_used++;
	if (vdev_has(q->dev, VF_EVENT_IDX))
		*(volatile uint16_t *)&q->avail->ring[q->size] =
			q->poll ? q->last_used + 0x8000 : q->last_used;
	if (id >= q->size || !q->chain_len[id]) {
		if (token)
			*token = ~0u;   /* a bogus id from the device: leak, report */
		return true;
	}
	if (token)
		*token = q->token[id];
	last = id;
	for (int k = 1; k < q->chain_len[id]; k++)
		last = q->desc[last].next;
	q->desc[last].next = q->free_head;
	q->free_head = id;
	q->num_free += q->chain_len[id];
	q->chain_len[id] = 0;
	return true;
}

/* Until a used entry is there or the deadline passes.  With interrupts,
 * halt until one comes (in 10 ms steps, so a lost one only slows us). */
bool vq_wait(struct vq *q, uint64_t deadline)
{
	for (;;) {
		uint32_t c = q->slot >= 0 ? virqs[q->slot].count : 0;
		uint64_t now;

		barrier();
		if (*(volatile uint16_t *)&q->used->idx != q->last_used)
			return true;
		now = rdtsc();
		if (now >= deadline)
			return false;
		if (q->poll || q->slot < 0) {
			cpu_relax();
			continue;
		}
		now += 10 * tsc_per_ms;
		wait_change(&virqs[q->slot].count, c, now < deadline ? now : deadline);
	}
}

uint32_t vq_irqs(struct vq *q)
{
	return q->slot >= 0 ? virqs[q->slot].count : 0;
}

/* One synchronous request: add, kick, wait up to ms, take it back. */
const char *vq_run(struct vq *q, const struct vbuf *b, int n, bool indirect,
		   uint32_t *len, uint64_t ms)
{
	uint32_t tok;

	if (vq_add(q, b, n, indirect, 0x5eed) < 0)
		return "queue full";
	vq_kick(q);
	if (!vq_wait(q, deadline_ms(ms)))
		return test_fail("no used entry %lu ms after the notify (device status 0x%x)",
				 ms, q->dev->t->get_status(q->dev));
	if (!vq_get(q, &tok, len) || tok != 0x5eed)
		return "used ring returned an unknown descriptor id";
	return NULL;
}
