// SPDX-License-Identifier: GPL-2.0
/*
 * Every ioctl with every kind of bad argument: each gets its documented
 * errno and leaves every VM exactly as it was (counters, each gfn's
 * handle, sharers and state, global counters), with the audit clean.
 * Outputs come back fully initialised.
 */

#define _GNU_SOURCE
#include <sys/eventfd.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define GFNS		16	/* gfns of each VM the snapshot covers */
#define NVM		3

/* What must not change: every counter and every covered gfn. */
struct snap {
	struct pageshare_stats st[NVM];
	struct pageshare_query q[NVM][GFNS];
};

static void take(struct snap *s, const int *fd)
{
	int v, g;

	memset(s, 0, sizeof(*s));
	for (v = 0; v < NVM; v++) {
		ps_stats(fd[v], &s->st[v]);
		for (g = 0; g < GFNS; g++)
			ps_query(fd[v], g, &s->q[v][g]);
	}
}

/*
 * a and b in one share group, c alone; gfns 0..7 of each hold the same
 * bytes, gfn 1 of each is nominated, gfn 2 of a and b shared, gfns 8..15
 * holes.
 */
FIXTURE(bad) {
	int fd[NVM];
	unsigned char *m[NVM];
	uint64_t h1[NVM], h2;
	int efd, gone;
	struct snap before;
};

FIXTURE_SETUP(bad)
{
	uint64_t hb;
	int v;

	for (v = 0; v < NVM; v++)
		self->fd[v] = -1;
	REQUIRE_DEVICE();
	for (v = 0; v < NVM; v++) {
		self->fd[v] = v < 2 ? ps_open() : ps_open_alone();
		ASSERT_LE(0, self->fd[v]);
		self->m[v] = ps_map(self->fd[v], MIB, 0);
		ASSERT_NE(MAP_FAILED, self->m[v]);
		memset(self->m[v], 0x6b, 8 * PS_PAGE);
		ASSERT_EQ(0, ps_nominate(self->fd[v], 1, &self->h1[v], NULL));
	}
	ASSERT_EQ(0, ps_nominate(self->fd[0], 2, &self->h2, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 2, &hb, NULL));
	ASSERT_EQ(0, ps_share(self->fd[0], 2, self->h2, self->fd[1], 2, hb, 0));
	self->efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, self->efd);
	/* A VM that is gone: its descriptor number is closed. */
	self->gone = ps_open_alone();
	ASSERT_LE(0, self->gone);
	close(self->gone);
	take(&self->before, self->fd);
}

FIXTURE_TEARDOWN(bad)
{
	int v;

	if (self->fd[0] < 0)
		return;
	for (v = 0; v < NVM; v++) {
		munmap(self->m[v], MIB);
		close(self->fd[v]);
	}
	close(self->efd);
	EXPECT_EQ(0, ps_audit_all());
}

#define EXPECT_UNCHANGED() do {						\
	struct snap __now;						\
	take(&__now, self->fd);						\
	EXPECT_EQ(0, memcmp(&__now, &self->before, sizeof(__now)));	\
	EXPECT_EQ(0, ps_audit_all());					\
} while (0)

#define EXPECT_ERRNO(err, call) do {					\
	errno = 0;							\
	EXPECT_EQ(-1, (call));						\
	EXPECT_EQ(err, errno) TH_LOG("%s", #call);			\
} while (0)

/* One entry through the batch form: its result, or the ioctl's -errno. */
static int batch1(int fd, unsigned long cmd, void *entry, size_t size,
		  size_t result_off)
{
	uint32_t done = 0;
	int32_t r;

	if (ps_batch(fd, cmd, entry, 1, &done))
		return -errno;
	if (done != 1)
		return -1000;
	memcpy(&r, (char *)entry + result_off, sizeof(r));
	return r;
}

#define BATCH1(fd, cmd, e) batch1(fd, cmd, &(e), sizeof(e),		\
				  (char *)&(e).result - (char *)&(e))

