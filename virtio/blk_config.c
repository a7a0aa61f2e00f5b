/* --disk: the option string of a file or iscsi:// disk turned into a
 * struct disk_config, every key checked here so that the device and the
 * backends can trust it (virtio/blk.c, blk_file.c, blk_iscsi*.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Absent only in the fuzz build (tests/fuzz/run.sh). */
#if __has_include("config.h")
#include "config.h"
#endif

#include "ferry/blk.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

/* config.h defines HAVE_* or leaves them undefined. */
#ifdef HAVE_LIBURING
#define BLK_HAVE_URING 1
#else
#define BLK_HAVE_URING 0
#endif
#ifdef HAVE_LIBAIO
#define BLK_HAVE_AIO 1
#else
#define BLK_HAVE_AIO 0
#endif

bool disk_is_iscsi(const char *path)
{
	return !strncmp(path, "iscsi://", 8);
}

static int parse_on_off(const char *key, const char *val, bool *out, struct ferr *e)
{
	if (!strcmp(val, "on") || !strcmp(val, "true") || !strcmp(val, "1"))
		*out = true;
	else if (!strcmp(val, "off") || !strcmp(val, "false") || !strcmp(val, "0"))
		*out = false;
	else
		return ferr_set(e, -EINVAL, "--disk: %s=%s: expected on or off", key, val);
	return 0;
}

/* ---- iscsi:// disks (virtio/blk_iscsi.c) ---- */

static bool disk_iscsi_key(const char *key)
{
	return !strcmp(key, "password-file") || !strcmp(key, "initiator") ||
	       !strcmp(key, "timeout") || !strcmp(key, "queue-depth") ||
	       !strcmp(key, "reservation");
}

static int disk_parse_iscsi_kv(const char *key, const char *val, struct disk_config *c,
			       struct ferr *e)
{
	uint64_t n;

	if (!strcmp(key, "password-file")) {
		if (!*val || strlen(val) >= sizeof(c->iscsi_password_file))
			return ferr_set(e, -EINVAL, "--disk: password-file= must be a path");
		strcpy(c->iscsi_password_file, val);
	} else if (!strcmp(key, "initiator")) {
		if (strncmp(val, "iqn.", 4) && strncmp(val, "eui.", 4) && strncmp(val, "naa.", 4))
			return ferr_set(e, -EINVAL, "--disk: initiator=%s: expected an iqn./eui./naa. name", val);
		if (strlen(val) >= sizeof(c->iscsi_initiator))
			return ferr_set(e, -EINVAL, "--disk: initiator=: at most %zu bytes",
					sizeof(c->iscsi_initiator) - 1);
		for (const char *p = val; *p; p++)
			if (*p <= ' ' || *p > '~')
				return ferr_set(e, -EINVAL, "--disk: initiator= must be printable ASCII without spaces");
		strcpy(c->iscsi_initiator, val);
	} else if (!strcmp(key, "timeout")) {
		if (parse_uint(val, 0, 86400, &n))
			return ferr_set(e, -EINVAL, "--disk: timeout=%s: expected seconds, 0 (wait forever) to 86400",
					val);
		c->iscsi_timeout_s = (unsigned int)n;
	} else if (!strcmp(key, "queue-depth")) {
		if (parse_uint(val, 1, VIRTIO_BLK_QUEUE_DEPTH, &n))
			return ferr_set(e, -EINVAL, "--disk: queue-depth=%s: expected 1 to %d", val,
					VIRTIO_BLK_QUEUE_DEPTH);
		c->iscsi_queue_depth = (unsigned int)n;
	} else {
		c->reservation_set = true;
		if (!strcmp(val, "takeover")) {
			c->reservation = c->reservation_takeover = true;
			return 0;
		}
		c->reservation_takeover = false;
		if (parse_on_off(key, val, &c->reservation, e))
			return ferr_set(e, -EINVAL, "--disk: reservation=%s: expected on, off or takeover", val);
	}
	return 0;
}

/* Keys that belong to the other kind of disk are errors, not no-ops. */
static int disk_check_kind(const struct disk_config *c, bool file_keys, bool iscsi_keys,
			   struct ferr *e)
{
	if (disk_is_iscsi(c->path) && file_keys)
		return ferr_set(e, -EINVAL, "--disk: cache=, engine= and shared= apply to files, not to iscsi:// disks");
	if (!disk_is_iscsi(c->path) && iscsi_keys)
		return ferr_set(e, -EINVAL,
				"--disk: password-file=, initiator=, timeout=, queue-depth= and reservation= apply to iscsi:// disks only");
	return 0;
}

