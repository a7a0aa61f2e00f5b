/* The destination end of a migration, and ferry run --restore: listen on
 * --incoming, take one connection, and load the stream into a VM whose
 * vCPUs have not run, everything checked before anything is used; then
 * acknowledge once the vCPUs can start.  A failure is reported back to the
 * source, which keeps running. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/migrate.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vmm.h"

#define MIG_RECV_TIMEOUT_S     60
#define MIG_SOCK_BUF           (8 * 1024 * 1024)

struct mig_in {
	int fd;
	uint64_t switchover_ns;
	uint64_t load_ns;
};

struct mig_in_ctx {
	struct vmm *m;
	struct mig_in *in;
};

static int mig_in_machine(void *opaque, const void *fdt, uint32_t len, struct ferr *e)
{
	struct mig_in_ctx *c = opaque;

	return mig_machine_check(&c->m->vm, fdt, len, e);
}

static void mig_in_switchover(void *opaque)
{
	struct mig_in_ctx *c = opaque;

	c->in->switchover_ns = now_ns();
}

static int mig_in_state(void *opaque, const void *fdt, uint32_t len, struct ferr *e)
{
	struct mig_in_ctx *c = opaque;
	uint64_t t = now_ns();
	int ret = mig_state_load(&c->m->vm, fdt, len, e);

	c->in->load_ns = now_ns() - t;
	return ret;
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

int mig_incoming(struct vmm *m, struct ferr *e)
{
	struct mig_in *in = calloc(1, sizeof(*in));
	struct mig_in_ctx ctx = { m, in };
	struct mig_sink sink = {
		.mem = &m->vm.mem, .machine = mig_in_machine,
		.switchover = mig_in_switchover, .state = mig_in_state, .opaque = &ctx,
	};
	struct mig_reader r = { .buf = NULL };
	struct timeval tv = { .tv_sec = MIG_RECV_TIMEOUT_S };
	const char *file = NULL;
	int lfd = -1, fd = -1, ret, buf = MIG_SOCK_BUF;
	struct pollfd p[2];

	if (!in)
		return ferr_set(e, -ENOMEM, "out of memory");
	in->fd = -1;
	if (!strncmp(m->cfg->incoming, "file:", 5)) {
		/* --restore: the same stream from a file, no one to answer. */
		file = m->cfg->incoming + 5;
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = ferr_errno(e, -errno, "--restore: cannot open %s", file);
			goto out;
		}
		log_info("restoring the snapshot %s", file);
		goto receive;
	}
	lfd = mig_listen(m->cfg->incoming, e);
	if (lfd < 0) {
		free(in);
		return lfd;
	}
	log_info("waiting for a migration on %s", m->cfg->incoming);
	/* SIGTERM/SIGINT arrive on the signalfd: waiting must hear them. */
	p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = m->signal_fd, .events = POLLIN };
	for (;;) {
		ret = poll(p, 2, -1);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			ret = ferr_errno(e, -errno, "--incoming: poll");
			goto out;
		}
		if (p[1].revents) {
			ret = ferr_set(e, -EINTR, "--incoming %s: stopped by a signal before a migration arrived",
				       m->cfg->incoming);
			goto out;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != EINTR && errno != ECONNABORTED) {
			ret = ferr_errno(e, -errno, "--incoming: accept");
			goto out;
		}
	}
	close(lfd);
	lfd = -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
receive:
	ret = mig_reader_init(&r, fd, 256 * KiB);
	if (ret < 0) {
		ferr_set(e, ret, "out of memory");
		goto out;
	}
	ret = mig_receive(&r, file ? -1 : fd, &sink, e);
	if (ret < 0) {
		/* Tell the source why, so that it says so and keeps running. */
		struct ferr why = *e;

		if (file) {
			ferr_set(e, ret, "--restore %s: bad snapshot: %s", file, why.msg);
			goto out;
		}
		mig_reply(fd, MIG_REPLY_ERROR, why.msg, strlen(why.msg));
		ferr_set(e, ret, "incoming migration rejected: %s", why.msg);
		goto out;
	}
	if (!file) {
		in->fd = fd;
		fd = -1;
	}
	m->mig_in = in;
	in = NULL;
	log_info("%s: %llu bytes", file ? "snapshot restored" : "migration received",
		 (unsigned long long)r.bytes);
out:
	mig_reader_free(&r);
	if (lfd >= 0)
		close(lfd);
	if (fd >= 0)
		close(fd);
	free(in);
	return ret < 0 ? ret : 0;
}

int mig_incoming_ack(struct vmm *m, struct ferr *e)
{
	struct mig_in *in = m->mig_in;
	uint64_t load_us;
	int ret;

	if (!in)
		return 0;
	load_us = (now_ns() - (in->switchover_ns ? in->switchover_ns : now_ns())) / 1000;
	/* -1 (a snapshot file): no reply, mig_reply() returns 0. */
	ret = mig_reply(in->fd, MIG_REPLY_DONE, &load_us, sizeof(load_us));
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
	if (in->fd >= 0)
		close(in->fd);
	free(in);
	m->mig_in = NULL;
	return ret;
}