/* Each sharing op with @vmfd as every VM it names: single and batch. */
static void bad_vm(struct __test_metadata *_metadata, int self_fd, int vmfd,
		   uint64_t gfn, uint64_t h, int err)
{
	struct pageshare_nominate n = { .vm = vmfd, .gfn = gfn };
	struct pageshare_share s = { .src_vm = vmfd, .client_vm = self_fd,
				     .src_gfn = gfn, .src_handle = h,
				     .client_gfn = gfn, .client_handle = h };
	struct pageshare_share s2 = s;
	struct pageshare_add_to_physmap a = { .src_vm = self_fd, .client_vm = vmfd,
					      .src_gfn = gfn, .src_handle = h,
					      .client_gfn = 12 };
	struct pageshare_unshare u = { .vm = vmfd, .gfn = gfn };
	struct pageshare_query q = { .vm = vmfd, .gfn = gfn };

	s2.src_vm = self_fd;
	s2.client_vm = vmfd;
	EXPECT_ERRNO(err, ioctl(self_fd, PAGESHARE_NOMINATE, &n));
	EXPECT_ERRNO(err, ioctl(self_fd, PAGESHARE_SHARE, &s));
	EXPECT_ERRNO(err, ioctl(self_fd, PAGESHARE_SHARE, &s2));
	EXPECT_ERRNO(err, ioctl(self_fd, PAGESHARE_ADD_TO_PHYSMAP, &a));
	EXPECT_ERRNO(err, ioctl(self_fd, PAGESHARE_UNSHARE, &u));
	EXPECT_ERRNO(err, ioctl(self_fd, PAGESHARE_QUERY, &q));
	EXPECT_EQ(-err, BATCH1(self_fd, PAGESHARE_NOMINATE_BATCH, n));
	EXPECT_EQ(0, n.handle);
	EXPECT_EQ(0, n.hash);
	EXPECT_EQ(-err, BATCH1(self_fd, PAGESHARE_SHARE_BATCH, s));
	EXPECT_EQ(-err, BATCH1(self_fd, PAGESHARE_SHARE_BATCH, s2));
	EXPECT_EQ(-err, BATCH1(self_fd, PAGESHARE_ADD_TO_PHYSMAP_BATCH, a));
	EXPECT_EQ(-err, BATCH1(self_fd, PAGESHARE_UNSHARE_BATCH, u));
	EXPECT_EQ(-err, BATCH1(self_fd, PAGESHARE_QUERY_BATCH, q));
	EXPECT_EQ(0, q.handle);
	EXPECT_EQ(0, q.sharers);
}

TEST_F(bad, descriptors_that_are_not_vms)
{
	bad_vm(_metadata, self->fd[0], self->efd, 1, self->h1[0], EBADF);
	bad_vm(_metadata, self->fd[0], self->gone, 1, self->h1[0], EBADF);
	bad_vm(_metadata, self->fd[0], 99999, 1, self->h1[0], EBADF);
	bad_vm(_metadata, self->fd[0], (uint32_t)-1, 1, self->h1[0], EBADF);
	EXPECT_UNCHANGED();
}

TEST_F(bad, gfns_out_of_range)
{
	/* Past the size, and past 32 bits where a truncated gfn would alias. */
	static const uint64_t gfns[] = { MIB / PS_PAGE, (1ULL << 32) + 1,
					 1ULL << 63, UINT64_MAX };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(gfns); i++)
		bad_vm(_metadata, self->fd[0], self->fd[0], gfns[i], self->h1[0], ENXIO);
	EXPECT_UNCHANGED();
}

