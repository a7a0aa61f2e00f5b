/* Debug console at port 0x402 (QEMU's isa-debugcon, where SeaBIOS and
 * OVMF print): bytes are collected into lines and each line goes to the log
 * at info level.  Reads return 0xe9, which firmware probes for. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/platform.h"

#define DEBUGPORT_LINE_MAX	256
#define DEBUGPORT_READ_VALUE	0xe9

struct debugport {
	pthread_mutex_t lock;
	struct bus *pio;
	size_t len;
	char line[DEBUGPORT_LINE_MAX + 1];
};

/* Caller holds the lock. */
static void debugport_flush(struct debugport *d)
{
	if (!d->len)
		return;
	d->line[d->len] = '\0';
	log_info("debug port: %s", d->line);
	d->len = 0;
}

static void debugport_putc(struct debugport *d, uint8_t c)
{
	if (c == '\n') {
		debugport_flush(d);
		return;
	}
	if (c == '\r')
		return;
	/* The guest must not be able to drive the operator's terminal with
	 * escape sequences through our log. */
	if ((c < 0x20 && c != '\t') || c >= 0x7f)
		c = '.';
	if (d->len == DEBUGPORT_LINE_MAX)
		debugport_flush(d);
	d->line[d->len++] = (char)c;
}

static void debugport_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
	data[0] = DEBUGPORT_READ_VALUE;
}

static void debugport_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct debugport *d = opaque;

	if (off != 0 || len < 1)
		return;
	pthread_mutex_lock(&d->lock);
	debugport_putc(d, data[0]);
	pthread_mutex_unlock(&d->lock);
}

static const struct bus_ops debugport_ops = {
	.read = debugport_read,
	.write = debugport_write,
};

struct debugport *debugport_create(struct bus *pio)
{
	struct debugport *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	d->pio = pio;
	ret = bus_register(pio, PLAT_DEBUG_PORT, 1, &debugport_ops, d, "debugport");
	if (ret < 0) {
		log_error("debug port: cannot claim port 0x%x: %s", PLAT_DEBUG_PORT,
			  strerror(-ret));
		pthread_mutex_destroy(&d->lock);
		free(d);
		errno = -ret;
		return NULL;
	}
	return d;
}

void debugport_destroy(struct debugport *d)
{
	if (!d)
		return;
	bus_unregister(d->pio, PLAT_DEBUG_PORT, d);
	/* A last line without its newline is still worth seeing. */
	debugport_flush(d);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
