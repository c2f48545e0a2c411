// SPDX-License-Identifier: GPL-2.0
/*
 * guestmem: /init of the small Linux guest that the real-QEMU test and
 * make demo boot twice, with RAM from a pageshare mount. It fills a buffer with
 * a known pattern, the same in every guest (so the agent finds it twice),
 * and answers commands on its console, so that the host can see that
 * deduplication and copy-on-write never change what a guest reads:
 *
 *   sum      "CHECK OK|BAD <version> <sum>": verify every byte against the
 *            pattern, and the buffer's checksum
 *   write    rewrite every page with the next version of the pattern, then
 *            as "sum"
 *   touch N  write N MiB of fresh memory once (at most all free memory
 *            but 16 MiB) and free it again, so that the guest's free
 *            memory is memory the host gave it (which a balloon can then
 *            give back), then as "sum"
 *
 * At boot it prints "READY <MiB> <version> <sum>" once the buffer is full.
 * It never exits: it is the guest's init.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define PAGE	4096UL

static size_t pages;
static unsigned char *buf;
static unsigned int version = 1;

/* Page @i's words for @v: every page differs, every guest agrees. */
static uint64_t word(size_t i, size_t k, unsigned int v)
{
	uint64_t x = (i * 512 + k) * 0x9e3779b97f4a7c15ULL + v;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 32);
}

static void fill(unsigned int v)
{
	size_t i, k;

	for (i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(buf + i * PAGE);

		for (k = 0; k < PAGE / 8; k++)
			w[k] = word(i, k, v);
	}
}

/* Returns the buffer's checksum; *bad counts words that differ. */
static uint64_t check(unsigned int v, size_t *bad)
{
	uint64_t sum = 0;
	size_t i, k;

	*bad = 0;
	for (i = 0; i < pages; i++) {
		const uint64_t *w = (const uint64_t *)(buf + i * PAGE);

		for (k = 0; k < PAGE / 8; k++) {
			sum = sum * 31 + w[k];
			*bad += w[k] != word(i, k, v);
		}
	}
	return sum;
}

static void touch(size_t mib)
{
	size_t len = mib << 20, avail, i;
	struct sysinfo si;
	unsigned char *p;

	if (sysinfo(&si))
		return;
	avail = (size_t)si.freeram * si.mem_unit;
	if (avail <= 16UL << 20)
		return;
	if (len > avail - (16UL << 20))
		len = avail - (16UL << 20);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	for (i = 0; i < len; i += PAGE)
		p[i] = 1;
	munmap(p, len);
}

static void report(const char *what)
{
	size_t bad;
	uint64_t sum = check(version, &bad);

	printf("%s %s %u %016llx\n", what, bad ? "BAD" : "OK", version,
	       (unsigned long long)sum);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 48;
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	pages = mib * 1024 * 1024 / PAGE;
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		printf("FAILED mmap\n");
		for (;;)
			pause();
	}
	/* No THP: 4 KiB guest pages land on 4 KiB host pages, aligned. */
	madvise(buf, pages * PAGE, MADV_NOHUGEPAGE);
	fill(version);
	printf("READY %zu ", mib);
	report("CHECK");
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "write", 5)) {
			fill(++version);
			report("CHECK");
		} else if (!strncmp(line, "sum", 3)) {
			report("CHECK");
		} else if (!strncmp(line, "touch ", 6)) {
			touch(strtoul(line + 6, NULL, 0));
			report("CHECK");
		}
	}
	for (;;)
		pause();
}
