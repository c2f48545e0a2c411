// SPDX-License-Identifier: GPL-2.0
/*
 * Guest RAM on pageshare moves like any other memory while a KVM guest
 * writes it: memory offline of a ZONE_MOVABLE block and NUMA migration
 * with move_pages() move its private pages, compaction moves private
 * pages and shared frames (their pfns change; frames are kept out of
 * ZONE_MOVABLE, see share.c), and afterwards the guest and the host read
 * intact bytes, the frames still have their sharers and the audit is
 * clean.
 *
 * The test VM boots with movablecore= so that each node has a movable
 * zone, whose blocks can always be offlined when everything in them
 * migrates. The guest's memory is bound to node 1, which has no CPU: its
 * movable zone is not already full of the root filesystem's pages, so
 * the guest's pages land there. Not in its last blocks though: those hold
 * the node's memmap, allocated at boot from its top, so they can never go
 * offline, and the buddy allocator hands out the top of a node first. A
 * ballast of anonymous memory on node 1 takes those pages while the guest
 * faults its own in, and goes once it has.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define PRIV_GFN	PS_DATA_GFN	/* the guest writes these */
#define NPRIV		64
#define FRAME_GFN	128		/* frames: shared in pairs */
#define NFRAME		64
#define MEMDIR		"/sys/devices/system/memory/"
#define BALLAST		(192 * MIB)

FIXTURE(mig) {
	struct ps_guest g;
	pthread_t writer;
	bool running;
	atomic_int stop;
	atomic_uint rounds;	/* fills the guest completed */
	atomic_uint seed;	/* seed of the last completed fill */
	char err[160];
	uint64_t pfn[256];
};

static void *writer(void *arg)
{
	FIXTURE_DATA(mig) *self = arg;
	uint16_t seed = 1;

	while (!atomic_load(&self->stop)) {
		if (ps_guest_fill(&self->g, PRIV_GFN, NPRIV, seed)) {
			snprintf(self->err, sizeof(self->err), "%s", self->g.err);
			break;
		}
		atomic_store(&self->seed, seed);
		atomic_fetch_add(&self->rounds, 1);
		seed++;
		/*
		 * A breath between fills: memory offline waits for a work item
		 * on every CPU (flushing slabs), and under nested emulation a
		 * CPU that only runs a vCPU was seen not to run it for minutes.
		 */
		usleep(2000);
	}
	return NULL;
}

/* The pattern of frame gfn @gfn: the two gfns of a pair are equal. */
static unsigned char frame_byte(uint64_t gfn)
{
	return 0x80 + (gfn - FRAME_GFN) / 2;
}

/* Maps every page the test looks at and notes its pfn. */
static void note_pfns(FIXTURE_DATA(mig) *self)
{
	uint64_t gfn;

	for (gfn = PRIV_GFN; gfn < FRAME_GFN + NFRAME; gfn++) {
		(void)*(volatile unsigned char *)(self->g.mem + gfn * PS_PAGE);
		self->pfn[gfn] = ps_pfn_of(self->g.mem + gfn * PS_PAGE);
	}
}

/* How many of the private pages and of the frames have moved. */
static void count_moved(FIXTURE_DATA(mig) *self, int *priv, int *frames)
{
	uint64_t gfn, pfn;

	*priv = 0;
	*frames = 0;
	for (gfn = PRIV_GFN; gfn < FRAME_GFN + NFRAME; gfn++) {
		if (gfn >= PRIV_GFN + NPRIV && gfn < FRAME_GFN)
			continue;
		(void)*(volatile unsigned char *)(self->g.mem + gfn * PS_PAGE);
		pfn = ps_pfn_of(self->g.mem + gfn * PS_PAGE);
		if (pfn && pfn != self->pfn[gfn])
			(gfn < FRAME_GFN ? (*priv)++ : (*frames)++);
	}
}

static long bind_to_node1(void *addr, size_t len)
{
	unsigned long mask = 1UL << 1;

	/* MPOL_BIND: 2 */
	return syscall(__NR_mbind, addr, len, 2, &mask, 8 * sizeof(mask), 0);
}

