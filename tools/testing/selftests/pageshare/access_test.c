// SPDX-License-Identifier: GPL-2.0
/*
 * Who may share what: share groups, no-intra-VM sharing, a privileged
 * agent that opens VMs by id, and root-only sysfs. Each refusal must leave
 * the VMs as they were, and the audit clean.
 */

#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define NOBODY		65534

static uint32_t sharers(int fd, uint64_t gfn)
{
	struct pageshare_query q;

	return ps_query(fd, gfn, &q) ? 0 : q.sharers;
}

static int get_policy(int fd, struct pageshare_policy *p)
{
	memset(p, 0xa5, sizeof(*p));
	return ioctl(fd, PAGESHARE_GET_POLICY, p);
}

static long vm_id(int fd)
{
	struct pageshare_vm_info info;

	return ps_info(fd, &info) ? -1 : (long)info.id;
}

static int open_vm(int fd, uint64_t id)
{
	struct pageshare_open_vm o = { .id = id };

	return ioctl(fd, PAGESHARE_OPEN_VM, &o);
}

/* Three VMs of 1 MiB, opened alone (no group), with equal first pages. */
FIXTURE(vms) {
	int fd[3];
	unsigned char *m[3];
};

FIXTURE_SETUP(vms)
{
	int i;

	for (i = 0; i < 3; i++)
		self->fd[i] = -1;
	REQUIRE_DEVICE();
	for (i = 0; i < 3; i++) {
		self->fd[i] = ps_open_alone();
		ASSERT_LE(0, self->fd[i]);
		self->m[i] = ps_map(self->fd[i], MIB, 0);
		ASSERT_NE(MAP_FAILED, self->m[i]);
		memset(self->m[i], 0x3c, 16 * PS_PAGE);
	}
}

FIXTURE_TEARDOWN(vms)
{
	int i;

	if (self->fd[0] < 0)
		return;
	EXPECT_EQ(0, ps_audit_all());
	for (i = 0; i < 3; i++) {
		munmap(self->m[i], MIB);
		close(self->fd[i]);
	}
	EXPECT_EQ(0, ps_audit_all());
}

TEST_F(vms, no_sharing_across_vms_by_default)
{
	struct pageshare_policy p;
	long saved = ps_sysfs_read("saved_frames");
	uint64_t ha, hb;

	ASSERT_EQ(0, get_policy(self->fd[0], &p));
	EXPECT_EQ(0, p.group);
	EXPECT_EQ(0, p.flags);
	EXPECT_EQ(0, p.pad);
	EXPECT_EQ(0, p.reserved[0]);
	EXPECT_EQ(0, p.reserved[1]);

	ASSERT_EQ(0, ps_nominate(self->fd[0], 1, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 1, &hb, NULL));
	EXPECT_EQ(-1, ps_share(self->fd[0], 1, ha, self->fd[1], 1, hb, 0));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, ps_share(self->fd[1], 1, hb, self->fd[0], 1, ha, 0));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, ps_add_to_physmap(self->fd[0], 1, ha, self->fd[1], 200));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(saved, ps_sysfs_read("saved_frames"));
	EXPECT_EQ(1, sharers(self->fd[0], 1));
	EXPECT_EQ(1, sharers(self->fd[1], 1));
	EXPECT_EQ(0, sharers(self->fd[1], 200));

	/* Inside one VM, sharing is allowed by default. */
	ASSERT_EQ(0, ps_nominate(self->fd[0], 2, &hb, NULL));
	EXPECT_EQ(0, ps_share(self->fd[0], 1, ha, self->fd[0], 2, hb, 0));
	EXPECT_EQ(2, sharers(self->fd[0], 2));
}

