/* The destination end of a migration, and ferry run --restore: listen on
 * --incoming, take one connection on a receive thread while the event loop
 * keeps serving the control socket, and load the stream into a VM whose
 * vCPUs have not run, everything checked before anything is used; then
 * acknowledge once the vCPUs can start.  A failure is reported back to the
 * source, which keeps running.
 *
 * Who owns what while the VM is incoming (state "incoming", src/vmm.c):
 *   - From mig_incoming_start() until the event loop has joined the receive
 *     thread (mig_in_on_done, or mig_incoming_destroy), the receive thread
 *     owns guest RAM, the vCPUs' registers and every device's state: it is
 *     the only code that writes them.
 *   - The event loop meanwhile runs only what cannot touch them: the
 *     control socket (status and stats read the configuration, the buses
 *     under their lock and atomic counters; migrate-status reads the
 *     progress below), metrics, signals and the stop eventfd.  No device
 *     handler runs: no guest code runs, so no queue kick, irqfd or disk
 *     completion can fire, and vmm.c connects stdin to the UART only once
 *     the VM runs.  The loop may request a stop; it never touches the VM.
 *   - The thread and the loop share only struct mig_in: ch.fd and cancel under
 *     lock, the progress counters and phase as atomics, and the outcome
 *     (ret, err), which the loop reads after the phase says "loaded" or
 *     "failed" (release/acquire) or after the join.
 *   - After the join everything is the event loop's again: it acks, starts
 *     the vCPUs and resumes the devices (loaded quiesced). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ferry/blk.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/mig_tls.h"
#include "ferry/migrate.h"
#include "ferry/seccomp.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vmm.h"

#define MIG_RECV_TIMEOUT_S     60
#define MIG_SOCK_BUF           (8 * 1024 * 1024)

enum mig_in_phase {
	IN_WAITING,                     /* for a connection */
	IN_RECEIVING,                   /* RAM and state arrive */
	IN_LOADING,                     /* the end marker came: state load */
	IN_LOADED,                      /* all in, the loop acks next */
	IN_FAILED,
};

struct mig_in {
	struct vmm *vmm;
	const char *file;               /* --restore: the snapshot, else NULL */
	mig_incoming_done_fn done;
	int lfd;                        /* the listening socket, or the file */
	int wake_efd;                   /* cancel wakes the wait for a connection */
	int done_efd;                   /* thread -> event loop: finished */
	bool watching;                  /* done_efd is on the loop */
	pthread_t thread;
	bool started, joined;
	pthread_mutex_t lock;           /* guards ch.fd and cancel */
	struct mig_chan ch;             /* the connection, until the ack */
	bool cancel;
	/* Progress: written by the thread, read by migrate-status. */
	int phase;                      /* enum mig_in_phase, atomic */
	uint64_t bytes, pages, zero_pages; /* atomic */
	uint64_t start_ns;
	/* The outcome: the thread's, until it sets the phase. */
	int ret;
	struct ferr err;
	uint64_t switchover_ns, load_ns;
};

static const char *mig_in_phase_name(int p)
{
	switch (p) {
	case IN_WAITING: return "waiting";
	case IN_RECEIVING: return "receiving";
	case IN_LOADING: return "loading";
	case IN_LOADED: return "loaded";
	case IN_FAILED: return "failed";
	}
	return "unknown";
}

static int mig_in_machine(void *opaque, const void *fdt, uint32_t len, struct ferr *e)
{
	struct mig_in *in = opaque;

	return mig_machine_check(&in->vmm->vm, fdt, len, e);
}

static void mig_in_switchover(void *opaque)
{
	struct mig_in *in = opaque;

	in->switchover_ns = now_ns();
}

static int mig_in_state(void *opaque, const void *fdt, uint32_t len, struct ferr *e)
{
	struct mig_in *in = opaque;
	uint64_t t = now_ns();
	int ret;

	__atomic_store_n(&in->phase, IN_LOADING, __ATOMIC_RELAXED);
	ret = mig_state_load(&in->vmm->vm, fdt, len, e);
	in->load_ns = now_ns() - t;
	return ret;
}

