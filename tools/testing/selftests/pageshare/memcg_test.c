// SPDX-License-Identifier: GPL-2.0
/*
 * A VM's private pages are user memory of the memory cgroup that created
 * the VM: "file" (and "unevictable") in its memory.stat, not "kernel", and
 * memory.max holds them, as it holds shmem: past it, the cgroup's OOM
 * killer ends the task that faults, and the host goes on.
 */

#define _GNU_SOURCE
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define CGROOT		"/sys/fs/cgroup/"

FIXTURE(memcg) {
	char dir[64];
	int go[2], ready[2];
	pid_t child;
};

/* @key's value in the cgroup's flat-keyed file @file; -1 without it. */
static long memcg_read(const char *dir, const char *file, const char *key)
{
	char path[96], name[64];
	long val, ret = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &val) == 2)
		if (!strcmp(name, key))
			ret = val;
	fclose(f);
	return ret;
}

#define memcg_event(dir, key)	memcg_read(dir, "memory.events", key)

/*
 * memory.stat flushes the per-CPU counters only once MEMCG_CHARGE_BATCH
 * (64) updates per online CPU are pending, so a read may miss up to that
 * many pages (one run saw file short by 32); the kernel's own flush runs
 * every 2 s whatever is pending (flush_memcg_stats_dwork()). Wait for it,
 * so that the figures are exact.
 */
static long memcg_stat(const char *dir, const char *key)
{
	sleep(3);
	return memcg_read(dir, "memory.stat", key);
}

/*
 * The child: joins the cgroup, creates a 32 MiB VM, then touches as many
 * MiB of it as each byte from @go says, answering on @ready after each.
 */
static void child(FIXTURE_DATA(memcg) *self)
{
	char path[96], pid[16], n;
	unsigned char *m;
	size_t done = 0, i;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", self->dir);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (ps_write_file(path, pid))
		_exit(10);
	fd = ps_open();
	if (fd < 0 || ps_set_size(fd, 32 * MIB))
		_exit(11);
	m = ps_map(fd, 32 * MIB, 0);
	if (m == MAP_FAILED)
		_exit(12);
	while (read(self->go[0], &n, 1) == 1) {
		for (i = 0; i < (size_t)n * MIB; i += PS_PAGE)
			m[done + i] = 1;
		done += n * MIB;
		if (write(self->ready[1], &n, 1) != 1)
			_exit(13);
	}
	_exit(0);
}

/* The test VM's runner takes an OOM report in between for no splat. */
static void kmsg(const char *msg)
{
	ps_write_file("/dev/kmsg", msg);
}

static int step(FIXTURE_DATA(memcg) *self, char mib)
{
	char n;

	if (write(self->go[1], &mib, 1) != 1)
		return -1;
	return read(self->ready[0], &n, 1) == 1 ? 0 : -1;
}

FIXTURE_SETUP(memcg)
{
	self->child = -1;
	self->dir[0] = 0;
	if (access(PS_DEV, F_OK))
		SKIP(return, PS_DEV " is missing: load pageshare.ko");
	if (access(CGROOT "cgroup.subtree_control", F_OK))
		SKIP(return, "no cgroup2 at " CGROOT);
	ASSERT_EQ(0, ps_write_file(CGROOT "cgroup.subtree_control", "+memory"));
	snprintf(self->dir, sizeof(self->dir), CGROOT "pageshare-%d", getpid());
	ASSERT_EQ(0, mkdir(self->dir, 0755));
	ASSERT_EQ(0, pipe(self->go));
	ASSERT_EQ(0, pipe(self->ready));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		child(self);
	close(self->go[0]);
	close(self->ready[1]);
}

FIXTURE_TEARDOWN(memcg)
{
	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, NULL, 0);
	}
	if (self->dir[0])
		rmdir(self->dir);
}

TEST_F_TIMEOUT(memcg, pages_are_user_memory_and_limited, 300)
{
	long file0, file1, kernel0, kernel1, unevict1, oom;
	char path[96], max[32];
	int status;

	ASSERT_EQ(0, step(self, 0));	/* the VM exists, nothing touched */
	file0 = memcg_stat(self->dir, "file");
	kernel0 = memcg_stat(self->dir, "kernel");
	ASSERT_LE(0, file0);
	ASSERT_EQ(0, step(self, 8));
	file1 = memcg_stat(self->dir, "file");
	kernel1 = memcg_stat(self->dir, "kernel");
	unevict1 = memcg_stat(self->dir, "unevictable");
	TH_LOG("8 MiB touched: file %+ld KiB, kernel %+ld KiB, unevictable %ld KiB",
	       (file1 - file0) / 1024, (kernel1 - kernel0) / 1024, unevict1 / 1024);
	EXPECT_LE(8 * MIB, file1 - file0);
	/* Less what the CPUs' LRU-add batches still hold (31 pages each). */
	EXPECT_LE(8 * MIB - 2 * 31 * PS_PAGE, unevict1);
	/* Page tables and xarray nodes, not the pages. */
	EXPECT_GT(MIB, kernel1 - kernel0);

	/* Room for 4 MiB more: the next 8 go past memory.max. */
	snprintf(path, sizeof(path), "%s/memory.max", self->dir);
	snprintf(max, sizeof(max), "%ld", memcg_stat(self->dir, "file") +
		 memcg_stat(self->dir, "anon") + kernel1 + 4 * MIB);
	ASSERT_EQ(0, ps_write_file(path, max));
	kmsg("pageshare-test: an OOM kill is expected (memcg_test)");
	EXPECT_NE(0, step(self, 8));
	ASSERT_EQ(self->child, waitpid(self->child, &status, 0));
	kmsg("pageshare-test: no OOM kill is expected any more");
	self->child = -1;
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exited %d", WEXITSTATUS(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	oom = memcg_event(self->dir, "oom_kill");
	EXPECT_EQ(1, oom);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_HARNESS_MAIN
