/* Live migration (migrate/): the stream format (stream.c, where the wire
 * format is documented), RAM pre-copy with KVM dirty logging (ram.c), VM,
 * vCPU and device state as a flattened device tree (state.c), and the
 * source thread, the destination receiver and the control hooks
 * (migrate.c). */
#ifndef FERRY_MIGRATE_H
#define FERRY_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/err.h"
#include "ferry/mem.h"

struct vm;
struct vmm;
struct json_object;

/* ---- operator level (migrate.c) ---- */

struct mig_params {
	uint32_t max_downtime_ms;       /* 0: MIG_DEFAULT_DOWNTIME_MS */
	uint64_t max_bandwidth;         /* bytes per second, 0: unlimited */
	uint32_t timeout_s;             /* 0: none */
	bool auto_converge;
	/* A snapshot (ferry snapshot): the uri is a file path, the stream
	 * goes there with no replies, and the VM keeps running here. */
	bool snapshot;
	bool live;                      /* snapshot: pre-copy while running */
};
#define MIG_DEFAULT_DOWNTIME_MS 50

/* How a migration ended; "ferry migrate" maps each to its exit status. */
enum mig_outcome {
	MIG_OUT_NONE,                   /* still running, or never started */
	MIG_OUT_COMPLETED,
	MIG_OUT_FAILED,                 /* stream or local error */
	MIG_OUT_CONNECT,                /* connection refused, reset, cut */
	MIG_OUT_REFUSED,                /* the destination rejected it */
	MIG_OUT_TIMEOUT,                /* did not converge within --timeout */
	MIG_OUT_CANCELLED,
};
const char *mig_outcome_name(enum mig_outcome o);

/* Start migrating to @uri ("tcp:HOST:PORT"), or with p->snapshot writing
 * a snapshot to the file @uri (created 0600, never overwritten), on a
 * thread of its own.  -EBUSY if one runs already.  Event loop only. */
int mig_start(struct vmm *m, const char *uri, const struct mig_params *p,
	      struct ferr *e);
/* -ENOENT if none runs. */
int mig_cancel(struct vmm *m);
bool mig_active(const struct vmm *m);
/* The "migrate-status" result: a new object. */
struct json_object *mig_status_json(struct vmm *m);
/* Cancel and join a migration still running (the VM is going away). */
void mig_destroy(struct vmm *m);

/* Destination (incoming.c), in steps, all on the event loop thread:
 * mig_incoming_open() listens on cfg->incoming (or opens the snapshot file
 * of "file:PATH", ferry run --restore) early, before privileges drop;
 * mig_incoming_start() runs the receive thread, which takes one migration
 * and loads it into the VM (created without a kernel, vCPUs not started),
 * all checked, then calls @done on the event loop (ret 0, or the reason in
 * @why); mig_incoming_ack() once the vCPUs can start.  Until @done, the
 * receive thread owns guest RAM, vCPU and device state (incoming.c).
 * mig_incoming_destroy() cancels a receive still under way, joins the
 * thread and frees everything; harmless when there is none. */
typedef void (*mig_incoming_done_fn)(struct vmm *m, int ret, const char *why);
int mig_incoming_open(struct vmm *m, struct ferr *e);
int mig_incoming_start(struct vmm *m, mig_incoming_done_fn done, struct ferr *e);
int mig_incoming_ack(struct vmm *m, struct ferr *e);
void mig_incoming_destroy(struct vmm *m);
/* The destination's "migrate-status" while incoming: phase (waiting,
 * receiving, loading, loaded, failed), bytes, pages, zero_pages. */
struct json_object *mig_incoming_status_json(struct vmm *m);

/* "tcp:HOST:PORT": 0, or -EINVAL with the reason in @e. */
int mig_parse_uri(const char *uri, char *host, size_t host_len, char *port,
		  size_t port_len, struct ferr *e);

/* ---- the stream (stream.c) ---- */

#define MIG_MAGIC       "FERRYMIG"
#define MIG_VERSION     2
#define MIG_PAGE_SIZE   4096u
#define MIG_RAM_MAX_PAGES 256u                  /* pages of data per record */
#define MIG_MACHINE_MAX (64 * 1024u)
#define MIG_STATE_MAX   (16 * 1024 * 1024u)
#define MIG_ERROR_MAX   512u

/* A MACHINE or STATE blob's structure block walks forward, tag by tag, to
 * FDT_END inside @len bytes: 0, or -EPROTO (migrate/fdt_walk.c; state.c
 * checks this before libfdt, whose fdt_check_full can loop forever). */
int mig_fdt_walkable(const void *fdt, uint32_t len);

enum mig_rec_type {
	MIG_REC_MACHINE = 1,
	MIG_REC_RAM = 2,
	MIG_REC_SECTION = 3,
	MIG_REC_SWITCHOVER = 4,
	MIG_REC_STATE = 5,
	MIG_REC_END = 6,
	MIG_REC_SYNC = 7,
	MIG_REPLY_READY = 0x81,
	MIG_REPLY_ERROR = 0x82,
	MIG_REPLY_DONE = 0x83,
	MIG_REPLY_SYNC = 0x84,
};

struct mig_rec_hdr {
	uint32_t type;
	uint32_t len;                   /* payload bytes after this header */
};

struct mig_ram_hdr {
	uint64_t gpa;
	uint32_t npages;
	uint32_t flags;                 /* MIG_RAM_ZERO: no data follows */
};
#define MIG_RAM_ZERO 1u

/* CRC32C (Castagnoli), with the SSE4.2 instruction where the CPU has it. */
uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same while copying: one pass over the source. */
uint32_t mig_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);