static void mig_in_progress(void *opaque, uint64_t bytes, uint32_t npages, bool zero)
{
	struct mig_in *in = opaque;

	__atomic_store_n(&in->bytes, bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(zero ? &in->zero_pages : &in->pages, npages, __ATOMIC_RELAXED);
}

static int mig_listen(const char *uri, struct ferr *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	char host[256], port[32];
	int fd = -1, one = 1, ret;

	ret = mig_parse_uri(uri, host, sizeof(host), port, sizeof(port), e);
	if (ret < 0)
		return ret;
	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret)
		return ferr_set(e, -EINVAL, "--incoming %s: %s", uri, gai_strerror(ret));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0) {
		ret = ferr_errno(e, -errno, "--incoming %s: cannot listen", uri);
		if (fd >= 0)
			close(fd);
		fd = ret;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Wait for the source; a cancel (stop, SIGTERM) wakes this through
 * wake_efd. */
static int mig_in_accept(struct mig_in *in, struct ferr *e)
{
	struct pollfd p[2] = {
		{ .fd = in->lfd, .events = POLLIN },
		{ .fd = in->wake_efd, .events = POLLIN },
	};
	int fd, ret;

	for (;;) {
		ret = poll(p, 2, -1);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return ferr_errno(e, -errno, "--incoming: poll");
		if (p[1].revents)
			return ferr_set(e, -ECANCELED, "stopped before a migration arrived");
		fd = accept4(in->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
			return ferr_errno(e, -errno, "--incoming: accept");
	}
}

/* One migration, start to end: accept -> mig_reader_init -> mig_receive ->
 * reply.  The connection stays in in->ch for the ack. */
static int mig_in_receive(struct mig_in *in, struct ferr *e)
{
	const struct mig_sink sink = {
		.mem = &in->vmm->vm.mem, .machine = mig_in_machine,
		.switchover = mig_in_switchover, .state = mig_in_state,
		.progress = mig_in_progress, .opaque = in,
	};
	struct mig_reader r = { .buf = NULL };
	struct timeval tv = { .tv_sec = MIG_RECV_TIMEOUT_S };
	int fd, ret, buf = MIG_SOCK_BUF;
	bool cancelled;

	if (in->file) {
		/* --restore: the same stream from a file, no one to answer. */
		fd = in->lfd;
		in->lfd = -1;
	} else {
		fd = mig_in_accept(in, e);
		if (fd < 0)
			return fd;
		/* One migration: a second source is refused, not queued. */
		close(in->lfd);
		in->lfd = -1;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		log_info("migration: connection from the source on %s", in->vmm->cfg->incoming);
	}
	/* Published for a cancel to shut down. */
	pthread_mutex_lock(&in->lock);
	in->ch = (struct mig_chan){ .fd = fd };
	cancelled = in->cancel;
	pthread_mutex_unlock(&in->lock);
	if (cancelled)
		return ferr_set(e, -ECANCELED, "stopped before the migration began");
	/* TLS (migrate/tls.c): the source proves its key or certificate
	 * before mig_receive() reads a byte of the stream. */
	if (!in->file) {
		struct mig_chan ch;

		ret = mig_tls_server(in->vmm->mig_tls, fd, &ch, e);
		if (ret < 0) {
			struct ferr why = *e;

			return ferr_set(e, ret, "incoming migration rejected: %s", why.msg);
		}
		pthread_mutex_lock(&in->lock);
		in->ch = ch;
		pthread_mutex_unlock(&in->lock);
	}
	__atomic_store_n(&in->phase, IN_RECEIVING, __ATOMIC_RELAXED);

	ret = mig_reader_init(&r, fd, 256 * KiB);
	if (ret < 0) {
		ferr_set(e, ret, "out of memory");
		goto out;
	}
	r.ch = in->ch;
	ret = mig_receive(&r, in->file ? -1 : fd, &sink, e);
	__atomic_store_n(&in->bytes, r.bytes, __ATOMIC_RELAXED);
	if (ret < 0) {
		/* Tell the source why, so that it says so and keeps running. */
		struct ferr why = *e;

		pthread_mutex_lock(&in->lock);
		cancelled = in->cancel;
		pthread_mutex_unlock(&in->lock);
		if (cancelled)
			ferr_set(e, -ECANCELED, "stopped while receiving (%s)", why.msg);
		else if (in->file)
			ferr_set(e, ret, "--restore %s: bad snapshot: %s", in->file, why.msg);
		else {
			mig_reply(&in->ch, MIG_REPLY_ERROR, why.msg, strlen(why.msg));
			ferr_set(e, ret, "incoming migration rejected: %s", why.msg);
		}
		goto out;
	}
	log_info("%s: %llu bytes", in->file ? "snapshot restored" : "migration received",
		 (unsigned long long)r.bytes);
out:
	mig_reader_free(&r);
	return ret;
}

static void *mig_in_thread(void *opaque)
{
	struct mig_in *in = opaque;

	seccomp_enter(SECCOMP_ROLE_MIGRATION);
	in->ret = mig_in_receive(in, &in->err);
	/* Release: the outcome is readable once the phase says so. */
	__atomic_store_n(&in->phase, in->ret < 0 ? IN_FAILED : IN_LOADED, __ATOMIC_RELEASE);
	if (eventfd_write(in->done_efd, 1) < 0)
		log_error("migration: cannot wake the event loop: %s", strerror(errno));
	return NULL;
}

static void mig_in_join(struct mig_in *in)
{
	if (!in->started || in->joined)
		return;
	pthread_join(in->thread, NULL);
	in->joined = true;
}

static void mig_in_free(struct vmm *m, struct mig_in *in)
{
	if (in->watching)
		loop_del(m->loop, in->done_efd);
	if (in->done_efd >= 0)
		close(in->done_efd);
	if (in->wake_efd >= 0)
		close(in->wake_efd);
	if (in->lfd >= 0)
		close(in->lfd);
	mig_tls_end(&in->ch);
	if (in->ch.fd >= 0)
		close(in->ch.fd);
	pthread_mutex_destroy(&in->lock);
	free(in);
	if (m->mig_in == in)
		m->mig_in = NULL;
}

/* Event loop: the thread finished, the VM is the loop's again. */
static void mig_in_on_done(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct mig_in *in = opaque;
	eventfd_t v;

	(void)l; (void)events;
	if (eventfd_read(fd, &v) < 0)
		return;
	mig_in_join(in);
	if (in->ch.fd >= 0 && (in->file || in->ret < 0)) {
		mig_tls_end(&in->ch);
		close(in->ch.fd);               /* nothing more to say on it */
		in->ch.fd = -1;
	}
	/* May ack, which frees @in. */
	in->done(in->vmm, in->ret, in->err.msg);
}

int mig_incoming_open(struct vmm *m, struct ferr *e)
{
	const char *uri = m->cfg->incoming;
	struct mig_in *in = calloc(1, sizeof(*in));

	if (!in)
		return ferr_set(e, -ENOMEM, "out of memory");
	in->vmm = m;
	in->lfd = in->ch.fd = in->wake_efd = in->done_efd = -1;
	pthread_mutex_init(&in->lock, NULL);
	m->mig_in = in;
	if (!strncmp(uri, "file:", 5)) {
		in->file = uri + 5;
		in->lfd = open(in->file, O_RDONLY | O_CLOEXEC);
		if (in->lfd < 0)
			return ferr_errno(e, -errno, "--restore: cannot open %s", in->file);
		return 0;
	}
	in->lfd = mig_listen(uri, e);
	return in->lfd < 0 ? in->lfd : 0;
}

int mig_incoming_start(struct vmm *m, mig_incoming_done_fn done, struct ferr *e)
{
	struct mig_in *in = m->mig_in;
	int ret;

	if (!in || in->started)
		return ferr_set(e, -EINVAL, "no incoming migration to start");
	in->done = done;
	in->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	in->done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (in->wake_efd < 0 || in->done_efd < 0)
		return ferr_errno(e, -errno, "--incoming: cannot create an eventfd");
	ret = loop_add(m->loop, in->done_efd, EPOLLIN, mig_in_on_done, in);
	if (ret < 0)
		return ferr_errno(e, ret, "--incoming: cannot watch the receive thread");
	in->watching = true;
	in->start_ns = now_ns();
	ret = pthread_create(&in->thread, NULL, mig_in_thread, in);
	if (ret)
		return ferr_errno(e, -ret, "--incoming: cannot start the receive thread");
	in->started = true;
	if (in->file)
		log_info("restoring the snapshot %s", in->file);
	else
		log_info("waiting for a migration on %s", m->cfg->incoming);
	return 0;
}

/* Shared disks change hands here, before DONE: the source has drained and
 * flushed, and until DONE it still owns the VM, so a failure goes back to
 * it as an error and it keeps running with its reservation.  An iSCSI disk
 * preempts the source's reservation key (virtio/blk_iscsi_pr.c); from
 * then on the source's writes fail at the target. */
static int mig_in_takeover(struct vmm *m, struct mig_in *in, struct ferr *e)
{
	for (unsigned int i = 0; i < m->vm.nr_virtio; i++) {
		struct virtio_dev *d = m->vm.virtio[i];
		int ret;

		if (d->device_id != VIRTIO_ID_BLOCK)
			continue;
		ret = virtio_blk_takeover(d, !in->file, e);
		if (ret < 0) {
			mig_reply(&in->ch, MIG_REPLY_ERROR, e->msg, strlen(e->msg));
			return ret;
		}
	}
	return 0;
}

int mig_incoming_ack(struct vmm *m, struct ferr *e)
{
	struct mig_in *in = m->mig_in;
	uint64_t load_us;
	int ret;

	if (!in)
		return 0;
	mig_in_join(in);
	ret = mig_in_takeover(m, in, e);
	if (ret < 0)
		goto out;
	load_us = (now_ns() - (in->switchover_ns ? in->switchover_ns : now_ns())) / 1000;
	/* -1 (a snapshot file): no reply, mig_reply() returns 0. */
	ret = mig_reply(&in->ch, MIG_REPLY_DONE, &load_us, sizeof(load_us));
	if (ret < 0) {
		ferr_errno(e, ret, "cannot acknowledge the migration (the source keeps the VM)");
	} else {
		log_info("migration: switchover took %.2f ms here (state load %.2f ms)",
			 load_us / 1e3, in->load_ns / 1e6);
		/* The VM is ours now: devices take requests (loaded quiesced),
		 * and network cards tell the switches where the guest went. */
		for (unsigned int i = 0; i < m->vm.nr_virtio; i++) {
			virtio_dev_resume(m->vm.virtio[i]);
			if (m->vm.virtio[i]->device_id == VIRTIO_ID_NET)
				virtio_net_announce(m->vm.virtio[i]);
		}
	}
out:
	mig_in_free(m, in);
	return ret;
}

void mig_incoming_destroy(struct vmm *m)
{
	struct mig_in *in = m->mig_in;
	bool reported;

	if (!in)
		return;
	/* A failure the done hook (vmm.c) has logged already. */
	reported = in->joined && in->ret < 0;
	pthread_mutex_lock(&in->lock);
	in->cancel = true;
	/* Wakes a recv() on the connection; the source sees it close and
	 * keeps its VM. */
	if (in->ch.fd >= 0)
		shutdown(in->ch.fd, SHUT_RDWR);
	pthread_mutex_unlock(&in->lock);
	if (in->wake_efd >= 0 && eventfd_write(in->wake_efd, 1) < 0)
		log_warn("migration: cannot wake the receive thread: %s", strerror(errno));
	mig_in_join(in);
	if (in->started && !reported && in->ret < 0)
		log_info("incoming migration cancelled: %s", in->err.msg);
	else if (in->started && !reported)
		log_info("incoming migration cancelled: received, but the VM stopped before it ran; the source keeps it");
	mig_in_free(m, in);
}

struct json_object *mig_incoming_status_json(struct vmm *m)
{
	struct mig_in *in = m->mig_in;
	struct json_object *o = json_object_new_object();
	int phase;

	if (!o || !in)
		return o;
	phase = __atomic_load_n(&in->phase, __ATOMIC_ACQUIRE);
#define JI(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	json_object_object_add(o, "status", json_object_new_string("incoming"));
	json_object_object_add(o, "phase", json_object_new_string(mig_in_phase_name(phase)));
	if (phase == IN_FAILED)
		json_object_object_add(o, "error", json_object_new_string(in->err.msg));
	JI("bytes", __atomic_load_n(&in->bytes, __ATOMIC_RELAXED));
	JI("pages", __atomic_load_n(&in->pages, __ATOMIC_RELAXED));
	JI("zero_pages", __atomic_load_n(&in->zero_pages, __ATOMIC_RELAXED));
	json_object_object_add(o, "total_ms", json_object_new_double(
		in->start_ns ? (now_ns() - in->start_ns) / 1e6 : 0));
	json_object_object_add(o, "incoming", json_object_new_string(m->cfg->incoming));
#undef JI
	return o;
}