static int disk_parse_kv(char *key, char *val, struct disk_config *c, struct ferr *e)
{
	uint64_t n;

	if (!strcmp(key, "path")) {
		if (!*val)
			return ferr_set(e, -EINVAL, "--disk: path= is empty");
		c->path = val;
	} else if (!strcmp(key, "readonly")) {
		return parse_on_off(key, val, &c->readonly, e);
	} else if (!strcmp(key, "shared")) {
		return parse_on_off(key, val, &c->shared, e);
	} else if (!strcmp(key, "cache")) {
		if (!strcmp(val, "none"))
			c->cache = BLK_CACHE_NONE;
		else if (!strcmp(val, "writeback"))
			c->cache = BLK_CACHE_WRITEBACK;
		else
			return ferr_set(e, -EINVAL, "--disk: cache=%s: expected none or writeback", val);
	} else if (!strcmp(key, "engine")) {
		if (!strcmp(val, "io_uring"))
			c->engine = BLK_ENGINE_IO_URING;
		else if (!strcmp(val, "aio"))
			c->engine = BLK_ENGINE_AIO;
		else if (!strcmp(val, "sync"))
			c->engine = BLK_ENGINE_SYNC;
		else
			return ferr_set(e, -EINVAL, "--disk: engine=%s: expected io_uring, aio or sync", val);
		if ((c->engine == BLK_ENGINE_IO_URING && !BLK_HAVE_URING) ||
		    (c->engine == BLK_ENGINE_AIO && !BLK_HAVE_AIO))
			return ferr_set(e, -ENOTSUP, "--disk: engine=%s is not available in this build (use engine=sync)",
					val);
	} else if (!strcmp(key, "serial")) {
		if (strlen(val) > VIRTIO_BLK_ID_BYTES)
			return ferr_set(e, -EINVAL, "--disk: serial=%s: at most %d characters", val,
					VIRTIO_BLK_ID_BYTES);
		for (const char *p = val; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				return ferr_set(e, -EINVAL, "--disk: serial= must be printable ASCII");
		strcpy(c->serial, val);
	} else if (!strcmp(key, "queues")) {
		if (parse_uint(val, 1, VIRTIO_MAX_QUEUES, &n))
			return ferr_set(e, -EINVAL, "--disk: queues=%s: expected 1 to %d", val,
					VIRTIO_MAX_QUEUES);
		c->queues = (unsigned int)n;
	} else if (disk_iscsi_key(key)) {
		return disk_parse_iscsi_kv(key, val, c, e);
	} else {
		return ferr_set(e, -EINVAL,
				"--disk: unknown key '%s' (keys: path, readonly, cache, engine, serial, queues, shared; for iscsi:// also password-file, initiator, timeout, queue-depth, reservation)",
				key);
	}
	return 0;
}

/* "path=FILE[,key=value...]" or "FILE[,key=value...]".  On success
 * out->path is a malloc'd string owned by @out for the process' life. */
int disk_config_parse(const char *spec, struct disk_config *out, struct ferr *e)
{
	struct disk_config c = {
		.cache = BLK_CACHE_WRITEBACK,
		.engine = BLK_HAVE_URING ? BLK_ENGINE_IO_URING :
			  BLK_HAVE_AIO ? BLK_ENGINE_AIO : BLK_ENGINE_SYNC,
		.queues = 1,
	};
	char *copy, *field, *save = NULL;
	bool first = true, file_keys = false, iscsi_keys = false;
	int ret = 0;

	copy = strdup(spec ? spec : "");
	if (!copy)
		return ferr_set(e, -ENOMEM, "--disk: out of memory");
	for (field = strtok_r(copy, ",", &save); field; field = strtok_r(NULL, ",", &save), first = false) {
		char *eq = strchr(field, '=');

		if (!eq && first) {
			c.path = field;
			continue;
		}
		if (!eq) {
			ret = ferr_set(e, -EINVAL, "--disk: '%s' is not key=value", field);
			goto out;
		}
		*eq = '\0';
		file_keys |= !strcmp(field, "cache") || !strcmp(field, "engine") || !strcmp(field, "shared");
		iscsi_keys |= disk_iscsi_key(field);
		ret = disk_parse_kv(field, eq + 1, &c, e);
		if (ret)
			goto out;
	}
	if (!c.path) {
		ret = ferr_set(e, -EINVAL, "--disk: path=FILE is required");
		goto out;
	}
	ret = disk_check_kind(&c, file_keys, iscsi_keys, e);
	if (ret)
		goto out;
	if (disk_is_iscsi(c.path) && !c.reservation_set)
		c.reservation = !c.readonly;
	/* Keep only the path: move it to the start of the buffer we own. */
	memmove(copy, c.path, strlen(c.path) + 1);
	c.path = copy;
	*out = c;
	return 0;
out:
	free(copy);
	return ret;
}
