/* virtio-console (virtio 1.2 §5.3), one port (hvc0, no MULTIPORT): guest
 * output from the transmitq to a host fd without ever blocking the loop, and
 * host input (stdin) into the receiveq through a bounded pending buffer. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <libfdt.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"

#define CONS_RXQ        0
#define CONS_TXQ        1
#define CONS_QUEUE_SIZE 128
#define CONS_CONFIG_LEN 12      /* cols, rows, max_nr_ports, emerg_wr */
/* Host input waiting for guest buffers; reading stops while it is full. */
#define CONS_PENDING    4096

struct console_dev {
	struct virtio_dev dev;
	struct loop *loop;
	int in_fd;
	bool reading;           /* in_fd registered with the loop */
	bool in_eof;
	int out_fd;
	bool out_own;           /* out_fd is our own non-blocking reopen */
	bool out_poll;          /* could not reopen: poll before each write */
	uint64_t out_dropped;
	struct vq_elem elem;
	uint8_t pending[CONS_PENDING];
	size_t pending_off, pending_len;
};

static uint64_t cons_features(struct virtio_dev *d)
{
	(void)d;
	return 0;               /* no F_SIZE, no MULTIPORT, no EMERG_WRITE */
}

static void cons_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	/* cols 80, rows 25: only read with F_SIZE, which is not offered. */
	static const uint8_t cfg[CONS_CONFIG_LEN] = { 80, 0, 25, 0, 1, 0, 0, 0 };

	(void)d;
	memcpy(data, cfg + off, len);
}

static void cons_config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data,
			      uint32_t len)
{
	/* emerg_wr needs F_EMERG_WRITE: ignored. */
	(void)d; (void)off; (void)data; (void)len;
}

static void cons_drop(struct console_dev *c, size_t n)
{
	c->out_dropped += n;
	if (c->out_dropped == n)
		log_warn("%s: output fd %d is not accepting bytes; dropping output",
			 c->dev.name, c->out_fd);
}

/* Write one chain's readable part; what the fd does not take now is dropped,
 * as the UART does: the loop never waits for a slow reader. */
static void cons_emit(struct console_dev *c, const struct vq_elem *e)
{
	for (unsigned int i = 0; i < e->out_num; i++) {
		const uint8_t *p = e->iov[i].iov_base;
		size_t left = e->iov[i].iov_len;

		while (left) {
			size_t chunk = left;
			ssize_t n;

			if (c->out_fd < 0) {
				c->dev.bytes += left;
				break;
			}
			if (c->out_poll) {
				struct pollfd pfd = { .fd = c->out_fd, .events = POLLOUT };

				/* POLLOUT on a blocking pipe promises room
				 * for PIPE_BUF bytes, no more. */
				if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLOUT)) {
					cons_drop(c, left);
					break;
				}
				chunk = MIN(chunk, (size_t)PIPE_BUF);
			}
			n = write(c->out_fd, p, chunk);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				cons_drop(c, left);
				break;
			}
			c->dev.bytes += n;
			p += n;
			left -= n;
		}
	}
}

static void cons_tx(struct console_dev *c)
{
	struct virtio_dev *d = &c->dev;
	struct vq *vq = &d->vqs[CONS_TXQ];
	int ret;

	for (;;) {
		ret = vq_pop(vq, &c->elem);
		if (ret == 0) {
			vq_set_avail_event(vq);
			ret = vq_pop(vq, &c->elem);
			if (ret == 0)
				break;
		}
		if (ret < 0) {
			virtio_dev_fail(d, "transmitq broken");
			return;
		}
		cons_emit(c, &c->elem);
		d->requests++;
		vq_push(vq, c->elem.head, 0);
	}
	virtio_queue_done(d, CONS_TXQ);
}

static void cons_on_input(struct loop *l, int fd, uint32_t events, void *opaque);

static void cons_set_reading(struct console_dev *c, bool on)
{
	if (on == c->reading || c->in_fd < 0 || (on && c->in_eof))
		return;
	if (on) {
		if (loop_add(c->loop, c->in_fd, EPOLLIN, cons_on_input, c) < 0)
			return;
	} else {
		loop_del(c->loop, c->in_fd);
	}
	c->reading = on;
}

/* Move pending host bytes into receiveq buffers, then read more input only
 * if all of it found room. */
static void cons_rx_flush(struct console_dev *c)
{
	struct virtio_dev *d = &c->dev;
	struct vq *vq = &d->vqs[CONS_RXQ];
	bool used = false;
	int ret;

	if (!(d->status & VIRTIO_STATUS_DRIVER_OK) || !d->vq_ready[CONS_RXQ] ||
	    (d->status & VIRTIO_STATUS_NEEDS_RESET))
		goto out;
	while (c->pending_off < c->pending_len) {
		struct iovec *in;
		size_t done = 0;

		ret = vq_pop(vq, &c->elem);
		if (ret == 0) {
			vq_set_avail_event(vq);
			ret = vq_pop(vq, &c->elem);
			if (ret == 0)
				break;
		}
		if (ret < 0) {
			virtio_dev_fail(d, "receiveq broken");
			goto out;
		}
		in = vq_elem_in(&c->elem);
		for (unsigned int i = 0; i < c->elem.in_num && c->pending_off < c->pending_len; i++) {
			size_t n = MIN(in[i].iov_len, c->pending_len - c->pending_off);

			memcpy(in[i].iov_base, c->pending + c->pending_off, n);
			c->pending_off += n;
			done += n;
		}
		vq_push(vq, c->elem.head, done);
		used = true;
	}
	if (used)
		virtio_queue_done(d, CONS_RXQ);
out:
	if (c->pending_off == c->pending_len)
		c->pending_off = c->pending_len = 0;
	/* Read more only when everything read so far found a buffer. */
	cons_set_reading(c, c->pending_len == 0);
}

