// SPDX-License-Identifier: GPL-2.0
/*
 * A memory error in a frame: a gfn whose page is poisoned faults with
 * SIGBUS (what KVM turns into a machine check for the guest), a poisoned
 * frame is never handed to a new sharer, and the host survives. Injected
 * with madvise(MADV_HWPOISON), which needs CONFIG_MEMORY_FAILURE and
 * CAP_SYS_ADMIN; every poisoned page stays out of use until reboot, so the
 * tests poison one page each.
 */

#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)

#ifndef MADV_HWPOISON
#define MADV_HWPOISON	100
#endif
#ifndef EHWPOISON
#define EHWPOISON	133
#endif

static uint32_t sharers(int fd, uint64_t gfn)
{
	struct pageshare_query q;

	return ps_query(fd, gfn, &q) ? 0 : q.sharers;
}

/* How a child that touches @p ends: 0, or the signal that ended it. */
static int touch_in_child(unsigned char *p, bool write)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		/* Atomic accesses: the compiler may not drop them. */
		if (write)
			__atomic_store_n(p, 0x77, __ATOMIC_RELAXED);
		else
			(void)__atomic_load_n(p, __ATOMIC_RELAXED);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status) ? -1 : 0;
}

FIXTURE(poison) {
	int a, b;
	unsigned char *ma, *mb;
};

FIXTURE_SETUP(poison)
{
	self->a = -1;
	REQUIRE_DEVICE();
	self->a = ps_open();
	self->b = ps_open();
	ASSERT_LE(0, self->a);
	ASSERT_LE(0, self->b);
	self->ma = ps_map(self->a, MIB, 0);
	self->mb = ps_map(self->b, MIB, 0);
	ASSERT_NE(MAP_FAILED, self->ma);
	ASSERT_NE(MAP_FAILED, self->mb);
}

FIXTURE_TEARDOWN(poison)
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

/* Poisons the page behind @p; false where the kernel cannot. */
static bool poison(unsigned char *p)
{
	return !madvise(p, PS_PAGE, MADV_HWPOISON) || errno != EINVAL;
}

/*
 * Poisons @p from a child, which the kernel's memory-failure handling
 * kills with SIGBUS, as the task a machine check hits, when it can isolate
 * the page (a page-cache page); the parent, which only maps it, lives on.
 * Returns the signal that ended the child, 0 if it exited, -1 when the
 * kernel has no MADV_HWPOISON.
 */
static int poison_in_child(unsigned char *p)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(poison(p) ? 0 : 1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return WTERMSIG(status);
	return WEXITSTATUS(status) ? -1 : 0;
}

/*
 * A and B share F; A maps it; F is poisoned through A's mapping. B's first
 * touch of its gfn, read or write, gets SIGBUS (before the fix: an oops in
 * the core's poison handling, which took F for a page-cache page).
 */
TEST_F(poison, shared_frame)
{
	uint64_t ha, hb, h;

	memset(self->ma + 4 * PS_PAGE, 0x42, PS_PAGE);
	memset(self->mb + 4 * PS_PAGE, 0x42, PS_PAGE);
	memset(self->ma + 8 * PS_PAGE, 0x42, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(self->a, 4, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->b, 4, &hb, NULL));
	ASSERT_EQ(0, ps_share(self->a, 4, ha, self->b, 4, hb, PAGESHARE_SHARE_COMPARE));
	ASSERT_EQ(0x42, self->ma[4 * PS_PAGE]);		/* A maps F */

	if (!poison(self->ma + 4 * PS_PAGE))
		SKIP(return, "no CONFIG_MEMORY_FAILURE");

	EXPECT_EQ(SIGBUS, touch_in_child(self->mb + 4 * PS_PAGE, false));
	EXPECT_EQ(SIGBUS, touch_in_child(self->mb + 4 * PS_PAGE, true));
	/* Not handed to anyone new, and not read for a hash or a compare. */
	EXPECT_EQ(-1, ps_nominate(self->b, 4, &h, NULL));
	EXPECT_EQ(EHWPOISON, errno);
	EXPECT_EQ(-1, ps_add_to_physmap(self->a, 4, ha, self->b, 20));
	EXPECT_EQ(EHWPOISON, errno);
	EXPECT_EQ(0, sharers(self->b, 20));
	ASSERT_EQ(0, ps_nominate(self->a, 8, &h, NULL));
	EXPECT_EQ(-1, ps_share(self->a, 8, h, self->a, 4, ha, PAGESHARE_SHARE_COMPARE));
	EXPECT_EQ(EHWPOISON, errno);
	EXPECT_EQ(-1, ps_share(self->a, 4, ha, self->a, 8, h, 0));
	EXPECT_EQ(EHWPOISON, errno);
	EXPECT_EQ(1, sharers(self->a, 8));
	/* An unshare would copy the poisoned bytes. */
	EXPECT_EQ(-1, ps_unshare(self->b, 4));
	EXPECT_EQ(EHWPOISON, errno);
	EXPECT_EQ(2, sharers(self->a, 4));
	EXPECT_EQ(0, ps_audit_all());
}

/* memory_failure()'s outcomes, summed over the nodes; -1 without them. */
static long mf_count(const char *what)
{
	char path[96], buf[32];
	long sum = -1;
	int node, fd;

	for (node = 0; node < 64; node++) {
		snprintf(path, sizeof(path),
			 "/sys/devices/system/node/node%d/memory_failure/%s", node, what);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		memset(buf, 0, sizeof(buf));
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			sum = (sum < 0 ? 0 : sum) + atol(buf);
		close(fd);
	}
	return sum;
}

/*
 * A private page: the kernel's memory-failure handling takes it as a page
 * of the VM's page cache (a dirty unevictable LRU page): off the LRU,
 * unmapped, handed to a_ops->error_remove_folio, which keeps it where it
 * is, as shmem's does; every mapping of it gets the usual SIGBUS, and no
 * nominate takes it. The kernel counts that outcome as "failed" (the page
 * cache still holds the page; it excuses only shmem from that check, by
 * name), where a page it cannot handle at all is "ignored".
 */
TEST_F(poison, private_page)
{
	long total = mf_count("total"), ignored = mf_count("ignored");
	unsigned char *m2;
	uint64_t h;
	int sig;

	memset(self->ma + 6 * PS_PAGE, 0x17, PS_PAGE);
	sig = poison_in_child(self->ma + 6 * PS_PAGE);
	if (sig < 0)
		SKIP(return, "no CONFIG_MEMORY_FAILURE");
	EXPECT_EQ(SIGBUS, sig);
	if (total >= 0) {
		EXPECT_EQ(total + 1, mf_count("total"));
		EXPECT_EQ(ignored, mf_count("ignored"));
	}
	/* The mapping that had it: its PTE is a poison entry now. */
	EXPECT_EQ(SIGBUS, touch_in_child(self->ma + 6 * PS_PAGE, false));
	/* A second mapping of the same VM faults it in afresh. */
	m2 = ps_map(self->a, MIB, 0);
	ASSERT_NE(MAP_FAILED, m2);
	EXPECT_EQ(SIGBUS, touch_in_child(m2 + 6 * PS_PAGE, false));
	munmap(m2, MIB);
	EXPECT_EQ(-1, ps_nominate(self->a, 6, &h, NULL));
	EXPECT_EQ(EHWPOISON, errno);
	/* Other gfns are untouched. */
	self->ma[7 * PS_PAGE] = 1;
	EXPECT_EQ(0, ps_nominate(self->a, 7, &h, NULL));
}

TEST_HARNESS_MAIN
