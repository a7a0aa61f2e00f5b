/* The migration stream: its wire format (this comment is the one
 * description), the checksummed writer and reader, and the destination's
 * state machine that checks every byte before anything of it runs.
 *
 * Wire format, version 2.  Integers are little-endian (ferry runs on x86).
 *
 *   preamble   "FERRYMIG" (8 bytes), u32 version, u32 reserved (0)
 *   record     u32 type, u32 len, then len bytes of payload
 *
 *   type  name        payload
 *   1     MACHINE     FDT (< 64 KiB): memory layout, vCPU count, device names;
 *                     the destination compares it with its own flags
 *   2     RAM         u64 gpa, u32 npages, u32 flags, then npages * 4096 bytes
 *                     of data unless flags has ZERO (1); npages <= 256 with
 *                     data; the range must lie inside one RAM region
 *   3     SECTION     u32 CRC32C of every byte since the previous SECTION
 *                     (preamble included in the first) and of this record's
 *                     own header, u32 reserved (0); inside TLS the page
 *                     data of RAM records is left out (below)
 *   4     SWITCHOVER  none: the source's vCPUs stopped (downtime starts)
 *   5     STATE       FDT (< 16 MiB): vCPUs, irqchip, PIT, clock, devices
 *   6     END         none
 *   7     SYNC        none: answer SYNC once everything before it is in
 *
 * Over TCP the stream may run inside TLS (migrate/tls.c): the handshake
 * completes before the preamble, and the bytes above are the records'
 * plaintext.  Inside TLS the SECTION checksums skip the page data of RAM
 * records (the npages * 4096 bytes after the RAM header; every other byte
 * is covered): TLS's AEAD authenticates each byte already, and the source
 * then encrypts straight from guest memory, where a plain stream needs a
 * copy that the checksum can cover exactly.  Version 1 differs only in
 * covering the page data inside TLS too; a version 1 stream is still read.
 *
 * A snapshot file (ferry snapshot, ferry run --restore) holds the same
 * stream with no reply channel: the writer waits for no READY, SYNC or
 * DONE (and sends no SYNC); the reader checks it all the same.
 *
 *   replies (destination -> source), same record framing, no checksum
 *   0x81  READY       none: the machine matches, send the rest
 *   0x82  ERROR       text (< 512 bytes): why the destination gives up
 *   0x83  DONE        u64 microseconds the destination took to load
 *   0x84  SYNC        none: everything up to the SYNC record has arrived
 *
 * Sequence
 *
 *   source                                   destination
 *     | preamble, MACHINE, SECTION   ------>  | check version, machine, crc
 *     |                     <------ READY     |   (or ERROR, then close)
 *     | RAM... SECTION (round 0)     ------>  | pages into guest memory
 *     | RAM... SECTION (round n)     ------>  |
 *     | SYNC                         ------>  |   (the rounds' backlog is in:
 *     |                     <------ SYNC      |    the downtime estimate holds)
 *     | pause vCPUs
 *     | SWITCHOVER, RAM..., STATE, SECTION, END ->  check, load state
 *     |                     <------ DONE      |   (or ERROR)
 *     | exit 0                                | start vCPUs
 *
 * Receiver states: PREAMBLE -> MACHINE -> MACHINE_SECTION -(READY)->
 * PAGES (RAM | SECTION | SYNC | SWITCHOVER | STATE) ; STATE -> STATE_SECTION -> END.
 * A record not legal in the current state, a length over its bound, a
 * range outside RAM, or a checksum mismatch ends the migration before the
 * VM runs: RAM is written in place but nothing executes until END, which
 * is accepted only right after a good SECTION that covers the state.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/crc.h>

#include "ferry/mig_tls.h"
#include "ferry/migrate.h"
#include "ferry/util.h"

/* ---- CRC32C ----
 * ISA-L's crc32_iscsi (the same polynomial) picks its fastest code at run
 * time (PCLMULQDQ/VPCLMULQDQ folding, 3-4x ferry's former crc32-instruction
 * loop).  It takes an int length and works on the bare register: the ~ at
 * each end are CRC32C's own. */

#define MIG_CRC_STEP (64 * KiB)         /* a copy still in cache when summed */

uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;

	while (len) {
		size_t n = MIN(len, (size_t)1 << 30);

		/* crc32_iscsi only reads: its buffer is not const by oversight. */
		c = crc32_iscsi((unsigned char *)p, (int)n, c);
		p += n;
		len -= n;
	}
	return ~c;
}

/* The checksum covers the copy, not @src: the guest may write to @src
 * meanwhile, and what is sent must match its CRC. */
uint32_t mig_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *p = src;

	while (len) {
		size_t n = MIN(len, MIG_CRC_STEP);

		memcpy(d, p, n);
		crc = mig_crc32c(crc, d, n);
		d += n;
		p += n;
		len -= n;
	}
	return crc;
}

/* ---- writer ---- */

#define MIG_TLS_CHUNK (1 * MiB)         /* per mig_tls_send from guest RAM */
#define MIG_TLS_DIRECT_PAGES 16u        /* shorter runs are gathered first */

int mig_writer_init(struct mig_writer *w, int fd, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->ch.fd = fd;
	/* A whole RAM record must fit: mig_put_ram stages it in one piece. */
	w->cap = MAX(cap, (size_t)MIG_RAM_MAX_PAGES * MIG_PAGE_SIZE + 64 * KiB);
	w->buf = malloc(w->cap);
	return w->buf ? 0 : -ENOMEM;
}

void mig_writer_free(struct mig_writer *w)
{
	free(w->buf);
	w->buf = NULL;
}

/* --max-bandwidth: sleep until the bytes sent fit the rate. */
static void mig_throttle_bw(struct mig_writer *w, size_t n)
{
	uint64_t now = now_ns(), due;

	if (!w->max_bw)
		return;
	if (!w->bw_start_ns || now - w->bw_start_ns > 1000000000ULL) {
		w->bw_start_ns = now;
		w->bw_bytes = 0;
	}
	w->bw_bytes += n;
	due = w->bw_start_ns + w->bw_bytes * 1000000000ULL / w->max_bw;
	if (due > now) {
		struct timespec ts = { (due - now) / 1000000000ULL, (due - now) % 1000000000ULL };

		nanosleep(&ts, NULL);
	}
}

/* @len bytes from @p as they are, the checksum aside. */
static int mig_send_raw(struct mig_writer *w, const uint8_t *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n;

		if (w->cancel && __atomic_load_n(w->cancel, __ATOMIC_RELAXED))
			return -ECANCELED;
		if (w->ch.tls) {
			/* Per bandwidth slice, so that --max-bandwidth and
			 * cancel still act within a large write. */
			n = mig_tls_send(w->ch.tls, p + off, MIN(len - off, (size_t)MIG_TLS_CHUNK));
			if (n == -EINTR || n == -EAGAIN)
				continue;
			if (n < 0)
				return n;
		} else {
			n = send(w->ch.fd, p + off, len - off, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK)         /* a snapshot file */
				n = write(w->ch.fd, p + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
		}
		off += n;
		w->bytes += n;
		mig_throttle_bw(w, n);
	}
	return 0;
}

int mig_flush(struct mig_writer *w)
{
	int ret = mig_send_raw(w, w->buf, w->len);

	if (ret == 0)
		w->len = 0;
	return ret;
}

static int mig_room(struct mig_writer *w, size_t need)
{
	return w->len + need > w->cap ? mig_flush(w) : 0;
}

static void mig_stage(struct mig_writer *w, const void *p, size_t len)
{
	w->crc = mig_crc32c(w->crc, p, len);
	memcpy(w->buf + w->len, p, len);
	w->len += len;
}

int mig_put_preamble(struct mig_writer *w)
{
	uint32_t v[2] = { MIG_VERSION, 0 };
	int ret = mig_room(w, 16);

	if (ret < 0)
		return ret;
	mig_stage(w, MIG_MAGIC, 8);
	mig_stage(w, v, sizeof(v));
	return 0;
}

int mig_put_rec(struct mig_writer *w, uint32_t type, const void *payload, uint32_t len)
{
	struct mig_rec_hdr h = { type, len };
	const uint8_t *p = payload;
	int ret = mig_room(w, sizeof(h));

	if (ret < 0)
		return ret;
	mig_stage(w, &h, sizeof(h));
	while (len) {
		size_t n;

		if (w->len == w->cap && (ret = mig_flush(w)) < 0)
			return ret;
		n = MIN((size_t)len, w->cap - w->len);
		mig_stage(w, p, n);
		p += n;
		len -= n;
	}
	return 0;
}

