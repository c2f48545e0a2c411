// SPDX-License-Identifier: GPL-2.0
/*
 * No VM reads bytes it should not: a frame that someone else still holds
 * is never written in place, a share never changes what a third VM's gfn
 * reads, and a popular frame (a zero page mapped by thousands of gfns)
 * still takes more sharers. Each test here failed on the code before its
 * fix (Documentation/virt/pageshare/testing.rst).
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)

static uint32_t sharers(int fd, uint64_t gfn)
{
	struct pageshare_query q;

	return ps_query(fd, gfn, &q) ? 0 : q.sharers;
}

/* Three VMs of 8 MiB in this test's share group. */
FIXTURE(three) {
	int fd[3];
	unsigned char *m[3];
};

#define VM_SIZE		(8 * MIB)

FIXTURE_SETUP(three)
{
	int i;

	for (i = 0; i < 3; i++)
		self->fd[i] = -1;
	REQUIRE_DEVICE();
	for (i = 0; i < 3; i++) {
		self->fd[i] = ps_open();
		ASSERT_LE(0, self->fd[i]);
		self->m[i] = ps_map(self->fd[i], VM_SIZE, 0);
		ASSERT_NE(MAP_FAILED, self->m[i]);
	}
}

FIXTURE_TEARDOWN(three)
{
	int i;

	if (self->fd[0] < 0)
		return;
	EXPECT_EQ(0, ps_audit_all());
	for (i = 0; i < 3; i++) {
		munmap(self->m[i], VM_SIZE);
		close(self->fd[i]);
	}
	EXPECT_EQ(0, ps_audit_all());
}

#define PAGE(i, gfn)	(self->m[i] + (gfn) * PS_PAGE)

/* VM a's gfn and VM b's gfn, filled with @byte, shared onto one frame. */
static int share_pair(FIXTURE_DATA(three) * self, int a, uint64_t ga, int b,
		      uint64_t gb, int byte)
{
	uint64_t ha, hb;

	memset(PAGE(a, ga), byte, PS_PAGE);
	memset(PAGE(b, gb), byte, PS_PAGE);
	if (ps_nominate(self->fd[a], ga, &ha, NULL) ||
	    ps_nominate(self->fd[b], gb, &hb, NULL))
		return -1;
	return ps_share(self->fd[a], ga, ha, self->fd[b], gb, hb,
			PAGESHARE_SHARE_COMPARE);
}

/* Whether all @len bytes at @p are @byte. */
static bool all_bytes(const unsigned char *p, size_t len, int byte)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != byte)
			return false;
	return true;
}

/*
 * A and B share frame F; B's VMM holds a reference to F (@hold). B writes
 * and gets a copy; A, now F's last sharer, writes. What the holder reads
 * must still be F's old bytes: A's write must have gone to a copy.
 */
enum holder { PIPE, PIPE_TEE, UNIX_SOCKET };

static void last_sharer_writes(struct __test_metadata *_metadata,
			       FIXTURE_DATA(three) * self, enum holder hold,
			       bool by_ioctl)
{
	struct iovec iov = { .iov_base = PAGE(1, 7), .iov_len = PS_PAGE };
	static unsigned char buf[PS_PAGE];
	int p[2], q[2] = { -1, -1 }, s[2] = { -1, -1 }, rd;

	ASSERT_EQ(0, share_pair(self, 0, 7, 1, 7, 0x5a));
	ASSERT_EQ(2, sharers(self->fd[1], 7));
	ASSERT_EQ(0x5a, *PAGE(1, 7));		/* B maps F */

	/* B's VMM takes a read-only reference to F. */
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(PS_PAGE, vmsplice(p[1], &iov, 1, 0));
	rd = p[0];
	if (hold == PIPE_TEE) {
		/* A second pipe holds the same page; the first lets go. */
		ASSERT_EQ(0, pipe(q));
		ASSERT_EQ(PS_PAGE, tee(p[0], q[1], PS_PAGE, 0));
		close(p[0]);
		close(p[1]);
		p[0] = -1;
		p[1] = -1;
		rd = q[0];
	} else if (hold == UNIX_SOCKET) {
		/* The page moves on into a socket's receive queue. */
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, s));
		ASSERT_EQ(PS_PAGE, splice(p[0], NULL, s[0], NULL, PS_PAGE, 0));
		rd = s[1];
	}

	memset(PAGE(1, 7), 0xbb, PS_PAGE);	/* B gets its copy */
	EXPECT_EQ(1, sharers(self->fd[1], 7));
	EXPECT_EQ(1, sharers(self->fd[0], 7));
	if (by_ioctl)
		EXPECT_EQ(0, ps_unshare(self->fd[0], 7));
	memset(PAGE(0, 7), 0xaa, PS_PAGE);	/* A, F's last sharer */

	ASSERT_EQ(PS_PAGE, read(rd, buf, sizeof(buf)));
	EXPECT_TRUE(all_bytes(buf, PS_PAGE, 0x5a))
		TH_LOG("B's VMM read %#x where F held 0x5a: A's write reached it", buf[0]);
	EXPECT_TRUE(all_bytes(PAGE(0, 7), PS_PAGE, 0xaa));
	EXPECT_TRUE(all_bytes(PAGE(1, 7), PS_PAGE, 0xbb));
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	if (q[0] >= 0) {
		close(q[0]);
		close(q[1]);
	}
	if (s[0] >= 0) {
		close(s[0]);
		close(s[1]);
	}
}

