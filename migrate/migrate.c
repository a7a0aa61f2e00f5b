/* Migration's control side: start, cancel, status and tear-down of an
 * outgoing migration or snapshot, and the event loop's end of its thread
 * (source.c): device quiesce/resume calls run here, on the loop, and
 * progress becomes "migration" events.  The destination is incoming.c.
 * Snapshots are the same stream over a file (no replies): ferry snapshot
 * writes one and the VM keeps running, ferry run --restore reads one. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ferry/api.h"
#include "ferry/log.h"
#include "ferry/loop.h"
#include "ferry/migrate.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vmm.h"

#include "mig_int.h"

const char *mig_outcome_name(enum mig_outcome o)
{
	switch (o) {
	case MIG_OUT_NONE: return "none";
	case MIG_OUT_COMPLETED: return "completed";
	case MIG_OUT_FAILED: return "failed";
	case MIG_OUT_CONNECT: return "connection-failed";
	case MIG_OUT_REFUSED: return "refused";
	case MIG_OUT_TIMEOUT: return "timeout";
	case MIG_OUT_CANCELLED: return "cancelled";
	}
	return "unknown";
}

static const char *mig_phase_name(enum mig_phase p)
{
	switch (p) {
	case PH_NONE: return "none";
	case PH_SETUP: return "setup";
	case PH_ACTIVE: return "active";
	case PH_SWITCHOVER: return "switchover";
	case PH_DONE: return "done";
	}
	return "unknown";
}

int mig_parse_uri(const char *uri, char *host, size_t host_len, char *port,
		  size_t port_len, struct ferr *e)
{
	const char *h, *colon;
	uint64_t pn;

	if (!uri || strncmp(uri, "tcp:", 4))
		return ferr_set(e, -EINVAL, "'%s' is not tcp:HOST:PORT", uri ? uri : "");
	h = uri + 4;
	colon = strrchr(h, ':');
	if (!colon || colon == h || parse_uint(colon + 1, 1, 65535, &pn) < 0)
		return ferr_set(e, -EINVAL, "'%s' is not tcp:HOST:PORT (port 1-65535)", uri);
	if (*h == '[' && colon[-1] == ']')     /* tcp:[::1]:4444 */
		h++, colon--;
	if ((size_t)(colon - h) >= host_len)
		return ferr_set(e, -EINVAL, "'%s': host name too long", uri);
	memcpy(host, h, colon - h);
	host[colon - h] = '\0';
	snprintf(port, port_len, "%llu", (unsigned long long)pn);
	return 0;
}

static struct json_object *mig_progress_json(const struct mig_progress *p)
{
	struct json_object *o = json_object_new_object();

#define JI(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	json_object_object_add(o, "status", json_object_new_string(
		p->phase == PH_DONE ? mig_outcome_name(p->outcome) : mig_phase_name(p->phase)));
	if (p->phase == PH_DONE && p->outcome != MIG_OUT_COMPLETED)
		json_object_object_add(o, "error", json_object_new_string(p->error));
	JI("round", p->round);
	JI("ram_pages", p->ram_pages);
	JI("remaining_pages", p->remaining_pages);
	JI("bytes", p->bytes);
	JI("pages", p->pages);
	JI("zero_pages", p->zero_pages);
	JI("bandwidth_bps", p->bandwidth);
	JI("dirty_rate_bps", p->dirty_rate);
	json_object_object_add(o, "expected_downtime_ms",
			       json_object_new_double(p->expected_downtime_ns / 1e6));
	JI("throttle_pct", p->throttle_pct);
	json_object_object_add(o, "stalled", json_object_new_boolean(p->stalled));
	JI("rounds", p->round);
	json_object_object_add(o, "total_ms", json_object_new_double(p->total_ns / 1e6));
	json_object_object_add(o, "downtime_ms", json_object_new_double(p->downtime_ns / 1e6));
	json_object_object_add(o, "dest_load_ms", json_object_new_double(p->dest_load_us / 1e3));
#undef JI
	return o;
}

static void mig_join(struct mig *g)
{
	if (g->joined)
		return;
	pthread_join(g->thread, NULL);
	pthread_join(g->kicker, NULL);
	g->joined = true;
}

