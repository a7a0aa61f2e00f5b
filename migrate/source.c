/* The source end of a migration, on a thread of its own while the event
 * loop keeps serving: connect (and authenticate), stream RAM round by
 * round until the remainder fits the downtime target, pause the vCPUs and
 * quiesce the devices, send the rest and the state, and wait for the
 * destination's DONE.  Any failure before DONE resumes the VM as it was.
 * A snapshot is the same stream into a file, with no replies. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/mig_tls.h"
#include "ferry/migrate.h"
#include "ferry/seccomp.h"
#include "ferry/util.h"
#include "ferry/vcpu.h"
#include "ferry/virtio_dev.h"
#include "ferry/vmm.h"

#include "mig_int.h"

#define MIG_CONNECT_TIMEOUT_MS 10000
#define MIG_READY_TIMEOUT_MS   10000
#define MIG_DONE_TIMEOUT_MS    30000
#define MIG_SOCK_BUF           (8 * 1024 * 1024)
#define MIG_EVENT_NS           100000000ULL     /* progress events at most 10/s */
#define MIG_THROTTLE_JUMP_MAX  90u              /* the ramp alone goes further */

static void mig_notify(struct mig *g)
{
	if (eventfd_write(g->notify_efd, 1) < 0)
		log_warn("migration: cannot signal the event loop: %s", strerror(errno));
}

static bool mig_cancelled(struct mig *g)
{
	return __atomic_load_n(&g->cancel, __ATOMIC_RELAXED) != 0;
}

static int mig_connect(struct mig *g, struct ferr *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL, *a;
	int fd = -1, ret, buf = MIG_SOCK_BUF, one = 1;

	ret = getaddrinfo(g->host, g->port, &hints, &ai);
	if (ret)
		return ferr_set(e, -EHOSTUNREACH, "cannot resolve %s: %s", g->host, gai_strerror(ret));
	ret = -ECONNREFUSED;
	for (a = ai; a; a = a->ai_next) {
		struct pollfd p;
		socklen_t len = sizeof(ret);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		pthread_mutex_lock(&g->lock);
		g->fd = fd;     /* cancel can shut it down from here on */
		pthread_mutex_unlock(&g->lock);
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			ret = -errno;
		} else {
			p = (struct pollfd){ .fd = fd, .events = POLLOUT };
			ret = poll(&p, 1, MIG_CONNECT_TIMEOUT_MS);
			if (ret == 0)
				ret = -ETIMEDOUT;
			else if (ret < 0)
				ret = -errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &ret, &len) < 0)
				ret = -errno;
			else
				ret = -ret;
		}
		if (ret == 0)
			break;
		pthread_mutex_lock(&g->lock);
		g->fd = -1;
		pthread_mutex_unlock(&g->lock);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return ferr_errno(e, ret, "cannot connect to %s:%s", g->host, g->port);
	/* Blocking from here: this thread does nothing else. */
	ret = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, ret & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* After a failed send the destination may have said why: prefer that. */
static enum mig_outcome mig_send_failed(struct mig *g, const struct mig_chan *ch, int err,
				       struct ferr *e)
{
	struct ferr why;
	int ret;

	if (mig_cancelled(g))
		return MIG_OUT_CANCELLED;
	if (g->path)            /* a file: no one to say why */
		return MIG_OUT_FAILED;
	ret = mig_wait_reply(ch, MIG_REPLY_DONE, NULL, 0, 200, &why);
	if (ret == -EREMOTEIO || ret == -EACCES) {     /* -EACCES: TLS said no */
		*e = why;
		return MIG_OUT_REFUSED;
	}
	if (err == -EPIPE || err == -ECONNRESET || err == -ETIMEDOUT || err == -ENOTCONN)
		return MIG_OUT_CONNECT;
	return MIG_OUT_FAILED;
}

static void mig_set_progress(struct mig *g, const struct mig_progress *p)
{
	uint64_t now = now_ns();

	pthread_mutex_lock(&g->lock);
	g->prog = *p;
	pthread_mutex_unlock(&g->lock);
	if (now - g->last_event_ns >= MIG_EVENT_NS) {
		g->last_event_ns = now;
		mig_notify(g);
	}
}

/* Run @call on the event loop and wait for it.  -ECANCELED if the VM goes
 * away meanwhile (mig_destroy joins this thread from the loop). */