FIXTURE_SETUP(mig)
{
	struct ps_guest *g = &self->g;
	uint64_t gfn, h[NFRAME];
	void *ballast = NULL;

	self->running = false;
	g->fd = -1;
	if (access(PS_DEV, F_OK))
		SKIP(return, PS_DEV " is missing: load pageshare.ko");
	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");
	ASSERT_EQ(0, ps_guest_create(g, MIB)) TH_LOG("%s", g->err);
	/* Before any data page is touched (the code page is gfn 1). */
	if (!access("/sys/devices/system/node/node1", F_OK)) {
		ASSERT_EQ(0, bind_to_node1(g->mem + PS_DATA_GFN * PS_PAGE,
					   MIB - PS_DATA_GFN * PS_PAGE));
		ballast = mmap(NULL, BALLAST, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, ballast);
		ASSERT_EQ(0, bind_to_node1(ballast, BALLAST));
		ASSERT_EQ(0, madvise(ballast, BALLAST, MADV_NOHUGEPAGE));
		memset(ballast, 1, BALLAST);
	}

	for (gfn = FRAME_GFN; gfn < FRAME_GFN + NFRAME; gfn++) {
		memset(g->mem + gfn * PS_PAGE, frame_byte(gfn), PS_PAGE);
		ASSERT_EQ(0, ps_nominate(g->fd, gfn, &h[gfn - FRAME_GFN], NULL));
	}
	for (gfn = FRAME_GFN; gfn < FRAME_GFN + NFRAME; gfn += 2)
		ASSERT_EQ(0, ps_share(g->fd, gfn, h[gfn - FRAME_GFN], g->fd, gfn + 1,
				      h[gfn + 1 - FRAME_GFN], 1));

	ASSERT_EQ(0, pthread_create(&self->writer, NULL, writer, self));
	self->running = true;
	while (atomic_load(&self->rounds) < 1 && !self->err[0])
		usleep(10000);
	if (ballast)
		munmap(ballast, BALLAST);
	ASSERT_EQ(0, self->err[0]) TH_LOG("guest: %s", self->err);
	note_pfns(self);
}

/* Stops the guest and checks every byte, from the host and from the guest. */
static void check_bytes(struct __test_metadata *_metadata, FIXTURE_DATA(mig) *self)
{
	struct ps_guest *g = &self->g;
	struct pageshare_query q;
	uint32_t sum;
	uint64_t gfn;
	size_t bad = 0;

	atomic_store(&self->stop, 1);
	pthread_join(self->writer, NULL);
	self->running = false;
	ASSERT_EQ(0, self->err[0]) TH_LOG("guest: %s", self->err);

	EXPECT_EQ(0, ps_bad_fill_words(g->mem + PRIV_GFN * PS_PAGE, PRIV_GFN, NPRIV,
				       atomic_load(&self->seed)));
	for (gfn = FRAME_GFN; gfn < FRAME_GFN + NFRAME; gfn++) {
		const unsigned char *p = g->mem + gfn * PS_PAGE;
		size_t i;

		for (i = 0; i < PS_PAGE; i++)
			bad += p[i] != frame_byte(gfn);
		ASSERT_EQ(0, ps_query(g->fd, gfn, &q));
		EXPECT_EQ(2, q.sharers) TH_LOG("gfn %llu", (unsigned long long)gfn);
	}
	EXPECT_EQ(0, bad);
	ASSERT_EQ(0, ps_guest_sum(g, PRIV_GFN, NPRIV, &sum)) TH_LOG("%s", g->err);
	EXPECT_EQ(ps_host_sum(g->mem + PRIV_GFN * PS_PAGE, NPRIV), sum);
	ASSERT_EQ(0, ps_guest_sum(g, FRAME_GFN, NFRAME, &sum)) TH_LOG("%s", g->err);
	EXPECT_EQ(ps_host_sum(g->mem + FRAME_GFN * PS_PAGE, NFRAME), sum);
	EXPECT_EQ(0, ps_audit_all());
}

FIXTURE_TEARDOWN(mig)
{
	if (self->running) {
		atomic_store(&self->stop, 1);
		pthread_join(self->writer, NULL);
	}
	ps_guest_destroy(&self->g);
}

static long block_bytes(void)
{
	char buf[32] = "";
	int fd = open(MEMDIR "block_size_bytes", O_RDONLY);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = 0;
	close(fd);
	return strtol(buf, NULL, 16);
}

static bool block_is_movable(struct __test_metadata *_metadata, long block)
{
	char path[96], buf[64] = "";
	int fd;

	snprintf(path, sizeof(path), MEMDIR "memory%ld/valid_zones", block);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = 0;
	close(fd);
	buf[strcspn(buf, "\n")] = 0;
	TH_LOG("block %ld: %s", block, buf);
	return !strncmp(buf, "Movable", 7);
}

static int block_state(long block, const char *state)
{
	char path[96];

	snprintf(path, sizeof(path), MEMDIR "memory%ld/state", block);
	return ps_write_file(path, state);
}

/*
 * Every ZONE_MOVABLE memory block that holds one of the VM's pages goes
 * offline and comes back: each of those pages must have moved.
 */
