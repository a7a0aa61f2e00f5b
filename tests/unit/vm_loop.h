/* A VM without KVM for device unit tests (test_mmio.c,
 * test_virtio_mig.c): guest RAM, the MMIO bus and the event loop on a
 * thread of its own, with pump() to let the loop handle what is ready.
 * Include after tap.h, with RAM defined. */
#ifndef FERRY_TESTS_VM_LOOP_H
#define FERRY_TESTS_VM_LOOP_H

#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "ferry/virtio_dev.h"
#include "ferry/vm.h"

static struct vm vm;
static int quit_fd;
static unsigned int syncs;
static pthread_t loop_thread;

static void on_sync(struct loop *l, int fd, uint32_t events, void *opaque)
{
	uint64_t v;

	(void)events; (void)opaque;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	if (v > 1)
		loop_quit(l);
	__atomic_add_fetch(&syncs, 1, __ATOMIC_SEQ_CST);
}

static void *loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

static void sync_once(uint64_t v)
{
	unsigned int seen = __atomic_load_n(&syncs, __ATOMIC_SEQ_CST);

	CHECK_EQ(write(quit_fd, &v, sizeof(v)), 8);
	while (__atomic_load_n(&syncs, __ATOMIC_SEQ_CST) == seen)
		usleep(100);
}

/* Let the loop thread handle what is ready now (the kicks QueueNotify
 * handed over): everything ready before a sync is handled in the same
 * epoll round as that sync, or an earlier one, so two syncs cover it. */
static void pump(void)
{
	sync_once(1);
	sync_once(1);
}

static void vm_setup(void)
{
	struct gm_config cfg = { .size = RAM };
	struct ferr e;

	memset(&vm, 0, sizeof(vm));
	vm.vm_fd = -1;
	pthread_mutex_init(&vm.irq_lock, NULL);
	bus_init(&vm.mmio, "mmio");
	vm.loop = loop_create();
	CHECK(vm.loop != NULL);
	CHECK_EQ(gm_init(&vm.mem, &cfg, &e), 0);
	quit_fd = eventfd(0, EFD_NONBLOCK);
	CHECK_EQ(loop_add(vm.loop, quit_fd, EPOLLIN, on_sync, NULL), 0);
	CHECK_EQ(pthread_create(&loop_thread, NULL, loop_main, vm.loop), 0);
}

static void vm_teardown(void)
{
	sync_once(2);           /* stops the loop thread */
	pthread_join(loop_thread, NULL);
	for (unsigned int i = 0; i < vm.nr_virtio; i++)
		virtio_dev_destroy(vm.virtio[i]);
	loop_del(vm.loop, quit_fd);
	close(quit_fd);
	loop_destroy(vm.loop);
	gm_destroy(&vm.mem);
	bus_destroy(&vm.mmio);
}

#endif