static int mig_loop_call(struct mig *g, enum mig_call call)
{
	int ret;

	pthread_mutex_lock(&g->lock);
	g->call = call;
	pthread_mutex_unlock(&g->lock);
	mig_notify(g);
	pthread_mutex_lock(&g->lock);
	while (g->call != MIG_CALL_NONE) {
		struct timespec ts;

		if (mig_cancelled(g) && __atomic_load_n(&g->vmm->vm.stop_reason, __ATOMIC_RELAXED)) {
			g->call = MIG_CALL_NONE;
			g->call_ret = -ECANCELED;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&g->call_cond, &g->lock, &ts);
	}
	ret = g->call_ret;
	pthread_mutex_unlock(&g->lock);
	return ret;
}

/* On the loop: the vCPUs are paused; every virtio device finishes what is
 * in flight, so that its queues and the pages it wrote are final. */
int mig_devices_quiesce(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_virtio; i++) {
		int ret = virtio_dev_quiesce(vm->virtio[i]);

		if (ret < 0) {
			log_error("migration: %s cannot quiesce: %s", vm->virtio[i]->name,
				  strerror(-ret));
			return ret;
		}
	}
	return 0;
}

void mig_devices_resume(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_virtio; i++)
		virtio_dev_resume(vm->virtio[i]);
}

void *mig_kicker(void *arg)
{
	struct mig *g = arg;
	struct vm *vm = &g->vmm->vm;
	struct timespec ts = { 0, 10000000 };

	seccomp_enter(SECCOMP_ROLE_MIGRATION);
	while (!__atomic_load_n(&g->done, __ATOMIC_ACQUIRE)) {
		nanosleep(&ts, NULL);
		if (__atomic_load_n(&vm->throttle_pct, __ATOMIC_RELAXED))
			for (unsigned int i = 0; i < vm->nr_vcpus; i++)
				vcpu_kick(vm->vcpus[i]);
	}
	return NULL;
}

/* A snapshot goes to FILE.tmp, linked to FILE once complete and on disk:
 * no half-written FILE, and an existing one is never replaced. */
