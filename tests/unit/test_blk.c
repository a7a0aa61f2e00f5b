/* virtio-blk and the file backend, without KVM: a device over a small guest
 * RAM with a fake transport, requests built in the rings by hand, against a
 * temporary file, with each engine (sync, aio, io_uring).  Also the OFD lock
 * and --disk parsing. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/blk.h"
#include "ferry/loop.h"
#include "ferry/mem.h"
#include "ferry/util.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"
#include "tap.h"

#define RAM     (16 * MiB)
#define QSZ     256
#define DESC    0x1000ULL
#define AVAIL   0x8000ULL
#define USED    0x9000ULL
#define HDR     0x10000ULL
#define STATUS  0x11000ULL
#define DATA    0x20000ULL
#define DATA2   0x80000ULL
#define DISK    (1 * MiB)

#define F_NEXT  1
#define F_WRITE 2

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WZ 13

static struct guest_mem gm;
static struct loop *loop;
static char path[64];
static unsigned int queue_kicks, config_kicks;

static void fake_notify_queue(struct virtio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
	queue_kicks++;
}

static void fake_notify_config(struct virtio_dev *d)
{
	(void)d;
	config_kicks++;
}

static const struct virtio_transport_ops fake_transport = {
	.notify_queue = fake_notify_queue,
	.notify_config = fake_notify_config,
};

static uint16_t rd16(uint64_t gpa)
{
	uint16_t v = 0;

	CHECK_EQ(gm_read(&gm, gpa, &v, 2), 0);
	return v;
}

static uint32_t rd32(uint64_t gpa)
{
	uint32_t v = 0;

	CHECK_EQ(gm_read(&gm, gpa, &v, 4), 0);
	return v;
}

static void wr16(uint64_t gpa, uint16_t v)
{
	CHECK_EQ(gm_write(&gm, gpa, &v, 2), 0);
}

static void desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct { uint64_t a; uint32_t l; uint16_t f, n; } d = { addr, len, flags, next };

	CHECK_EQ(gm_write(&gm, DESC + 16 * i, &d, 16), 0);
}

static void offer(uint16_t head)
{
	uint16_t idx = rd16(AVAIL + 2);

	wr16(AVAIL + 4 + 2 * (idx % QSZ), head);
	wr16(AVAIL + 2, idx + 1);
}

static void hdr_at(uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct { uint32_t type, ioprio; uint64_t sector; } h = { type, 0, sector };

	CHECK_EQ(gm_write(&gm, gpa, &h, 16), 0);
}

/* A fresh temporary disk of DISK bytes. */
static void make_disk(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/ferry-test-blk.XXXXXX");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, DISK), 0);
	close(fd);
}

static struct disk_config disk_cfg(enum blk_engine engine)
{
	struct disk_config c = {
		.path = path, .engine = engine, .cache = BLK_CACHE_WRITEBACK, .queues = 1,
	};

	strcpy(c.serial, "ferry-serial-0");
	return c;
}

/* A device as a transport would leave it after DRIVER_OK. */
static struct virtio_dev *dev_open(const struct disk_config *cfg)
{
	struct ferr e = { "" };
	struct virtio_dev *d = virtio_blk_create(cfg, &(struct dev_env){ .loop = loop }, &e);

	if (!d) {
		printf("# virtio_blk_create: %s\n", e.msg);
		return NULL;
	}
	memset(gm_ptr(&gm, 0, 0x10000), 0, 0x10000);
	d->gm = &gm;
	d->loop = loop;
	d->t_ops = &fake_transport;
	d->driver_features = d->ops->features(d) | 1ULL << VIRTIO_F_VERSION_1;
	CHECK_EQ(vq_init(&d->vqs[0], &gm, QSZ, DESC, AVAIL, USED, 0), 0);
	d->vq_ready[0] = true;
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	CHECK_EQ(d->ops->activate(d), 0);
	return d;
}

static void dev_close(struct virtio_dev *d)
{
	if (d)
		virtio_dev_destroy(d);
}

/* Kick queue 0 and let every request finish, as the loop would. */
static void run(struct virtio_dev *d)
{
	struct blk_backend *be = virtio_blk_backend(d);

	pthread_mutex_lock(&d->lock);
	d->ops->queue_notify(d, 0);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < 64; i++) {
		blk_drain(be);
		blk_complete(be);
	}
}

