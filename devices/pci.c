/* PCI host bridge: type-1 configuration mechanism (CONFIG_ADDRESS at 0xcf8,
 * CONFIG_DATA at 0xcfc-0xcff), bus 0 only, the host bridge at 00:00.0, and
 * the standard header rules (read-only fields, BAR sizing, decode enables)
 * for the devices that transports add.
 *
 * Who owns what in a device's config space:
 *  - pci.c owns the type-0 header (0x00-0x3f): it enforces which bits are
 *    writable (command, status W1C, cache line, latency, interrupt line,
 *    BARs) and tells the device when a BAR's decoded address changes.
 *  - The device owns 0x40-0xff (capabilities): pci.c stores the written bytes
 *    into cfg[] and then calls ops->cfg_write, which may react (MSI-X enable)
 *    and rewrite cfg[] to undo writes to read-only bytes.  Without cfg_write
 *    the bytes are simply stored.
 * All of this runs under the bus lock below; ops callbacks must not call back
 * into pci_*().
 *
 * bar_moved(bar, old, new) is called when the guest changes a BAR's address
 * while the matching decode bit (I/O or memory space) is set in COMMAND, and
 * when that bit goes from clear to set (then old may equal new).  @old is the
 * address the device was last told about, initially the BAR's value at
 * pci_add().  Clearing the decode bit does not call it: the device keeps its
 * range where it was, so sizing a disabled BAR moves nothing.
 *
 * 0xcf8-0xcfb: only a dword access at 0xcf8 reaches CONFIG_ADDRESS, as on
 * real chipsets.  The byte at 0xcf9 is the chipset's reset control register,
 * which belongs to the host/LPC bridge (PIIX3, ICH) and so lives here too:
 * writing it with RST_CPU set fires the @reset event given to pci_create().
 * Other accesses in 0xcf8-0xcfb read all-ones and are ignored on write. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/platform.h"

#define PCI_ADDR_PORT		PLAT_PCI_CONFIG_PORT
#define PCI_DATA_PORT		(PLAT_PCI_CONFIG_PORT + 4)
#define PCI_RST_OFF		(PLAT_RESET_PORT - PCI_ADDR_PORT)
#define PCI_ADDR_ENABLE		0x80000000u
#define PCI_ADDR_MASK		0x80fffffcu	/* reserved bits read 0 */

#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define PCI_STATUS		0x06
#define PCI_CLASS_REVISION	0x08
#define PCI_CACHE_LINE_SIZE	0x0c
#define PCI_LATENCY_TIMER	0x0d
#define PCI_HEADER_TYPE		0x0e
#define PCI_BAR0		0x10
#define PCI_BAR_END		0x28
#define PCI_SUBSYSTEM_VENDOR_ID	0x2c
#define PCI_INTERRUPT_LINE	0x3c
#define PCI_DEVICE_AREA		0x40

#define PCI_COMMAND_IO		0x0001
#define PCI_COMMAND_MEMORY	0x0002
/* IO, MEM, bus master, parity, SERR, INTx disable. */
#define PCI_COMMAND_WMASK	0x0547
/* Error bits the guest clears by writing 1. */
#define PCI_STATUS_W1C		0xf900

#define PCI_BAR_IO		0x01
#define PCI_NR_BARS		6
#define PCI_NR_DEVFN		256

_Static_assert(PLAT_RESET_PORT > PCI_ADDR_PORT && PLAT_RESET_PORT < PCI_ADDR_PORT + 4,
	       "the reset control register must sit inside CONFIG_ADDRESS's dword");

#define RST_CNT_SYS_RST	0x02
#define RST_CNT_RST_CPU	0x04	/* reset now; self-clearing */
#define RST_CNT_FULL_RST 0x08

/* Host bridge IDs: Red Hat's generic host bridge, which no guest keys
 * chipset quirks on. */
#define PCI_HOST_VENDOR		0x1b36
#define PCI_HOST_DEVICE		0x0008
#define PCI_HOST_SUBVENDOR	0x1af4
#define PCI_HOST_SUBDEVICE	0x1100
#define PCI_CLASS_BRIDGE_HOST	0x060000

struct pci_slot {
	struct pci_dev *dev;
	uint32_t mapped[PCI_NR_BARS];	/* address last told to the device */
	bool decoding[PCI_NR_BARS];
};

struct pci_bus {
	pthread_mutex_t lock;
	struct bus *pio;
	uint32_t addr;			/* CONFIG_ADDRESS */
	uint8_t rst_cnt;		/* reset control register (0xcf9) */
	struct dev_event reset;
	struct pci_dev host;
	struct pci_slot slots[PCI_NR_DEVFN];
};

static uint32_t pci_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void pci_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void pci_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint32_t pci_bar_addr(const struct pci_dev *d, int bar)
{
	uint32_t v = pci_get32(&d->cfg[PCI_BAR0 + 4 * bar]);

	return d->bar_is_io[bar] ? v & ~3u : v & ~0xfu;
}

