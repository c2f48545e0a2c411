// SPDX-License-Identifier: GPL-2.0
/*
 * Holes read as zeros and cost nothing: a read of a gfn that was never
 * written maps a zero page and allocates no page for it (QEMU's migration
 * reads all of guest RAM); the first write allocates, and every mapping,
 * KVM's stage-2 included, then sees the written bytes rather than zeros,
 * however the hole was filled (a write through another mapping,
 * add_to_physmap) and however the reads race with it.
 */

#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)

static long meminfo_kib(const char *key)
{
	char name[64];
	long val, ret = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld kB\n", name, &val) == 2)
		if (!strncmp(name, key, strlen(key)) && name[strlen(key)] == ':')
			ret = val;
	fclose(f);
	return ret;
}

static uint64_t private_pages(int fd)
{
	struct pageshare_stats st;

	return ps_stats(fd, &st) ? ~0ULL : st.private_pages;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

FIXTURE(holes) {
	int fd;
};

FIXTURE_SETUP(holes)
{
	self->fd = -1;
	if (access(PS_DEV, F_OK))
		SKIP(return, PS_DEV " is missing: load pageshare.ko");
	self->fd = ps_open();
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(holes)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* Reading every page of a 1 GiB VM: no page, and less than 1 MiB in all. */
TEST_F_TIMEOUT(holes, reading_a_whole_vm_allocates_nothing, 600)
{
	size_t size = 1024 * MIB, i;
	long free0, free1, pt0, pt1, used;
	unsigned char *m, sum = 0;

	ASSERT_EQ(0, ps_set_size(self->fd, size));
	m = ps_map(self->fd, size, 0);
	ASSERT_NE(MAP_FAILED, m);
	free0 = meminfo_kib("MemFree");
	pt0 = meminfo_kib("PageTables");
	for (i = 0; i < size; i += PS_PAGE)
		sum |= ((volatile unsigned char *)m)[i + (i / PS_PAGE) % PS_PAGE];
	free1 = meminfo_kib("MemFree");
	pt1 = meminfo_kib("PageTables");
	EXPECT_EQ(0, sum);
	EXPECT_EQ(0, private_pages(self->fd));
	/* The page tables are the mapping's, as for any memory read. */
	used = (free0 - free1) - (pt1 - pt0);
	TH_LOG("1 GiB read: %ld KiB allocated besides %ld KiB of page tables",
	       used, pt1 - pt0);
	EXPECT_GT(1024, used);
	EXPECT_TRUE(all_zero(m + 512 * MIB, 64 * 1024));

	/* A write allocates one page; its neighbours stay holes. */
	m[5 * PS_PAGE + 3] = 0x5a;
	EXPECT_EQ(1, private_pages(self->fd));
	EXPECT_EQ(0x5a, m[5 * PS_PAGE + 3]);
	EXPECT_TRUE(all_zero(m + 4 * PS_PAGE, PS_PAGE));
	EXPECT_EQ(0, ps_audit(self->fd));
	munmap(m, size);
}

/* A write through one mapping: a mapping that read zeros there sees it. */
TEST_F(holes, write_reaches_every_mapping_that_read_zeros)
{
	unsigned char *a, *b;
	uint64_t h;

	ASSERT_EQ(0, ps_set_size(self->fd, MIB));
	a = ps_map(self->fd, MIB, 0);
	b = ps_map(self->fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);
	EXPECT_EQ(0, a[7 * PS_PAGE]);
	EXPECT_EQ(0, b[7 * PS_PAGE]);
	a[7 * PS_PAGE] = 0x11;
	EXPECT_EQ(0x11, b[7 * PS_PAGE]);
	b[7 * PS_PAGE + 1] = 0x22;
	EXPECT_EQ(0x22, a[7 * PS_PAGE + 1]);
	EXPECT_EQ(1, private_pages(self->fd));

	/* A hole that was read is no page to nominate. */
	EXPECT_EQ(0, a[9 * PS_PAGE]);
	EXPECT_EQ(-1, ps_nominate(self->fd, 9, &h, NULL));
	EXPECT_EQ(ENODATA, errno);
	EXPECT_EQ(0, ps_audit(self->fd));
	munmap(a, MIB);
	munmap(b, MIB);
}

/* add_to_physmap into a hole that was read: the frame's bytes show. */
TEST_F(holes, add_to_physmap_replaces_the_zeros)
{
	unsigned char *a, *b;
	int other;
	uint64_t h;

	other = ps_open();
	ASSERT_LE(0, other);
	ASSERT_EQ(0, ps_set_size(self->fd, MIB));
	ASSERT_EQ(0, ps_set_size(other, MIB));
	a = ps_map(self->fd, MIB, 0);
	b = ps_map(other, MIB, 0);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);
	memset(b + 3 * PS_PAGE, 0x6b, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(other, 3, &h, NULL));
	EXPECT_EQ(0, a[12 * PS_PAGE]);
	ASSERT_EQ(0, ps_add_to_physmap(other, 3, h, self->fd, 12));
	EXPECT_EQ(0x6b, a[12 * PS_PAGE]);
	EXPECT_EQ(0x6b, a[12 * PS_PAGE + PS_PAGE - 1]);
	EXPECT_EQ(0, ps_audit(self->fd));
	munmap(a, MIB);
	munmap(b, MIB);
	close(other);
}

struct racer {
	unsigned char *m;
	atomic_int stop;
	atomic_long bad;
};

/* Reads every gfn again and again: once a gfn was seen written, never 0. */
static void *reader(void *arg)
{
	struct racer *r = arg;
	unsigned char seen[256] = { 0 };
	int gfn;

	while (!atomic_load(&r->stop)) {
		for (gfn = 0; gfn < 256; gfn++) {
			unsigned char v = ((volatile unsigned char *)r->m)[gfn * PS_PAGE];

			if (seen[gfn] && v != seen[gfn])
				atomic_fetch_add(&r->bad, 1);
			if (v)
				seen[gfn] = v;
		}
	}
	return NULL;
}

/*
 * Readers on their own mappings race a writer that fills the holes one by
 * one: no reader may see a gfn go back to zeros once it saw it written
 * (a zero page's PTE left over a page).
 */
TEST_F_TIMEOUT(holes, reads_racing_the_first_writes, 300)
{
	struct racer r[2] = { 0 };
	pthread_t t[2];
	unsigned char *w;
	int i, gfn, round;

	/* Each round on holes of its own: 1 MiB of the VM. */
	ASSERT_EQ(0, ps_set_size(self->fd, 20 * MIB));
	w = ps_map(self->fd, 20 * MIB, 0);
	ASSERT_NE(MAP_FAILED, w);
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 2; i++) {
			r[i].m = (unsigned char *)ps_map(self->fd, 20 * MIB, 0) + round * MIB;
			ASSERT_NE(MAP_FAILED, r[i].m - round * MIB);
			atomic_store(&r[i].stop, 0);
			ASSERT_EQ(0, pthread_create(&t[i], NULL, reader, &r[i]));
		}
		for (gfn = 0; gfn < 256; gfn++)
			w[round * MIB + gfn * PS_PAGE] = 1 + round;
		for (i = 0; i < 2; i++) {
			atomic_store(&r[i].stop, 1);
			pthread_join(t[i], NULL);
			for (gfn = 0; gfn < 256; gfn++)
				if (r[i].m[gfn * PS_PAGE] != 1 + round)
					atomic_fetch_add(&r[i].bad, 1);
			munmap(r[i].m - round * MIB, 20 * MIB);
		}
	}
	EXPECT_EQ(0, atomic_load(&r[0].bad) + atomic_load(&r[1].bad));
	EXPECT_EQ(20 * 256, private_pages(self->fd));
	EXPECT_EQ(0, ps_audit(self->fd));
	munmap(w, 20 * MIB);
}