/* On the event loop: progress, then the end. */
static void mig_on_notify(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct mig *g = opaque;
	struct vmm *m = g->vmm;
	struct mig_progress p;
	enum mig_call call;
	eventfd_t v;

	(void)l; (void)events;
	if (eventfd_read(fd, &v) < 0)
		return;
	pthread_mutex_lock(&g->lock);
	call = g->call;
	pthread_mutex_unlock(&g->lock);
	if (call != MIG_CALL_NONE) {
		int ret = 0;

		if (call == MIG_CALL_QUIESCE)
			ret = mig_devices_quiesce(&m->vm);
		else
			mig_devices_resume(&m->vm);
		pthread_mutex_lock(&g->lock);
		g->call = MIG_CALL_NONE;
		g->call_ret = ret;
		pthread_cond_broadcast(&g->call_cond);
		pthread_mutex_unlock(&g->lock);
	}
	pthread_mutex_lock(&g->lock);
	p = g->prog;
	pthread_mutex_unlock(&g->lock);
	if (p.phase != PH_DONE || !__atomic_load_n(&g->done, __ATOMIC_ACQUIRE)) {
		api_event(m->api, "migration", mig_progress_json(&p));
		return;
	}
	mig_join(g);
	loop_del(m->loop, g->notify_efd);
	api_event(m->api, "migration", mig_progress_json(&p));
	if (p.outcome == MIG_OUT_COMPLETED && g->path) {
		log_info("snapshot written to %s in %.1f ms (paused %.2f ms, %llu bytes)",
			 g->path, p.total_ns / 1e6, p.downtime_ns / 1e6, (unsigned long long)p.bytes);
	} else if (p.outcome == MIG_OUT_COMPLETED) {
		log_info("migrated to %s in %.1f ms (downtime %.2f ms, %llu bytes, %llu rounds)",
			 g->uri, p.total_ns / 1e6, p.downtime_ns / 1e6,
			 (unsigned long long)p.bytes, (unsigned long long)p.round);
		vm_request_stop(&m->vm, VM_STOP_MIGRATED);
	} else {
		log_warn("%s to %s %s: %s; the VM keeps running here",
			 g->path ? "snapshot" : "migration", g->uri,
			 mig_outcome_name(p.outcome), p.error);
	}
}

bool mig_active(const struct vmm *m)
{
	return m->mig && !__atomic_load_n(&m->mig->done, __ATOMIC_ACQUIRE);
}

static void mig_free(struct mig *g)
{
	if (!g)
		return;
	if (g->notify_efd >= 0)
		close(g->notify_efd);
	pthread_cond_destroy(&g->call_cond);
	pthread_mutex_destroy(&g->lock);
	free(g->path);
	free(g->tmp);
	free(g);
}

static int mig_snap_prepare(struct vmm *m, struct mig *g, const char *path, struct ferr *e)
{
	if (!path[0])
		return ferr_set(e, -EINVAL, "an empty snapshot file name");
	if (strlen(path) >= sizeof(g->uri))
		return ferr_set(e, -EINVAL, "snapshot file name longer than %zu bytes",
				sizeof(g->uri) - 1);
	if (access(path, F_OK) == 0)
		return ferr_set(e, -EEXIST, "%s exists already; remove it or choose another name",
				path);
	g->path = strdup(path);
	if (!g->path || asprintf(&g->tmp, "%s.tmp", path) < 0) {
		g->tmp = NULL;
		return ferr_set(e, -ENOMEM, "out of memory");
	}
	g->was_paused = m->state == VMM_PAUSED;
	return 0;
}