static uint16_t used_idx(void)
{
	return rd16(USED + 2);
}

static uint32_t last_used_len(void)
{
	return rd32(USED + 4 + 8 * ((used_idx() - 1) % QSZ) + 4);
}

/* header, one data buffer (writable for IN/GET_ID), status: run it and
 * return the status byte. */
static int simple(struct virtio_dev *d, uint32_t type, uint64_t sector, uint64_t data,
		  uint32_t len)
{
	uint16_t before = used_idx();
	uint8_t status = 0xee;
	bool in = type == T_IN || type == T_GET_ID;

	hdr_at(HDR, type, sector);
	CHECK_EQ(gm_write(&gm, STATUS, &status, 1), 0);
	desc(0, HDR, 16, F_NEXT, len ? 1 : 2);
	if (len)
		desc(1, data, len, F_NEXT | (in ? F_WRITE : 0), 2);
	desc(2, STATUS, 1, F_WRITE, 0);
	offer(0);
	run(d);
	CHECK_EQ(used_idx(), (uint16_t)(before + 1));
	CHECK_EQ(gm_read(&gm, STATUS, &status, 1), 0);
	return status;
}

static void seg_at(uint64_t gpa, uint64_t sector, uint32_t n, uint32_t flags)
{
	struct { uint64_t s; uint32_t n, f; } seg = { sector, n, flags };

	CHECK_EQ(gm_write(&gm, gpa, &seg, 16), 0);
}