TEST_F(three, last_sharer_copies_when_a_pipe_holds_the_frame)
{
	last_sharer_writes(_metadata, self, PIPE, false);
}

TEST_F(three, last_sharer_copies_when_a_teed_pipe_holds_the_frame)
{
	last_sharer_writes(_metadata, self, PIPE_TEE, false);
}

TEST_F(three, last_sharer_copies_when_a_socket_holds_the_frame)
{
	last_sharer_writes(_metadata, self, UNIX_SOCKET, false);
}

TEST_F(three, unshare_of_last_sharer_copies_when_the_frame_is_held)
{
	last_sharer_writes(_metadata, self, PIPE, true);
}

/*
 * The last sharer's write gets a copy in its VM's page cache, whether or
 * not something else (here a pipe) holds the frame: another page, and
 * whoever holds the old one never sees the write.
 */
TEST_F(three, last_sharer_gets_a_copy)
{
	struct iovec iov = { .iov_base = PAGE(0, 10), .iov_len = PS_PAGE };
	struct pageshare_stats st0, st1;
	uint64_t pfn;
	int p[2];

	ASSERT_EQ(0, share_pair(self, 0, 9, 1, 9, 0x33));
	ASSERT_EQ(0x33, *PAGE(0, 9));
	pfn = ps_pfn_of(PAGE(0, 9));
	ASSERT_NE(0, pfn);
	memset(PAGE(1, 9), 0x44, PS_PAGE);
	ASSERT_EQ(0, ps_stats(self->fd[0], &st0));
	memset(PAGE(0, 9), 0x55, PS_PAGE);
	ASSERT_EQ(0, ps_stats(self->fd[0], &st1));
	EXPECT_NE(pfn, ps_pfn_of(PAGE(0, 9)));
	EXPECT_EQ(st0.private_pages + 1, st1.private_pages);
	EXPECT_EQ(st0.cow_breaks + 1, st1.cow_breaks);
	EXPECT_TRUE(all_bytes(PAGE(0, 9), PS_PAGE, 0x55));
	EXPECT_TRUE(all_bytes(PAGE(1, 9), PS_PAGE, 0x44));

	/* A's own pipe on a nominated page: still a copy on A's write. */
	memset(PAGE(0, 10), 0x66, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->fd[0], 10, &(uint64_t){0}, NULL));
	ASSERT_EQ(0x66, *PAGE(0, 10));
	pfn = ps_pfn_of(PAGE(0, 10));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(PS_PAGE, vmsplice(p[1], &iov, 1, 0));
	memset(PAGE(0, 10), 0x77, PS_PAGE);
	EXPECT_NE(pfn, ps_pfn_of(PAGE(0, 10)));
	close(p[0]);
	close(p[1]);
}

/*
 * B and C share F (C:3, B:4, equal bytes, as the agent leaves them). B's
 * owner nominates B:2 (other bytes) and B:4 (F's handle) and shares
 * src = B:2, client = B:4: C:3 must not read B's bytes.
 */