/* A migration connection: the socket (or a snapshot file), and the TLS
 * session over it when the channel is authenticated (mig_tls.h). */
struct mig_tls_sess;
struct mig_chan {
	int fd;
	struct mig_tls_sess *tls;       /* NULL: plain */
};

struct mig_writer {
	struct mig_chan ch;             /* set ch.tls after init for TLS */
	uint32_t crc;                   /* since the last section record */
	uint8_t *buf;
	size_t len, cap;
	uint64_t bytes;                 /* sent in all */
	uint64_t max_bw;                /* bytes/s, 0: unlimited */
	uint64_t bw_start_ns, bw_bytes;
	const int *cancel;              /* non-zero: stop with -ECANCELED */
};

int mig_writer_init(struct mig_writer *w, int fd, size_t cap);
void mig_writer_free(struct mig_writer *w);
int mig_put_preamble(struct mig_writer *w);
int mig_put_rec(struct mig_writer *w, uint32_t type, const void *payload, uint32_t len);
/* @npages pages from @src (guest memory: copied once, so that the checksum
 * covers exactly the bytes sent even if the guest writes meanwhile). */
int mig_put_ram(struct mig_writer *w, uint64_t gpa, const void *src, uint32_t npages);
int mig_put_zero(struct mig_writer *w, uint64_t gpa, uint32_t npages);
/* Close a section with its checksum and push everything out. */
int mig_put_section(struct mig_writer *w);
int mig_flush(struct mig_writer *w);

struct mig_reader {
	struct mig_chan ch;             /* set ch.tls after init for TLS */
	uint32_t crc;
	uint8_t *buf;
	size_t off, len, cap;
	uint64_t bytes;
};

int mig_reader_init(struct mig_reader *r, int fd, size_t cap);
void mig_reader_free(struct mig_reader *r);
/* Exactly @len bytes (through the checksum); -EPIPE at EOF. */
int mig_read(struct mig_reader *r, void *dst, size_t len);

/* What the destination does with what it receives. */
struct mig_sink {
	struct guest_mem *mem;
	/* Check the source's machine description against ours. */
	int (*machine)(void *opaque, const void *fdt, uint32_t len, struct ferr *e);
	/* The switchover record arrived: the source's vCPUs are stopped. */
	void (*switchover)(void *opaque);
	/* Check and load the state; nothing has run yet. */
	int (*state)(void *opaque, const void *fdt, uint32_t len, struct ferr *e);
	/* Optional: a RAM record of @npages went in (@zero: as a flag);
	 * @bytes: the stream so far.  For progress reports. */
	void (*progress)(void *opaque, uint64_t bytes, uint32_t npages, bool zero);
	void *opaque;
};

/* The destination's state machine (stream.c's header comment): read the
 * stream from @r until a valid end marker; replies go to @reply_fd (-1:
 * none, a snapshot file), through @r's TLS session when it is @r's socket.
 * 0 when everything arrived and checked out; else the reason in @e (the
 * caller sends it back with mig_reply_error). */
int mig_receive(struct mig_reader *r, int reply_fd, const struct mig_sink *s,
		struct ferr *e);
/* @ch NULL or ch->fd < 0: nobody to answer, returns 0. */
int mig_reply(const struct mig_chan *ch, uint32_t type, const void *payload, uint32_t len);
/* The source waits for a reply: READY/DONE (payload into @buf) or ERROR
 * (the message in @e, returns -EREMOTEIO).  -ETIMEDOUT after @timeout_ms. */
int mig_wait_reply(const struct mig_chan *ch, uint32_t want, void *buf, uint32_t len,
		   unsigned int timeout_ms, struct ferr *e);

/* ---- state (state.c) ---- */

/* The machine description the destination checks: memory layout, vCPUs,
 * devices by name.  A malloc'd FDT. */
int mig_machine_save(const struct vm *vm, void **fdt, uint32_t *len, struct ferr *e);
int mig_machine_check(const struct vm *vm, const void *fdt, uint32_t len, struct ferr *e);
/* Everything but RAM of a paused VM: vCPUs, irqchip, PIT, clock, devices. */
int mig_state_save(struct vm *vm, void **fdt, uint32_t *len, struct ferr *e);
/* fdt_check_full, then load into a VM whose vCPUs have not run. */
int mig_state_load(struct vm *vm, const void *fdt, uint32_t len, struct ferr *e);

/* ---- RAM (ram.c) ---- */

struct mig_ram;
struct mig_ram_round {
	uint64_t pages;                 /* sent with data */
	uint64_t zero_pages;            /* sent as a flag, or skipped */
	uint64_t bytes;
	uint64_t ns;
};

int mig_ram_create(struct vm *vm, struct mig_ram **out, struct ferr *e);
/* Start dirty logging (every page starts dirty), KVM's for vCPU writes
 * and gm->dev_dirty for what devices write (gm_mark_dirty). */
int mig_ram_log_start(struct mig_ram *r, struct ferr *e);
/* Stop it; harmless when it is not on.  Waits for every virtio device's
 * lock once, so that no gm_mark_dirty() still uses the bitmap. */
void mig_ram_log_stop(struct mig_ram *r);
/* Fetch KVM's dirty bitmap into ours; returns the dirty page count. */
int64_t mig_ram_sync(struct mig_ram *r, struct ferr *e);
/* Send the pages the last sync found (write-protecting them first, so that
 * a write after this counts for the next round).  @first: the first pass,
 * in which zero pages need not be sent (the destination starts zeroed). */
int mig_ram_send(struct mig_ram *r, struct mig_writer *w, bool first,
		 struct mig_ram_round *out, struct ferr *e);
void mig_ram_destroy(struct mig_ram *r);

#endif