TEST_F(vms, share_group_lets_its_members_share)
{
	struct pageshare_policy p;
	uint64_t group, other, ha, hb, hc;

	ASSERT_EQ(0, ps_set_policy(self->fd[0], 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	EXPECT_NE(0, group);
	ASSERT_EQ(0, get_policy(self->fd[0], &p));
	EXPECT_EQ(group, p.group);
	/* Only those told the id join; VM 2 makes a group of its own. */
	ASSERT_EQ(0, ps_set_policy(self->fd[1], group, 0, NULL));
	ASSERT_EQ(0, ps_set_policy(self->fd[2], 0, PAGESHARE_POLICY_NEW_GROUP, &other));
	EXPECT_NE(group, other);

	ASSERT_EQ(0, ps_nominate(self->fd[0], 3, &ha, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 3, &hb, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[2], 3, &hc, NULL));
	EXPECT_EQ(0, ps_share(self->fd[0], 3, ha, self->fd[1], 3, hb, PAGESHARE_SHARE_COMPARE));
	EXPECT_EQ(2, sharers(self->fd[1], 3));
	EXPECT_EQ(-1, ps_share(self->fd[0], 3, ha, self->fd[2], 3, hc, 0));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(1, sharers(self->fd[2], 3));

	/* No policy change while on a frame with others; unshared, yes. */
	EXPECT_EQ(-1, ps_set_policy(self->fd[1], other, 0, NULL));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(0, ps_set_policy(self->fd[1], group, 0, NULL));	/* unchanged */
	ASSERT_EQ(0, ps_unshare(self->fd[1], 3));
	EXPECT_EQ(0, ps_set_policy(self->fd[1], other, 0, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 3, &hb, NULL));
	EXPECT_EQ(0, ps_share(self->fd[2], 3, hc, self->fd[1], 3, hb, 0));

	/* A group ends with its last member. */
	ASSERT_EQ(0, ps_unshare(self->fd[0], 3));
	ASSERT_EQ(0, ps_set_policy(self->fd[0], 0, 0, NULL));
	EXPECT_EQ(-1, ps_set_policy(self->fd[0], group, 0, NULL));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(vms, bad_policies)
{
	struct pageshare_policy p = { 0 };
	uint64_t group;

	EXPECT_EQ(-1, ps_set_policy(self->fd[0], 0x1234, 0, NULL));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, ps_set_policy(self->fd[0], 0x1234, PAGESHARE_POLICY_NEW_GROUP, NULL));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ps_set_policy(self->fd[0], 0, 1U << 5, NULL));
	EXPECT_EQ(EINVAL, errno);
	p.pad = 1;
	EXPECT_EQ(-1, ioctl(self->fd[0], PAGESHARE_SET_POLICY, &p));
	EXPECT_EQ(EINVAL, errno);
	p.pad = 0;
	p.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(self->fd[0], PAGESHARE_SET_POLICY, &p));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd[0], PAGESHARE_SET_POLICY, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd[0], PAGESHARE_GET_POLICY, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	ASSERT_EQ(0, get_policy(self->fd[0], &p));
	EXPECT_EQ(0, p.group);
	EXPECT_EQ(0, p.flags);
	/* Still usable afterwards. */
	EXPECT_EQ(0, ps_set_policy(self->fd[0], 0, PAGESHARE_POLICY_NEW_GROUP, &group));
}