/* Store @v into a BAR, keeping only what the hardware would latch: the
 * address bits above the size, and the type bits.  This is also the sizing
 * protocol: all-ones reads back as the size mask. */
static void pci_bar_store(struct pci_dev *d, int bar, uint32_t v)
{
	uint32_t size = d->bar_size[bar];

	if (!size)
		v = 0;
	else if (d->bar_is_io[bar])
		v = (v & ~(size - 1)) | PCI_BAR_IO;
	else
		v &= ~(size - 1);	/* 32-bit, non-prefetchable: type 0 */
	pci_put32(&d->cfg[PCI_BAR0 + 4 * bar], v);
}

static void pci_update_bars(struct pci_slot *s)
{
	struct pci_dev *d = s->dev;
	uint16_t cmd = d->cfg[PCI_COMMAND] | d->cfg[PCI_COMMAND + 1] << 8;

	for (int i = 0; i < PCI_NR_BARS; i++) {
		bool en;
		uint32_t addr, old;

		if (!d->bar_size[i])
			continue;
		en = cmd & (d->bar_is_io[i] ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY);
		addr = pci_bar_addr(d, i);
		if (en && (!s->decoding[i] || addr != s->mapped[i])) {
			old = s->mapped[i];
			s->mapped[i] = addr;
			if (d->ops && d->ops->bar_moved)
				d->ops->bar_moved(d, i, old, addr);
		}
		s->decoding[i] = en;
	}
}

/* One header byte written by the guest, outside the BARs. */
static void pci_header_write(struct pci_dev *d, unsigned int o, uint8_t b)
{
	switch (o) {
	case PCI_COMMAND:
	case PCI_COMMAND + 1: {
		uint8_t m = (uint8_t)(PCI_COMMAND_WMASK >> (8 * (o - PCI_COMMAND)));

		d->cfg[o] = (d->cfg[o] & ~m) | (b & m);
		break;
	}
	case PCI_STATUS:
	case PCI_STATUS + 1:
		d->cfg[o] &= ~(b & (uint8_t)(PCI_STATUS_W1C >> (8 * (o - PCI_STATUS))));
		break;
	case PCI_CACHE_LINE_SIZE:
	case PCI_LATENCY_TIMER:
	case PCI_INTERRUPT_LINE:
		d->cfg[o] = b;
		break;
	default:
		break;		/* read-only */
	}
}

/* @reg..@reg+len-1 lies inside one dword (the data port is 4 bytes). */
static void pci_cfg_write(struct pci_slot *s, unsigned int reg, const uint8_t *data,
			  uint32_t len)
{
	struct pci_dev *d = s->dev;

	if (reg >= PCI_DEVICE_AREA) {
		memcpy(&d->cfg[reg], data, len);
		if (d->ops && d->ops->cfg_write)
			d->ops->cfg_write(d, reg, (uint32_t)bus_get(data, len), len);
		return;
	}
	if (reg >= PCI_BAR0 && reg < PCI_BAR_END) {
		int bar = (reg - PCI_BAR0) / 4;
		uint8_t v[4];

		memcpy(v, &d->cfg[PCI_BAR0 + 4 * bar], 4);
		memcpy(&v[reg % 4], data, len);
		pci_bar_store(d, bar, pci_get32(v));
	} else {
		for (uint32_t i = 0; i < len; i++)
			pci_header_write(d, reg + i, data[i]);
	}
	pci_update_bars(s);
}

/* The slot CONFIG_ADDRESS points at, or NULL (disabled, other bus, empty). */
static struct pci_slot *pci_target(struct pci_bus *pb)
{
	struct pci_slot *s;

	if (!(pb->addr & PCI_ADDR_ENABLE) || ((pb->addr >> 16) & 0xff) != 0)
		return NULL;
	s = &pb->slots[(pb->addr >> 8) & 0xff];
	return s->dev ? s : NULL;
}

static void pci_data_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_bus *pb = opaque;
	struct pci_slot *s;

	memset(data, 0xff, len);
	if (off + len > 4)
		return;
	pthread_mutex_lock(&pb->lock);
	s = pci_target(pb);
	if (s)
		memcpy(data, &s->dev->cfg[(pb->addr & 0xfc) + off], len);
	pthread_mutex_unlock(&pb->lock);
}

static void pci_data_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_bus *pb = opaque;
	struct pci_slot *s;

	if (off + len > 4)
		return;
	pthread_mutex_lock(&pb->lock);
	s = pci_target(pb);
	if (s)
		pci_cfg_write(s, (pb->addr & 0xfc) + (unsigned int)off, data, len);
	pthread_mutex_unlock(&pb->lock);
}

static void pci_addr_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_bus *pb = opaque;

	memset(data, 0xff, len);
	if (off == 0 && len == 4) {
		pthread_mutex_lock(&pb->lock);
		bus_put(data, 4, pb->addr);
		pthread_mutex_unlock(&pb->lock);
	} else if (off == PCI_RST_OFF && len == 1) {
		pthread_mutex_lock(&pb->lock);
		data[0] = pb->rst_cnt;
		pthread_mutex_unlock(&pb->lock);
	}
}