static void fill(uint64_t gpa, uint32_t len, uint8_t seed)
{
	uint8_t *p = gm_ptr(&gm, gpa, len);

	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* The file's bytes at @off equal guest RAM at @gpa. */
static bool file_matches(uint64_t off, uint64_t gpa, uint32_t len)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0 && buf && pread(fd, buf, len, off) == (ssize_t)len &&
		  !memcmp(buf, gm_ptr(&gm, gpa, len), len);

	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

static bool file_zero(uint64_t off, uint32_t len)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0 && buf && pread(fd, buf, len, off) == (ssize_t)len;

	for (uint32_t i = 0; ok && i < len; i++)
		ok = !buf[i];
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

static const char *engine_names[] = { "io_uring", "aio", "sync" };

/* Everything a well-behaved driver does, on one engine. */
static void engine_roundtrip(enum blk_engine engine, enum blk_cache cache)
{
	struct disk_config cfg;
	struct virtio_dev *d;
	uint8_t id[20];
	uint64_t cap = DISK / 512;

	make_disk();
	cfg = disk_cfg(engine);
	cfg.cache = cache;
	d = dev_open(&cfg);
	CHECK(d != NULL);
	if (!d)
		goto out;
	CHECK_STR(virtio_blk_backend(d)->engine, engine_names[engine]);

	/* capacity in the config space, in 512-byte sectors */
	{
		uint8_t c[8];

		d->ops->config_read(d, 0, c, 8);
		CHECK_EQ(c[0] | c[1] << 8 | c[2] << 16, cap);
	}

	fill(DATA, 8192, 1);
	CHECK_EQ(simple(d, T_OUT, 16, DATA, 8192), 0);
	CHECK(file_matches(16 * 512, DATA, 8192));
	CHECK_EQ(simple(d, T_FLUSH, 0, 0, 0), 0);
	memset(gm_ptr(&gm, DATA2, 8192), 0xaa, 8192);
	CHECK_EQ(simple(d, T_IN, 16, DATA2, 8192), 0);
	CHECK_EQ(last_used_len(), 8193);
	CHECK(!memcmp(gm_ptr(&gm, DATA, 8192), gm_ptr(&gm, DATA2, 8192), 8192));

	/* the last sector, then one past the end */
	CHECK_EQ(simple(d, T_IN, cap - 8, DATA2, 4096), 0);
	CHECK_EQ(simple(d, T_IN, cap - 7, DATA2, 4096), 1);
	CHECK_EQ(simple(d, T_OUT, cap, DATA, 512), 1);
	CHECK_EQ(simple(d, T_IN, ~0ULL >> 9, DATA2, 512), 1);
	CHECK_EQ(simple(d, T_IN, ~0ULL, DATA2, 512), 1);
	/* not a multiple of 512 */
	CHECK_EQ(simple(d, T_IN, 0, DATA2, 100), 1);
	CHECK_EQ(simple(d, T_OUT, 0, DATA, 513), 1);
	CHECK_EQ(simple(d, 99, 0, DATA2, 512), 2);

	memset(id, 0xff, sizeof(id));
	CHECK_EQ(gm_write(&gm, DATA2, id, sizeof(id)), 0);
	CHECK_EQ(simple(d, T_GET_ID, 0, DATA2, 20), 0);
	CHECK(!memcmp(gm_ptr(&gm, DATA2, 20), "ferry-serial-0\0\0\0\0\0\0", 20));

	/* write zeroes: ranges read back as zeroes, neighbours stay */
	seg_at(DATA2, 17, 1, 0);
	CHECK_EQ(simple(d, T_WZ, 0, DATA2, 16), 0);
	CHECK(file_zero(17 * 512, 512));
	CHECK(file_matches(16 * 512, DATA, 512));
	CHECK(file_matches(18 * 512, DATA + 1024, 512));
	seg_at(DATA2, 18, 2, 1);                /* with unmap */
	CHECK_EQ(simple(d, T_WZ, 0, DATA2, 16), 0);
	CHECK(file_zero(18 * 512, 1024));
	CHECK(file_matches(20 * 512, DATA + 2048, 512));
	/* discard: the file system here punches holes */
	seg_at(DATA2, 16, 8, 0);
	CHECK_EQ(simple(d, T_DISCARD, 0, DATA2, 16), 0);
	CHECK(file_zero(16 * 512, 4096));
	CHECK(file_matches(24 * 512, DATA + 4096, 512));
	seg_at(DATA2, 16, 8, 1);                /* unmap on discard */
	CHECK_EQ(simple(d, T_DISCARD, 0, DATA2, 16), 2);
	seg_at(DATA2, 16, 8, 4);                /* unknown flag */
	CHECK_EQ(simple(d, T_WZ, 0, DATA2, 16), 2);
	seg_at(DATA2, cap - 1, 2, 0);           /* past the end */
	CHECK_EQ(simple(d, T_WZ, 0, DATA2, 16), 1);
	seg_at(DATA2, 0, 1, 0);
	CHECK_EQ(simple(d, T_DISCARD, 0, DATA2, 32), 1);   /* two segments */

	CHECK(!(d->status & VIRTIO_STATUS_NEEDS_RESET));
	CHECK_EQ(d->requests, 19);
	CHECK_EQ(d->errors, 11);
out:
	dev_close(d);
	unlink(path);
}

TEST(sync_engine)
{
	engine_roundtrip(BLK_ENGINE_SYNC, BLK_CACHE_WRITEBACK);
}

TEST(aio_engine)
{
	engine_roundtrip(BLK_ENGINE_AIO, BLK_CACHE_WRITEBACK);
	engine_roundtrip(BLK_ENGINE_AIO, BLK_CACHE_NONE);
}

TEST(io_uring_engine)
{
	engine_roundtrip(BLK_ENGINE_IO_URING, BLK_CACHE_WRITEBACK);
	engine_roundtrip(BLK_ENGINE_IO_URING, BLK_CACHE_NONE);
}

TEST(readonly_disk)
{
	struct disk_config cfg;
	struct virtio_dev *d;

	make_disk();
	cfg = disk_cfg(BLK_ENGINE_SYNC);
	cfg.readonly = true;
	d = dev_open(&cfg);
	CHECK(d != NULL);
	if (d) {
		CHECK(d->ops->features(d) & 1ULL << 5);         /* VIRTIO_BLK_F_RO */
		CHECK(!(d->ops->features(d) & 1ULL << 13));     /* no DISCARD */
		CHECK_EQ(simple(d, T_IN, 0, DATA2, 512), 0);
		CHECK_EQ(simple(d, T_OUT, 0, DATA, 512), 1);
		seg_at(DATA2, 0, 1, 0);
		CHECK_EQ(simple(d, T_WZ, 0, DATA2, 16), 1);
		CHECK_EQ(simple(d, T_DISCARD, 0, DATA2, 16), 1);
		CHECK_EQ(simple(d, T_FLUSH, 0, 0, 0), 0);
	}
	dev_close(d);
	unlink(path);
}

/* Header in two pieces, data and status in one buffer. */
TEST(odd_chain_shapes)
{
	struct disk_config cfg;
	struct virtio_dev *d;
	uint8_t status;

	make_disk();
	cfg = disk_cfg(BLK_ENGINE_SYNC);
	d = dev_open(&cfg);
	CHECK(d != NULL);
	if (!d)
		goto out;
	fill(DATA, 1024, 9);
	hdr_at(HDR, T_OUT, 2);
	desc(0, HDR, 5, F_NEXT, 1);
	desc(1, HDR + 5, 11, F_NEXT, 2);
	desc(2, DATA, 1000, F_NEXT, 3);         /* data split mid-sector */
	desc(3, DATA + 1000, 24, F_NEXT, 4);
	desc(4, STATUS, 1, F_WRITE, 0);
	offer(0);
	run(d);
	CHECK_EQ(used_idx(), 1);
	CHECK_EQ(gm_read(&gm, STATUS, &status, 1), 0);
	CHECK_EQ(status, 0);
	CHECK(file_matches(1024, DATA, 1024));

	/* header + data together in one readable buffer is fine too */
	hdr_at(DATA2, T_IN, 2);
	desc(5, DATA2, 16, F_NEXT, 6);
	desc(6, DATA2 + 0x1000, 1025, F_WRITE, 0);      /* data + status */
	offer(5);
	run(d);
	CHECK_EQ(used_idx(), 2);
	CHECK(!memcmp(gm_ptr(&gm, DATA2 + 0x1000, 1024), gm_ptr(&gm, DATA, 1024), 1024));
	CHECK_EQ(*(uint8_t *)gm_ptr(&gm, DATA2 + 0x1000 + 1024, 1), 0);
	CHECK(!(d->status & VIRTIO_STATUS_NEEDS_RESET));
out:
	dev_close(d);
	unlink(path);
}

/* A chain the driver had no right to send: the device needs a reset, and
 * nothing is pushed. */
static void broken_chain(void (*build)(void))
{
	struct disk_config cfg;
	struct virtio_dev *d;
	unsigned int before = config_kicks;

	make_disk();
	cfg = disk_cfg(BLK_ENGINE_SYNC);
	d = dev_open(&cfg);
	CHECK(d != NULL);
	if (d) {
		build();
		run(d);
		CHECK_EQ(used_idx(), 0);
		CHECK(d->status & VIRTIO_STATUS_NEEDS_RESET);
		CHECK_EQ(config_kicks, before + 1);
		/* and it stays quiet until reset */
		offer(0);
		run(d);
		CHECK_EQ(used_idx(), 0);
	}
	dev_close(d);
	unlink(path);
}

static void no_status(void)
{
	hdr_at(HDR, T_IN, 0);
	desc(0, HDR, 16, 0, 0);
	offer(0);
}

static void short_header(void)
{
	hdr_at(HDR, T_IN, 0);
	desc(0, HDR, 8, F_NEXT, 1);
	desc(1, STATUS, 513, F_WRITE, 0);
	offer(0);
}

TEST(missing_status_byte)
{
	broken_chain(no_status);
}

TEST(header_too_short)
{
	broken_chain(short_header);
}

/* More requests than slots: the queue stalls and resumes on completions;
 * a reset with requests in flight drops them and the device works on. */
static void many_requests(enum blk_engine engine)
{
	struct disk_config cfg;
	struct virtio_dev *d;
	struct blk_backend *be;

	make_disk();
	cfg = disk_cfg(engine);
	d = dev_open(&cfg);
	CHECK(d != NULL);
	if (!d)
		goto out;
	be = virtio_blk_backend(d);
	/* 200 requests of header + (512 bytes of data + status); the
	 * writable buffers are shared round-robin (descriptors 200..249). */
	for (unsigned int i = 0; i < 200; i++) {
		hdr_at(DATA + 32 * i, T_IN, i);
		desc(i, DATA + 32 * i, 16, F_NEXT, 200 + i % 50);
		offer(i);
	}
	for (unsigned int j = 0; j < 50; j++)
		desc(200 + j, DATA2 + 1024 * j, 513, F_WRITE, 0);
	pthread_mutex_lock(&d->lock);
	d->ops->queue_notify(d, 0);
	pthread_mutex_unlock(&d->lock);
	CHECK(used_idx() < 200);                /* stalled at the pool's size */
	for (int i = 0; i < 64; i++) {
		blk_drain(be);
		blk_complete(be);
	}
	CHECK_EQ(used_idx(), 200);
	CHECK_EQ(d->errors, 0);

	/* reset with requests in the backend */
	for (unsigned int i = 0; i < 10; i++)
		offer(i);
	pthread_mutex_lock(&d->lock);
	d->ops->queue_notify(d, 0);
	d->ops->reset(d);
	pthread_mutex_unlock(&d->lock);
	blk_complete(be);
	CHECK(used_idx() <= 200 + 10);
	/* a fresh queue after the reset: every slot is back */
	memset(gm_ptr(&gm, AVAIL, 0x2000), 0, 0x2000);
	vq_destroy(&d->vqs[0]);
	CHECK_EQ(vq_init(&d->vqs[0], &gm, QSZ, DESC, AVAIL, USED, 0), 0);
	for (unsigned int i = 0; i < 200; i++)
		offer(i);
	run(d);
	CHECK_EQ(used_idx(), 200);
out:
	dev_close(d);
	unlink(path);
}

TEST(queue_full_and_reset)
{
	many_requests(BLK_ENGINE_SYNC);
	many_requests(BLK_ENGINE_AIO);
	many_requests(BLK_ENGINE_IO_URING);
}

static void quit_ready(struct loop *l, int fd, uint32_t events, void *opaque)
{
	uint64_t v;

	(void)events;
	(void)opaque;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	loop_quit(l);
}

static void *loop_thread(void *arg)
{
	(void)arg;
	loop_run(loop);
	return NULL;
}

/* The real path: completions arrive through the backend's eventfd on a
 * running loop thread, and refill a stalled queue from there. */
static void on_the_loop(enum blk_engine engine)
{
	struct disk_config cfg;
	struct virtio_dev *d;
	pthread_t th;
	uint64_t one = 1;
	int qfd = eventfd(0, EFD_CLOEXEC);

	make_disk();
	cfg = disk_cfg(engine);
	d = dev_open(&cfg);
	CHECK(d != NULL);
	CHECK(qfd >= 0);
	if (!d || qfd < 0)
		goto out;
	CHECK_EQ(loop_add(loop, qfd, EPOLLIN, quit_ready, NULL), 0);
	for (unsigned int i = 0; i < 200; i++) {
		hdr_at(DATA + 32 * i, i % 2 ? T_OUT : T_IN, i);
		desc(i, DATA + 32 * i, 16, F_NEXT, i % 2 ? 250 : 200 + i % 50);
		offer(i);
	}
	for (unsigned int j = 0; j < 50; j++)
		desc(200 + j, DATA2 + 1024 * j, 513, F_WRITE, 0);
	desc(250, DATA2 + 0x10000, 512, F_NEXT, 251);
	desc(251, STATUS, 1, F_WRITE, 0);
	CHECK_EQ(pthread_create(&th, NULL, loop_thread, NULL), 0);
	pthread_mutex_lock(&d->lock);
	d->ops->queue_notify(d, 0);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&d->lock);
		bool done = used_idx() == 200;
		pthread_mutex_unlock(&d->lock);
		if (done)
			break;
		usleep(1000);
	}
	CHECK_EQ(used_idx(), 200);
	CHECK(queue_kicks > 0);
	CHECK_EQ(write(qfd, &one, sizeof(one)), 8);
	pthread_join(th, NULL);
	CHECK_EQ(d->errors, 0);
	loop_del(loop, qfd);
