/* virtio devices and their transports.  A device (rng, blk, net, console)
 * fills in a small ops table; a transport (virtio-pci modern, virtio-mmio)
 * owns the registers the driver sees, the queues' configuration, feature
 * negotiation, the status byte, notifications (ioeventfd) and interrupts
 * (MSI-X through irqfd, or a level-triggered line).
 *
 * Threads: register accesses arrive on vCPU threads, queue notifications and
 * host I/O completions on the event loop.  Both take dev->lock, so a device
 * sees one thing at a time: ops are called with dev->lock held. */
#ifndef FERRY_VIRTIO_DEV_H
#define FERRY_VIRTIO_DEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry/virtio.h"

/* Device ids (virtio 1.2 §5). */
#define VIRTIO_ID_NET       1
#define VIRTIO_ID_BLOCK     2
#define VIRTIO_ID_CONSOLE   3
#define VIRTIO_ID_RNG       4

/* Status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE   1
#define VIRTIO_STATUS_DRIVER        2
#define VIRTIO_STATUS_DRIVER_OK     4
#define VIRTIO_STATUS_FEATURES_OK   8
#define VIRTIO_STATUS_NEEDS_RESET   64
#define VIRTIO_STATUS_FAILED        128

/* Transport-independent feature bits (bit numbers). */
#define VIRTIO_F_VERSION_1          32
#define VIRTIO_F_ACCESS_PLATFORM    33

#define VIRTIO_MAX_QUEUES   16

struct virtio_dev;
struct loop;
struct vm;

struct virtio_dev_ops {
	/* Device-specific feature bits offered; the transport adds
	 * VERSION_1 and the ring features (INDIRECT_DESC, EVENT_IDX). */
	uint64_t (*features)(struct virtio_dev *d);
	/* Device configuration space (§4.x "device configuration layout"):
	 * @off/@len are checked by the transport against config_len. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len);
	/* DRIVER_OK: features are in d->driver_features, enabled queues are
	 * set up.  A negative errno makes the transport set NEEDS_RESET. */
	int (*activate)(struct virtio_dev *d);
	/* The driver kicked queue @q (on the event loop thread). */
	void (*queue_notify)(struct virtio_dev *d, unsigned int q);
	/* Device reset by the driver (status 0) or by ferry: drop in-flight
	 * work (after waiting for host I/O that still points at guest
	 * memory) and return to the initial state. */
	void (*reset)(struct virtio_dev *d);
	/* Free the device (after the transport is gone; no lock held). */
	void (*destroy)(struct virtio_dev *d);

	/* Live migration; a device without quiesce cannot migrate.  Called
	 * on the event loop thread with the vCPUs paused.
	 * quiesce (no lock held: it may run the completions it waits for):
	 *   finish every request in flight (host I/O done, chains pushed),
	 *   so that nothing writes guest memory and the queues' indexes are
	 *   final; d->quiesced is already set, so kicks are ignored and the
	 *   device must not pop until resume.  0 or a negative errno.
	 * resume (lock held): take requests again, after a failed migration
	 *   or, on the destination, once the loaded VM runs; the transport
	 *   then looks at every queue once.
	 * save/load (lock held, optional): device state beyond the queues
	 *   and the transport, as properties of the device's node; load
	 *   checks every value and says in @e what was wrong. */
	int (*quiesce)(struct virtio_dev *d);
	void (*resume)(struct virtio_dev *d);
	int (*save)(struct virtio_dev *d, void *fdt);
	int (*load)(struct virtio_dev *d, const void *fdt, int node, struct ferr *e);
};

struct virtio_transport_ops {
	/* Interrupt the driver for queue @q (used buffers) or a config
	 * change.  Called with dev->lock held, from any thread. */
	void (*notify_queue)(struct virtio_dev *d, unsigned int q);
	void (*notify_config)(struct virtio_dev *d);
	/* Run the device's queue_notify for @q again on a later loop
	 * round, as if the driver had kicked: a device that bounds one
	 * round's work uses it so that the rest is not left waiting for a
	 * kick the driver will never send (it saw no need, EVENT_IDX). */
	void (*requeue)(struct virtio_dev *d, unsigned int q);
	/* Unregister from buses, loop and KVM; free transport state. */
	void (*remove)(struct virtio_dev *d);
	/* Migration (NULL: this transport cannot migrate): the registers,
	 * queue configuration and interrupt state, as properties and
	 * subnodes of the device's node.  load runs on a VM that has not
	 * started, after d->status and d->driver_features were loaded; it
	 * re-creates KVM routes, irqfds and ioeventfds and vq_init()s the
	 * queues the driver had enabled.  No lock held: it takes d->lock
	 * and the bus locks itself. */
	int (*save)(struct virtio_dev *d, void *fdt);
	int (*load)(struct virtio_dev *d, const void *fdt, int node, struct ferr *e);
};

