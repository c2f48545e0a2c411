// SPDX-License-Identifier: GPL-2.0
/*
 * Xen-style sharing on pageshare VMs: nominate, share, add_to_physmap and
 * unshare, with real KVM guests in two and three VMs reading and writing
 * the shared pages, and the uapi's errors. After every test the audit
 * must find nothing wrong.
 */

#define _GNU_SOURCE
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define NPAGES		32	/* data pages each guest fills and shares */

#define REQUIRE_KVM() do {						\
	REQUIRE_DEVICE();						\
	if (access("/dev/kvm", F_OK))					\
		SKIP(return, "no /dev/kvm");				\
} while (0)

static long global(const char *name)
{
	return ps_sysfs_read(name);
}

/* Nominates [gfn, gfn + n) of @fd in one batch, with hashes. */
static int nominate_range(int fd, uint64_t gfn, uint32_t n, uint64_t *handles,
			  uint64_t *hashes)
{
	struct pageshare_nominate e[NPAGES * 2];
	uint32_t i, done;

	memset(e, 0, sizeof(e));
	for (i = 0; i < n; i++) {
		e[i].vm = fd;
		e[i].gfn = gfn + i;
		e[i].flags = PAGESHARE_NOMINATE_HASH;
	}
	if (ps_batch(fd, PAGESHARE_NOMINATE_BATCH, e, n, &done) || done != n)
		return -1;
	for (i = 0; i < n; i++) {
		if (e[i].result)
			return errno = -e[i].result, -1;
		handles[i] = e[i].handle;
		if (hashes)
			hashes[i] = e[i].hash;
	}
	return 0;
}

/* Shares [gfn, gfn + n) of @cfd into the same gfns of @sfd, comparing bytes. */
static int share_range(int sfd, const uint64_t *sh, int cfd, const uint64_t *ch,
		       uint64_t gfn, uint32_t n)
{
	struct pageshare_share e[NPAGES * 2];
	uint32_t i, done;

	memset(e, 0, sizeof(e));
	for (i = 0; i < n; i++) {
		e[i] = (struct pageshare_share) {
			.src_vm = sfd, .client_vm = cfd,
			.src_gfn = gfn + i, .src_handle = sh[i],
			.client_gfn = gfn + i, .client_handle = ch[i],
			.flags = PAGESHARE_SHARE_COMPARE,
		};
	}
	if (ps_batch(sfd, PAGESHARE_SHARE_BATCH, e, n, &done) || done != n)
		return -1;
	for (i = 0; i < n; i++)
		if (e[i].result)
			return errno = -e[i].result, -1;
	return 0;
}

static uint32_t sharers(int fd, uint64_t gfn)
{
	struct pageshare_query q;

	return ps_query(fd, gfn, &q) ? 0 : q.sharers;
}

FIXTURE(guests) {
	struct ps_guest g[3];
	uint64_t h[3][NPAGES];
	long saved0, shared0;
};

FIXTURE_SETUP(guests)
{
	int i;

	for (i = 0; i < 3; i++)
		self->g[i].fd = -1;
	REQUIRE_KVM();
	self->saved0 = global("saved_frames");
	self->shared0 = global("shared_frames");
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, ps_guest_create(&self->g[i], MIB)) TH_LOG("%s", self->g[i].err);
	ASSERT_EQ(0, ps_audit_all());
}

FIXTURE_TEARDOWN(guests)
{
	int i;

	if (self->g[0].fd >= 0 || self->g[1].fd >= 0)
		EXPECT_EQ(0, ps_audit_all());
	for (i = 0; i < 3; i++)
		ps_guest_destroy(&self->g[i]);
	/* Every frame went with the last VM that mapped it. */
	EXPECT_EQ(self->saved0, global("saved_frames"));
	EXPECT_EQ(self->shared0, global("shared_frames"));
	EXPECT_EQ(0, ps_audit_all());
}

/* Guest i fills or sums pages; the test stops if KVM_RUN fails. */
#define FILL(i, gfn, n, seed) do {					\
	struct ps_guest *g_ = &self->g[i];				\
	ASSERT_EQ(0, ps_guest_fill(g_, gfn, n, seed)) TH_LOG("%s", g_->err); \
} while (0)
#define SUM(i, gfn, n, out) do {					\
	struct ps_guest *g_ = &self->g[i];				\
	ASSERT_EQ(0, ps_guest_sum(g_, gfn, n, out)) TH_LOG("%s", g_->err); \
} while (0)
#define MEM(i, gfn) (self->g[i].mem + (gfn) * PS_PAGE)

/*
 * @fd's private gfns from @start, PAGESHARE_GET_PRIVATE @max at a time, into
 * @out (@cap at most): how many, or -1 with errno.
 */
static long private_gfns(int fd, uint64_t start, uint32_t max, uint64_t *out, size_t cap,
			 uint64_t *discards)
{
	struct pageshare_private p;
	size_t n = 0;

	for (;;) {
		memset(&p, 0, sizeof(p));
		p.gfns = (uintptr_t)(out + n);
		p.start = start;
		p.max = cap - n < max ? cap - n : max;
		if (ioctl(fd, PAGESHARE_GET_PRIVATE, &p))
			return -1;
		if (discards)
			*discards = p.discards;
		n += p.count;
		if (p.count < p.max || n == cap)
			return n;
		start = p.next;
	}
}

