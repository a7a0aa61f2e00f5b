/* virtio-pci modern transport, shared between pci.c (PCI function, common
 * configuration, queues, kicks) and pci_irq.c (INTx, MSI-X): the register
 * layout and the transport's state.  Private to virtio/. */
#ifndef FERRY_VIRTIO_PCI_PRIV_H
#define FERRY_VIRTIO_PCI_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/bus.h"
#include "ferry/devices.h"
#include "ferry/virtio_dev.h"

#define VP_VENDOR		0x1af4
#define VP_DEVICE_BASE		0x1040
#define VP_REVISION		1

#define VP_BAR0_SIZE		0x4000
#define VP_COMMON_OFF		0x0000
#define VP_COMMON_LEN		0x38	/* up to queue_device; no 1.2 extras */
#define VP_ISR_OFF		0x1000
#define VP_ISR_LEN		1
#define VP_DEVCFG_OFF		0x2000
#define VP_DEVCFG_MAX		0x1000
#define VP_NOTIFY_OFF		0x3000
#define VP_NOTIFY_MULT		4

#define VP_BAR1_SIZE		0x1000
#define VP_MSIX_TABLE_OFF	0x000
#define VP_MSIX_PBA_OFF		0x800
#define VP_MSIX_MAX		(VIRTIO_MAX_QUEUES + 1)

/* Common configuration fields (struct virtio_pci_common_cfg). */
#define CC_DFSELECT		0x00
#define CC_DF			0x04
#define CC_GFSELECT		0x08
#define CC_GF			0x0c
#define CC_MSIX_CONFIG		0x10
#define CC_NUM_QUEUES		0x12
#define CC_STATUS		0x14
#define CC_CFG_GENERATION	0x15
#define CC_Q_SELECT		0x16
#define CC_Q_SIZE		0x18
#define CC_Q_MSIX		0x1a
#define CC_Q_ENABLE		0x1c
#define CC_Q_NOFF		0x1e
#define CC_Q_DESC		0x20
#define CC_Q_AVAIL		0x28
#define CC_Q_USED		0x30

#define VIRTIO_MSI_NO_VECTOR	0xffff

/* PCI config space. */
#define PCI_COMMAND		0x04
#define PCI_COMMAND_MEMORY	0x0002
#define PCI_STATUS		0x06
#define PCI_STATUS_CAP_LIST	0x0010
#define PCI_BAR0		0x10
#define PCI_CAP_PTR		0x34
#define PCI_INTERRUPT_LINE	0x3c
#define PCI_INTERRUPT_PIN	0x3d
#define PCI_CAP_ID_VNDR		0x09
#define PCI_CAP_ID_MSIX		0x11

/* Capability placement in config space. */
#define CAP_MSIX		0x40	/* 12 bytes */
#define CAP_COMMON		0x50	/* 16 bytes each ... */
#define CAP_ISR			0x60
#define CAP_NOTIFY		0x70	/* ... notify: 20 */
#define CAP_DEVICE		0x84
#define MSIX_CTRL		(CAP_MSIX + 2)
#define MSIX_CTRL_MASKALL	0x4000
#define MSIX_CTRL_ENABLE	0x8000

#define VIRTIO_PCI_CAP_COMMON_CFG	1
#define VIRTIO_PCI_CAP_NOTIFY_CFG	2
#define VIRTIO_PCI_CAP_ISR_CFG		3
#define VIRTIO_PCI_CAP_DEVICE_CFG	4

#define ISR_QUEUE		1
#define ISR_CONFIG		2

/* Problems a guest can cause over and over: each is logged once per device. */
#define VP_WARN_ROUTE		(1u << 0)
#define VP_WARN_FEATURES	(1u << 1)
#define VP_WARN_IOEVENTFD	(1u << 2)
#define VP_WARN_OVERLAP		(1u << 3)

struct vp_queue {
	struct virtio_pci *vp;
	unsigned int index;
	int efd;                /* kicks: ioeventfd and userspace writes */
	bool ioeventfd;         /* efd is registered with KVM at notify_addr */
	uint64_t notify_addr;
	/* What the driver configured (common config). */
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, avail, used;
};

struct vp_vector {
	int efd;                /* -1 until the vector is first routed */
	int gsi;                /* MSI route, -1 until then */
	bool irqfd;             /* efd delivers gsi */
};

struct virtio_pci {
	struct pci_dev pci;
	struct virtio_dev *d;
	struct vm *vm;
	uint8_t cfg_template[256];      /* capability bytes as offered */

	uint64_t bar_addr[2];
	bool bar_mapped[2];             /* registered on vm->mmio */

	uint32_t dfselect, gfselect;
	uint64_t driver_features;       /* staged until FEATURES_OK */
	uint16_t msix_config;
	uint16_t queue_select;
	uint8_t config_generation;
	uint8_t isr;
	unsigned int gsi;               /* INTx */
	int irq_source;
	bool intx_level;

	unsigned int nr_vectors;
	bool msix_enabled, msix_masked;
	uint8_t msix_table[VP_MSIX_MAX * 16];
	uint8_t msix_pba[8];
	struct vp_vector vectors[VP_MSIX_MAX];
	uint32_t warned;                /* VP_WARN_*: guest-triggered, logged once */

	struct vp_queue queues[VIRTIO_MAX_QUEUES];
};

static inline void vp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void vp_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t vp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* pci_irq.c, all with d->lock held. */
bool vp_warn_once(struct virtio_pci *vp, uint32_t what);
/* Set up the MSI-X table (every vector masked) and vector state. */
void vp_msix_init(struct virtio_pci *vp);
/* The guest wrote the MSI-X capability's message control word. */
void vp_msix_control(struct virtio_pci *vp, uint16_t ctrl);
/* INTx follows ISR while MSI-X is off. */
void vp_update_intx(struct virtio_pci *vp);
void vp_notify_queue(struct virtio_dev *d, unsigned int q);
void vp_notify_config(struct virtio_dev *d);
/* Detach irqfds, close eventfds, lower INTx. */
void vp_irq_free(struct virtio_pci *vp);
extern const struct bus_ops vp_msix_ops;

/* pci.c, with d->lock held. */
void vp_ioeventfds(struct virtio_pci *vp, bool assign);
void vp_map_bar(struct virtio_pci *vp, int bar, uint64_t addr);

/* pci_state.c: migration (virtio_transport_ops save/load). */
int vp_save(struct virtio_dev *d, void *fdt);
int vp_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e);

#endif