TEST_F(bad, unknown_flags_and_reserved_fields)
{
	struct pageshare_nominate n = { .vm = self->fd[0], .gfn = 3, .flags = 1U << 1 };
	struct pageshare_share s = { .src_vm = self->fd[0], .client_vm = self->fd[1],
				     .src_gfn = 1, .src_handle = self->h1[0],
				     .client_gfn = 1, .client_handle = self->h1[1],
				     .flags = 1U << 1 };
	struct pageshare_add_to_physmap a = { .src_vm = self->fd[0], .client_vm = self->fd[1],
					      .src_gfn = 1, .src_handle = self->h1[0],
					      .client_gfn = 12, .flags = 1 };
	struct pageshare_unshare u = { .vm = self->fd[0], .gfn = 2, .flags = 1 };
	struct pageshare_query q = { .vm = self->fd[0], .gfn = 2, .flags = 1 };
	struct pageshare_size sz = { .size = MIB, .flags = 1 };
	struct pageshare_open_vm o = { .id = 1, .pad = 1 };
	struct pageshare_batch b = { .count = 0, .flags = 1 };

	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(-EINVAL, BATCH1(self->fd[0], PAGESHARE_NOMINATE_BATCH, n));
	n.flags = 0;
	n.pad = 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_NOMINATE, &n));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_SHARE, &s));
	EXPECT_EQ(-EINVAL, BATCH1(self->fd[0], PAGESHARE_SHARE_BATCH, s));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_ADD_TO_PHYSMAP, &a));
	EXPECT_EQ(-EINVAL, BATCH1(self->fd[0], PAGESHARE_ADD_TO_PHYSMAP_BATCH, a));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_UNSHARE, &u));
	u.flags = 0;
	u.pad = 1;
	EXPECT_EQ(-EINVAL, BATCH1(self->fd[0], PAGESHARE_UNSHARE_BATCH, u));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_QUERY, &q));
	q.flags = 0;
	q.pad = 1;
	EXPECT_EQ(-EINVAL, BATCH1(self->fd[0], PAGESHARE_QUERY_BATCH, q));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_SET_SIZE, &sz));
	sz.flags = 0;
	sz.reserved[1] = 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_SET_SIZE, &sz));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_OPEN_VM, &o));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_NOMINATE_BATCH, &b));
	b.flags = 0;
	b.pad = 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_SHARE_BATCH, &b));
	b.pad = 0;
	b.reserved[0] = 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd[0], PAGESHARE_QUERY_BATCH, &b));
	EXPECT_ERRNO(EINVAL, ps_set_policy(self->fd[0], 0, 1U << 30, NULL));
	EXPECT_UNCHANGED();
}

TEST_F(bad, null_unmapped_and_read_only_pointers)
{
	static const unsigned long cmds[] = {
		PAGESHARE_SET_SIZE, PAGESHARE_GET_INFO, PAGESHARE_SET_POLICY,
		PAGESHARE_GET_POLICY, PAGESHARE_OPEN_VM, PAGESHARE_NOMINATE,
		PAGESHARE_SHARE, PAGESHARE_ADD_TO_PHYSMAP, PAGESHARE_UNSHARE,
		PAGESHARE_QUERY, PAGESHARE_NOMINATE_BATCH, PAGESHARE_SHARE_BATCH,
		PAGESHARE_ADD_TO_PHYSMAP_BATCH, PAGESHARE_UNSHARE_BATCH,
		PAGESHARE_QUERY_BATCH, PAGESHARE_GET_STATS,
	};
	struct pageshare_nominate *ro;
	struct pageshare_batch b = { 0 };
	void *hole;
	unsigned int i;

	hole = mmap(NULL, PS_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], cmds[i], NULL));
		EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], cmds[i], hole));
	}

	/* Entries nowhere: nothing done. */
	b.count = 1;
	b.done = 77;
	b.entries = 0;
	EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], PAGESHARE_NOMINATE_BATCH, &b));
	EXPECT_EQ(0, b.done);
	b.entries = (uintptr_t)hole;
	EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], PAGESHARE_UNSHARE_BATCH, &b));
	EXPECT_EQ(0, b.done);

	/*
	 * Entries the kernel can read but not write back: not run, or the
	 * caller would lose the handles of pages that were nominated.
	 */
	ro = mmap(NULL, PS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ro[0] = (struct pageshare_nominate) { .vm = self->fd[0], .gfn = 5 };
	ro[1] = (struct pageshare_nominate) { .vm = self->fd[1], .gfn = 2 };
	ASSERT_EQ(0, mprotect(ro, PS_PAGE, PROT_READ));
	b.entries = (uintptr_t)ro;
	b.count = 2;
	EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], PAGESHARE_NOMINATE_BATCH, &b));
	EXPECT_EQ(0, b.done);
	EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], PAGESHARE_NOMINATE, ro));
	ASSERT_EQ(0, mprotect(ro, PS_PAGE, PROT_READ | PROT_WRITE));
	/* A batch whose second chunk is unmapped: the first is done. */
	munmap(ro, PS_PAGE);
	munmap(hole, PS_PAGE);
	EXPECT_UNCHANGED();
}

