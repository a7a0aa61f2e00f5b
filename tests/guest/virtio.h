/* The test guest's virtio driver layer (virtio 1.2, split rings): devices
 * found on PCI bus 0 or announced as virtio_mmio.device= on the command
 * line, one transport-neutral struct vdev, rings in guest RAM, interrupt
 * slots (one LAPIC vector each) and bounded waits.  All CPL3 except
 * virtio_irq, which the CPL0 dispatcher calls. */
#ifndef TESTGUEST_VIRTIO_H
#define TESTGUEST_VIRTIO_H

#include "guest.h"

/* Device types (virtio 1.2, 5). */
#define VIRTIO_ID_NET           1
#define VIRTIO_ID_BLK           2
#define VIRTIO_ID_CONSOLE       3
#define VIRTIO_ID_RNG           4

/* Device status bits. */
#define VS_ACKNOWLEDGE          1
#define VS_DRIVER               2
#define VS_DRIVER_OK            4
#define VS_FEATURES_OK          8
#define VS_NEEDS_RESET          64
#define VS_FAILED               128

/* Reserved feature bits. */
#define VF_INDIRECT_DESC        28
#define VF_EVENT_IDX            29
#define VF_VERSION_1            32
#define BIT(n)                  (1ULL << (n))

#define VRING_DESC_F_NEXT       1
#define VRING_DESC_F_WRITE      2
#define VRING_DESC_F_INDIRECT   4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY  1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vring_avail {
	uint16_t flags, idx;
	uint16_t ring[];                /* then used_event */
};

struct vring_used_elem {
	uint32_t id, len;
};

struct vring_used {
	uint16_t flags, idx;
	struct vring_used_elem ring[];  /* then avail_event */
};

/* Interrupt slots: slot i is LAPIC vector VEC_VIRTIO + i.  For INTx and
 * virtio-mmio (level-triggered) the CPL0 handler reads the ISR (and acks it
 * on mmio) before the EOI; with MSI-X it only counts. */
#define NR_VIRQ 16
struct virq {
	volatile uint32_t count;        /* interrupts taken (CPL0) */
	volatile uint32_t isr;          /* ISR bits seen, ORed (CPL0) */
	uint64_t isr_addr;              /* 0: MSI-X, nothing to read */
	uint64_t ack_addr;              /* mmio InterruptACK, 0 on PCI */
};
extern struct virq virqs[NR_VIRQ];

#define VQ_MAX_SIZE  256
#define VQ_INDIRECT  16                 /* descriptors per indirect table */

struct vdev;
struct vq {
	struct vdev *dev;
	uint16_t index, size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vring_desc *indirect;    /* size tables of VQ_INDIRECT, or NULL */
	uint64_t notify_addr;
	uint16_t avail_idx, last_used, free_head, num_free, kicked_idx;
	int slot;                       /* interrupt slot, -1: none */
	uint16_t msix_entry;            /* its MSI-X table entry */
	bool poll;                      /* interrupts suppressed */
	uint32_t token[VQ_MAX_SIZE];
	uint16_t chain_len[VQ_MAX_SIZE];
	uint32_t kicks;
};

struct vdev;
struct vtransport {
	const char *name;
	uint8_t (*get_status)(struct vdev *d);
	void (*set_status)(struct vdev *d, uint8_t s);
	uint64_t (*get_features)(struct vdev *d);
	void (*set_features)(struct vdev *d, uint64_t f);
	uint8_t (*config_gen)(struct vdev *d);
	/* Select queue q->index, set q->size (at most max). */
	const char *(*queue_size)(struct vdev *d, struct vq *q, uint16_t max);
	/* Program its rings (and vector), set notify_addr, enable it. */
	const char *(*queue_enable)(struct vdev *d, struct vq *q);
	/* Interrupts: slots for the config change and each queue. */
	const char *(*irq_setup)(struct vdev *d, int nq);
	void (*notify)(struct vq *q);
};

#define VDEV_MAX_VQ 4
struct vdev {
	const struct vtransport *t;
	uint16_t type;
	char where[40];                 /* "pci 00:03.0" or "mmio 0xd0000000" */
	uint64_t base;                  /* mmio: registers; pci: common cfg */
	uint64_t isr, devcfg, notify_base;
	uint32_t notify_mult;
	uint32_t bdf;                   /* PCI bus/dev/fn << 8, for config */
	uint8_t msix_cap;               /* 0: none */
	uint32_t gsi;                   /* mmio / INTx line */
	uint64_t offered, features;
	int cfg_slot;                   /* config-change interrupt slot */
	bool msix;
	int nq;
	struct vq vq[VDEV_MAX_VQ];
};

/* Queue flags for vdev_start. */
#define VDEV_POLL 1                     /* no interrupts: poll the used rings */

/* virtio.c: discovery, negotiation, rings */
int virtio_find(uint16_t type, struct vdev *d, char *why, size_t len);
const char *vdev_start(struct vdev *d, uint64_t want, int nq, int flags);
void vdev_reset(struct vdev *d);
bool vdev_has(struct vdev *d, int bit);
uint8_t vcfg8(struct vdev *d, uint32_t off);
uint16_t vcfg16(struct vdev *d, uint32_t off);
uint32_t vcfg32(struct vdev *d, uint32_t off);
uint64_t vcfg64(struct vdev *d, uint32_t off);
void *virtio_alloc(size_t bytes);                   /* page-aligned, zeroed */
void virtio_alloc_reset(void);

struct vbuf {
	const void *addr;
	uint32_t len;
	bool write;                     /* the device writes it */
};
int vq_add(struct vq *q, const struct vbuf *b, int n, bool indirect, uint32_t token);
void vq_kick(struct vq *q);
bool vq_get(struct vq *q, uint32_t *token, uint32_t *len);
bool vq_wait(struct vq *q, uint64_t deadline);
uint32_t vq_irqs(struct vq *q);
const char *vq_run(struct vq *q, const struct vbuf *b, int n, bool indirect,
		   uint32_t *len, uint64_t ms);

/* Transports */
extern const struct vtransport virtio_pci_transport, virtio_mmio_transport;
int virtio_pci_find(uint16_t type, struct vdev *d);
int virtio_mmio_find(uint16_t type, struct vdev *d);
int virq_alloc(void);

static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mb(void) { asm volatile("mfence" ::: "memory"); }

/* Commands */
void cmd_rng(void);
void cmd_blk(void);
void cmd_blkbench(const char *mode);
void cmd_console(void);
void cmd_net(void);
void cmd_netbench(void);
void cmd_virtio_bad(void);
void cmd_blkloop(void);                             /* vdev_loop.c */
void cmd_rngloop(void);
void cmd_netloop(void);                             /* vdev_migloop.c */
void cmd_consoleloop(void);
void test_report(const char *name, const char *why);
const char *test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