static void cons_on_input(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct console_dev *c = opaque;
	ssize_t n;

	(void)l;
	(void)events;
	pthread_mutex_lock(&c->dev.lock);
	if (c->pending_len < CONS_PENDING) {
		n = read(fd, c->pending + c->pending_len, CONS_PENDING - c->pending_len);
		if (n > 0) {
			c->pending_len += n;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			/* End of input: the guest keeps its output. */
			cons_set_reading(c, false);
			c->in_eof = true;
		}
	}
	cons_rx_flush(c);
	pthread_mutex_unlock(&c->dev.lock);
}

static void cons_queue_notify(struct virtio_dev *d, unsigned int q)
{
	struct console_dev *c = d->priv;

	if (q == CONS_TXQ)
		cons_tx(c);
	else if (q == CONS_RXQ)
		cons_rx_flush(c);
}

static int cons_activate(struct virtio_dev *d)
{
	(void)d;
	return 0;
}

static void cons_reset(struct virtio_dev *d)
{
	struct console_dev *c = d->priv;

	/* Input typed before the driver comes back is kept: it is the
	 * user's, not the old driver's.  (Reading resumes on the next
	 * receiveq kick.) */
	(void)c;
}

/* Migration.  Guest output is written out within a kick and input is
 * copied within one, so nothing is ever in flight: quiescing only stops
 * reading host input, which waits in pending (and moves with the state). */
static int cons_quiesce(struct virtio_dev *d)
{
	struct console_dev *c = d->priv;

	pthread_mutex_lock(&d->lock);
	cons_set_reading(c, false);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void cons_resume(struct virtio_dev *d)
{
	/* Deliver what is pending; reading resumes once it found room. */
	cons_rx_flush(d->priv);
}

static int cons_save(struct virtio_dev *d, void *fdt)
{
	struct console_dev *c = d->priv;

	return fdt_property(fdt, "pending-input", c->pending + c->pending_off,
			    c->pending_len - c->pending_off) ? -ENOSPC : 0;
}

/* The source's pending input was typed before anything this side read
 * from its own input: it goes first. */
static int cons_load(struct virtio_dev *d, const void *fdt, int node, struct ferr *e)
{
	struct console_dev *c = d->priv;
	const uint8_t *in;
	size_t mine;
	int len;

	in = fdt_getprop(fdt, node, "pending-input", &len);
	if (!in || len < 0 || len > CONS_PENDING)
		return ferr_set(e, -EPROTO, "%s: virtio-console state missing or malformed (pending input of %d bytes, at most %d)",
				d->name, in ? len : -1, CONS_PENDING);
	mine = c->pending_len - c->pending_off;
	if (mine > CONS_PENDING - (size_t)len) {
		log_warn("%s: %zu bytes of input typed here before the migration are dropped (buffer full)",
			 d->name, mine - (CONS_PENDING - (size_t)len));
		mine = CONS_PENDING - (size_t)len;
	}
	memmove(c->pending + len, c->pending + c->pending_off, mine);
	memcpy(c->pending, in, (size_t)len);
	c->pending_off = 0;
	c->pending_len = (size_t)len + mine;
	return 0;
}

static void cons_destroy(struct virtio_dev *d)
{
	struct console_dev *c = d->priv;

	if (c->reading)
		loop_del(c->loop, c->in_fd);
	if (c->out_own)
		close(c->out_fd);
	free(c);
}

static const struct virtio_dev_ops cons_ops = {
	.features = cons_features,
	.config_read = cons_config_read,
	.config_write = cons_config_write,
	.activate = cons_activate,
	.queue_notify = cons_queue_notify,
	.reset = cons_reset,
	.destroy = cons_destroy,
	.quiesce = cons_quiesce,
	.resume = cons_resume,
	.save = cons_save,
	.load = cons_load,
};

/* A non-blocking view of @fd that leaves the shared fd's flags alone
 * (stdout is shared with the rest of ferry): regular files never block,
 * pipes and terminals are reopened through /proc. */
static void cons_setup_out(struct console_dev *c, int fd)
{
	struct stat st;
	char path[64];
	int flags, nfd;

	c->out_fd = fd;
	if (fd < 0 || fstat(fd, &st) < 0 || S_ISREG(st.st_mode))
		return;
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0 && (flags & O_NONBLOCK))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (nfd >= 0) {
		c->out_fd = nfd;
		c->out_own = true;
		return;
	}
	c->out_poll = true;
}

struct virtio_dev *virtio_console_create(int in_fd, int out_fd, struct loop *loop,
					 struct ferr *e)
{
	struct console_dev *c = calloc(1, sizeof(*c));

	if (!c) {
		ferr_errno(e, -ENOMEM, "virtio-console state");
		return NULL;
	}
	virtio_dev_init(&c->dev, "console0", VIRTIO_ID_CONSOLE, 2, CONS_QUEUE_SIZE,
			CONS_CONFIG_LEN, &cons_ops, c);
	c->loop = loop;
	c->in_fd = in_fd;
	cons_setup_out(c, out_fd);
	/* Read host input from the start; it waits (bounded) in pending for
	 * the driver's buffers. */
	if (in_fd >= 0 && loop_add(loop, in_fd, EPOLLIN, cons_on_input, c) == 0)
		c->reading = true;
	else if (in_fd >= 0)
		log_warn("console0: cannot poll input fd %d; the guest console gets no input",
			 in_fd);
	return &c->dev;
}