TEST_F(bad, batch_counts)
{
	struct pageshare_unshare *u;
	uint32_t done = 99;
	size_t len = 2 * PS_PAGE;
	unsigned int i, n;
	char *area;

	EXPECT_EQ(0, ps_batch(self->fd[0], PAGESHARE_NOMINATE_BATCH, NULL, 0, &done));
	EXPECT_EQ(0, done);
	EXPECT_ERRNO(E2BIG, ps_batch(self->fd[0], PAGESHARE_SHARE_BATCH, NULL,
				     UINT32_MAX, &done));
	EXPECT_ERRNO(E2BIG, ps_batch(self->fd[0], PAGESHARE_QUERY_BATCH, NULL,
				     PAGESHARE_BATCH_MAX + 1, &done));

	/*
	 * The first 64-entry chunk in a mapped page, the rest unmapped: the
	 * first chunk runs, and done says so. Unsharing holes changes nothing.
	 */
	area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, munmap(area + PS_PAGE, PS_PAGE));
	n = 64;
	u = (struct pageshare_unshare *)(area + PS_PAGE) - n;
	memset(u, 0, n * sizeof(*u));
	for (i = 0; i < n; i++) {
		u[i].vm = self->fd[2];
		u[i].gfn = 8 + i % 8;
	}
	EXPECT_ERRNO(EFAULT, ps_batch(self->fd[0], PAGESHARE_UNSHARE_BATCH, u, n + 10, &done));
	EXPECT_EQ(n, done);
	for (i = 0; i < n; i++)
		EXPECT_EQ(0, u[i].result);
	munmap(area, PS_PAGE);
	EXPECT_UNCHANGED();
}

TEST_F(bad, handles_that_do_not_fit)
{
	uint64_t h3;

	/* Stale, swapped, another VM's, and zero. */
	EXPECT_ERRNO(ESTALE, ps_share(self->fd[0], 1, self->h1[0] + 1000,
				      self->fd[1], 1, self->h1[1], 0));
	EXPECT_ERRNO(EIDRM, ps_share(self->fd[0], 1, self->h1[0],
				     self->fd[1], 1, self->h1[1] + 1000, 0));
	EXPECT_ERRNO(ESTALE, ps_share(self->fd[0], 1, self->h1[1],
				      self->fd[1], 1, self->h1[0], 0));
	EXPECT_ERRNO(ESTALE, ps_share(self->fd[0], 1, 0, self->fd[1], 1, self->h1[1], 0));
	EXPECT_ERRNO(EIDRM, ps_share(self->fd[0], 1, self->h1[0], self->fd[1], 1, 0, 0));
	EXPECT_ERRNO(ESTALE, ps_add_to_physmap(self->fd[0], 1, self->h1[1],
					       self->fd[1], 12));
	/* A handle of gfn 1 used for gfn 3 of the same VM. */
	EXPECT_ERRNO(EIDRM, ps_share(self->fd[0], 1, self->h1[0], self->fd[0], 3,
				     self->h1[0], 0));
	/* A gfn with itself, and a hole as the client or the source. */
	EXPECT_ERRNO(EINVAL, ps_share(self->fd[0], 1, self->h1[0], self->fd[0], 1,
				      self->h1[0], 0));
	EXPECT_ERRNO(EIDRM, ps_share(self->fd[0], 1, self->h1[0], self->fd[1], 9, 1, 0));
	EXPECT_ERRNO(ESTALE, ps_share(self->fd[0], 9, 1, self->fd[1], 1, self->h1[1], 0));
	EXPECT_ERRNO(ESTALE, ps_add_to_physmap(self->fd[0], 9, 1, self->fd[1], 12));
	EXPECT_ERRNO(EEXIST, ps_add_to_physmap(self->fd[0], 1, self->h1[0],
					       self->fd[1], 3));
	/* Across VMs without a common share group, either way round. */
	EXPECT_ERRNO(EACCES, ps_share(self->fd[0], 1, self->h1[0], self->fd[2], 1,
				      self->h1[2], 0));
	EXPECT_ERRNO(EACCES, ps_share(self->fd[2], 1, self->h1[2], self->fd[0], 1,
				      self->h1[0], 0));
	EXPECT_ERRNO(EACCES, ps_add_to_physmap(self->fd[0], 1, self->h1[0],
					       self->fd[2], 12));
	/* Nominating a hole. */
	EXPECT_ERRNO(ENODATA, ps_nominate(self->fd[0], 9, &h3, NULL));
	EXPECT_UNCHANGED();

	/* Bytes that differ, with the compare flag (a new state to keep). */
	self->m[2][3 * PS_PAGE] = 1;
	ASSERT_EQ(0, ps_nominate(self->fd[2], 3, &h3, NULL));
	take(&self->before, self->fd);
	EXPECT_ERRNO(EILSEQ, ps_share(self->fd[2], 1, self->h1[2], self->fd[2], 3, h3,
				      PAGESHARE_SHARE_COMPARE));
	EXPECT_UNCHANGED();
}