int mig_put_ram(struct mig_writer *w, uint64_t gpa, const void *src, uint32_t npages)
{
	struct {
		struct mig_rec_hdr h;
		struct mig_ram_hdr r;
	} hdr = { { MIG_REC_RAM, sizeof(struct mig_ram_hdr) + npages * MIG_PAGE_SIZE },
		  { gpa, npages, 0 } };
	size_t len = (size_t)npages * MIG_PAGE_SIZE;
	int ret;

	if (!npages || npages > MIG_RAM_MAX_PAGES)
		return -EINVAL;
	/* Inside TLS the data has no checksum (the header comment): a long
	 * run goes from guest memory straight into the cipher, one pass
	 * instead of three; short ones are gathered, or each would cost
	 * TLS records and a system call of its own. */
	if (w->ch.tls && npages >= MIG_TLS_DIRECT_PAGES) {
		ret = mig_room(w, sizeof(hdr));
		if (ret < 0)
			return ret;
		mig_stage(w, &hdr, sizeof(hdr));
		ret = mig_flush(w);
		return ret < 0 ? ret : mig_send_raw(w, src, len);
	}
	ret = mig_room(w, sizeof(hdr) + len);
	if (ret < 0)
		return ret;
	mig_stage(w, &hdr, sizeof(hdr));
	if (w->ch.tls)
		memcpy(w->buf + w->len, src, len);
	else
		w->crc = mig_crc32c_copy(w->crc, w->buf + w->len, src, len);
	w->len += len;
	return 0;
}

int mig_put_zero(struct mig_writer *w, uint64_t gpa, uint32_t npages)
{
	struct mig_ram_hdr r = { gpa, npages, MIG_RAM_ZERO };

	return mig_put_rec(w, MIG_REC_RAM, &r, sizeof(r));
}

int mig_put_section(struct mig_writer *w)
{
	uint32_t v[2] = { 0, 0 };
	struct mig_rec_hdr h = { MIG_REC_SECTION, sizeof(v) };
	int ret = mig_room(w, sizeof(h) + sizeof(v));

	if (ret < 0)
		return ret;
	/* The checksum covers the record header, not itself. */
	mig_stage(w, &h, sizeof(h));
	v[0] = w->crc;
	memcpy(w->buf + w->len, v, sizeof(v));
	w->len += sizeof(v);
	w->crc = 0;
	return mig_flush(w);
}

/* ---- reader ---- */

int mig_reader_init(struct mig_reader *r, int fd, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->ch.fd = fd;
	r->cap = MAX(cap, (size_t)64 * KiB);
	r->buf = malloc(r->cap);
	return r->buf ? 0 : -ENOMEM;
}

