/* The io_uring engine's restricted ring (virtio/blk_uring.c), without KVM:
 * on a temporary file, the engine's own I/O works while a forbidden opcode,
 * a raw fd or a late IORING_REGISTER_* is refused with EACCES; the fallback
 * to AIO where rings cannot be restricted; and the seccomp filters that keep
 * filtered threads from making or re-registering rings. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "ferry/blk.h"
#include "ferry/loop.h"
#include "ferry/seccomp.h"
#include "ferry/vm.h"
#include "../../virtio/blk_file.h"
#include "seccomp_child.h"
#include "tap.h"

#ifdef HAVE_LIBURING
#define DISK (1 << 20)

static char path[] = "/tmp/ferry-test-uring.XXXXXX";
static struct loop *loop;

static bool make_disk(void)
{
	int fd = mkstemp(path);
	bool ok;

	if (fd < 0)
		return false;
	ok = ftruncate(fd, DISK) == 0;
	close(fd);
	return ok;
}

static struct blk_file *open_disk(enum blk_engine engine, struct ferr *e)
{
	struct disk_config cfg = {
		.path = path,
		.engine = engine,
		.cache = BLK_CACHE_WRITEBACK,
	};
	struct blk_backend *b = blk_file_open(&cfg, loop, 4, e);

	return b ? (struct blk_file *)b : NULL;     /* b is the first member */
}

struct done {
	int calls, ret;
};

static void req_done(struct blk_req *req, int ret)
{
	struct done *d = req->opaque;

	d->calls++;
	d->ret = ret;
}

/* One request through the backend's own path; its result (1: no callback). */
static int do_req(struct blk_file *f, enum blk_op op, unsigned int flags, uint64_t off,
		  void *buf, uint64_t len)
{
	struct iovec iov = { buf, len };
	struct done d = { 0, 0 };
	struct blk_req req = {
		.op = op, .flags = flags, .offset = off, .len = len,
		.iov = buf ? &iov : NULL, .iovcnt = buf ? 1 : 0,
		.done = req_done, .opaque = &d,
	};
	int ret = blk_submit(&f->b, &req);

	if (ret)
		return ret;
	blk_kick(&f->b);
	blk_drain(&f->b);
	blk_complete(&f->b);
	return d.calls == 1 ? d.ret : 1;
}

/* Submit one raw SQE on the engine's ring; the CQE's result. */
static int raw_sqe(struct blk_file *f, struct io_uring_sqe *tmpl)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return 1000;
	*sqe = *tmpl;
	io_uring_sqe_set_data64(sqe, 0x5eed);
	ret = io_uring_submit_and_wait(&f->ring, 1);
	if (ret < 0)
		return 1000 + -ret;
	if (io_uring_peek_cqe(&f->ring, &cqe))
		return 2000;
	ret = io_uring_cqe_get_data64(cqe) == 0x5eed ? cqe->res : 3000;
	io_uring_cqe_seen(&f->ring, cqe);
	return ret;
}

static bool file_has(uint64_t off, const uint8_t *want, size_t len)
{
	uint8_t got[4096];
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0 && len <= sizeof(got) && pread(fd, got, len, off) == (ssize_t)len &&
		  !memcmp(got, want, len);

	if (fd >= 0)
		close(fd);
	return ok;
}