out:
	if (qfd >= 0)
		close(qfd);
	dev_close(d);
	unlink(path);
}

TEST(completions_on_the_loop_thread)
{
	on_the_loop(BLK_ENGINE_SYNC);
	on_the_loop(BLK_ENGINE_AIO);
	on_the_loop(BLK_ENGINE_IO_URING);
}

static struct blk_backend *try_open(bool readonly, bool shared, struct ferr *e)
{
	struct disk_config cfg = disk_cfg(BLK_ENGINE_SYNC);

	cfg.readonly = readonly;
	cfg.shared = shared;
	return blk_file_open(&cfg, loop, 4, e);
}

TEST(ofd_lock)
{
	struct ferr e = { "" };
	struct blk_backend *a, *b, *c;

	make_disk();
	a = try_open(false, false, &e);
	CHECK(a != NULL);
	b = try_open(false, false, &e);
	CHECK(b == NULL);
	CHECK(strstr(e.msg, "is in use by another process (add ,shared=on only for migration") != NULL);
	CHECK(strstr(e.msg, path) != NULL);
	b = try_open(true, false, &e);          /* a reader while a writer holds it */
	CHECK(b == NULL);
	b = try_open(false, true, &e);          /* shared=on */
	CHECK(b != NULL);
	blk_destroy(b);
	blk_destroy(a);
	/* readers share */
	a = try_open(true, false, &e);
	b = try_open(true, false, &e);
	CHECK(a != NULL && b != NULL);
	CHECK(a && a->readonly);
	c = try_open(false, false, &e);
	CHECK(c == NULL);
	blk_destroy(a);
	blk_destroy(b);
	blk_destroy(c);
	unlink(path);
	/* a missing file says so */
	a = try_open(false, false, &e);
	CHECK(a == NULL);
	CHECK(strstr(e.msg, "cannot open disk") != NULL);
}