struct virtio_dev {
	pthread_mutex_t lock;
	const char *name;               /* "blk0", "net0": stable, for logs/migration */
	uint16_t device_id;
	uint32_t config_len;
	unsigned int num_queues;
	uint16_t queue_max_size;        /* offered queue size (power of 2) */
	const struct virtio_dev_ops *ops;
	void *priv;                     /* the device's own state */

	/* Filled by the transport. */
	const struct guest_mem *gm;
	struct loop *loop;
	uint8_t status;
	uint64_t driver_features;       /* accepted at FEATURES_OK */
	struct vq vqs[VIRTIO_MAX_QUEUES];
	bool vq_ready[VIRTIO_MAX_QUEUES];
	bool quiesced;                  /* migration: kicks are ignored */
	const struct virtio_transport_ops *t_ops;
	void *transport;

	/* Stats (written under lock). */
	uint64_t requests, bytes, errors;
};

/* For devices: initialise the common part before handing it to a
 * transport (mutex, zeroed state). */
void virtio_dev_init(struct virtio_dev *d, const char *name, uint16_t device_id,
		     unsigned int num_queues, uint16_t queue_max_size,
		     uint32_t config_len, const struct virtio_dev_ops *ops, void *priv);

static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned int bit)
{
	return d->driver_features & (1ULL << bit);
}

/* For devices, with dev->lock held: after vq_push()es on queue @q,
 * interrupt the driver if the queue asks for it (vq_needs_notify). */
void virtio_queue_done(struct virtio_dev *d, unsigned int q);
/* Come back to queue @q on a later loop round (see requeue above). */
void virtio_queue_requeue(struct virtio_dev *d, unsigned int q);
/* The guest broke a queue's rules or the device failed: set NEEDS_RESET
 * and tell the driver (config interrupt); the device stops processing. */
void virtio_dev_fail(struct virtio_dev *d, const char *why);

/* Live migration (virtio.c), event loop thread, vCPUs paused.  The state
 * is one FDT node per device, named by d->name: status, features, each
 * queue's indexes, then the transport's and the device's properties. */
bool virtio_dev_migratable(const struct virtio_dev *d);
int virtio_dev_quiesce(struct virtio_dev *d);
void virtio_dev_resume(struct virtio_dev *d);
int virtio_dev_save(struct virtio_dev *d, void *fdt);
/* Into a VM that has not run; the device stays quiesced until
 * virtio_dev_resume(). */
int virtio_dev_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e);

/* Tear down: transport first (no more accesses), then the device. */
void virtio_dev_destroy(struct virtio_dev *d);

/* Transports.  Each registers the device's registers on the VM's buses,
 * its notifications as ioeventfds on the event loop, and its interrupts. */
int virtio_pci_add(struct vm *vm, struct virtio_dev *d, struct ferr *e);
/* virtio-mmio also appends "virtio_mmio.device=4K@ADDR:GSI" to
 * vm->extra_cmdline so that Linux (and the test guest) find the device. */
int virtio_mmio_add(struct vm *vm, struct virtio_dev *d, struct ferr *e);

/* Devices (each in its own file under virtio/). */
struct disk_config;
struct net_config;

/* What a device is created in, beside what the user configured: the loop
 * it registers on, the VM (that a fenced disk stops; NULL in tests and
 * fuzzers) and whether the VM's state is yet to arrive (--incoming or
 * --restore: a NIC opens its tap, an iSCSI disk takes its reservation,
 * when the state is loaded). */
struct dev_env {
	struct loop *loop;
	struct vm *vm;
	bool incoming;
};
struct virtio_dev *virtio_rng_create(struct ferr *e);
struct virtio_dev *virtio_blk_create(const struct disk_config *cfg, const struct dev_env *env,
				     struct ferr *e);
struct virtio_dev *virtio_net_create(const struct net_config *cfg, const struct dev_env *env,
				     struct ferr *e);
/* Ask the guest to announce itself (gratuitous ARP) after migration:
 * STATUS.ANNOUNCE and a config interrupt, if it negotiated GUEST_ANNOUNCE. */
void virtio_net_announce(struct virtio_dev *d);
/* Before a migration (@live) or a snapshot: a live migration moves the
 * NIC's tap by name, closing it here at the quiesce, so the tap must be
 * persistent (else -ENOTSUP with the reason in @e). */
int virtio_net_migrate_prepare(struct virtio_dev *d, bool live, struct ferr *e);
/* hvc0: guest output to @out_fd, host input read from @in_fd (-1: none)
 * on @loop. */
struct virtio_dev *virtio_console_create(int in_fd, int out_fd, struct loop *loop,
					 struct ferr *e);

/* Option parsers for --disk and --net (errors name the flag and the key). */
int disk_config_parse(const char *spec, struct disk_config *out, struct ferr *e);
int net_config_parse(const char *spec, struct net_config *out, struct ferr *e);

#endif