TEST_F(bad, same_gfn_twice_in_one_batch)
{
	struct pageshare_nominate n[2] = {
		{ .vm = self->fd[0], .gfn = 4 }, { .vm = self->fd[0], .gfn = 4 },
	};
	struct pageshare_share s[2];
	struct pageshare_unshare u[2] = {
		{ .vm = self->fd[1], .gfn = 4 }, { .vm = self->fd[1], .gfn = 4 },
	};
	struct pageshare_query q;
	uint32_t done;
	uint64_t hb;

	ASSERT_EQ(0, ps_batch(self->fd[0], PAGESHARE_NOMINATE_BATCH, n, 2, &done));
	EXPECT_EQ(0, n[0].result);
	EXPECT_EQ(0, n[1].result);
	EXPECT_EQ(n[0].handle, n[1].handle);
	ASSERT_EQ(0, ps_nominate(self->fd[1], 4, &hb, NULL));
	memset(s, 0, sizeof(s));
	s[0] = (struct pageshare_share) {
		.src_vm = self->fd[0], .client_vm = self->fd[1], .src_gfn = 4,
		.src_handle = n[0].handle, .client_gfn = 4, .client_handle = hb,
	};
	s[1] = s[0];
	ASSERT_EQ(0, ps_batch(self->fd[0], PAGESHARE_SHARE_BATCH, s, 2, &done));
	EXPECT_EQ(0, s[0].result);
	EXPECT_EQ(-EIDRM, s[1].result);	/* the client's handle died */
	ASSERT_EQ(0, ps_query(self->fd[1], 4, &q));
	EXPECT_EQ(2, q.sharers);
	ASSERT_EQ(0, ps_batch(self->fd[1], PAGESHARE_UNSHARE_BATCH, u, 2, &done));
	EXPECT_EQ(0, u[0].result);
	EXPECT_EQ(0, u[1].result);	/* already private: nothing to do */
	ASSERT_EQ(0, ps_query(self->fd[1], 4, &q));
	EXPECT_EQ(PAGESHARE_STATE_PRIVATE, q.state);
	ASSERT_EQ(0, ps_query(self->fd[0], 4, &q));
	EXPECT_EQ(1, q.sharers);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F(bad, outputs_fully_initialised)
{
	struct pageshare_vm_info info;
	struct pageshare_stats st;
	struct pageshare_policy p;
	struct pageshare_query q;
	struct pageshare_nominate n;
	unsigned int i;

	memset(&info, 0xa5, sizeof(info));
	ASSERT_EQ(0, ps_info(self->fd[0], &info));
	EXPECT_EQ(0, info.pad);
	for (i = 0; i < 4; i++)
		EXPECT_EQ(0, info.reserved[i]);
	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, ps_stats(self->fd[0], &st));
	for (i = 0; i < 7; i++)
		EXPECT_EQ(0, st.reserved[i]);
	memset(&p, 0xa5, sizeof(p));
	ASSERT_EQ(0, ioctl(self->fd[0], PAGESHARE_GET_POLICY, &p));
	EXPECT_EQ(0, p.pad);
	EXPECT_EQ(0, p.reserved[0]);
	EXPECT_EQ(0, p.reserved[1]);
	memset(&q, 0xa5, sizeof(q));
	q.vm = self->fd[0];
	q.gfn = 2;
	q.flags = 0;
	q.pad = 0;
	ASSERT_EQ(0, ioctl(self->fd[0], PAGESHARE_QUERY, &q));
	EXPECT_EQ(0, q.result);
	EXPECT_EQ(2, q.sharers);
	/* A hole: every output zero. */
	q.gfn = 9;
	q.handle = ~0ULL;
	ASSERT_EQ(0, ioctl(self->fd[0], PAGESHARE_QUERY, &q));
	EXPECT_EQ(0, q.handle);
	EXPECT_EQ(0, q.sharers);
	EXPECT_EQ(PAGESHARE_STATE_HOLE, q.state);
	memset(&n, 0xa5, sizeof(n));
	n.vm = self->fd[0];
	n.gfn = 1;
	n.flags = 0;
	n.pad = 0;
	ASSERT_EQ(0, ioctl(self->fd[0], PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(self->h1[0], n.handle);
	EXPECT_EQ(0, n.hash);
	EXPECT_EQ(0, n.result);
	EXPECT_UNCHANGED();
}

/*
 * An argument the kernel can read but not write back: a failing ioctl
 * changes nothing. SET_POLICY with NEW_GROUP must not leave the VM in a
 * new group whose id the caller never got; a batch whose header cannot
 * take its done count must not run its entries.
 */
TEST_F(bad, read_only_outputs_change_nothing)
{
	struct pageshare_policy *pol, before, now;
	struct pageshare_batch *hdr;
	struct pageshare_unshare u = { .vm = self->fd[0], .gfn = 2 };
	void *page;

	page = mmap(NULL, PS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	ASSERT_EQ(0, ioctl(self->fd[2], PAGESHARE_GET_POLICY, &before));

	pol = page;
	*pol = (struct pageshare_policy) { .flags = PAGESHARE_POLICY_NEW_GROUP };
	ASSERT_EQ(0, mprotect(page, PS_PAGE, PROT_READ));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd[2], PAGESHARE_SET_POLICY, pol));
	ASSERT_EQ(0, mprotect(page, PS_PAGE, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, ioctl(self->fd[2], PAGESHARE_GET_POLICY, &now));
	EXPECT_EQ(before.group, now.group) TH_LOG("the VM joined a group nobody was told of");
	EXPECT_EQ(before.flags, now.flags);

	/* Entries writable, header not: a's shared gfn 2 must stay shared. */
	hdr = page;
	*hdr = (struct pageshare_batch) { .entries = (uintptr_t)&u, .count = 1 };
	ASSERT_EQ(0, mprotect(page, PS_PAGE, PROT_READ));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd[0], PAGESHARE_UNSHARE_BATCH, hdr));
	ASSERT_EQ(0, mprotect(page, PS_PAGE, PROT_READ | PROT_WRITE));
	munmap(page, PS_PAGE);
	EXPECT_UNCHANGED();
}