TEST_F(vms, no_intra_vm_sharing_even_through_another_vm)
{
	struct pageshare_policy p;
	uint64_t group, h1, h2, hb;

	ASSERT_EQ(0, ps_set_policy(self->fd[0], 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	ASSERT_EQ(0, ps_set_policy(self->fd[0], group, PAGESHARE_POLICY_NO_INTRA_VM, NULL));
	ASSERT_EQ(0, ps_set_policy(self->fd[1], group, 0, NULL));
	ASSERT_EQ(0, get_policy(self->fd[0], &p));
	EXPECT_EQ(PAGESHARE_POLICY_NO_INTRA_VM, p.flags);
	EXPECT_EQ(group, p.group);

	ASSERT_EQ(0, ps_nominate(self->fd[0], 1, &h1, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[0], 2, &h2, NULL));
	ASSERT_EQ(0, ps_nominate(self->fd[1], 1, &hb, NULL));
	EXPECT_EQ(-1, ps_share(self->fd[0], 1, h1, self->fd[0], 2, h2, 0));
	EXPECT_EQ(EACCES, errno);
	/* VM 0's gfn 1 joins VM 1's frame; gfn 2 may not follow it there. */
	EXPECT_EQ(0, ps_share(self->fd[1], 1, hb, self->fd[0], 1, h1, 0));
	EXPECT_EQ(-1, ps_share(self->fd[1], 1, hb, self->fd[0], 2, h2, 0));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, ps_add_to_physmap(self->fd[1], 1, hb, self->fd[0], 200));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(2, sharers(self->fd[1], 1));
	EXPECT_EQ(1, sharers(self->fd[0], 2));
	/* VM 1 allows it for itself. */
	EXPECT_EQ(0, ps_add_to_physmap(self->fd[1], 1, hb, self->fd[1], 200));
	EXPECT_EQ(3, sharers(self->fd[1], 200));
}

TEST_F(vms, agent_opens_vms_by_id)
{
	long id = vm_id(self->fd[1]);
	struct pageshare_open_vm o = { 0 };
	int agent, fd;

	agent = ps_control();
	ASSERT_LE(0, agent);
	ASSERT_LT(0, id);
	fd = open_vm(agent, id);
	ASSERT_LE(0, fd);
	EXPECT_EQ(id, vm_id(fd));
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* The same memory, as the owner sees it. */
	self->m[1][5 * PS_PAGE] = 0x42;
	{
		unsigned char *m = ps_map(fd, MIB, 0);

		ASSERT_NE(MAP_FAILED, m);
		EXPECT_EQ(0x42, m[5 * PS_PAGE]);
		munmap(m, MIB);
	}
	close(fd);

	EXPECT_EQ(-1, open_vm(agent, 0));
	EXPECT_EQ(ESRCH, errno);
	EXPECT_EQ(-1, open_vm(agent, 1ULL << 40));
	EXPECT_EQ(ESRCH, errno);
	o.id = id;
	o.flags = 1;
	EXPECT_EQ(-1, ioctl(agent, PAGESHARE_OPEN_VM, &o));
	EXPECT_EQ(EINVAL, errno);
	o.flags = 0;
	o.reserved[0] = 1;
	EXPECT_EQ(-1, ioctl(agent, PAGESHARE_OPEN_VM, &o));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(agent, PAGESHARE_OPEN_VM, NULL));
	EXPECT_EQ(EFAULT, errno);

	/* A VM that is gone has no descriptor to give, and ids are not reused. */
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	id = vm_id(fd);
	close(fd);
	EXPECT_EQ(-1, open_vm(agent, id));
	EXPECT_EQ(ESRCH, errno);
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	EXPECT_NE(id, vm_id(fd));
	close(fd);
	close(agent);
}

/* An unprivileged holder of a descriptor: its VM, and nothing else. */
TEST_F(vms, unprivileged_caller)
{
	long id = vm_id(self->fd[2]);
	char path[128];
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		uint64_t h;
		int bad = 0;

		if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
			_exit(100);
		if (ps_nominate(self->fd[0], 7, &h, NULL))
			bad |= 1;
		if (open_vm(self->fd[0], id) != -1 || errno != EPERM)
			bad |= 2;
		if (ps_audit(self->fd[0]) != -1 || errno != EPERM)
			bad |= 4;
		if (open(PS_SYSFS "vms", O_RDONLY) != -1 || errno != EACCES)
			bad |= 8;
		snprintf(path, sizeof(path), PS_SYSFS "vm/%ld/uid", id);
		if (open(path, O_RDONLY) != -1 || errno != EACCES)
			bad |= 16;
		if (open(PS_DEV, O_RDWR) != -1 || errno != EACCES)
			bad |= 32;
		_exit(bad);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(1, sharers(self->fd[0], 7));
}