TEST_F(three, share_never_rewrites_a_third_vm)
{
	uint64_t h2, h4, hc;
	uint32_t flags;

	for (flags = 0; flags <= PAGESHARE_SHARE_COMPARE; flags += PAGESHARE_SHARE_COMPARE) {
		ASSERT_EQ(0, share_pair(self, 2, 3, 1, 4, 0x11));
		memset(PAGE(1, 2), 0xee, PS_PAGE);
		ASSERT_EQ(0, ps_nominate(self->fd[1], 2, &h2, NULL));
		ASSERT_EQ(0, ps_nominate(self->fd[1], 4, &h4, NULL));
		ASSERT_EQ(0, ps_nominate(self->fd[2], 3, &hc, NULL));
		EXPECT_EQ(hc, h4);
		EXPECT_EQ(-1, ps_share(self->fd[1], 2, h2, self->fd[1], 4, h4, flags));
		EXPECT_EQ(EILSEQ, errno);
		EXPECT_TRUE(all_bytes(PAGE(2, 3), PS_PAGE, 0x11))
			TH_LOG("C reads %#x: B's share rewrote C's memory", *PAGE(2, 3));
		EXPECT_EQ(2, sharers(self->fd[2], 3));
		EXPECT_EQ(1, sharers(self->fd[1], 2));
		ASSERT_EQ(0, ps_audit_all());
		/* Writes end it; the next round starts afresh. */
		memset(PAGE(1, 4), 0, PS_PAGE);
		memset(PAGE(2, 3), 0, PS_PAGE);
		memset(PAGE(1, 2), 0, PS_PAGE);
	}

	/* The same bytes: the kernel's compare lets it through. */
	ASSERT_EQ(0, share_pair(self, 2, 3, 1, 4, 0x22));
	memset(PAGE(1, 2), 0x22, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->fd[1], 2, &h2, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 4, &h4, NULL));
	EXPECT_EQ(0, ps_share(self->fd[1], 2, h2, self->fd[1], 4, h4, 0));
	EXPECT_EQ(3, sharers(self->fd[2], 3));
	EXPECT_TRUE(all_bytes(PAGE(2, 3), PS_PAGE, 0x22));
}

/*
 * The same through a frame that only the two named VMs have gfns on: no
 * third VM, so the caller's word (no compare) is enough, as before.
 */
TEST_F(three, share_without_compare_inside_the_named_vms)
{
	struct pageshare_share s = { .flags = 0 };
	uint64_t h2, h4;

	ASSERT_EQ(0, share_pair(self, 0, 3, 1, 4, 0x11));
	memset(PAGE(1, 2), 0xee, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->fd[1], 2, &h2, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 4, &h4, NULL));
	/* The client frame has A:3 and B:4; the caller names B and A. */
	EXPECT_EQ(-1, ps_share(self->fd[1], 2, h2, self->fd[1], 4, h4, 0));
	EXPECT_EQ(EILSEQ, errno);
	s = (struct pageshare_share) {
		.src_vm = self->fd[1], .src_gfn = 2, .src_handle = h2,
		.client_vm = self->fd[0], .client_gfn = 3, .client_handle = h4,
	};
	EXPECT_EQ(0, ioctl(self->fd[0], PAGESHARE_SHARE, &s));
	EXPECT_EQ(3, sharers(self->fd[0], 3));
	EXPECT_TRUE(all_bytes(PAGE(0, 3), PS_PAGE, 0xee));
}

/*
 * A frame mapped by 1,500 gfns still takes a share: mappings are not DMA
 * pins, whatever the page's reference count says.
 */
TEST_F(three, share_onto_a_frame_mapped_1500_times)
{
	struct pageshare_add_to_physmap e[1500];
	unsigned int nonzero = 0;
	uint64_t h0, h2;
	uint32_t i, done;

	memset(PAGE(0, 0), 0, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->fd[0], 0, &h0, NULL));
	memset(e, 0, sizeof(e));
	for (i = 0; i < 1500; i++)
		e[i] = (struct pageshare_add_to_physmap) {
			.src_vm = self->fd[0], .src_gfn = 0, .src_handle = h0,
			.client_vm = self->fd[1], .client_gfn = 100 + i,
		};
	ASSERT_EQ(0, ps_batch(self->fd[0], PAGESHARE_ADD_TO_PHYSMAP_BATCH, e, 1500, &done));
	ASSERT_EQ(1500, done);
	for (i = 0; i < 1500; i++) {
		ASSERT_EQ(0, e[i].result);
		/* Map each one: it reads the frame's zeros. */
		nonzero += __atomic_load_n(PAGE(1, 100 + i), __ATOMIC_RELAXED);
	}
	EXPECT_EQ(0, nonzero);
	EXPECT_EQ(1501, sharers(self->fd[0], 0));

	/* A compared share of an equal page onto it, both ways round. */
	memset(PAGE(2, 5), 0, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->fd[2], 5, &h2, NULL));
	EXPECT_EQ(0, ps_share(self->fd[0], 0, h0, self->fd[2], 5, h2,
			      PAGESHARE_SHARE_COMPARE)) TH_LOG("errno %d", errno);
	EXPECT_EQ(1502, sharers(self->fd[2], 5));
	memset(PAGE(2, 6), 0, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->fd[2], 6, &h2, NULL));
	EXPECT_EQ(0, ps_share(self->fd[2], 6, h2, self->fd[0], 0, h0,
			      PAGESHARE_SHARE_COMPARE)) TH_LOG("errno %d", errno);
	EXPECT_EQ(1503, sharers(self->fd[2], 6));
}

TEST_HARNESS_MAIN