void mig_reader_free(struct mig_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

static int mig_recv_some(const struct mig_chan *ch, void *dst, size_t len, bool all)
{
	for (;;) {
		ssize_t n;

		/* TLS hands out one record (16 KiB) at a time: callers loop. */
		if (ch->tls) {
			n = mig_tls_recv(ch->tls, dst, len);
			if (n == -EINTR)
				continue;
			if (n < 0)
				return n == -EAGAIN ? -ETIMEDOUT : (int)n;
			return n ? n : -EPIPE;
		}
		n = recv(ch->fd, dst, len, all ? MSG_WAITALL : 0);
		/* A snapshot file: a short read is fine, callers loop. */
		if (n < 0 && errno == ENOTSOCK)
			n = read(ch->fd, dst, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -EPIPE;
		return n;
	}
}

/* Read without the checksum (the SECTION record's own value). */
static int mig_read_raw(struct mig_reader *r, void *dst, size_t len)
{
	uint8_t *d = dst;

	while (len) {
		size_t n;
		int got;

		if (r->off < r->len) {
			n = MIN(len, r->len - r->off);
			memcpy(d, r->buf + r->off, n);
			r->off += n;
			d += n;
			len -= n;
			continue;
		}
		/* Large reads go straight to their destination (guest RAM). */
		if (len >= r->cap / 2) {
			got = mig_recv_some(&r->ch, d, len, true);
			if (got < 0)
				return got;
			r->bytes += got;
			d += got;
			len -= got;
			continue;
		}
		got = mig_recv_some(&r->ch, r->buf, r->cap, false);
		if (got < 0)
			return got;
		r->bytes += got;
		r->off = 0;
		r->len = got;
	}
	return 0;
}

int mig_read(struct mig_reader *r, void *dst, size_t len)
{
	int ret = mig_read_raw(r, dst, len);

	if (ret == 0)
		r->crc = mig_crc32c(r->crc, dst, len);
	return ret;
}

/* A reply in one TLS record: the source reads it whole. */
static int mig_reply_tls(const struct mig_chan *ch, const struct mig_rec_hdr *h,
			 const void *payload)
{
	uint8_t rec[sizeof(*h) + MIG_ERROR_MAX];
	size_t off = 0, want = sizeof(*h) + h->len;

	if (h->len > MIG_ERROR_MAX)
		return -EINVAL;
	memcpy(rec, h, sizeof(*h));
	if (h->len)
		memcpy(rec + sizeof(*h), payload, h->len);
	while (off < want) {
		ssize_t n = mig_tls_send(ch->tls, rec + off, want - off);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			return n;
		off += n;
	}
	return 0;
}

int mig_reply(const struct mig_chan *ch, uint32_t type, const void *payload, uint32_t len)
{
	struct mig_rec_hdr h = { type, len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	size_t want = sizeof(h) + len;
	ssize_t n;

	if (!ch || ch->fd < 0)  /* a snapshot file: nobody to answer */
		return 0;
	if (ch->tls)
		return mig_reply_tls(ch, &h, payload);

	do
		n = sendmsg(ch->fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == want ? 0 : -EPIPE;    /* replies are tiny */
}

static int mig_recv_deadline(const struct mig_chan *ch, void *dst, size_t len,
			     uint64_t deadline)
{
	uint8_t *d = dst;

	while (len) {
		struct pollfd p = { .fd = ch->fd, .events = POLLIN };
		uint64_t now = now_ns();
		int ret, got;

		if (now >= deadline)
			return -ETIMEDOUT;
		/* What TLS decrypted already is not on the socket any more. */
		if (ch->tls && mig_tls_pending(ch->tls))
			ret = 1;
		else
			ret = poll(&p, 1, (deadline - now) / 1000000 + 1);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			continue;
		got = mig_recv_some(ch, d, len, false);
		if (got < 0)
			return got;
		d += got;
		len -= got;
	}
	return 0;
}

int mig_wait_reply(const struct mig_chan *ch, uint32_t want, void *buf, uint32_t len,
		   unsigned int timeout_ms, struct ferr *e)
{
	uint64_t deadline = now_ns() + timeout_ms * 1000000ULL;
	struct mig_rec_hdr h;
	char msg[MIG_ERROR_MAX + 1];
	int ret;

	ret = mig_recv_deadline(ch, &h, sizeof(h), deadline);
	if (ret == -ETIMEDOUT)
		return ferr_set(e, ret, "the destination did not answer within %u ms",
				timeout_ms);
	if (ret == -EACCES)             /* a TLS alert (migrate/tls.c) */
		return ferr_set(e, ret, "the destination ended the TLS session: it does not accept this end's credentials");
	if (ret < 0)
		return ferr_errno(e, ret, "the destination closed the connection");
	if (h.type == MIG_REPLY_ERROR && h.len <= MIG_ERROR_MAX) {
		ret = mig_recv_deadline(ch, msg, h.len, deadline);
		msg[ret < 0 ? 0 : h.len] = '\0';
		return ferr_set(e, -EREMOTEIO, "the destination refused: %s", msg);
	}
	if (h.type != want || h.len != len)
		return ferr_set(e, -EPROTO, "the destination sent reply %#x (%u bytes), expected %#x",
				h.type, h.len, want);
	ret = mig_recv_deadline(ch, buf, len, deadline);
	if (ret < 0)
		return ferr_errno(e, ret, "the destination's reply was cut short");
	return 0;
}

/* ---- the destination's state machine ---- */

enum mig_rx_state {
	RX_MACHINE, RX_MACHINE_SECTION, RX_PAGES, RX_STATE_SECTION, RX_END,
};

static const char *mig_rec_name(uint32_t type)
{
	switch (type) {
	case MIG_REC_MACHINE: return "MACHINE";
	case MIG_REC_RAM: return "RAM";
	case MIG_REC_SECTION: return "SECTION";
	case MIG_REC_SWITCHOVER: return "SWITCHOVER";
	case MIG_REC_STATE: return "STATE";
	case MIG_REC_END: return "END";
	case MIG_REC_SYNC: return "SYNC";
	}
	return "unknown";
}

/* @crc_data: the page data counts for the checksum (not inside TLS from
 * version 2 on). */
static int mig_rx_ram(struct mig_reader *r, const struct mig_sink *s,
		      const struct mig_rec_hdr *h, bool crc_data, struct ferr *e)
{
	struct mig_ram_hdr rh;
	uint64_t len;
	uint8_t *p;
	int ret;

	if (h->len < sizeof(rh))
		return ferr_set(e, -EPROTO, "RAM record of %u bytes is too short", h->len);
	ret = mig_read(r, &rh, sizeof(rh));
	if (ret < 0)
		return ferr_errno(e, ret, "stream cut inside a RAM record");
	if (rh.flags & ~MIG_RAM_ZERO)
		return ferr_set(e, -EPROTO, "RAM record with unknown flags %#x", rh.flags);
	len = (uint64_t)rh.npages * MIG_PAGE_SIZE;
	if (!rh.npages || (rh.gpa & (MIG_PAGE_SIZE - 1)) ||
	    h->len != sizeof(rh) + ((rh.flags & MIG_RAM_ZERO) ? 0 : len) ||
	    (!(rh.flags & MIG_RAM_ZERO) && rh.npages > MIG_RAM_MAX_PAGES))
		return ferr_set(e, -EPROTO, "malformed RAM record (gpa %#llx, %u pages, %u bytes)",
				(unsigned long long)rh.gpa, rh.npages, h->len);
	p = gm_ptr(s->mem, rh.gpa, len);
	if (!p)
		return ferr_set(e, -EPROTO, "RAM record for %#llx+%#llx lies outside guest RAM",
				(unsigned long long)rh.gpa, (unsigned long long)len);
	if (rh.flags & MIG_RAM_ZERO) {
		/* Only touch pages that are not zero already: a fresh
		 * destination's RAM stays unallocated. */
		for (uint64_t off = 0; off < len; off += MIG_PAGE_SIZE) {
			const uint64_t *q = (const uint64_t *)(p + off);
			bool zero = true;

			for (unsigned int i = 0; i < MIG_PAGE_SIZE / 8 && zero; i++)
				zero = q[i] == 0;
			if (!zero)
				memset(p + off, 0, MIG_PAGE_SIZE);
		}
	} else {
		ret = crc_data ? mig_read(r, p, len) : mig_read_raw(r, p, len);
		if (ret < 0)
			return ferr_errno(e, ret, "stream cut inside a RAM record");
	}
	if (s->progress)
		s->progress(s->opaque, r->bytes, rh.npages, rh.flags & MIG_RAM_ZERO);
	return 0;
}

static int mig_rx_blob(struct mig_reader *r, const struct mig_rec_hdr *h, uint32_t max,
		       void **out, struct ferr *e)
{
	void *b;
	int ret;

	if (h->len == 0 || h->len > max)
		return ferr_set(e, -EPROTO, "%s record of %u bytes (at most %u)",
				mig_rec_name(h->type), h->len, max);
	b = malloc(h->len);
	if (!b)
		return ferr_set(e, -ENOMEM, "out of memory for a %u-byte %s record", h->len,
				mig_rec_name(h->type));
	ret = mig_read(r, b, h->len);
	if (ret < 0) {
		free(b);
		return ferr_errno(e, ret, "stream cut inside the %s record", mig_rec_name(h->type));
	}
	*out = b;
	return 0;
}

static int mig_rx_section(struct mig_reader *r, const struct mig_rec_hdr *h, struct ferr *e)
{
	uint32_t v[2], want = r->crc;
	int ret;

	if (h->len != sizeof(v))
		return ferr_set(e, -EPROTO, "SECTION record of %u bytes", h->len);
	ret = mig_read_raw(r, v, sizeof(v));
	if (ret < 0)
		return ferr_errno(e, ret, "stream cut inside a SECTION record");
	if (v[0] != want)
		return ferr_set(e, -EBADMSG, "checksum mismatch (sent %08x, received %08x): the stream was corrupted",
				v[0], want);
	r->crc = 0;
	return 0;
}

int mig_receive(struct mig_reader *r, int reply_fd, const struct mig_sink *s, struct ferr *e)
{
	struct mig_chan reply = { reply_fd, reply_fd == r->ch.fd ? r->ch.tls : NULL };
	enum mig_rx_state st = RX_MACHINE;
	void *state = NULL;
	uint32_t state_len = 0;
	uint8_t pre[16];
	uint32_t ver;
	bool crc_data;
	int ret;

	ret = mig_read(r, pre, sizeof(pre));
	if (ret < 0)
		return ferr_errno(e, ret, "no migration preamble");
	if (memcmp(pre, MIG_MAGIC, 8))
		return ferr_set(e, -EPROTO, "not a ferry migration stream (bad magic)");
	memcpy(&ver, pre + 8, 4);
	if (ver != MIG_VERSION && ver != 1)
		return ferr_set(e, -EPROTONOSUPPORT, "stream version %u, this ferry reads versions 1 to %u",
				ver, MIG_VERSION);
	crc_data = ver == 1 || !r->ch.tls;
	for (;;) {
		struct mig_rec_hdr h;
		void *blob = NULL;

		ret = mig_read(r, &h, sizeof(h));
		if (ret < 0) {
			ferr_errno(e, ret, "stream cut between records");
			break;
		}
		/* The key packs the state above the type: a type past 8 bits
		 * would alias another state's case (0x406 is END). */
		switch (h.type > 0xff ? ~0u : st << 8 | h.type) {
		case RX_MACHINE << 8 | MIG_REC_MACHINE:
			ret = mig_rx_blob(r, &h, MIG_MACHINE_MAX, &blob, e);
			if (ret == 0)
				ret = s->machine(s->opaque, blob, h.len, e);
			free(blob);
			st = RX_MACHINE_SECTION;
			break;
		case RX_MACHINE_SECTION << 8 | MIG_REC_SECTION:
			ret = mig_rx_section(r, &h, e);
			if (ret == 0) {
				ret = mig_reply(&reply, MIG_REPLY_READY, NULL, 0);
				if (ret < 0)
					ferr_errno(e, ret, "cannot answer the source");
			}
			st = RX_PAGES;
			break;
		case RX_PAGES << 8 | MIG_REC_RAM:
			ret = mig_rx_ram(r, s, &h, crc_data, e);
			break;
		case RX_PAGES << 8 | MIG_REC_SECTION:
			ret = mig_rx_section(r, &h, e);
			break;
		case RX_PAGES << 8 | MIG_REC_SYNC:
			if (h.len)
				ret = ferr_set(e, -EPROTO, "SYNC record with a payload");
			else if ((ret = mig_reply(&reply, MIG_REPLY_SYNC, NULL, 0)) < 0)
				ferr_errno(e, ret, "cannot answer the source");
			break;
		case RX_PAGES << 8 | MIG_REC_SWITCHOVER:
			if (h.len)
				ret = ferr_set(e, -EPROTO, "SWITCHOVER record with a payload");
			else if (s->switchover)
				s->switchover(s->opaque);
			break;
		case RX_PAGES << 8 | MIG_REC_STATE:
			/* Loaded only once its checksum is known good. */
			ret = mig_rx_blob(r, &h, MIG_STATE_MAX, &state, e);
			state_len = h.len;
			st = RX_STATE_SECTION;
			break;
		case RX_STATE_SECTION << 8 | MIG_REC_SECTION:
			ret = mig_rx_section(r, &h, e);
			st = RX_END;
			break;
		case RX_END << 8 | MIG_REC_END:
			if (h.len) {
				ret = ferr_set(e, -EPROTO, "END record with a payload");
				break;
			}
			ret = s->state(s->opaque, state, state_len, e);
			free(state);
			return ret;
		default:
			ret = ferr_set(e, -EPROTO, "unexpected record type %u (%s, %u bytes) at this point of the stream",
				       h.type, mig_rec_name(h.type), h.len);
			break;
		}
		if (ret < 0)
			break;
	}
	free(state);
	return ret;
}
