// SPDX-License-Identifier: GPL-2.0
/*
 * The uapi from a 32-bit process, through the compat ioctl path: every
 * struct has the same layout for i386 and x86-64 (fixed-size fields,
 * explicit padding, 64-bit user pointers), so a 32-bit VMM or agent gets
 * the same results. Built with -m32 where the compiler can (gcc-multilib);
 * a 64-bit build of this file skips.
 */

#define _GNU_SOURCE
#include <assert.h>
#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB	(1024UL * 1024)
#define N	8

/* The layouts the two ABIs must agree on. */
static_assert(sizeof(struct pageshare_size) == 32, "size");
static_assert(sizeof(struct pageshare_vm_info) == 64, "vm_info");
static_assert(sizeof(struct pageshare_policy) == 32, "policy");
static_assert(sizeof(struct pageshare_open_vm) == 32, "open_vm");
static_assert(sizeof(struct pageshare_nominate) == 40, "nominate");
static_assert(sizeof(struct pageshare_share) == 48, "share");
static_assert(sizeof(struct pageshare_add_to_physmap) == 40, "add_to_physmap");
static_assert(sizeof(struct pageshare_unshare) == 24, "unshare");
static_assert(sizeof(struct pageshare_query) == 40, "query");
static_assert(sizeof(struct pageshare_batch) == 40, "batch");
static_assert(sizeof(struct pageshare_stats) == 128, "stats");

TEST(thirty_two_bit_caller)
{
	struct pageshare_nominate n[2][N];
	struct pageshare_share s[N];
	struct pageshare_vm_info info, again;
	struct pageshare_open_vm o = { 0 };
	struct pageshare_stats st;
	struct pageshare_policy p;
	struct pageshare_query q;
	unsigned char *m[2];
	uint32_t done;
	int fd[2], agent, vfd, i, v;

	REQUIRE_DEVICE();
	if (sizeof(long) != 4)
		SKIP(return, "a 64-bit build: install gcc-multilib for the 32-bit one");

	EXPECT_EQ(PAGESHARE_API_VERSION, ioctl(ps_open_alone(), PAGESHARE_GET_API_VERSION));
	for (v = 0; v < 2; v++) {
		fd[v] = ps_open();
		ASSERT_LE(0, fd[v]);
		ASSERT_EQ(0, ps_set_size(fd[v], MIB));
		m[v] = ps_map(fd[v], MIB, 0);
		ASSERT_TRUE(m[v] != MAP_FAILED);
		memset(m[v], 0x29, N * PS_PAGE);
		memset(n[v], 0, sizeof(n[v]));
		for (i = 0; i < N; i++) {
			n[v][i].vm = fd[v];
			n[v][i].gfn = i;
			n[v][i].flags = PAGESHARE_NOMINATE_HASH;
		}
		ASSERT_EQ(0, ps_batch(fd[v], PAGESHARE_NOMINATE_BATCH, n[v], N, &done));
		ASSERT_EQ(N, done);
	}
	memset(s, 0, sizeof(s));
	for (i = 0; i < N; i++) {
		EXPECT_EQ(0, n[1][i].result);
		EXPECT_EQ(n[0][i].hash, n[1][i].hash);
		s[i] = (struct pageshare_share) {
			.src_vm = fd[0], .client_vm = fd[1], .src_gfn = i,
			.src_handle = n[0][i].handle, .client_gfn = i,
			.client_handle = n[1][i].handle,
			.flags = PAGESHARE_SHARE_COMPARE,
		};
	}
	ASSERT_EQ(0, ps_batch(fd[0], PAGESHARE_SHARE_BATCH, s, N, &done));
	for (i = 0; i < N; i++)
		EXPECT_EQ(0, s[i].result);
	ASSERT_EQ(0, ps_query(fd[1], 3, &q));
	EXPECT_EQ(2, q.sharers);
	EXPECT_EQ(n[0][3].handle, q.handle);
	ASSERT_EQ(0, ps_stats(fd[1], &st));
	EXPECT_EQ(N, st.shared_gfns);
	ASSERT_EQ(0, ps_info(fd[1], &info));
	EXPECT_EQ(MIB, info.size);
	ASSERT_EQ(0, ioctl(fd[1], PAGESHARE_GET_POLICY, &p));
	EXPECT_NE(0, p.group);
	agent = ps_control();
	ASSERT_LE(0, agent);
	o.id = info.id;
	vfd = ioctl(agent, PAGESHARE_OPEN_VM, &o);
	ASSERT_LE(0, vfd);
	ASSERT_EQ(0, ps_info(vfd, &again));
	EXPECT_EQ(info.id, again.id);
	close(vfd);
	EXPECT_EQ(0, ps_audit(agent));
	/* A write unshares, from 32-bit code too. */
	m[1][3 * PS_PAGE] = 1;
	ASSERT_EQ(0, ps_query(fd[1], 3, &q));
	EXPECT_EQ(PAGESHARE_STATE_PRIVATE, q.state);
	EXPECT_EQ(0x29, m[0][3 * PS_PAGE]);
	for (v = 0; v < 2; v++) {
		munmap(m[v], MIB);
		close(fd[v]);
	}
	EXPECT_EQ(0, ps_audit(agent));
	close(agent);
}

TEST_HARNESS_MAIN
