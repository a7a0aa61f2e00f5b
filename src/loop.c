/* epoll-based event loop: a table of (fd, handler) and one dispatch loop.
 * After handling events it keeps polling epoll for a short while before it
 * sleeps: the next queue kick or disk completion usually follows within
 * microseconds, and waking a sleeping host CPU costs more than that.  The
 * window adapts as KVM's halt polling does: it grows while events arrive
 * soon after the loop went to sleep and shrinks to nothing while they come
 * later than the window could reach, so that a loop waiting on a slow peer
 * (an iSCSI target on the same CPUs) does not burn the CPU the peer needs. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "ferry/util.h"

struct loop_source {
	int fd;
	loop_fn fn;
	void *opaque;
	struct loop_source *next;
};

struct loop {
	int epfd;
	bool quit;
	struct loop_source *sources;
	uint64_t poll_ns;               /* the current polling window */
};

struct loop *loop_create(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void loop_destroy(struct loop *l)
{
	if (!l)
		return;
	while (l->sources) {
		struct loop_source *s = l->sources;

		l->sources = s->next;
		free(s);
	}
	close(l->epfd);
	free(l);
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque)
{
	struct loop_source *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = events };

	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->fn = fn;
	s->opaque = opaque;
	ev.data.ptr = s;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(s);
		return err;
	}
	s->next = l->sources;
	l->sources = s;
	return 0;
}

int loop_del(struct loop *l, int fd)
{
	for (struct loop_source **p = &l->sources; *p; p = &(*p)->next) {
		struct loop_source *s = *p;

		/* A dead source may still carry a reused fd number. */
		if (s->fd != fd || !s->fn)
			continue;
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		/* Keep the source alive while this round's events may still
		 * point at it: mark it dead and free it after dispatch. */
		s->fn = NULL;
		return 0;
	}
	return -ENOENT;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	for (struct loop_source *s = l->sources; s; s = s->next) {
		struct epoll_event ev = { .events = events, .data.ptr = s };

		if (s->fd != fd || !s->fn)
			continue;
		return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

/* The longest the loop polls after its last event before it sleeps: a bit
 * more than a fast disk's 4 KiB read, so that a request chain at queue
 * depth 1 never sleeps; an idle loop stops polling after this.  The window
 * starts at LOOP_POLL_START_NS once an event shows up soon after a sleep. */
#define LOOP_POLL_MAX_NS	150000ull
#define LOOP_POLL_START_NS	10000ull

/* After a sleep of @slept_ns: widen the window if polling a little longer
 * would have caught the event, close it if nothing within reach came. */
static void loop_poll_adapt(struct loop *l, uint64_t slept_ns)
{
	if (slept_ns <= l->poll_ns)
		return;
	if (slept_ns > LOOP_POLL_MAX_NS)
		l->poll_ns /= 2;
	else if (l->poll_ns < LOOP_POLL_MAX_NS)
		l->poll_ns = l->poll_ns ? MIN(l->poll_ns * 2, LOOP_POLL_MAX_NS) : LOOP_POLL_START_NS;
	if (l->poll_ns < LOOP_POLL_START_NS / 2)
		l->poll_ns = 0;
}

static void loop_reap(struct loop *l)
{
	struct loop_source **p = &l->sources;

	while (*p) {
		struct loop_source *s = *p;

		if (!s->fn) {
			*p = s->next;
			free(s);
		} else {
			p = &s->next;
		}
	}
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[32];
	uint64_t poll_until = 0;

	l->quit = false;
	l->poll_ns = LOOP_POLL_MAX_NS;
	while (!l->quit) {
		uint64_t t = now_ns();
		int timeout = t < poll_until ? 0 : -1;
		int n = epoll_wait(l->epfd, evs, 32, timeout);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n > 0) {
			uint64_t now = now_ns();

			if (timeout < 0)
				loop_poll_adapt(l, now - t);
			poll_until = now + l->poll_ns;
		}
		for (int i = 0; i < n && !l->quit; i++) {
			struct loop_source *s = evs[i].data.ptr;

			if (s->fn)
				s->fn(l, s->fd, evs[i].events, s->opaque);
		}
		loop_reap(l);
	}
	return 0;
}

void loop_quit(struct loop *l)
{
	l->quit = true;
}