int mig_start(struct vmm *m, const char *uri, const struct mig_params *p, struct ferr *e)
{
	struct mig *g;
	int ret;

	if (mig_active(m))
		return ferr_set(e, -EBUSY, "a migration to %s is already running", m->mig->uri);
	/* A device whose state is not in the stream would break on the
	 * destination: refuse rather than move it. */
	for (unsigned int i = 0; i < m->vm.nr_virtio; i++) {
		const struct virtio_dev *d = m->vm.virtio[i];

		if (!virtio_dev_migratable(d))
			return ferr_set(e, -ENOTSUP, "cannot migrate %s: its device or transport cannot save its state",
					d->name);
		if (d->device_id == VIRTIO_ID_NET &&
		    virtio_net_migrate_prepare(m->vm.virtio[i], !p->snapshot, e) < 0)
			return -ENOTSUP;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return ferr_set(e, -ENOMEM, "out of memory");
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->call_cond, NULL);
	g->vmm = m;
	g->p = *p;
	g->fd = -1;
	g->notify_efd = -1;
	snprintf(g->uri, sizeof(g->uri), "%s", uri);
	if (p->snapshot) {
		ret = mig_snap_prepare(m, g, uri, e);
	} else if (p->live) {
		ret = ferr_set(e, -EINVAL, "live applies to snapshots only");
	} else if (!m->mig_tls && !m->cfg->insecure) {
		/* As --incoming: a VM goes out in the clear only when asked. */
		ret = ferr_set(e, -EPERM, "migrating in plain TCP refused: this VM's ferry run has no --tls-psk or --tls-cert/--tls-key/--tls-ca (or --insecure to allow an unauthenticated migration)");
	} else {
		ret = mig_parse_uri(uri, g->host, sizeof(g->host), g->port, sizeof(g->port), e);
		if (ret == 0 && !m->mig_tls)
			log_warn("migration to %s in plain TCP (--insecure): anyone on the path can read or alter the VM",
				 uri);
	}
	if (ret < 0)
		goto fail;
	g->notify_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->notify_efd < 0) {
		ret = ferr_errno(e, -errno, "cannot create an eventfd");
		goto fail;
	}
	ret = loop_add(m->loop, g->notify_efd, EPOLLIN, mig_on_notify, g);
	if (ret < 0) {
		ferr_errno(e, ret, "cannot watch the migration");
		goto fail;
	}
	g->prog.phase = PH_SETUP;
	g->start_ns = now_ns();
	ret = -pthread_create(&g->thread, NULL, mig_thread, g);
	if (ret == 0) {
		ret = -pthread_create(&g->kicker, NULL, mig_kicker, g);
		if (ret < 0) {
			__atomic_store_n(&g->cancel, 1, __ATOMIC_RELAXED);
			pthread_join(g->thread, NULL);
		}
	}
	if (ret < 0) {
		loop_del(m->loop, g->notify_efd);
		ferr_errno(e, ret, "cannot start the migration thread");
		goto fail;
	}
	/* The previous migration's record goes; its thread was joined. */
	mig_free(m->mig);
	m->mig = g;
	log_info("%s to %s started", p->snapshot ? "snapshot" : "migration", uri);
	return 0;
fail:
	mig_free(g);
	return ret;
}

int mig_cancel(struct vmm *m)
{
	struct mig *g = m->mig;
	int ret = 0;

	if (!mig_active(m))
		return -ENOENT;
	pthread_mutex_lock(&g->lock);
	/* Once the state is on its way the destination may be running it. */
	if (g->prog.phase == PH_SWITCHOVER) {
		ret = -EBUSY;
	} else {
		__atomic_store_n(&g->cancel, 1, __ATOMIC_RELAXED);
		if (g->fd >= 0)
			shutdown(g->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&g->lock);
	return ret;
}

struct json_object *mig_status_json(struct vmm *m)
{
	struct mig_progress p = { .phase = PH_NONE };
	struct json_object *o;

	if (m->mig) {
		pthread_mutex_lock(&m->mig->lock);
		p = m->mig->prog;
		pthread_mutex_unlock(&m->mig->lock);
		if (p.phase != PH_DONE)
			p.total_ns = now_ns() - m->mig->start_ns;
	}
	o = mig_progress_json(&p);
	if (m->mig)
		json_object_object_add(o, "to", json_object_new_string(m->mig->uri));
	return o;
}

void mig_destroy(struct vmm *m)
{
	struct mig *g = m->mig;

	if (!g)
		return;
	if (mig_active(m)) {
		__atomic_store_n(&g->cancel, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&g->lock);
		if (g->fd >= 0)
			shutdown(g->fd, SHUT_RDWR);
		pthread_mutex_unlock(&g->lock);
	}
	mig_join(g);
	loop_del(m->loop, g->notify_efd);
	mig_free(g);
	m->mig = NULL;
}
