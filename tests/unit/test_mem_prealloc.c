/* --memory ...,prealloc=on: the flag and the config key reach vm_config, and
 * gm_init() then leaves every page of guest RAM resident (mincore), where
 * without it a fresh mapping has none. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ferry/cli.h"
#include "ferry/mem.h"
#include "ferry/util.h"
#include "tap.h"

/* Pages of [p, p+len) that are in memory. */
static uint64_t resident_pages(void *p, uint64_t len)
{
	uint64_t n = len / 4096, in = 0;
	unsigned char *v = malloc(n);

	if (!v || mincore(p, len, v) < 0) {
		free(v);
		return UINT64_MAX;
	}
	for (uint64_t i = 0; i < n; i++)
		in += v[i] & 1;
	free(v);
	return in;
}

static int parse(struct cli *c, struct ferr *e, const char *mem)
{
	char *argv[] = { "ferry", "run", "--kernel", "k", "--memory", (char *)mem };

	e->msg[0] = 0;
	return cli_parse(6, argv, c, e);
}

TEST(flag_parses)
{
	struct cli c;
	struct ferr e;

	CHECK_EQ(parse(&c, &e, "64M"), 0);
	CHECK(!c.vm.prealloc);
	CHECK_EQ(parse(&c, &e, "64M,prealloc=on"), 0);
	CHECK(c.vm.prealloc);
	CHECK_EQ(c.vm.mem_size, 64 * MiB);
	CHECK_EQ(parse(&c, &e, "1G,backing=memfd,prealloc=on"), 0);
	CHECK(c.vm.prealloc);
	CHECK_EQ(c.vm.backing, GM_BACKING_MEMFD);
	CHECK_EQ(parse(&c, &e, "64M,prealloc=on,prealloc=off"), 0);
	CHECK(!c.vm.prealloc);
	CHECK_EQ(parse(&c, &e, "64M,prealloc=yes"), -EINVAL);
	CHECK(strstr(e.msg, "--memory: unknown option 'prealloc=yes'") != NULL);
	CHECK(strstr(e.msg, "prealloc=on|off") != NULL);
}

TEST(config_key)
{
	struct vm_config cfg;
	struct ferr e = { "" };
	char text[] = "kernel = k\nmemory = 128M,prealloc=on\n";

	cli_vm_defaults(&cfg);
	CHECK(!cfg.prealloc);
	CHECK_EQ(cli_parse_config(text, "vm.conf", &cfg, &e), 0);
	CHECK(cfg.prealloc);
	CHECK_EQ(cfg.mem_size, 128 * MiB);
}

static void check_resident(enum gm_backing backing)
{
	struct gm_config off = { .size = 64 * MiB, .backing = backing };
	struct gm_config on = { .size = 64 * MiB, .backing = backing, .prealloc = true };
	struct guest_mem gm;
	struct ferr e = { "" };

	CHECK_EQ(gm_init(&gm, &off, &e), 0);
	CHECK_EQ(resident_pages(gm.regions[0].hva, off.size), 0);
	gm_destroy(&gm);

	CHECK_EQ(gm_init(&gm, &on, &e), 0);
	CHECK_EQ(resident_pages(gm.regions[0].hva, on.size), on.size / 4096);
	/* The memory is usable and zero, as without prealloc. */
	CHECK_EQ(gm.regions[0].hva[12345], 0);
	gm_destroy(&gm);
}

TEST(prealloc_makes_ram_resident_anon)
{
	check_resident(GM_BACKING_ANON);
}

TEST(prealloc_makes_ram_resident_memfd)
{
	check_resident(GM_BACKING_MEMFD);
}

TEST(prefault_keeps_contents)
{
	uint8_t *p = mmap(NULL, 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED);
	if (p == MAP_FAILED)
		return;
	p[4096] = 0x5a;
	CHECK_EQ(gm_prefault(p, 2 * MiB), 0);
	CHECK_EQ(p[4096], 0x5a);
	CHECK_EQ(resident_pages(p, 2 * MiB), 2 * MiB / 4096);
	munmap(p, 2 * MiB);
}

int main(void)
{
	RUN(flag_parses);
	RUN(config_key);
	RUN(prealloc_makes_ram_resident_anon);
	RUN(prealloc_makes_ram_resident_memfd);
	RUN(prefault_keeps_contents);
	return tap_done();
}