TEST(disk_options)
{
	struct disk_config c;
	struct ferr e = { "" };

	CHECK_EQ(disk_config_parse("path=/x/y.img,readonly=on,cache=none,engine=sync,serial=abc,queues=4,shared=on",
				   &c, &e), 0);
	CHECK_STR(c.path, "/x/y.img");
	CHECK(c.readonly && c.shared);
	CHECK_EQ(c.cache, BLK_CACHE_NONE);
	CHECK_EQ(c.engine, BLK_ENGINE_SYNC);
	CHECK_STR(c.serial, "abc");
	CHECK_EQ(c.queues, 4);
	free((char *)c.path);

	CHECK_EQ(disk_config_parse("disk.img", &c, &e), 0);
	CHECK_STR(c.path, "disk.img");
	CHECK(!c.readonly && !c.shared);
	CHECK_EQ(c.cache, BLK_CACHE_WRITEBACK);
	CHECK_EQ(c.engine, BLK_ENGINE_IO_URING);        /* this build has liburing */
	CHECK_EQ(c.queues, 1);
	free((char *)c.path);

	CHECK(disk_config_parse("readonly=on", &c, &e) < 0);
	CHECK(strstr(e.msg, "--disk: path=FILE is required") != NULL);
	CHECK(disk_config_parse("a.img,cache=fast", &c, &e) < 0);
	CHECK(strstr(e.msg, "cache=fast") != NULL);
	CHECK(disk_config_parse("a.img,engine=posix", &c, &e) < 0);
	CHECK(strstr(e.msg, "engine=posix") != NULL);
	CHECK(disk_config_parse("a.img,queues=0", &c, &e) < 0);
	CHECK(strstr(e.msg, "queues=0") != NULL);
	CHECK(disk_config_parse("a.img,queues=17", &c, &e) < 0);
	CHECK(disk_config_parse("a.img,serial=123456789012345678901", &c, &e) < 0);
	CHECK(strstr(e.msg, "serial=") != NULL);
	CHECK(disk_config_parse("a.img,readonly=maybe", &c, &e) < 0);
	CHECK(strstr(e.msg, "readonly=maybe") != NULL);
	CHECK(disk_config_parse("a.img,bogus=1", &c, &e) < 0);
	CHECK(strstr(e.msg, "unknown key 'bogus'") != NULL);
	CHECK(disk_config_parse("a.img,noequals", &c, &e) < 0);
	CHECK(disk_config_parse("", &c, &e) < 0);
}

int main(void)
{
	struct gm_config gc = { .size = RAM };
	struct ferr e = { "" };

	if (gm_init(&gm, &gc, &e)) {
		printf("Bail out! gm_init: %s\n", e.msg);
		return 1;
	}
	loop = loop_create();
	if (!loop) {
		printf("Bail out! loop_create failed\n");
		return 1;
	}
	RUN(disk_options);
	RUN(ofd_lock);
	RUN(sync_engine);
	RUN(aio_engine);
	RUN(io_uring_engine);
	RUN(readonly_disk);
	RUN(odd_chain_shapes);
	RUN(missing_status_byte);
	RUN(header_too_short);
	RUN(queue_full_and_reset);
	RUN(completions_on_the_loop_thread);
	loop_destroy(loop);
	gm_destroy(&gm);
	return tap_done();
}