TEST(engine_io_works_restricted)
{
	static uint8_t wbuf[4096], rbuf[4096], zero[4096];
	struct ferr e = { "" };
	struct blk_file *f = open_disk(BLK_ENGINE_IO_URING, &e);

	CHECK(f != NULL);
	if (!f) {
		printf("# %s\n", e.msg);
		return;
	}
	CHECK_STR(f->b.engine, "io_uring");
	CHECK_EQ(f->engine, BLK_ENGINE_IO_URING);
	for (size_t i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = (uint8_t)(i * 7 + 1);
	CHECK_EQ(do_req(f, BLK_OP_WRITE, 0, 8192, wbuf, sizeof(wbuf)), 0);
	CHECK(file_has(8192, wbuf, sizeof(wbuf)));
	CHECK_EQ(do_req(f, BLK_OP_WRITE, BLK_REQ_FUA, 16384, wbuf, sizeof(wbuf)), 0);
	CHECK_EQ(do_req(f, BLK_OP_FLUSH, 0, 0, NULL, 0), 0);
	CHECK_EQ(do_req(f, BLK_OP_READ, 0, 8192, rbuf, sizeof(rbuf)), 0);
	CHECK(!memcmp(rbuf, wbuf, sizeof(rbuf)));
	/* FALLOCATE through the ring: both modes. */
	CHECK(f->ring_fallocate);
	CHECK_EQ(do_req(f, BLK_OP_WRITE_ZEROES, 0, 8192, NULL, 4096), 0);
	CHECK(file_has(8192, zero, sizeof(zero)));
	CHECK_EQ(do_req(f, BLK_OP_DISCARD, 0, 16384, NULL, 4096), 0);
	CHECK(file_has(16384, zero, sizeof(zero)));
	CHECK(f->punch_ok && f->zero_range_ok);
	blk_destroy(&f->b);
}

TEST(ring_refuses_the_rest)
{
	static uint8_t buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	struct ferr e = { "" };
	struct blk_file *f = open_disk(BLK_ENGINE_IO_URING, &e);
	struct io_uring_sqe sqe;
	int fd;

	CHECK(f != NULL);
	if (!f) {
		printf("# %s\n", e.msg);
		return;
	}
	/* The engine's opcode on file 0: allowed (the control case). */
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_readv(&sqe, 0, &iov, 1, 0);
	sqe.flags |= IOSQE_FIXED_FILE;
	CHECK_EQ(raw_sqe(f, &sqe), sizeof(buf));
	/* The same read on the raw fd: the ring requires fixed files. */
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_readv(&sqe, f->fd, &iov, 1, 0);
	CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
	/* Another fd of this process, named as such. */
	fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		memset(&sqe, 0, sizeof(sqe));
		io_uring_prep_readv(&sqe, fd, &iov, 1, 0);
		CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
		close(fd);
	}
	/* Opcodes the engine never submits, with or without the fixed flag. */
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_openat(&sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
	CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
	sqe.flags |= IOSQE_FIXED_FILE;
	CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_read(&sqe, 0, buf, sizeof(buf), 0);
	sqe.flags |= IOSQE_FIXED_FILE;
	CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_close(&sqe, 0);
	sqe.flags |= IOSQE_FIXED_FILE;
	CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
	/* A flag beyond the required one. */
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_readv(&sqe, 0, &iov, 1, 0);
	sqe.flags |= IOSQE_FIXED_FILE | IOSQE_ASYNC;
	CHECK_EQ(raw_sqe(f, &sqe), -EACCES);
	/* Nothing can be registered once the ring runs: not a new file table,
	 * not the old one dropped. */
	CHECK_EQ(io_uring_unregister_files(&f->ring), -EACCES);
	CHECK_EQ(io_uring_register_files(&f->ring, &f->efd, 1), -EACCES);
	CHECK(io_uring_get_probe_ring(&f->ring) == NULL);
	/* The ring still works after all that. */
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_readv(&sqe, 0, &iov, 1, 512);
	sqe.flags |= IOSQE_FIXED_FILE;
	CHECK_EQ(raw_sqe(f, &sqe), sizeof(buf));
	blk_destroy(&f->b);
}

TEST(falls_back_to_aio_unrestricted)
{
#if defined(FERRY_TEST_HOOKS) && defined(HAVE_LIBAIO)
	static uint8_t buf[4096];
	struct ferr e = { "" };
	struct blk_file *f;

	setenv("FERRY_TEST_URING_NO_RESTRICT", "1", 1);
	f = open_disk(BLK_ENGINE_IO_URING, &e);
	unsetenv("FERRY_TEST_URING_NO_RESTRICT");
	CHECK(f != NULL);
	if (!f) {
		printf("# %s\n", e.msg);
		return;
	}
	CHECK_STR(f->b.engine, "aio");
	CHECK_EQ(f->engine, BLK_ENGINE_AIO);
	CHECK(!f->ring_init);
	memset(buf, 0x5a, sizeof(buf));
	CHECK_EQ(do_req(f, BLK_OP_WRITE, 0, 0, buf, sizeof(buf)), 0);
	CHECK(file_has(0, buf, sizeof(buf)));
	blk_destroy(&f->b);
#else
	printf("# skipped: needs -Dtest_hooks=true and libaio\n");
#endif
}

TEST(no_role_makes_or_registers_rings)
{
	for (int r = 0; r < SECCOMP_ROLE_COUNT; r++) {
		CHECK(!seccomp_role_allows(r, SYS_io_uring_setup));
		CHECK(!seccomp_role_allows(r, SYS_io_uring_register));
		CHECK(seccomp_role_allows(r, SYS_io_uring_enter));
	}
}

#ifdef HAVE_LIBSECCOMP
static int child_ring_fd = -1;

static int do_uring_setup(void)
{
	struct io_uring_params p = { 0 };

	syscall(SYS_io_uring_setup, 4, &p);
	return 10;
}

static int do_uring_register(void)
{
	syscall(SYS_io_uring_register, child_ring_fd, IORING_UNREGISTER_FILES, NULL, 0);
	return 11;
}

static int do_uring_enter(void)
{
	/* The filter passes it; the kernel refuses the bad fd. */
	if (syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) == 0 || errno != EBADF)
		return 12;
	return 0;
}

TEST(filtered_threads_cannot_make_rings)
{
	struct ferr e = { "" };
	struct blk_file *f = open_disk(BLK_ENGINE_IO_URING, &e);
	int st;

	CHECK(f != NULL);
	if (!f) {
		printf("# %s\n", e.msg);
		return;
	}
	child_ring_fd = f->ring.ring_fd;
	for (int r = 0; r < SECCOMP_ROLE_COUNT; r++) {
		CHECK(killed_by_sigsys(in_child(r, do_uring_setup)));
		CHECK(killed_by_sigsys(in_child(r, do_uring_register)));
		st = in_child(r, do_uring_enter);
		CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	blk_destroy(&f->b);
}
#endif

int main(void)
{
	struct io_uring probe_ring;

	/* A host where io_uring is off (kernel.io_uring_disabled, an old
	 * kernel, a container's seccomp profile) has nothing to test. */
	if (io_uring_queue_init(1, &probe_ring, IORING_SETUP_R_DISABLED) < 0) {
		printf("1..0 # SKIP io_uring rings with IORING_SETUP_R_DISABLED unavailable here\n");
		return 0;
	}
	io_uring_queue_exit(&probe_ring);
	loop = loop_create();
	if (!loop || !make_disk()) {
		printf("Bail out! cannot create a loop or %s\n", path);
		return 1;
	}
	RUN(engine_io_works_restricted);
	RUN(ring_refuses_the_rest);
	RUN(falls_back_to_aio_unrestricted);
	RUN(no_role_makes_or_registers_rings);
#ifdef HAVE_LIBSECCOMP
	RUN(filtered_threads_cannot_make_rings);
#endif
	unlink(path);
	loop_destroy(loop);
	return tap_done();
}
#else
TAP_SKIP_ALL("ferry was built without liburing")
#endif