static void pci_addr_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_bus *pb = opaque;
	bool reset;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&pb->lock);
		pb->addr = (uint32_t)bus_get(data, 4) & PCI_ADDR_MASK;
		pthread_mutex_unlock(&pb->lock);
		return;
	}
	if (off != PCI_RST_OFF || len != 1)
		return;
	pthread_mutex_lock(&pb->lock);
	/* SYS_RST/FULL_RST only choose the kind of reset; to ferry every
	 * reset is the same.  RST_CPU starts it and does not stick. */
	reset = data[0] & RST_CNT_RST_CPU;
	pb->rst_cnt = data[0] & ~RST_CNT_RST_CPU;
	pthread_mutex_unlock(&pb->lock);
	/* Outside the lock: the handler stops the VM. */
	if (reset)
		dev_event_fire(&pb->reset);
}

static const struct bus_ops pci_addr_ops = {
	.read = pci_addr_read,
	.write = pci_addr_write,
};

static const struct bus_ops pci_data_ops = {
	.read = pci_data_read,
	.write = pci_data_write,
};

static bool pci_bar_size_ok(uint32_t size, bool io)
{
	if (!size)
		return true;
	if (size & (size - 1))
		return false;
	if (io)
		return size >= 4 && size <= 0x10000;
	return size >= 16 && size <= 0x80000000u;
}

int pci_add(struct pci_bus *pb, struct pci_dev *d)
{
	struct pci_slot *s;
	int ret = 0;

	if (!pb || !d)
		return -EINVAL;
	for (int i = 0; i < PCI_NR_BARS; i++)
		if (!pci_bar_size_ok(d->bar_size[i], d->bar_is_io[i]))
			return -EINVAL;

	pthread_mutex_lock(&pb->lock);
	s = &pb->slots[d->devfn];
	if (s->dev) {
		ret = -EEXIST;
		goto out;
	}
	s->dev = d;
	for (int i = 0; i < PCI_NR_BARS; i++) {
		pci_bar_store(d, i, pci_get32(&d->cfg[PCI_BAR0 + 4 * i]));
		s->mapped[i] = pci_bar_addr(d, i);
	}
	/* Whatever decode state the device starts in, it has placed its
	 * ranges itself: record it without calling bar_moved. */
	for (int i = 0; i < PCI_NR_BARS; i++) {
		uint16_t cmd = d->cfg[PCI_COMMAND] | d->cfg[PCI_COMMAND + 1] << 8;

		s->decoding[i] = d->bar_size[i] &&
				 (cmd & (d->bar_is_io[i] ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY));
	}
out:
	pthread_mutex_unlock(&pb->lock);
	return ret;
}

static void pci_host_init(struct pci_dev *h)
{
	memset(h, 0, sizeof(*h));
	pci_put16(&h->cfg[PCI_VENDOR_ID], PCI_HOST_VENDOR);
	pci_put16(&h->cfg[PCI_DEVICE_ID], PCI_HOST_DEVICE);
	pci_put32(&h->cfg[PCI_CLASS_REVISION], PCI_CLASS_BRIDGE_HOST << 8);
	h->cfg[PCI_HEADER_TYPE] = 0;
	pci_put16(&h->cfg[PCI_SUBSYSTEM_VENDOR_ID], PCI_HOST_SUBVENDOR);
	pci_put16(&h->cfg[PCI_SUBSYSTEM_VENDOR_ID + 2], PCI_HOST_SUBDEVICE);
	h->devfn = 0;
}

struct pci_bus *pci_create(struct bus *pio, struct dev_event reset)
{
	struct pci_bus *pb;
	int ret;

	pb = calloc(1, sizeof(*pb));
	if (!pb)
		return NULL;
	pthread_mutex_init(&pb->lock, NULL);
	pb->pio = pio;
	pb->reset = reset;
	pci_host_init(&pb->host);
	pb->slots[0].dev = &pb->host;

	ret = bus_register(pio, PCI_ADDR_PORT, 4, &pci_addr_ops, pb, "pci-config-address");
	if (ret < 0)
		goto err;
	ret = bus_register(pio, PCI_DATA_PORT, 4, &pci_data_ops, pb, "pci-config-data");
	if (ret < 0) {
		bus_unregister(pio, PCI_ADDR_PORT, pb);
		goto err;
	}
	return pb;
err:
	log_error("pci: cannot claim ports 0x%x-0x%x: %s", PCI_ADDR_PORT,
		  PCI_DATA_PORT + 3, strerror(-ret));
	pthread_mutex_destroy(&pb->lock);
	free(pb);
	errno = -ret;
	return NULL;
}

void pci_destroy(struct pci_bus *pb)
{
	if (!pb)
		return;
	bus_unregister(pb->pio, PCI_DATA_PORT, pb);
	bus_unregister(pb->pio, PCI_ADDR_PORT, pb);
	pthread_mutex_destroy(&pb->lock);
	free(pb);
}