/*
 * mmap's errors agree with SET_SIZE's: a mapping of a VM without a size
 * that ends past max_vm_size is too big (EFBIG), as SET_SIZE of that size
 * is; one past a VM's size is ENXIO.
 */
TEST_F(bad, mmap_errors_agree_with_set_size)
{
	long max = 0, now = 0;
	FILE *f = fopen("/sys/module/pageshare/parameters/max_vm_size", "r");
	void *m;
	int fd;

	ASSERT_NE(NULL, f);
	ASSERT_EQ(1, fscanf(f, "%ld", &max));
	fclose(f);
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	EXPECT_ERRNO(EFBIG, ps_set_size(fd, max + PS_PAGE));
	/* A mapping past max_vm_size, at an offset, and one that starts past it. */
	m = mmap(NULL, 2 * PS_PAGE, PROT_READ, MAP_SHARED, fd, max - PS_PAGE);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EFBIG, errno);
	m = mmap(NULL, PS_PAGE, PROT_READ, MAP_SHARED, fd, max + 16 * PS_PAGE);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EFBIG, errno);
	ASSERT_EQ(0, ps_set_size(fd, MIB));
	m = mmap(NULL, 2 * PS_PAGE, PROT_READ, MAP_SHARED, fd, MIB - PS_PAGE);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(ENXIO, errno);
	close(fd);

	/*
	 * The reverse map names gfns in 32 bits: max_vm_size cannot go past
	 * 16 TiB, nor be unaligned or 0. A refused write changes nothing.
	 */
	EXPECT_EQ(-1, ps_write_file("/sys/module/pageshare/parameters/max_vm_size",
				    "35184372088832"));	/* 32 TiB */
	EXPECT_EQ(-1, ps_write_file("/sys/module/pageshare/parameters/max_vm_size", "4097"));
	EXPECT_EQ(-1, ps_write_file("/sys/module/pageshare/parameters/max_vm_size", "0"));
	f = fopen("/sys/module/pageshare/parameters/max_vm_size", "r");
	ASSERT_NE(NULL, f);
	EXPECT_EQ(1, fscanf(f, "%ld", &now));
	fclose(f);
	EXPECT_EQ(max, now);
	EXPECT_EQ(0, ps_write_file("/sys/module/pageshare/parameters/max_vm_size",
				   "17592186044416"));	/* 16 TiB, the most */
	f = fopen("/sys/module/pageshare/parameters/max_vm_size", "w");
	ASSERT_NE(NULL, f);
	fprintf(f, "%ld", max);
	EXPECT_EQ(0, fclose(f));
	EXPECT_UNCHANGED();
}

TEST_HARNESS_MAIN