TEST_F_TIMEOUT(mig, offline_moves_private_pages_and_frames, 600)
{
	long bsize = block_bytes(), blocks[256];
	int nblocks = 0, offlined = 0, in_offlined[2] = {0, 0}, priv, frames, i;
	uint64_t gfn;

	if (bsize <= 0)
		SKIP(return, "no memory hotplug (" MEMDIR ")");
	for (gfn = PRIV_GFN; gfn < FRAME_GFN + NFRAME; gfn++) {
		long b;

		if ((gfn >= PRIV_GFN + NPRIV && gfn < FRAME_GFN) || !self->pfn[gfn])
			continue;
		b = self->pfn[gfn] * PS_PAGE / bsize;
		for (i = 0; i < nblocks && blocks[i] != b; i++)
			;
		if (i == nblocks)
			blocks[nblocks++] = b;
	}
	for (i = 0; i < nblocks; i++) {
		if (!block_is_movable(_metadata, blocks[i])) {
			blocks[i] = -1;
			continue;
		}
		if (block_state(blocks[i], "offline")) {
			TH_LOG("block %ld did not go offline: %s", blocks[i], strerror(errno));
			blocks[i] = -1;
			continue;
		}
		offlined++;
	}
	for (gfn = PRIV_GFN; gfn < FRAME_GFN + NFRAME; gfn++) {
		if ((gfn >= PRIV_GFN + NPRIV && gfn < FRAME_GFN) || !self->pfn[gfn])
			continue;
		for (i = 0; i < nblocks; i++)
			if (blocks[i] == (long)(self->pfn[gfn] * PS_PAGE / bsize))
				in_offlined[gfn >= FRAME_GFN]++;
	}
	count_moved(self, &priv, &frames);
	for (i = 0; i < nblocks; i++)
		if (blocks[i] >= 0)
			EXPECT_EQ(0, block_state(blocks[i], "online_movable"))
				TH_LOG("block %ld: %s", blocks[i], strerror(errno));
	TH_LOG("%d of %d blocks offlined; moved %d of %d private pages and %d of %d frame pages in them; %u guest fills",
	       offlined, nblocks, priv, in_offlined[0], frames, in_offlined[1],
	       atomic_load(&self->rounds));
	ASSERT_LT(0, offlined) TH_LOG("none of the VM's pages is in a movable block");
	EXPECT_LT(0, in_offlined[0]);
	/* Frames are not in ZONE_MOVABLE: none should be there. */
	EXPECT_EQ(0, in_offlined[1]);
	/* Everything in an offlined block moved (maybe more: a refault). */
	EXPECT_LE(in_offlined[0], priv);
	check_bytes(_metadata, self);
}

/* NUMA migration of the private pages to the other node, as numactl does. */
TEST_F_TIMEOUT(mig, move_pages_moves_private_pages, 600)
{
	void *pages[NPRIV];
	int nodes[NPRIV], status[NPRIV], moved = 0, priv, frames, i;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "one NUMA node");
	for (i = 0; i < NPRIV; i++) {
		pages[i] = self->g.mem + (PRIV_GFN + i) * PS_PAGE;
		status[i] = -1;
		/* Where it is not: the test VM has two nodes. */
		nodes[i] = -1;
	}
	/* First ask where they are. */
	ASSERT_EQ(0, syscall(__NR_move_pages, 0, NPRIV, pages, NULL, status, 0));
	for (i = 0; i < NPRIV; i++) {
		ASSERT_LE(0, status[i]) TH_LOG("page %d: %d", i, status[i]);
		nodes[i] = !status[i];
	}
	/* MPOL_MF_MOVE (1 << 1): pages that only this process maps. */
	ASSERT_LE(0, syscall(__NR_move_pages, 0, NPRIV, pages, nodes, status, 1 << 1));
	for (i = 0; i < NPRIV; i++)
		moved += status[i] == nodes[i];
	count_moved(self, &priv, &frames);
	TH_LOG("%d of %d private pages on their new node, %d pfns changed; %u guest fills",
	       moved, NPRIV, priv, atomic_load(&self->rounds));
	/* The guest may have faulted one in the moment it moved: most. */
	EXPECT_LE(NPRIV * 3 / 4, moved);
	EXPECT_LE(moved, priv);
	check_bytes(_metadata, self);
}

/*
 * What compaction moves it moves intact. How much it moves is its choice:
 * up to three passes, until something of the VM's moved.
 */
TEST_F_TIMEOUT(mig, compaction_keeps_bytes, 600)
{
	int priv = 0, frames = 0, pass;

	for (pass = 1; pass <= 3 && !priv && !frames; pass++) {
		ASSERT_EQ(0, ps_write_file("/proc/sys/vm/compact_memory", "1"));
		count_moved(self, &priv, &frames);
	}
	TH_LOG("compaction (%d passes) moved %d of %d private pages and %d of %d frame pages; %u guest fills",
	       pass - 1, priv, NPRIV, frames, NFRAME, atomic_load(&self->rounds));
	EXPECT_LT(0, priv + frames);
	check_bytes(_metadata, self);
}

TEST_HARNESS_MAIN