/* Whether @gfn is among @n sorted gfns. */
static bool has_gfn(const uint64_t *gfns, long n, uint64_t gfn)
{
	long i;

	for (i = 0; i < n; i++)
		if (gfns[i] == gfn)
			return true;
	return false;
}

/* Guests 0 and 1 write the same bytes; the host shares them. */
static int share_two(struct __test_metadata *_metadata,
		     FIXTURE_DATA(guests) * self, uint16_t seed)
{
	uint64_t hash0[NPAGES], hash1[NPAGES];
	int i;

	if (ps_guest_fill(&self->g[0], PS_DATA_GFN, NPAGES, seed) ||
	    ps_guest_fill(&self->g[1], PS_DATA_GFN, NPAGES, seed))
		return -1;
	if (nominate_range(self->g[0].fd, PS_DATA_GFN, NPAGES, self->h[0], hash0) ||
	    nominate_range(self->g[1].fd, PS_DATA_GFN, NPAGES, self->h[1], hash1))
		return -1;
	for (i = 0; i < NPAGES; i++)
		if (hash0[i] != hash1[i])
			return -1;
	return share_range(self->g[0].fd, self->h[0], self->g[1].fd, self->h[1],
			   PS_DATA_GFN, NPAGES);
}

TEST_F_TIMEOUT(guests, guests_read_shared_contents, 300)
{
	struct pageshare_stats st;
	uint32_t s0, s1;

	ASSERT_EQ(0, share_two(_metadata, self, 0x1234)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(2, sharers(self->g[1].fd, PS_DATA_GFN));
	EXPECT_EQ(self->saved0 + NPAGES, global("saved_frames"));
	ASSERT_EQ(0, ps_stats(self->g[1].fd, &st));
	EXPECT_EQ(NPAGES, st.shared_gfns);
	EXPECT_EQ(0, st.nominated_gfns);
	EXPECT_EQ(1, st.private_pages);		/* the code page */
	EXPECT_EQ(st.shared_frames + st.saved_frames,
		  (uint64_t)global("shared_frames") + global("saved_frames"));

	/* Both guests read the one copy, and so do both VMMs. */
	SUM(0, PS_DATA_GFN, NPAGES, &s0);
	SUM(1, PS_DATA_GFN, NPAGES, &s1);
	EXPECT_EQ(s0, s1);
	EXPECT_EQ(ps_host_sum(MEM(1, PS_DATA_GFN), NPAGES), s1);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(1, PS_DATA_GFN), PS_DATA_GFN, NPAGES, 0x1234));
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, guest_write_breaks_only_its_copy, 300)
{
	struct pageshare_stats st;
	struct pageshare_query q;
	uint32_t before, after;

	ASSERT_EQ(0, share_two(_metadata, self, 0x4321)) TH_LOG("%s", strerror(errno));
	SUM(1, PS_DATA_GFN, NPAGES, &before);

	/* Guest 0 rewrites one page with other bytes. */
	FILL(0, PS_DATA_GFN + 5, 1, 0x9999);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(0, PS_DATA_GFN + 5), PS_DATA_GFN + 5, 1, 0x9999));
	EXPECT_EQ(0, ps_bad_fill_words(MEM(1, PS_DATA_GFN + 5), PS_DATA_GFN + 5, 1, 0x4321));
	SUM(1, PS_DATA_GFN, NPAGES, &after);
	EXPECT_EQ(before, after);

	ASSERT_EQ(0, ps_query(self->g[0].fd, PS_DATA_GFN + 5, &q));
	EXPECT_EQ(PAGESHARE_STATE_PRIVATE, q.state);
	ASSERT_EQ(0, ps_query(self->g[1].fd, PS_DATA_GFN + 5, &q));
	EXPECT_EQ(PAGESHARE_STATE_NOMINATED, q.state);
	EXPECT_EQ(self->h[0][5], q.handle);	/* the frame's handle lives */
	ASSERT_EQ(0, ps_stats(self->g[0].fd, &st));
	EXPECT_EQ(1, st.cow_breaks);
	EXPECT_EQ(NPAGES - 1, st.shared_gfns);

	/* Guest 1, now the frame's only sharer, writes: no copy needed. */
	FILL(1, PS_DATA_GFN + 5, 1, 0x7777);
	ASSERT_EQ(0, ps_query(self->g[1].fd, PS_DATA_GFN + 5, &q));
	EXPECT_EQ(PAGESHARE_STATE_PRIVATE, q.state);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(0, PS_DATA_GFN + 5), PS_DATA_GFN + 5, 1, 0x9999));
	EXPECT_EQ(self->saved0 + NPAGES - 1, global("saved_frames"));
	EXPECT_EQ(0, ps_audit_all());
}