TEST(sysfs_is_root_only)
{
	static const char * const files[] = {
		"vms", "private_pages", "shared_frames", "saved_frames", "meta_bytes",
	};
	static const char * const vmfiles[] = {
		"size", "pid", "uid", "group", "policy", "private_pages",
		"shared_gfns", "nominated_gfns", "cow_breaks",
	};
	char path[160], buf[64];
	struct stat st;
	uint64_t group;
	unsigned int i;
	long id;
	int fd, n;

	REQUIRE_DEVICE();
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	id = vm_id(fd);
	for (i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), PS_SYSFS "%s", files[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
		EXPECT_EQ(0400, st.st_mode & 0777) TH_LOG("%s", path);
	}
	for (i = 0; i < ARRAY_SIZE(vmfiles); i++) {
		snprintf(path, sizeof(path), PS_SYSFS "vm/%ld/%s", id, vmfiles[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
		EXPECT_EQ(0400, st.st_mode & 0777) TH_LOG("%s", path);
	}
	ASSERT_EQ(0, ps_set_policy(fd, 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	snprintf(path, sizeof(path), PS_SYSFS "vm/%ld/group", id);
	n = open(path, O_RDONLY);
	ASSERT_LE(0, n);
	memset(buf, 0, sizeof(buf));
	ASSERT_LT(0, read(n, buf, sizeof(buf) - 1));
	close(n);
	EXPECT_EQ(group, strtoull(buf, NULL, 0));
	close(fd);
}

/*
 * An open() that fails must never have been a VM anyone could open by id.
 * O_DIRECT is refused by the VFS after an O_TMPFILE's inode is made (no
 * direct_IO): an agent that looks up the next ids meanwhile must find
 * nothing.
 */
struct opener {
	int agent;		/* a descriptor to ask with, opened first */
	atomic_long next;	/* the id the next open() would get */
	atomic_int stop;
	long got;		/* descriptors OPEN_VM gave */
	long got_id, got_pid;	/* the first one's VM id and its opener */
};

static void *open_by_id(void *arg)
{
	struct opener *o = arg;
	int agent = o->agent, fd;
	long id;

	while (!atomic_load(&o->stop)) {
		id = atomic_load(&o->next);
		for (long i = id; i < id + 2; i++) {
			fd = open_vm(agent, i);
			if (fd >= 0) {
				if (!o->got++) {
					char path[64];

					o->got_id = i;
					snprintf(path, sizeof(path), "vm/%ld/pid", i);
					o->got_pid = ps_sysfs_read(path);
				}
				close(fd);
			}
		}
	}
	return NULL;
}

TEST(failed_open_is_never_a_vm)
{
	struct opener o = { 0 };
	long first, last;
	pthread_t t;
	time_t t0;
	int fd, i;

	REQUIRE_DEVICE();
	o.agent = ps_control();
	ASSERT_LE(0, o.agent);
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	first = vm_id(fd);
	close(fd);
	atomic_store(&o.next, first + 1);
	ASSERT_EQ(0, pthread_create(&t, NULL, open_by_id, &o));
	t0 = time(NULL);
	for (i = 0; i < 3000 && time(NULL) - t0 < 10; i++) {
		fd = open(ps_dir() ?: PS_DIR, O_TMPFILE | O_RDWR | O_DIRECT, 0600);
		if (fd >= 0) {
			close(fd);
			break;
		}
		/* Each failed open() may have used an id. */
		atomic_fetch_add(&o.next, 1);
	}
	atomic_store(&o.stop, 1);
	pthread_join(t, NULL);
	EXPECT_GT(0, fd) TH_LOG("O_DIRECT opened a VM file");
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, o.got)
		TH_LOG("OPEN_VM gave %ld descriptors of VMs whose open() failed, the first of VM %ld, opened by pid %ld (this is %d)",
		       o.got, o.got_id, o.got_pid, getpid());
	close(o.agent);
	fd = ps_open_alone();
	ASSERT_LE(0, fd);
	last = vm_id(fd);
	close(fd);
	TH_LOG("%d failed opens in %ld s; ids %ld..%ld", i, (long)(time(NULL) - t0), first, last);
	EXPECT_EQ(0, ps_audit_all());
}

TEST_HARNESS_MAIN
