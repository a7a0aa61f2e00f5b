/* i8042 keyboard controller at 0x60/0x64, without a keyboard or mouse: just
 * enough for guests to probe it and to reset the machine through it (command
 * 0xfe, or output port bit 0 cleared with 0xd1). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/devices.h"
#include "ferry/log.h"
#include "ferry/platform.h"

#define I8042_STR_OBF		0x01
#define I8042_STR_SYS		0x04	/* self test passed (firmware ran it) */
#define I8042_STR_CMD		0x08	/* last write went to the command port */
#define I8042_STR_KEYLOCK	0x10	/* 1: keyboard not inhibited */

#define I8042_CTR_KBDDIS	0x10
#define I8042_CTR_AUXDIS	0x20

#define I8042_OUT_RESET		0x01	/* 0 asserts the CPU reset line */
#define I8042_OUT_A20		0x02

#define I8042_CMD_READ_CTR	0x20
#define I8042_CMD_WRITE_CTR	0x60
#define I8042_CMD_AUX_DISABLE	0xa7
#define I8042_CMD_AUX_ENABLE	0xa8
#define I8042_CMD_SELF_TEST	0xaa
#define I8042_CMD_KBD_DISABLE	0xad
#define I8042_CMD_KBD_ENABLE	0xae
#define I8042_CMD_READ_OUTPORT	0xd0
#define I8042_CMD_WRITE_OUTPORT	0xd1

struct i8042 {
	pthread_mutex_t lock;
	struct bus *pio;
	struct dev_event reset;
	uint8_t status;
	uint8_t ctr;		/* controller command byte */
	uint8_t outport;
	uint8_t out;		/* output buffer, valid while STR_OBF */
	uint8_t pending;	/* command waiting for its data byte, or 0 */
};

static void i8042_respond(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->status |= I8042_STR_OBF;
}

/* Returns true if the machine must reset. */
static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	switch (cmd) {
	case I8042_CMD_READ_CTR:
		i8042_respond(k, k->ctr);
		break;
	case I8042_CMD_WRITE_CTR:
	case I8042_CMD_WRITE_OUTPORT:
		k->pending = cmd;
		break;
	case I8042_CMD_AUX_DISABLE:
		k->ctr |= I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_ENABLE:
		k->ctr &= ~I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_SELF_TEST:
		k->status |= I8042_STR_SYS;
		i8042_respond(k, 0x55);
		break;
	case I8042_CMD_KBD_DISABLE:
		k->ctr |= I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_KBD_ENABLE:
		k->ctr &= ~I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_READ_OUTPORT:
		i8042_respond(k, k->outport);
		break;
	default:
		/* 0xf0-0xff pulse output port bits whose mask bit is 0;
		 * bit 0 is the reset line (0xfe is the classic reboot). */
		if ((cmd & 0xf0) == 0xf0 && !(cmd & 0x01))
			return true;
		/* Anything else (port tests, aux loopback, ...) gets no
		 * answer: the guest times out and decides there is nothing
		 * behind it. */
		break;
	}
	return false;
}

static bool i8042_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	switch (cmd) {
	case I8042_CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case I8042_CMD_WRITE_OUTPORT:
		/* A20 stays enabled whatever the guest asks. */
		k->outport = v | I8042_OUT_A20;
		if (!(v & I8042_OUT_RESET)) {
			k->outport |= I8042_OUT_RESET;
			return true;
		}
		break;
	default:
		/* A byte for the keyboard, and there is none. */
		break;
	}
	return false;
}

static void i8042_data_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;

	memset(data, 0xff, len);
	if (off != 0)
		return;
	pthread_mutex_lock(&k->lock);
	data[0] = k->out;
	k->status &= ~I8042_STR_OBF;
	pthread_mutex_unlock(&k->lock);
}

static void i8042_data_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;
	bool reset;

	if (off != 0 || len < 1)
		return;
	pthread_mutex_lock(&k->lock);
	k->status &= ~I8042_STR_CMD;
	reset = i8042_data(k, data[0]);
	pthread_mutex_unlock(&k->lock);
	/* Outside the lock: the handler may stop the VM. */
	if (reset)
		dev_event_fire(&k->reset);
}

static void i8042_status_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;

	memset(data, 0xff, len);
	if (off != 0)
		return;
	pthread_mutex_lock(&k->lock);
	data[0] = k->status;
	pthread_mutex_unlock(&k->lock);
}

static void i8042_cmd_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;
	bool reset;

	if (off != 0 || len < 1)
		return;
	pthread_mutex_lock(&k->lock);
	k->status |= I8042_STR_CMD;
	reset = i8042_command(k, data[0]);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		dev_event_fire(&k->reset);
}

static const struct bus_ops i8042_data_ops = {
	.read = i8042_data_read,
	.write = i8042_data_write,
};

static const struct bus_ops i8042_cmd_ops = {
	.read = i8042_status_read,
	.write = i8042_cmd_write,
};

struct i8042 *i8042_create(struct bus *pio, struct dev_event reset)
{
	struct i8042 *k;
	int ret;

	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	pthread_mutex_init(&k->lock, NULL);
	k->pio = pio;
	k->reset = reset;
	k->status = I8042_STR_SYS | I8042_STR_KEYLOCK;
	/* What firmware leaves: translation, system flag, both ports off
	 * since nothing is attached. */
	k->ctr = 0x44 | I8042_CTR_KBDDIS | I8042_CTR_AUXDIS;
	k->outport = I8042_OUT_RESET | I8042_OUT_A20;

	ret = bus_register(pio, PLAT_I8042_DATA_PORT, 1, &i8042_data_ops, k, "i8042-data");
	if (ret < 0)
		goto err;
	ret = bus_register(pio, PLAT_I8042_CMD_PORT, 1, &i8042_cmd_ops, k, "i8042-cmd");
	if (ret < 0) {
		bus_unregister(pio, PLAT_I8042_DATA_PORT, k);
		goto err;
	}
	return k;
err:
	log_error("i8042: cannot claim ports 0x%x/0x%x: %s", PLAT_I8042_DATA_PORT,
		  PLAT_I8042_CMD_PORT, strerror(-ret));
	pthread_mutex_destroy(&k->lock);
	free(k);
	errno = -ret;
	return NULL;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	bus_unregister(k->pio, PLAT_I8042_DATA_PORT, k);
	bus_unregister(k->pio, PLAT_I8042_CMD_PORT, k);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

int i8042_save(struct i8042 *k, void *fdt)
{
	int ret = 0;

	pthread_mutex_lock(&k->lock);
	ret |= fdt_property_u32(fdt, "status", k->status);
	ret |= fdt_property_u32(fdt, "ctr", k->ctr);
	ret |= fdt_property_u32(fdt, "outport", k->outport);
	ret |= fdt_property_u32(fdt, "out", k->out);
	ret |= fdt_property_u32(fdt, "pending", k->pending);
	pthread_mutex_unlock(&k->lock);
	return ret ? -ENOSPC : 0;
}

int i8042_load(struct i8042 *k, const void *fdt, int node)
{
	pthread_mutex_lock(&k->lock);
	k->status = dev_state_u32(fdt, node, "status", k->status);
	k->ctr = dev_state_u32(fdt, node, "ctr", k->ctr);
	k->outport = dev_state_u32(fdt, node, "outport", k->outport);
	k->out = dev_state_u32(fdt, node, "out", k->out);
	k->pending = dev_state_u32(fdt, node, "pending", k->pending);
	pthread_mutex_unlock(&k->lock);
	return 0;
}