/*
 * What a guest writes is what PAGESHARE_GET_PRIVATE lists afterwards: the
 * gfn it took out of shared state, and the holes it wrote, and nothing of
 * the other guest's.
 */
TEST_F_TIMEOUT(guests, guest_writes_listed_as_private, 300)
{
	uint64_t gfns[256], d0, d1;
	long n;

	ASSERT_EQ(0, share_two(_metadata, self, 0x2468)) TH_LOG("%s", strerror(errno));
	n = private_gfns(self->g[0].fd, 0, 7, gfns, 256, &d0);
	ASSERT_LE(0, n);
	EXPECT_FALSE(has_gfn(gfns, n, PS_DATA_GFN + 3));
	EXPECT_EQ(1, n);	/* the code page */

	FILL(0, PS_DATA_GFN + 3, 1, 0x1357);		/* takes it out of sharing */
	FILL(0, PS_DATA_GFN + NPAGES, 2, 0x1357);	/* two holes */
	n = private_gfns(self->g[0].fd, 0, 7, gfns, 256, &d1);
	ASSERT_EQ(4, n);
	EXPECT_TRUE(has_gfn(gfns, n, PS_DATA_GFN + 3));
	EXPECT_TRUE(has_gfn(gfns, n, PS_DATA_GFN + NPAGES));
	EXPECT_TRUE(has_gfn(gfns, n, PS_DATA_GFN + NPAGES + 1));
	EXPECT_EQ(d0, d1);
	n = private_gfns(self->g[1].fd, 0, 7, gfns, 256, NULL);
	EXPECT_EQ(1, n);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, guest_write_makes_handles_stale, 300)
{
	uint64_t ha, hb;

	FILL(0, PS_DATA_GFN, 1, 1);
	FILL(1, PS_DATA_GFN, 1, 1);
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->g[1].fd, PS_DATA_GFN, &hb, NULL));

	/* The source's guest writes after nominate: its version is gone. */
	FILL(0, PS_DATA_GFN, 1, 1);
	EXPECT_EQ(-1, ps_share(self->g[0].fd, PS_DATA_GFN, ha, self->g[1].fd,
			       PS_DATA_GFN, hb, 0));
	EXPECT_EQ(ESTALE, errno);

	/* And the client's. */
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN, &ha, NULL));
	FILL(1, PS_DATA_GFN, 1, 1);
	EXPECT_EQ(-1, ps_share(self->g[0].fd, PS_DATA_GFN, ha, self->g[1].fd,
			       PS_DATA_GFN, hb, 0));
	EXPECT_EQ(EIDRM, errno);
	EXPECT_EQ(1, sharers(self->g[0].fd, PS_DATA_GFN));
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, vmm_write_makes_handles_stale_and_breaks_sharing, 300)
{
	struct iovec local, remote;
	uint32_t sum;
	uint64_t ha, hb;
	char byte = 0x5a;

	FILL(0, PS_DATA_GFN, 2, 3);
	FILL(1, PS_DATA_GFN, 2, 3);
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->g[1].fd, PS_DATA_GFN, &hb, NULL));
	MEM(0, PS_DATA_GFN)[100] ^= 1;		/* the VMM writes */
	EXPECT_EQ(-1, ps_share(self->g[0].fd, PS_DATA_GFN, ha, self->g[1].fd,
			       PS_DATA_GFN, hb, 0));
	EXPECT_EQ(ESTALE, errno);
	MEM(0, PS_DATA_GFN)[100] ^= 1;

	/* Shared, then written by the VMM: only its gfn changes. */
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN, &ha, NULL));
	ASSERT_EQ(0, ps_share(self->g[0].fd, PS_DATA_GFN, ha, self->g[1].fd,
			      PS_DATA_GFN, hb, PAGESHARE_SHARE_COMPARE));
	MEM(1, PS_DATA_GFN)[7] = 0x42;
	EXPECT_EQ(0, ps_bad_fill_words(MEM(0, PS_DATA_GFN), PS_DATA_GFN, 1, 3));
	SUM(0, PS_DATA_GFN, 1, &sum);
	EXPECT_EQ(ps_host_sum(MEM(0, PS_DATA_GFN), 1), sum);
	SUM(1, PS_DATA_GFN, 1, &sum);
	EXPECT_EQ(ps_host_sum(MEM(1, PS_DATA_GFN), 1), sum);

	/* Through GUP (process_vm_writev), as vhost or an emulated device would. */
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN + 1, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->g[1].fd, PS_DATA_GFN + 1, &hb, NULL));
	ASSERT_EQ(0, ps_share(self->g[0].fd, PS_DATA_GFN + 1, ha, self->g[1].fd,
			      PS_DATA_GFN + 1, hb, PAGESHARE_SHARE_COMPARE));
	local.iov_base = &byte;
	local.iov_len = 1;
	remote.iov_base = MEM(0, PS_DATA_GFN + 1) + 9;
	remote.iov_len = 1;
	ASSERT_EQ(1, process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_EQ(0x5a, MEM(0, PS_DATA_GFN + 1)[9]);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(1, PS_DATA_GFN + 1), PS_DATA_GFN + 1, 1, 3));
	EXPECT_EQ(1, sharers(self->g[1].fd, PS_DATA_GFN + 1));
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, three_vms_coalesce_onto_one_frame, 300)
{
	uint64_t h[3];
	uint32_t s[3];
	long saved = global("saved_frames");
	int i;

	for (i = 0; i < 3; i++) {
		FILL(i, PS_DATA_GFN, 4, 0xc0de);
		ASSERT_EQ(0, ps_nominate(self->g[i].fd, PS_DATA_GFN + 2, &h[i], NULL));
	}
	ASSERT_EQ(0, ps_share(self->g[0].fd, PS_DATA_GFN + 2, h[0], self->g[1].fd,
			      PS_DATA_GFN + 2, h[1], PAGESHARE_SHARE_COMPARE));
	ASSERT_EQ(0, ps_share(self->g[0].fd, PS_DATA_GFN + 2, h[0], self->g[2].fd,
			      PS_DATA_GFN + 2, h[2], PAGESHARE_SHARE_COMPARE));
	for (i = 0; i < 3; i++)
		EXPECT_EQ(3, sharers(self->g[i].fd, PS_DATA_GFN + 2));
	EXPECT_EQ(saved + 2, global("saved_frames"));
	/* Sharing two gfns already on one frame changes nothing. */
	EXPECT_EQ(0, ps_share(self->g[1].fd, PS_DATA_GFN + 2, h[0], self->g[2].fd,
			      PS_DATA_GFN + 2, h[0], 0));
	EXPECT_EQ(saved + 2, global("saved_frames"));

	for (i = 0; i < 3; i++)
		SUM(i, PS_DATA_GFN, 4, &s[i]);
	EXPECT_EQ(s[0], s[1]);
	EXPECT_EQ(s[0], s[2]);

	FILL(2, PS_DATA_GFN + 2, 1, 0xdead);
	EXPECT_EQ(2, sharers(self->g[0].fd, PS_DATA_GFN + 2));
	SUM(0, PS_DATA_GFN, 4, &s[1]);
	EXPECT_EQ(s[0], s[1]);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, add_to_physmap_into_a_hole, 300)
{
	const uint64_t hole = 200;
	uint32_t sum;
	uint64_t ha;

	FILL(0, PS_DATA_GFN, 1, 0xabcd);
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN, &ha, NULL));
	EXPECT_EQ(-1, ps_add_to_physmap(self->g[0].fd, PS_DATA_GFN, ha,
					self->g[1].fd, 1));	/* has the code */
	EXPECT_EQ(EEXIST, errno);
	ASSERT_EQ(0, ps_add_to_physmap(self->g[0].fd, PS_DATA_GFN, ha,
				       self->g[1].fd, hole));
	EXPECT_EQ(2, sharers(self->g[1].fd, hole));

	/* Guest 1 reads guest 0's page at its own gfn 200. */
	SUM(1, hole, 1, &sum);
	EXPECT_EQ(ps_host_sum(MEM(0, PS_DATA_GFN), 1), sum);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(1, hole), PS_DATA_GFN, 1, 0xabcd));

	/* And writes its own copy. */
	FILL(1, hole, 1, 1);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(0, PS_DATA_GFN), PS_DATA_GFN, 1, 0xabcd));
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, compare_flag_refuses_different_bytes, 300)
{
	uint64_t ha, hb;
	uint32_t sum;

	FILL(0, PS_DATA_GFN, 1, 1);
	FILL(1, PS_DATA_GFN, 1, 2);
	ASSERT_EQ(0, ps_nominate(self->g[0].fd, PS_DATA_GFN, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->g[1].fd, PS_DATA_GFN, &hb, NULL));
	EXPECT_EQ(-1, ps_share(self->g[0].fd, PS_DATA_GFN, ha, self->g[1].fd,
			       PS_DATA_GFN, hb, PAGESHARE_SHARE_COMPARE));
	EXPECT_EQ(EILSEQ, errno);
	EXPECT_EQ(1, sharers(self->g[1].fd, PS_DATA_GFN));
	EXPECT_EQ(0, ps_audit_all());

	/*
	 * Without the flag the kernel trusts the caller, as Xen does. Guest 1
	 * has its own page mapped (read-only) in KVM when the share happens:
	 * the share must take it away, and guest 1 must then read guest 0's.
	 */
	SUM(1, PS_DATA_GFN, 1, &sum);
	EXPECT_EQ(ps_host_sum(MEM(1, PS_DATA_GFN), 1), sum);
	EXPECT_NE(ps_host_sum(MEM(0, PS_DATA_GFN), 1), sum);
	ASSERT_EQ(0, ps_share(self->g[0].fd, PS_DATA_GFN, ha, self->g[1].fd,
			      PS_DATA_GFN, hb, 0));
	SUM(1, PS_DATA_GFN, 1, &sum);
	EXPECT_EQ(ps_host_sum(MEM(0, PS_DATA_GFN), 1), sum);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F_TIMEOUT(guests, teardown_of_one_vm_while_shared, 300)
{
	uint32_t before, after;
	struct pageshare_stats st;

	ASSERT_EQ(0, share_two(_metadata, self, 0x600d)) TH_LOG("%s", strerror(errno));
	SUM(1, PS_DATA_GFN, NPAGES, &before);

	/* VM 0 goes away entirely: KVM VM, mapping and file. */
	ps_guest_destroy(&self->g[0]);
	EXPECT_EQ(0, ps_audit_all());
	EXPECT_EQ(1, sharers(self->g[1].fd, PS_DATA_GFN));
	ASSERT_EQ(0, ps_stats(self->g[1].fd, &st));
	EXPECT_EQ(NPAGES, st.nominated_gfns);
	EXPECT_EQ(self->saved0, global("saved_frames"));

	SUM(1, PS_DATA_GFN, NPAGES, &after);
	EXPECT_EQ(before, after);
	EXPECT_EQ(0, ps_bad_fill_words(MEM(1, PS_DATA_GFN), PS_DATA_GFN, NPAGES, 0x600d));
	FILL(1, PS_DATA_GFN, NPAGES, 0x600e);
	EXPECT_EQ(0, ps_audit_all());
}

/* The uapi, without guests. */

FIXTURE(vm2) {
	int a, b;
	unsigned char *ma, *mb;
};

FIXTURE_SETUP(vm2)
{
	self->a = -1;
	self->b = -1;
	REQUIRE_DEVICE();
	self->a = ps_open();
	self->b = ps_open();
	ASSERT_LE(0, self->a);
	ASSERT_LE(0, self->b);
	self->ma = ps_map(self->a, MIB, 0);
	self->mb = ps_map(self->b, MIB, 0);
	ASSERT_NE(MAP_FAILED, self->ma);
	ASSERT_NE(MAP_FAILED, self->mb);
	memset(self->ma, 0x11, 64 * PS_PAGE);
	memset(self->mb, 0x11, 64 * PS_PAGE);
}

FIXTURE_TEARDOWN(vm2)
{
	if (self->a < 0)
		return;
	EXPECT_EQ(0, ps_audit_all());
	munmap(self->ma, MIB);
	munmap(self->mb, MIB);
	close(self->a);
	close(self->b);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F(vm2, nominate_errors)
{
	struct pageshare_nominate n = { .vm = self->a, .gfn = 1 };
	uint64_t h1, h2, hash1, hash2;
	int efd;

	ASSERT_EQ(0, ps_nominate(self->a, 1, &h1, &hash1));
	ASSERT_EQ(0, ps_nominate(self->a, 1, &h2, &hash2));
	EXPECT_EQ(h1, h2);
	EXPECT_EQ(hash1, hash2);
	ASSERT_EQ(0, ps_nominate(self->b, 1, &h2, &hash2));
	EXPECT_NE(h1, h2);	/* per-CPU blocks: unique, not ordered */
	EXPECT_EQ(hash1, hash2);	/* same bytes, same hash */
	self->mb[2 * PS_PAGE] = 1;
	ASSERT_EQ(0, ps_nominate(self->b, 2, &h2, &hash2));
	EXPECT_NE(hash1, hash2);

	EXPECT_EQ(-1, ps_nominate(self->a, 100, &h1, NULL));	/* never touched */
	EXPECT_EQ(ENODATA, errno);
	EXPECT_EQ(-1, ps_nominate(self->a, MIB / PS_PAGE, &h1, NULL));
	EXPECT_EQ(ENXIO, errno);
	n.flags = 1U << 7;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(EINVAL, errno);
	n.flags = 0;
	n.pad = 1;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(EINVAL, errno);
	n.pad = 0;
	n.vm = 9999;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(EBADF, errno);
	efd = eventfd(0, 0);
	n.vm = efd;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(EBADF, errno);
	close(efd);
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_NOMINATE, NULL));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(vm2, private_gfns)
{
	struct pageshare_private p;
	uint64_t gfns[300], h, d0, d1;
	long n, i;
	int ctl;

	/* The fixture wrote gfns 0-63 of each VM. */
	n = private_gfns(self->a, 0, 5, gfns, 300, &d0);
	ASSERT_EQ(64, n);
	for (i = 0; i < n; i++)
		EXPECT_EQ(i, gfns[i]);
	EXPECT_EQ(10, private_gfns(self->a, 54, 3, gfns, 300, NULL));
	EXPECT_EQ(54, gfns[0]);

	/* Nominated: gone from the list; written by the VMM: back in it. */
	for (i = 10; i < 20; i++)
		ASSERT_EQ(0, ps_nominate(self->a, i, &h, NULL));
	EXPECT_EQ(54, private_gfns(self->a, 0, 64, gfns, 300, NULL));
	EXPECT_FALSE(has_gfn(gfns, 54, 15));
	self->ma[15 * PS_PAGE + 9] = 1;
	EXPECT_EQ(55, private_gfns(self->a, 0, 64, gfns, 300, NULL));
	EXPECT_TRUE(has_gfn(gfns, 55, 15));

	/* A read of a hole is no page; a write of one is. */
	EXPECT_EQ(0, self->ma[200 * PS_PAGE]);
	EXPECT_EQ(55, private_gfns(self->a, 0, 64, gfns, 300, NULL));
	self->ma[201 * PS_PAGE] = 1;
	EXPECT_EQ(56, private_gfns(self->a, 0, 64, gfns, 300, NULL));
	EXPECT_EQ(201, gfns[55]);

	/* A discard takes gfns out, and counts those it took off frames. */
	ASSERT_EQ(0, fallocate(self->a, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       12 * PS_PAGE, 40 * PS_PAGE));
	n = private_gfns(self->a, 0, 64, gfns, 300, &d1);
	EXPECT_EQ(56 - 33, n);	/* 12-51 went: 15 and 20-51 were private */
	EXPECT_FALSE(has_gfn(gfns, n, 15));
	EXPECT_EQ(d0 + 7, d1);		/* 12-14 and 16-19 were nominated */
	EXPECT_EQ(64, private_gfns(self->b, 0, 64, gfns, 300, NULL));

	/* Where to resume: past the last gfn stored, or the size. */
	memset(&p, 0, sizeof(p));
	p.gfns = (uintptr_t)gfns;
	p.max = 3;
	ASSERT_EQ(0, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(3, p.count);
	EXPECT_EQ(3, p.next);
	p.start = 200;
	ASSERT_EQ(0, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(1, p.count);
	EXPECT_EQ(MIB / PS_PAGE, p.next);
	p.max = 0;
	ASSERT_EQ(0, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(0, p.count);
	EXPECT_EQ(200, p.next);
	EXPECT_EQ(d1, p.discards);

	/* Bad input, state untouched. */
	p.max = 3;
	p.flags = 1;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(EINVAL, errno);
	p.flags = 0;
	p.pad = 1;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(EINVAL, errno);
	p.pad = 0;
	p.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(EINVAL, errno);
	p.reserved[1] = 0;
	p.max = PAGESHARE_BATCH_MAX + 1;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(E2BIG, errno);
	p.max = 3;
	p.start = 0;
	p.gfns = 8;
	p.count = 77;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(77, p.count);
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_GET_PRIVATE, NULL));
	EXPECT_EQ(EFAULT, errno);
	/* A VM's own ioctl: the control node is no VM. */
	p.gfns = (uintptr_t)gfns;
	ctl = ps_control();
	ASSERT_LE(0, ctl);
	EXPECT_EQ(-1, ioctl(ctl, PAGESHARE_GET_PRIVATE, &p));
	EXPECT_EQ(ENOTTY, errno);
	close(ctl);
	EXPECT_EQ(n, private_gfns(self->a, 0, 64, gfns, 300, NULL));
}

TEST_F(vm2, pinned_page_refused)
{
	struct iovec iov = { .iov_base = self->ma + 3 * PS_PAGE, .iov_len = PS_PAGE };
	char buf[PS_PAGE];
	uint64_t h;
	int p[2];

	/* vmsplice takes a reference to the page and keeps it in the pipe. */
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(PS_PAGE, vmsplice(p[1], &iov, 1, 0));
	EXPECT_EQ(-1, ps_nominate(self->a, 3, &h, NULL));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(1, sharers(self->a, 3));
	ASSERT_EQ(PS_PAGE, read(p[0], buf, sizeof(buf)));
	EXPECT_EQ(0, ps_nominate(self->a, 3, &h, NULL));
	close(p[0]);
	close(p[1]);
}

TEST_F(vm2, share_errors_leave_state_alone)
{
	uint64_t ha, hb;
	long saved = global("saved_frames");

	ASSERT_EQ(0, ps_nominate(self->a, 4, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->b, 4, &hb, NULL));
	EXPECT_EQ(-1, ps_share(self->a, 4, ha + 1000, self->b, 4, hb, 0));
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(-1, ps_share(self->a, 4, ha, self->b, 4, hb + 1000, 0));
	EXPECT_EQ(EIDRM, errno);
	EXPECT_EQ(-1, ps_share(self->a, 4, hb, self->b, 4, ha, 0));	/* swapped */
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(-1, ps_share(self->a, MIB, ha, self->b, 4, hb, 0));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(-1, ps_share(self->a, 4, ha, 12345, 4, hb, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_share(self->a, 4, ha, self->b, 4, hb, 1U << 9));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(saved, global("saved_frames"));
	EXPECT_EQ(1, sharers(self->a, 4));
	EXPECT_EQ(1, sharers(self->b, 4));
	EXPECT_EQ(0, ps_share(self->a, 4, ha, self->b, 4, hb, PAGESHARE_SHARE_COMPARE));
	EXPECT_EQ(2, sharers(self->b, 4));
	/* A gfn shared with itself is a caller's bug. */
	EXPECT_EQ(-1, ps_share(self->a, 4, ha, self->a, 4, ha, 0));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(vm2, batches)
{
	struct pageshare_nominate n[64];
	struct pageshare_query q[3];
	struct pageshare_unshare u[2];
	struct pageshare_batch b = { 0 };
	uint64_t ha[16], hb[16];
	uint32_t done, i;

	/* Zero entries: nothing to do. */
	EXPECT_EQ(0, ps_batch(self->a, PAGESHARE_NOMINATE_BATCH, n, 0, &done));
	EXPECT_EQ(0, done);
	EXPECT_EQ(-1, ps_batch(self->a, PAGESHARE_NOMINATE_BATCH, n, UINT32_MAX, &done));
	EXPECT_EQ(E2BIG, errno);
	EXPECT_EQ(-1, ps_batch(self->a, PAGESHARE_NOMINATE_BATCH, NULL, 3, &done));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(0, done);
	b.reserved[0] = 1;
	b.count = 1;
	b.entries = (uintptr_t)n;
	EXPECT_EQ(-1, ioctl(self->a, PAGESHARE_NOMINATE_BATCH, &b));
	EXPECT_EQ(EINVAL, errno);

	/* More entries than one chunk; one bad entry does not stop the rest. */
	memset(n, 0, sizeof(n));
	for (i = 0; i < 64; i++) {
		n[i].vm = i < 32 ? self->a : self->b;
		n[i].gfn = i % 32;
	}
	n[60].gfn = 200;			/* a hole */
	n[61].gfn = 17;				/* the same gfn twice */
	n[62].gfn = 17;
	ASSERT_EQ(0, ps_batch(self->a, PAGESHARE_NOMINATE_BATCH, n, 64, &done));
	EXPECT_EQ(64, done);
	for (i = 0; i < 64; i++)
		EXPECT_EQ(i == 60 ? -ENODATA : 0, n[i].result) TH_LOG("entry %u", i);
	EXPECT_EQ(0, n[60].handle);
	EXPECT_EQ(n[61].handle, n[62].handle);

	for (i = 0; i < 16; i++) {
		ha[i] = n[i].handle;
		hb[i] = n[32 + i].handle;
	}
	ASSERT_EQ(0, share_range(self->a, ha, self->b, hb, 0, 16));

	memset(q, 0, sizeof(q));
	q[0].vm = self->a;
	q[0].gfn = 3;
	q[1].vm = self->b;
	q[1].gfn = 20;
	q[2].vm = self->b;
	q[2].gfn = 999;
	ASSERT_EQ(0, ps_batch(self->a, PAGESHARE_QUERY_BATCH, q, 3, &done));
	EXPECT_EQ(PAGESHARE_STATE_SHARED, q[0].state);
	EXPECT_EQ(2, q[0].sharers);
	EXPECT_EQ(ha[3], q[0].handle);
	EXPECT_EQ(PAGESHARE_STATE_NOMINATED, q[1].state);
	EXPECT_EQ(PAGESHARE_STATE_HOLE, q[2].state);

	memset(u, 0, sizeof(u));
	u[0].vm = self->b;
	u[0].gfn = 3;
	u[1].vm = self->b;
	u[1].gfn = MIB;
	ASSERT_EQ(0, ps_batch(self->a, PAGESHARE_UNSHARE_BATCH, u, 2, &done));
	EXPECT_EQ(0, u[0].result);
	EXPECT_EQ(-ENXIO, u[1].result);
	EXPECT_EQ(1, sharers(self->a, 3));
	EXPECT_EQ(0x11, self->mb[3 * PS_PAGE + 5]);
}

/*
 * A write to a shared page needs a new page. When there is none, the
 * writer gets a clean error and nothing changes. fail_page_alloc, aimed at
 * this task and at allocations made from the module's code (its stack
 * trace filter), fails exactly the copy.
 */
TEST_F(vm2, cow_out_of_memory)
{
	const char *fpa = "/sys/kernel/debug/fail_page_alloc/";
	unsigned long start, end;
	struct iovec local, remote;
	char path[128], val[32], byte = 0x77;
	uint64_t ha, hb;
	ssize_t n;
	int err;

	snprintf(path, sizeof(path), "%srequire-start", fpa);
	if (access(path, W_OK))
		SKIP(return, "no fail_page_alloc with a stack trace filter in debugfs");
	ASSERT_EQ(0, ps_module_text(&start, &end));

	ASSERT_EQ(0, ps_nominate(self->a, 8, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->b, 8, &hb, NULL));
	ASSERT_EQ(0, ps_share(self->a, 8, ha, self->b, 8, hb, 0));

#define FPA(name, v) do {						\
	snprintf(path, sizeof(path), "%s%s", fpa, name);		\
	ASSERT_EQ(0, ps_write_file(path, v)) TH_LOG("%s", path);		\
} while (0)
	snprintf(val, sizeof(val), "%#lx", start);
	FPA("require-start", val);
	snprintf(val, sizeof(val), "%#lx", end);
	FPA("require-end", val);
	FPA("stacktrace-depth", "32");
	FPA("task-filter", "Y");
	FPA("ignore-gfp-highmem", "N");
	FPA("ignore-gfp-wait", "N");
	FPA("min-order", "0");
	FPA("verbose", "0");
	FPA("interval", "1");
	FPA("times", "1");
	FPA("probability", "100");
	ASSERT_EQ(0, ps_write_file("/proc/self/make-it-fail", "1"));

	local.iov_base = &byte;
	local.iov_len = 1;
	remote.iov_base = self->mb + 8 * PS_PAGE + 3;
	remote.iov_len = 1;
	n = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
	err = errno;

	ASSERT_EQ(0, ps_write_file("/proc/self/make-it-fail", "0"));
	FPA("probability", "0");
	FPA("times", "0");
	FPA("task-filter", "N");
	FPA("require-start", "0");
	FPA("require-end", "0xffffffffffffffff");
#undef FPA

	EXPECT_EQ(-1, n);
	EXPECT_TRUE(err == ENOMEM || err == EFAULT) TH_LOG("errno %d", err);
	/* Nothing changed: still shared, same bytes, audit clean. */
	EXPECT_EQ(2, sharers(self->b, 8));
	EXPECT_EQ(0x11, self->mb[8 * PS_PAGE + 3]);
	EXPECT_EQ(0, ps_audit_all());

	/* With memory again, the same write goes through. */
	ASSERT_EQ(1, process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_EQ(0x77, self->mb[8 * PS_PAGE + 3]);
	EXPECT_EQ(0x11, self->ma[8 * PS_PAGE + 3]);
	EXPECT_EQ(1, sharers(self->a, 8));
}

TEST_F(vm2, sharer_limit)
{
	const char *param = "/sys/module/pageshare/parameters/max_sharers";
	char old[32] = "";
	uint64_t h[3];
	int fd, n, i;

	fd = open(param, O_RDWR);
	ASSERT_LE(0, fd);
	n = read(fd, old, sizeof(old) - 1);
	ASSERT_LT(0, n);
	ASSERT_EQ(1, pwrite(fd, "2", 1, 0));

	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, ps_nominate(self->a, 10 + i, &h[i], NULL));
	EXPECT_EQ(0, ps_share(self->a, 10, h[0], self->a, 11, h[1], 0));
	EXPECT_EQ(-1, ps_share(self->a, 10, h[0], self->a, 12, h[2], 0));
	EXPECT_EQ(EMLINK, errno);
	EXPECT_EQ(-1, ps_add_to_physmap(self->a, 10, h[0], self->b, 200));
	EXPECT_EQ(EMLINK, errno);

	ASSERT_EQ(n, pwrite(fd, old, n, 0));
	close(fd);
	EXPECT_EQ(0, ps_share(self->a, 10, h[0], self->a, 12, h[2], 0));
	EXPECT_EQ(3, sharers(self->a, 12));
}

TEST_F(vm2, counters_in_fdinfo_and_sysfs)
{
	struct pageshare_vm_info info;
	char path[64], buf[1024];
	uint64_t ha, hb;
	ssize_t n;
	int fd;

	ASSERT_EQ(0, ps_nominate(self->a, 0, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->b, 0, &hb, NULL));
	ASSERT_EQ(0, ps_share(self->a, 0, ha, self->b, 0, hb, 0));
	ASSERT_EQ(0, ps_nominate(self->b, 1, &hb, NULL));

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", self->b);
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ASSERT_LT(0, n);
	buf[n] = 0;
	EXPECT_NE(NULL, strstr(buf, "pageshare-shared-gfns:\t2\n")) TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, "pageshare-nominated-gfns:\t1\n")) TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, "pageshare-private-pages:\t62\n")) TH_LOG("%s", buf);
	EXPECT_LE(2, global("shared_frames"));
	EXPECT_LE(1, global("saved_frames"));
	EXPECT_LT(0, global("meta_bytes"));

	/* Per VM under /sys/kernel/pageshare/vm/<id>/. */
	ASSERT_EQ(0, ps_info(self->b, &info));
	snprintf(path, sizeof(path), "vm/%llu/shared_gfns", (unsigned long long)info.id);
	EXPECT_EQ(2, global(path));
	snprintf(path, sizeof(path), "vm/%llu/nominated_gfns", (unsigned long long)info.id);
	EXPECT_EQ(1, global(path));
	snprintf(path, sizeof(path), "vm/%llu/private_pages", (unsigned long long)info.id);
	EXPECT_EQ(62, global(path));
	snprintf(path, sizeof(path), "vm/%llu/pid", (unsigned long long)info.id);
	EXPECT_EQ(getpid(), global(path));
	snprintf(path, sizeof(path), "vm/%llu/size", (unsigned long long)info.id);
	EXPECT_EQ(MIB, global(path));

	/* The directory goes with the VM. */
	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_info(fd, &info));
	snprintf(path, sizeof(path), PS_SYSFS "vm/%llu", (unsigned long long)info.id);
	EXPECT_EQ(0, access(path, F_OK));
	close(fd);
	EXPECT_EQ(-1, access(path, F_OK));
}

TEST_HARNESS_MAIN