static int mig_snap_open(struct mig *g, struct ferr *e)
{
	int fd;

	if (access(g->path, F_OK) == 0)
		return ferr_set(e, -EEXIST, "%s exists already; remove it or choose another name",
				g->path);
	fd = open(g->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return ferr_errno(e, -errno, "cannot create %s%s", g->tmp,
				  errno == EEXIST ? " (left by an earlier snapshot? remove it)" : "");
	pthread_mutex_lock(&g->lock);
	g->fd = fd;
	pthread_mutex_unlock(&g->lock);
	return fd;
}

static int mig_snap_finish(struct mig *g, int fd, struct ferr *e)
{
	if (fsync(fd) < 0)
		return ferr_errno(e, -errno, "cannot write %s to disk", g->tmp);
	if (link(g->tmp, g->path) < 0)
		return ferr_errno(e, -errno, "cannot create %s", g->path);
	return 0;
}

/* The whole source side; returns the outcome, the reason in @e. */
/* Stop the guest for the copy that ends a migration or a snapshot: pause
 * the vCPUs, then quiesce the devices on the loop.  *@paused and
 * *@quiesced say what the caller must undo on failure (even a failed
 * quiesce leaves some devices to resume); @t_pause and @t_stopped time
 * the downtime. */
static int mig_stop_vm(struct mig *g, bool *paused, bool *quiesced, uint64_t *t_pause,
		       uint64_t *t_stopped, struct ferr *e)
{
	int ret;

	*t_pause = now_ns();
	ret = vm_pause(&g->vmm->vm);
	if (ret < 0)
		return ferr_set(e, ret, "the VM is stopping");
	*paused = true;
	*quiesced = true;
	ret = mig_loop_call(g, MIG_CALL_QUIESCE);
	if (ret < 0)
		return ferr_errno(e, ret, "cannot quiesce the virtio devices");
	*t_stopped = now_ns();
	return 0;
}

static enum mig_outcome mig_run(struct mig *g, struct mig_progress *pr, struct ferr *e)
{
	struct vm *vm = &g->vmm->vm;
	struct mig_writer w = { .buf = NULL };
	struct mig_ram *ram = NULL;
	struct mig_ram_round rd;
	enum mig_outcome out = MIG_OUT_FAILED;
	bool snap = g->path != NULL;
	uint64_t max_down = (uint64_t)(g->p.max_downtime_ms ? g->p.max_downtime_ms :
				       MIG_DEFAULT_DOWNTIME_MS) * 1000000ULL;
	uint64_t t0 = now_ns(), rtt, send_ns = 0, send_bytes = 0, best = UINT64_MAX;
	uint64_t t_pause = 0, t_stopped = 0, t_ram = 0;
	unsigned int no_progress = 0;
	void *blob = NULL;
	uint32_t blob_len;
	bool paused = false, quiesced = false;
	struct mig_chan ch;
	int64_t dirty;
	int fd, ret;

	fd = snap ? mig_snap_open(g, e) : mig_connect(g, e);
	if (fd < 0)
		return mig_cancelled(g) ? MIG_OUT_CANCELLED : snap ? MIG_OUT_FAILED : MIG_OUT_CONNECT;
	/* Authenticated both ways before a byte of the VM goes out. */
	ret = mig_tls_client(snap ? NULL : g->vmm->mig_tls, fd, g->host, &ch, e);
	if (ret < 0) {
		out = mig_cancelled(g) ? MIG_OUT_CANCELLED :
		      ret == -EACCES || ret == -EPROTO ? MIG_OUT_REFUSED : MIG_OUT_CONNECT;
		goto out;
	}
	ret = mig_writer_init(&w, fd, 4 * MiB);
	if (ret < 0) {
		ferr_set(e, ret, "out of memory");
		goto out;
	}
	w.ch.tls = ch.tls;
	w.cancel = &g->cancel;
	w.max_bw = g->p.max_bandwidth;

	/* A snapshot that is not live: stop everything as at switchover
	 * first, then one pass over RAM. */
	if (snap && !g->p.live) {
		ret = mig_stop_vm(g, &paused, &quiesced, &t_pause, &t_stopped, e);
		if (ret < 0)
			goto out;
	}

	/* Preamble and machine: the destination answers before any RAM. */
	ret = mig_machine_save(vm, &blob, &blob_len, e);
	if (ret < 0)
		goto out;
	rtt = now_ns();
	if ((ret = mig_put_preamble(&w)) < 0 ||
	    (ret = mig_put_rec(&w, MIG_REC_MACHINE, blob, blob_len)) < 0 ||
	    (ret = mig_put_section(&w)) < 0) {
		ferr_errno(e, ret, "cannot send to %s", g->uri);
		out = mig_send_failed(g, &ch, ret, e);
		goto out;
	}
	free(blob);
	blob = NULL;
	ret = snap ? 0 : mig_wait_reply(&ch, MIG_REPLY_READY, NULL, 0, MIG_READY_TIMEOUT_MS, e);
	if (ret < 0) {
		out = ret == -EREMOTEIO || ret == -EACCES ? MIG_OUT_REFUSED :
		      mig_cancelled(g) ? MIG_OUT_CANCELLED : MIG_OUT_CONNECT;
		goto out;
	}
	rtt = now_ns() - rtt;

	ret = mig_ram_create(vm, &ram, e);
	if (ret < 0)
		goto out;
	ret = mig_ram_log_start(ram, e);
	if (ret < 0)
		goto out;
	for (int i = 0; i < vm->mem.nr_regions; i++)
		pr->ram_pages += vm->mem.regions[i].size / MIG_PAGE_SIZE;
	pr->phase = PH_ACTIVE;
	pr->remaining_pages = pr->ram_pages;
	mig_set_progress(g, pr);

	for (bool first = true;; first = false) {
		uint64_t fixed, expect, dt;

		ret = mig_ram_send(ram, &w, first, &rd, e);
		if (ret < 0) {
			out = mig_send_failed(g, &ch, ret, e);
			goto out;
		}
		pr->round++;
		pr->bytes = w.bytes;
		pr->pages += rd.pages;
		pr->zero_pages += rd.zero_pages;
		send_ns += rd.ns;
		send_bytes += rd.bytes;
		if (paused)             /* not live: all of RAM went in one pass */
			break;
		dirty = mig_ram_sync(ram, e);
		if (dirty < 0)
			goto out;
		/* The link's speed over everything sent so far; the dirty
		 * rate over the round that just ended. */
		pr->bandwidth = send_ns ? send_bytes * 1000000000ULL / send_ns : 0;
		if (pr->bandwidth < 1 * MiB)
			pr->bandwidth = 1 * MiB;
		dt = MAX(rd.ns, (uint64_t)1000);
		pr->dirty_rate = (uint64_t)dirty * MIG_PAGE_SIZE * 1000000000ULL / dt;
		/* The switchover's fixed cost: stopping vCPUs and saving
		 * state (about 0.5 ms per vCPU here), a round trip, the
		 * destination's load. */
		fixed = rtt + 1000000ULL + vm->nr_vcpus * 500000ULL;
		expect = (uint64_t)dirty * MIG_PAGE_SIZE * 1000000000ULL / pr->bandwidth + fixed;
		pr->remaining_pages = dirty;
		pr->expected_downtime_ns = expect;
		if (expect <= max_down && snap)
			break;          /* a file: nothing to wait for */
		if (expect <= max_down) {
			/* Let the destination take in what the socket buffers
			 * still hold, or it would count as downtime; then look
			 * again at what the guest dirtied meanwhile. */
			if ((ret = mig_put_rec(&w, MIG_REC_SYNC, NULL, 0)) < 0 ||
			    (ret = mig_flush(&w)) < 0) {
				ferr_errno(e, ret, "cannot send to %s", g->uri);
				out = mig_send_failed(g, &ch, ret, e);
				goto out;
			}
			ret = mig_wait_reply(&ch, MIG_REPLY_SYNC, NULL, 0, MIG_DONE_TIMEOUT_MS, e);
			if (ret < 0) {
				out = ret == -EREMOTEIO ? MIG_OUT_REFUSED :
				      mig_cancelled(g) ? MIG_OUT_CANCELLED : MIG_OUT_CONNECT;
				goto out;
			}
			dirty = mig_ram_sync(ram, e);
			if (dirty < 0)
				goto out;
			expect = (uint64_t)dirty * MIG_PAGE_SIZE * 1000000000ULL / pr->bandwidth + fixed;
			pr->remaining_pages = dirty;
			pr->expected_downtime_ns = expect;
			if (expect <= max_down)
				break;
		}
		if (mig_cancelled(g)) {
			out = MIG_OUT_CANCELLED;
			goto out;
		}
		if (g->p.timeout_s && now_ns() - t0 > g->p.timeout_s * 1000000000ULL) {
			ferr_set(e, -ETIMEDOUT, "did not converge within %u s: %lld pages still dirty, %.0f MiB/s dirtied vs %.0f MiB/s sent",
				 g->p.timeout_s, (long long)dirty, pr->dirty_rate / (double)MiB,
				 pr->bandwidth / (double)MiB);
			out = MIG_OUT_TIMEOUT;
			goto out;
		}
		/* The guest dirties more than half of what the link takes:
		 * rounds cannot shrink fast enough, so throttle at once to
		 * what brings its unthrottled rate under half the link,
		 * instead of waiting two rounds per step of the ramp below. */
		if (g->p.auto_converge && pr->dirty_rate * 2 > pr->bandwidth) {
			uint64_t raw = pr->dirty_rate * 100 / (100 - MIN(pr->throttle_pct, 99u));
			unsigned int want = 100 - (unsigned int)MIN(pr->bandwidth * 50 / raw, 100ULL);

			want = MIN(want, MIG_THROTTLE_JUMP_MAX);
			if (want > pr->throttle_pct) {
				pr->throttle_pct = want;
				__atomic_store_n(&vm->throttle_pct, want, __ATOMIC_RELAXED);
				no_progress = 0;
			}
		}
		/* Not getting closer: throttle the vCPUs, harder each round. */
		if (expect < best * 9 / 10) {
			best = expect;
			no_progress = 0;
		} else if (++no_progress >= 2 && g->p.auto_converge) {
			pr->throttle_pct = pr->throttle_pct ? MIN(pr->throttle_pct + 10, 99u) : 20;
			__atomic_store_n(&vm->throttle_pct, pr->throttle_pct, __ATOMIC_RELAXED);
			no_progress = 0;
		}
		if (!pr->stalled && pr->round > 30 &&
		    (pr->throttle_pct >= 99 || !g->p.auto_converge) && expect >= best) {
			pr->stalled = true;
			log_warn("migration to %s stalls: the guest dirties %.0f MiB/s, the link takes %.0f MiB/s%s",
				 g->uri, pr->dirty_rate / (double)MiB, pr->bandwidth / (double)MiB,
				 g->p.auto_converge ? " even at 99% throttle" :
				 " (try --auto-converge on)");
		}
		mig_set_progress(g, pr);
	}

	/* Switchover. */
	pr->phase = PH_SWITCHOVER;
	mig_set_progress(g, pr);
	if (!paused) {
		ret = mig_stop_vm(g, &paused, &quiesced, &t_pause, &t_stopped, e);
		if (ret < 0)
			goto out;
	}
	ret = mig_put_rec(&w, MIG_REC_SWITCHOVER, NULL, 0);
	if (ret < 0 || (dirty = mig_ram_sync(ram, e)) < 0 ||
	    (ret = mig_ram_send(ram, &w, false, &rd, e)) < 0) {
		if (ret < 0) {
			ferr_errno(e, ret, "cannot send to %s", g->uri);
			out = mig_send_failed(g, &ch, ret, e);
		}
		goto out;
	}
	pr->pages += rd.pages;
	pr->zero_pages += rd.zero_pages;
	t_ram = now_ns();
	ret = mig_state_save(vm, &blob, &blob_len, e);
	if (ret < 0)
		goto out;
	if ((ret = mig_put_rec(&w, MIG_REC_STATE, blob, blob_len)) < 0 ||
	    (ret = mig_put_section(&w)) < 0 ||
	    (ret = mig_put_rec(&w, MIG_REC_END, NULL, 0)) < 0 || (ret = mig_flush(&w)) < 0) {
		ferr_errno(e, ret, "cannot send to %s", g->uri);
		out = mig_send_failed(g, &ch, ret, e);
		goto out;
	}
	if (snap)
		ret = mig_snap_finish(g, fd, e);
	else
		ret = mig_wait_reply(&ch, MIG_REPLY_DONE, &pr->dest_load_us,
				     sizeof(pr->dest_load_us), MIG_DONE_TIMEOUT_MS, e);
	if (ret < 0 && snap)
		goto out;
	if (ret < 0) {
		out = ret == -EREMOTEIO ? MIG_OUT_REFUSED : MIG_OUT_CONNECT;
		goto out;
	}
	pr->downtime_ns = now_ns() - t_pause;
	log_info("%s: vCPUs stopped in %.2f ms, last %llu pages in %.2f ms, state (%u bytes) and answer in %.2f ms",
		 snap ? "snapshot" : "migration switchover", (t_stopped - t_pause) / 1e6, (unsigned long long)rd.pages, (t_ram - t_stopped) / 1e6,
		 blob_len, (now_ns() - t_ram) / 1e6);
	pr->bytes = w.bytes;
	pr->remaining_pages = 0;
	out = MIG_OUT_COMPLETED;
out:
	free(blob);
	if (ram) {
		mig_ram_log_stop(ram);
		mig_ram_destroy(ram);
	}
	__atomic_store_n(&vm->throttle_pct, 0, __ATOMIC_RELAXED);
	/* Before the destination's DONE the source still owns the VM; after
	 * a snapshot it keeps it (paused if it was paused before). */
	if (quiesced && (out != MIG_OUT_COMPLETED || snap))
		mig_loop_call(g, MIG_CALL_RESUME);
	if (paused && (out != MIG_OUT_COMPLETED || snap) && !g->was_paused)
		vm_resume(vm);
	if (g->tmp)
		unlink(g->tmp);
	mig_writer_free(&w);
	pthread_mutex_lock(&g->lock);
	g->fd = -1;
	pthread_mutex_unlock(&g->lock);
	mig_tls_end(&ch);
	close(fd);
	pr->total_ns = now_ns() - t0;
	pr->bytes = MAX(pr->bytes, w.bytes);
	return out;
}

void *mig_thread(void *arg)
{
	struct mig *g = arg;
	struct mig_progress pr = { .phase = PH_SETUP };
	struct ferr e = { "" };

	pthread_setname_np(pthread_self(), "migrate");
	seccomp_enter(SECCOMP_ROLE_MIGRATION);
	pr.outcome = mig_run(g, &pr, &e);
	if (pr.outcome == MIG_OUT_CANCELLED && !e.msg[0])
		snprintf(e.msg, sizeof(e.msg), "cancelled");
	if (pr.outcome != MIG_OUT_COMPLETED)
		snprintf(pr.error, sizeof(pr.error), "%s", e.msg);
	pr.phase = PH_DONE;
	pthread_mutex_lock(&g->lock);
	g->prog = pr;
	pthread_mutex_unlock(&g->lock);
	__atomic_store_n(&g->done, 1, __ATOMIC_RELEASE);
	mig_notify(g);
	return NULL;
}

