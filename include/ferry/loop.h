/* The event loop: one epoll thread that owns host I/O (stdin, signals,
 * timers, later queue notifications and disk completions).  Handlers run on
 * the loop thread, one at a time. */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/* @events: EPOLLIN/EPOLLOUT...; the handler gets the ready events. */
typedef void (*loop_fn)(struct loop *l, int fd, uint32_t events, void *opaque);

struct loop *loop_create(void);
void loop_destroy(struct loop *l);
int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *opaque);
int loop_del(struct loop *l, int fd);
/* Change the events @fd waits for (e.g. add EPOLLOUT while output is
 * pending). */
int loop_mod(struct loop *l, int fd, uint32_t events);
/* Run until loop_quit(); returns 0, or a negative errno if epoll fails. */
int loop_run(struct loop *l);
void loop_quit(struct loop *l);

#endif