#ifdef __x86_64__
/* A KVM guest that read zeros sees the host's write to the same gfn. */
TEST_F_TIMEOUT(holes, guest_sees_a_write_after_reading_zeros, 300)
{
	struct ps_guest g;
	uint32_t sum;

	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");
	ASSERT_EQ(0, ps_guest_create(&g, MIB)) TH_LOG("%s", g.err);
	ASSERT_EQ(0, ps_guest_sum(&g, PS_DATA_GFN, 8, &sum)) TH_LOG("%s", g.err);
	EXPECT_EQ(0, sum);
	/* The code page was written; the data pages were only read. */
	EXPECT_EQ(1, private_pages(g.fd));
	memset(g.mem + (PS_DATA_GFN + 2) * PS_PAGE, 1, PS_PAGE);
	ASSERT_EQ(0, ps_guest_sum(&g, PS_DATA_GFN, 8, &sum)) TH_LOG("%s", g.err);
	EXPECT_EQ(PS_PAGE / 2 * 0x0101, sum);
	/* And the guest's own write to a hole it read. */
	ASSERT_EQ(0, ps_guest_fill(&g, PS_DATA_GFN + 5, 1, 9)) TH_LOG("%s", g.err);
	EXPECT_EQ(0, ps_bad_fill_words(g.mem + (PS_DATA_GFN + 5) * PS_PAGE,
				       PS_DATA_GFN + 5, 1, 9));
	EXPECT_EQ(3, private_pages(g.fd));
	ps_guest_destroy(&g);
}
#endif

TEST_HARNESS_MAIN
