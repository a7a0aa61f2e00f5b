/* The control socket: JSON requests and replies, one per line, plus event
 * lines for subscribed clients.  The protocol is described at the top of
 * src/api.c.  The server lives on the event loop, so every request runs on
 * the thread that owns VM state, between two events, never concurrently
 * with another. */
#ifndef FERRY_API_H
#define FERRY_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ferry/err.h"
#include "ferry/vmm.h"

struct vmm;
struct api;
struct json_object;
struct mig_params;

/* Longest request line, newline excluded; longer ones get "too_large". */
#define API_LINE_MAX (64 * 1024)
/* Clients connected at once; one more gets "too_many_clients" and is closed. */
#define API_MAX_CLIENTS 16
/* Replies and events queued for a client that does not read; past this the
 * client is dropped rather than letting it hold ferry's memory. */
#define API_OUT_MAX (1024 * 1024)

/* Listen on cfg->api_path (mode 0600), or on the socket systemd passed
 * (notify_listen_fd()).  Sets m->api. */
int api_create(struct vmm *m, struct ferr *e);
void api_destroy(struct api *a);               /* NULL is fine */

/* Tell subscribed clients that the VM's state changed.  NULL is fine. */
void api_event_state(struct api *a, const char *state);
/* Send event @name with the members of @fields (may be NULL; ownership is
 * taken) to subscribed clients: {"event":NAME,"timestamp":...,FIELDS}.
 * For later events (migration progress, guest panic).  NULL @a is fine. */
void api_event(struct api *a, const char *name, struct json_object *fields);

/* Listen on a Unix stream socket at @path (non-blocking, mode 0600).  A
 * stale socket (nobody listening) is replaced; a live one or a non-socket
 * is an error naming @flag.  @id remembers the file so that
 * api_unlink_unix() removes it only if it is still ours.  Returns the fd. */
struct api_sock_id {
	dev_t dev;
	ino_t ino;
};
int api_listen_unix(const char *flag, const char *path, struct api_sock_id *id,
		    struct ferr *e);
void api_unlink_unix(const char *path, const struct api_sock_id *id);

/* --- The request dispatcher, apart from the sockets so that it can be
 * tested without KVM.  The server calls it with ops that act on a struct
 * vmm; tests pass fakes. --- */
struct api_ops {
	enum vmm_state (*state)(void *opaque);
	int (*pause)(void *opaque);
	int (*resume)(void *opaque);
	int (*shutdown)(void *opaque, unsigned int timeout_s);
	int (*stop)(void *opaque);
	/* New objects for the "status" and "stats" results; NULL on failure. */
	struct json_object *(*status)(void *opaque);
	struct json_object *(*stats)(void *opaque);
	/* Migration (migrate/migrate.c); NULL: not supported. */
	int (*migrate)(void *opaque, const char *uri, const struct mig_params *p,
		       struct ferr *e);
	int (*migrate_cancel)(void *opaque);
	struct json_object *(*migrate_status)(void *opaque);
};

/* What the dispatcher remembers about one connection. */
struct api_session {
	bool subscribed;
};

/* Handle one request line (without its newline; need not be
 * NUL-terminated).  Returns the reply object (never NULL but on out of
 * memory); the caller serializes and frees it. */
struct json_object *api_handle_line(const struct api_ops *ops, void *opaque,
				    struct api_session *s, const char *line,
				    size_t len);
/* The error reply the server sends when it cannot even read a request. */
struct json_object *api_error_reply(const char *code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
