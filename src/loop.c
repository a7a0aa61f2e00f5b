/* epoll-based event loop: a table of (fd, handler) and one dispatch loop.
 * After handling events it keeps polling epoll for a short while before it
 * sleeps: the next queue kick or disk completion usually follows within
 * microseconds, and waking a sleeping host CPU costs more than that. */
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

/* How long the loop polls after its last event before it sleeps: a bit
 * more than a fast disk's 4 KiB read, so that a request chain at queue
 * depth 1 never sleeps; an idle loop stops polling after this. */
#define LOOP_POLL_NS	150000ull

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
	while (!l->quit) {
		int timeout = poll_until && now_ns() < poll_until ? 0 : -1;
		int n = epoll_wait(l->epfd, evs, 32, timeout);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n > 0)
			poll_until = now_ns() + LOOP_POLL_NS;
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
