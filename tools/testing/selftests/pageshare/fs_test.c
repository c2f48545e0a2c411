// SPDX-License-Identifier: GPL-2.0
/*
 * The pageshare filesystem: a VM per regular file, mounted like hugetlbfs.
 * Files made the ways QEMU and libvirt make them, their size, their
 * lifetime, discard with fallocate(PUNCH_HOLE) and madvise(MADV_REMOVE)
 * (what virtio-balloon and virtio-mem end up calling), and the mount
 * options, and that a NUMA binding of a mapping holds.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define PATH_LEN	128

static long global_vms(void)
{
	struct pageshare_stats st;
	int fd = ps_control();
	long n;

	if (fd < 0)
		return -1;
	n = ps_stats(fd, &st) ? -1 : (long)st.vms;
	close(fd);
	return n;
}

static long private_pages(int fd)
{
	struct pageshare_vm_info info;

	return ps_info(fd, &info) ? -1 : (long)info.private_pages;
}

static uint32_t sharers(int fd, uint64_t gfn)
{
	struct pageshare_query q;

	return ps_query(fd, gfn, &q) ? 0 : q.sharers;
}

static int all_bytes(const unsigned char *p, unsigned char v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

FIXTURE(mnt) {
	char dir[64];
	char path[PATH_LEN];
	int mounted;
};

FIXTURE_SETUP(mnt)
{
	REQUIRE_DEVICE();
	snprintf(self->dir, sizeof(self->dir), "/tmp/pageshare-fs.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	ASSERT_EQ(0, mount("none", self->dir, "pageshare", 0, "mode=0777"))
		TH_LOG("mount -t pageshare: %s", strerror(errno));
	self->mounted = 1;
}

FIXTURE_TEARDOWN(mnt)
{
	EXPECT_EQ(0, ps_audit_all());
	if (self->mounted)
		EXPECT_EQ(0, umount(self->dir)) TH_LOG("umount: %s", strerror(errno));
	rmdir(self->dir);
}

/* @path (PATH_LEN bytes) gets @dir/@name, which is made @size bytes long. */
static int mkfile(const char *dir, char *path, const char *name, uint64_t size)
{
	int fd;

	snprintf(path, PATH_LEN, "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 && size && ftruncate(fd, size)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A file is a VM: sized by ftruncate(), mapped, and in the sharing ioctls. */
TEST_F(mnt, a_file_is_a_vm)
{
	struct pageshare_vm_info info;
	uint64_t h0, h1, group;
	unsigned char *m0, *m1;
	struct statfs sfs;
	struct stat st;
	long vms = global_vms();
	int f0, f1;

	ASSERT_EQ(0, statfs(self->dir, &sfs));
	EXPECT_EQ(PAGESHARE_SUPER_MAGIC, sfs.f_type);
	f0 = mkfile(self->dir, self->path, "vm0", 4 * MIB);
	ASSERT_LE(0, f0);
	f1 = mkfile(self->dir, self->path, "vm1", 4 * MIB);
	ASSERT_LE(0, f1);
	EXPECT_EQ(vms + 2, global_vms());
	ASSERT_EQ(0, fstat(f0, &st));
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(4 * MIB, st.st_size);
	EXPECT_EQ(4 * MIB, lseek(f0, 0, SEEK_END));
	ASSERT_EQ(0, ps_info(f0, &info));
	EXPECT_EQ(4 * MIB, info.size);
	EXPECT_LT(0, info.id);

	m0 = ps_map(f0, 4 * MIB, 0);
	m1 = ps_map(f1, 4 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m0);
	ASSERT_NE(MAP_FAILED, m1);
	memset(m0 + 3 * PS_PAGE, 0x3c, PS_PAGE);
	memset(m1 + 9 * PS_PAGE, 0x3c, PS_PAGE);
	EXPECT_EQ(2, private_pages(f0) + private_pages(f1));
	ASSERT_EQ(0, fstat(f0, &st));
	EXPECT_EQ(8, st.st_blocks);
	/* Mapped, the size is fixed, as with PAGESHARE_SET_SIZE. */
	EXPECT_EQ(-1, ftruncate(f0, 8 * MIB));
	EXPECT_EQ(EBUSY, errno);

	/* Two files in one group share a page. */
	ASSERT_EQ(0, ps_set_policy(f0, 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	ASSERT_EQ(0, ps_set_policy(f1, group, 0, NULL));
	ASSERT_EQ(0, ps_nominate(f0, 3, &h0, NULL));
	ASSERT_EQ(0, ps_nominate(f1, 9, &h1, NULL));
	ASSERT_EQ(0, ps_share(f0, 3, h0, f1, 9, h1, PAGESHARE_SHARE_COMPARE));
	EXPECT_EQ(2, sharers(f1, 9));
	EXPECT_TRUE(all_bytes(m1 + 9 * PS_PAGE, 0x3c, PS_PAGE));
	m1[9 * PS_PAGE] = 1;
	EXPECT_EQ(1, sharers(f1, 9));
	EXPECT_TRUE(all_bytes(m0 + 3 * PS_PAGE, 0x3c, PS_PAGE));
	EXPECT_EQ(0, ps_audit(f0));

	/* Unlinked, mapped and open: the VM lives on. */
	EXPECT_EQ(0, unlink(self->path));
	EXPECT_EQ(1, m1[9 * PS_PAGE]);
	munmap(m0, 4 * MIB);
	munmap(m1, 4 * MIB);
	close(f1);
	EXPECT_EQ(vms + 1, global_vms());
	/* Closed but linked: vm0 lives on, and reopens with its bytes. */
	close(f0);
	EXPECT_EQ(vms + 1, global_vms());
	snprintf(self->path, sizeof(self->path), "%s/vm0", self->dir);
	f0 = open(self->path, O_RDWR);
	ASSERT_LE(0, f0);
	m0 = ps_map(f0, 4 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m0);
	EXPECT_TRUE(all_bytes(m0 + 3 * PS_PAGE, 0x3c, PS_PAGE));
	munmap(m0, 4 * MIB);
	close(f0);
	EXPECT_EQ(0, unlink(self->path));
	EXPECT_EQ(vms, global_vms());
}

/*
 * QEMU's mem-path=<dir>: mkstemp() there, unlink(), ftruncate(), mmap().
 * The agent still finds the unlinked VM by its id.
 */
TEST_F(mnt, qemu_mem_path_dir)
{
	struct pageshare_open_vm o = { 0 };
	struct pageshare_vm_info info;
	char tmpl[128];
	unsigned char *m, *a;
	int fd, agent, vfd;
	long vms;

	agent = ps_control();
	ASSERT_LE(0, agent);
	vms = global_vms();
	snprintf(tmpl, sizeof(tmpl), "%s/qemu_back_mem.pc.ram.XXXXXX", self->dir);
	fd = mkstemp(tmpl);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, unlink(tmpl));
	EXPECT_EQ(0, lseek(fd, 0, SEEK_END));
	ASSERT_EQ(0, ftruncate(fd, 2 * MIB));
	m = ps_map(fd, 2 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[0] = 0x11;
	ASSERT_EQ(0, ps_info(fd, &info));

	o.id = info.id;
	vfd = ioctl(agent, PAGESHARE_OPEN_VM, &o);
	ASSERT_LE(0, vfd) TH_LOG("OPEN_VM: %s", strerror(errno));
	a = ps_map(vfd, 2 * MIB, 0);
	ASSERT_NE(MAP_FAILED, a);
	EXPECT_EQ(0x11, a[0]);
	munmap(a, 2 * MIB);

	/* The agent's descriptor keeps it alive; its own goes with it. */
	munmap(m, 2 * MIB);
	close(fd);
	EXPECT_EQ(vms + 1, global_vms());
	close(vfd);
	EXPECT_EQ(vms, global_vms());
	EXPECT_EQ(-1, ioctl(agent, PAGESHARE_OPEN_VM, &o));
	EXPECT_EQ(ESRCH, errno);
	close(agent);
}

/* O_TMPFILE: a VM with no name at all. */
TEST_F(mnt, o_tmpfile)
{
	long vms = global_vms();
	unsigned char *m;
	int fd;

	fd = open(self->dir, O_TMPFILE | O_RDWR, 0600);
	ASSERT_LE(0, fd) TH_LOG("O_TMPFILE: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(fd, MIB));
	m = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[PS_PAGE] = 7;
	EXPECT_EQ(1, private_pages(fd));
	EXPECT_EQ(vms + 1, global_vms());
	munmap(m, MIB);
	close(fd);
	EXPECT_EQ(vms, global_vms());
}

/*
 * libvirt's memory_backing_dir: a directory per domain, and QEMU's file in
 * it; rmdir of a directory with a VM in it fails.
 */
TEST_F(mnt, libvirt_domain_dir)
{
	char sub[160];
	int fd;

	snprintf(sub, sizeof(sub), "%s/1-guest", self->dir);
	ASSERT_EQ(0, mkdir(sub, 0700));
	snprintf(sub, sizeof(sub), "%s/1-guest/pc.ram", self->dir);
	fd = open(sub, O_RDWR | O_CREAT, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, MIB));
	close(fd);
	snprintf(sub, sizeof(sub), "%s/1-guest", self->dir);
	EXPECT_EQ(-1, rmdir(sub));
	EXPECT_EQ(ENOTEMPTY, errno);
	snprintf(sub, sizeof(sub), "%s/1-guest/pc.ram", self->dir);
	EXPECT_EQ(0, unlink(sub));
	snprintf(sub, sizeof(sub), "%s/1-guest", self->dir);
	EXPECT_EQ(0, rmdir(sub));
	/* Neither device nodes nor symlinks. */
	snprintf(sub, sizeof(sub), "%s/fifo", self->dir);
	EXPECT_EQ(-1, mknod(sub, S_IFIFO | 0600, 0));
	EXPECT_EQ(-1, symlink("x", sub));
}

/* Punching a hole frees private pages and leaves zeros, mapped or not. */
TEST_F(mnt, punch_hole_frees_private_pages)
{
	unsigned char *m;
	struct stat st;
	size_t i;
	int fd;

	fd = mkfile(self->dir, self->path, "vm", 4 * MIB);
	ASSERT_LE(0, fd);
	m = ps_map(fd, 4 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (i = 0; i < 4 * MIB; i += PS_PAGE)
		m[i] = 0xa5;
	EXPECT_EQ(1024, private_pages(fd));
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       MIB, MIB)) TH_LOG("fallocate: %s", strerror(errno));
	EXPECT_EQ(768, private_pages(fd));
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(4 * MIB, st.st_size);
	EXPECT_EQ(768 * 8, st.st_blocks);
	/* Zeros, through the same mapping; the rest is intact. */
	for (i = 0; i < 4 * MIB; i += PS_PAGE)
		ASSERT_EQ(i >= MIB && i < 2 * MIB ? 0 : 0xa5, m[i]) TH_LOG("page %zu", i / PS_PAGE);
	/* Reading the holes allocated nothing. */
	EXPECT_EQ(768, private_pages(fd));
	ASSERT_EQ(0, madvise(m, 4 * MIB, MADV_REMOVE)) TH_LOG("MADV_REMOVE: %s", strerror(errno));
	EXPECT_EQ(0, private_pages(fd));
	EXPECT_TRUE(all_bytes(m, 0, PS_PAGE));
	munmap(m, 4 * MIB);
	/* Unmapped too; past the size it is a no-op. */
	m = ps_map(fd, 4 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[0] = 1;
	munmap(m, 4 * MIB);
	EXPECT_EQ(1, private_pages(fd));
	EXPECT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 8 * MIB));
	EXPECT_EQ(0, private_pages(fd));
	close(fd);
}

/*
 * A shared gfn that is punched leaves its frame: the other sharer keeps
 * the bytes, and the last sharer's punch frees the frame.
 */
TEST_F(mnt, punch_hole_leaves_frames)
{
	struct pageshare_stats before, after;
	unsigned char *m0, *m1;
	uint64_t h0, h1, group;
	int f0, f1;

	f0 = mkfile(self->dir, self->path, "a", MIB);
	f1 = mkfile(self->dir, self->path, "b", MIB);
	ASSERT_LE(0, f0);
	ASSERT_LE(0, f1);
	ASSERT_EQ(0, ps_set_policy(f0, 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	ASSERT_EQ(0, ps_set_policy(f1, group, 0, NULL));
	m0 = ps_map(f0, MIB, 0);
	m1 = ps_map(f1, MIB, 0);
	ASSERT_NE(MAP_FAILED, m0);
	ASSERT_NE(MAP_FAILED, m1);
	memset(m0 + 2 * PS_PAGE, 0x6b, PS_PAGE);
	memset(m1 + 5 * PS_PAGE, 0x6b, PS_PAGE);
	ASSERT_EQ(0, ps_nominate(f0, 2, &h0, NULL));
	ASSERT_EQ(0, ps_nominate(f1, 5, &h1, NULL));
	ASSERT_EQ(0, ps_stats(f0, &before));
	ASSERT_EQ(0, ps_share(f0, 2, h0, f1, 5, h1, PAGESHARE_SHARE_COMPARE));
	/* Both map the frame. */
	EXPECT_EQ(0x6b, m0[2 * PS_PAGE]);
	EXPECT_EQ(0x6b, m1[5 * PS_PAGE]);

	ASSERT_EQ(0, fallocate(f1, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       5 * PS_PAGE, PS_PAGE));
	EXPECT_EQ(1, sharers(f0, 2));
	EXPECT_EQ(0, sharers(f1, 5));
	EXPECT_TRUE(all_bytes(m0 + 2 * PS_PAGE, 0x6b, PS_PAGE));
	EXPECT_TRUE(all_bytes(m1 + 5 * PS_PAGE, 0, PS_PAGE));
	EXPECT_EQ(0, ps_audit(f0));

	ASSERT_EQ(0, fallocate(f0, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       2 * PS_PAGE, PS_PAGE));
	EXPECT_EQ(0, sharers(f0, 2));
	ASSERT_EQ(0, ps_stats(f0, &after));
	/* The frame went with its last sharer; the counters are exact. */
	EXPECT_EQ(before.shared_frames - 2, after.shared_frames);
	EXPECT_EQ(before.saved_frames, after.saved_frames);
	EXPECT_TRUE(all_bytes(m0 + 2 * PS_PAGE, 0, PS_PAGE));
	EXPECT_EQ(0, ps_audit(f0));
	munmap(m0, MIB);
	munmap(m1, MIB);
	close(f0);
	close(f1);
}

/* Discard's bad inputs: each with its own errno, and nothing freed. */
TEST_F(mnt, punch_hole_bad_input)
{
	unsigned char *m;
	int fd, ro;

	fd = mkfile(self->dir, self->path, "vm", MIB);
	ASSERT_LE(0, fd);
	m = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	memset(m, 1, MIB);
	EXPECT_EQ(-1, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, PS_PAGE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 100));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, fallocate(fd, 0, 0, PS_PAGE));
	EXPECT_EQ(EOPNOTSUPP, errno);
	ro = open(self->path, O_RDONLY);
	ASSERT_LE(0, ro);
	EXPECT_EQ(-1, fallocate(ro, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PS_PAGE));
	EXPECT_EQ(EBADF, errno);
	close(ro);
	EXPECT_EQ(256, private_pages(fd));
	EXPECT_TRUE(all_bytes(m, 1, MIB));
	munmap(m, MIB);
	close(fd);
}

/*
 * Someone who may only read a VM file (QEMU makes named files 0644) may
 * not change the VM, nor learn its share group: every operation but a
 * query needs each VM it names open for writing (EBADF otherwise).
 */
TEST_F(mnt, read_only_descriptor_changes_nothing)
{
	struct pageshare_policy p = { 0 };
	struct pageshare_vm_info info;
	uint64_t h, hw, group;
	unsigned char *m, *a;
	int fd, ro, w;

	fd = mkfile(self->dir, self->path, "victim", MIB);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_policy(fd, 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	m = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	memset(m + 3 * PS_PAGE, 0x5a, PS_PAGE);
	ro = open(self->path, O_RDONLY);
	ASSERT_LE(0, ro);
	w = mkfile(self->dir, self->path, "attacker", MIB);
	ASSERT_LE(0, w);

	EXPECT_EQ(0, ps_info(ro, &info));
	EXPECT_EQ(1, sharers(ro, 3));
	EXPECT_EQ(-1, ioctl(ro, PAGESHARE_GET_POLICY, &p));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_set_policy(ro, 0, PAGESHARE_POLICY_NEW_GROUP, NULL));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_set_size(ro, 2 * MIB));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_nominate(ro, 3, &h, NULL));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_unshare(ro, 3));
	EXPECT_EQ(EBADF, errno);
	/* Named as the client, or as the source, of a share from elsewhere. */
	ASSERT_EQ(0, ps_set_policy(w, group, 0, NULL));
	a = ps_map(w, MIB, 0);
	ASSERT_NE(MAP_FAILED, a);
	memset(a + 9 * PS_PAGE, 0xee, PS_PAGE);
	munmap(a, MIB);
	ASSERT_EQ(0, ps_nominate(w, 9, &hw, NULL));
	ASSERT_EQ(0, ps_nominate(fd, 3, &h, NULL));
	EXPECT_EQ(-1, ps_share(w, 9, hw, ro, 3, h, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_share(ro, 3, h, w, 9, hw, 0));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ps_add_to_physmap(ro, 3, h, w, 20));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(1, sharers(fd, 3));
	EXPECT_TRUE(all_bytes(m + 3 * PS_PAGE, 0x5a, PS_PAGE));
	EXPECT_EQ(-1, fallocate(ro, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, MIB));
	EXPECT_EQ(EBADF, errno);
	munmap(m, MIB);
	close(ro);

	/* Nor may a read-only mapping size a VM that has none yet. */
	ro = mkfile(self->dir, self->path, "sizeless", 0);
	ASSERT_LE(0, ro);
	close(ro);
	ro = open(self->path, O_RDONLY);
	ASSERT_LE(0, ro);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIB, PROT_READ, MAP_SHARED, ro, 0));
	EXPECT_EQ(ENXIO, errno);
	ASSERT_EQ(0, ps_info(ro, &info));
	EXPECT_EQ(0, info.size);
	close(ro);
	/* And guest RAM is never executable. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIB, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0));
	EXPECT_EQ(EPERM, errno);
	close(w);
	close(fd);
}

/*
 * A PAGESHARE_OPEN_VM descriptor is a regular file of the VM: ftruncate()
 * resizes the VM (not while mapped), fstat() reports it, fallocate()
 * punches.
 */
TEST_F(mnt, open_vm_descriptor_is_the_vms_file)
{
	struct pageshare_open_vm o = { 0 };
	struct pageshare_vm_info info;
	unsigned char *m;
	struct stat st;
	int fd, vfd;

	fd = mkfile(self->dir, self->path, "vm", MIB);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_info(fd, &info));
	o.id = info.id;
	vfd = ioctl(fd, PAGESHARE_OPEN_VM, &o);
	ASSERT_LE(0, vfd);
	ASSERT_EQ(0, fstat(vfd, &st));
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(MIB, st.st_size);
	EXPECT_EQ(0, ftruncate(vfd, 2 * MIB));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2 * MIB, info.size);
	m = ps_map(vfd, 2 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	memset(m, 7, 2 * MIB);
	EXPECT_EQ(-1, ftruncate(vfd, MIB));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(0, fallocate(vfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, MIB));
	EXPECT_EQ(256, private_pages(fd));
	EXPECT_TRUE(all_bytes(m + MIB, 7, MIB));
	munmap(m, 2 * MIB);
	close(vfd);
	close(fd);
}

/*
 * A long punch (a balloon giving back a lot at once) must not hold up the
 * VMM's mmap(), munmap() and fork(), which take the mmap_lock for writing:
 * every fault of the VMM, its vCPUs' included, would wait behind them.
 */
struct mapper {
	int fd;
	atomic_int stop;
	double max_us;
	long rounds;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *map_loop(void *arg)
{
	struct mapper *mp = arg;
	double t0, t;
	void *p;

	while (!atomic_load(&mp->stop)) {
		t0 = now_us();
		p = mmap(NULL, PS_PAGE, PROT_READ, MAP_SHARED, mp->fd, 0);
		if (p != MAP_FAILED)
			munmap(p, PS_PAGE);
		t = now_us() - t0;
		if (t > mp->max_us)
			mp->max_us = t;
		mp->rounds++;
	}
	return NULL;
}

/* 16,384 first touches and their punch: past 30 s under TCG and KASAN. */
TEST_F_TIMEOUT(mnt, punch_does_not_hold_up_mmap, 300)
{
	struct mapper mp = { 0 };
	size_t size = 64 * MIB, i;
	double t0, t_punch;
	unsigned char *m;
	pthread_t t;

	mp.fd = mkfile(self->dir, self->path, "big", size);
	ASSERT_LE(0, mp.fd);
	m = ps_map(mp.fd, size, 0);
	ASSERT_NE(MAP_FAILED, m);
	for (i = 0; i < size; i += PS_PAGE)
		m[i] = 1;
	ASSERT_EQ(0, pthread_create(&t, NULL, map_loop, &mp));
	usleep(100000);
	t0 = now_us();
	ASSERT_EQ(0, fallocate(mp.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size));
	t_punch = now_us() - t0;
	atomic_store(&mp.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("punch of %zu MiB: %.0f us; %ld mmap()+munmap() meanwhile, the longest %.0f us",
	       size / MIB, t_punch, mp.rounds, mp.max_us);
	EXPECT_EQ(0, private_pages(mp.fd));
	EXPECT_LT(mp.max_us, t_punch / 4);
	munmap(m, size);
	close(mp.fd);
}

/* uid=, gid=, mode= and size=, as hugetlbfs takes them. */
TEST(mount_options)
{
	char dir[] = "/tmp/pageshare-opt.XXXXXX", path[96];
	struct statfs sfs;
	struct stat st;
	int fd, other;

	REQUIRE_DEVICE();
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, mount("none", dir, "pageshare", 0,
			   "uid=65534,gid=65534,mode=1770,size=8M"));
	ASSERT_EQ(0, stat(dir, &st));
	EXPECT_EQ(65534, st.st_uid);
	EXPECT_EQ(65534, st.st_gid);
	EXPECT_EQ(01770, st.st_mode & 07777);
	ASSERT_EQ(0, statfs(dir, &sfs));
	EXPECT_EQ(2048, sfs.f_blocks);
	EXPECT_EQ(2048, sfs.f_bfree);

	snprintf(path, sizeof(path), "%s/a", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 6 * MIB));
	ASSERT_EQ(0, statfs(dir, &sfs));
	EXPECT_EQ(512, sfs.f_bfree);
	snprintf(path, sizeof(path), "%s/b", dir);
	other = open(path, O_RDWR | O_CREAT, 0600);
	ASSERT_LE(0, other);
	EXPECT_EQ(-1, ftruncate(other, 4 * MIB));
	EXPECT_EQ(ENOSPC, errno);
	/* Nor by the first mmap() of a VM without a size. */
	EXPECT_EQ(MAP_FAILED, ps_map(other, 4 * MIB, 0));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_EQ(0, ftruncate(other, 2 * MIB));
	/* Shrinking gives it back; so does the file's end. */
	EXPECT_EQ(0, ftruncate(fd, 0));
	EXPECT_EQ(0, ftruncate(other, 8 * MIB));
	close(fd);
	close(other);
	EXPECT_EQ(0, unlink(path));
	ASSERT_EQ(0, statfs(dir, &sfs));
	EXPECT_EQ(2048, sfs.f_bfree);

	/* A remount changes the options given, not below what is in use. */
	ASSERT_EQ(0, mount("none", dir, "pageshare", MS_REMOUNT, "size=16M"));
	ASSERT_EQ(0, statfs(dir, &sfs));
	EXPECT_EQ(4096, sfs.f_blocks);
	snprintf(path, sizeof(path), "%s/a", dir);
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 12 * MIB));
	EXPECT_EQ(-1, mount("none", dir, "pageshare", MS_REMOUNT, "size=8M"));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, statfs(dir, &sfs));
	EXPECT_EQ(4096, sfs.f_blocks);
	EXPECT_EQ(0, ftruncate(fd, 0));
	close(fd);
	ASSERT_EQ(0, stat(dir, &st));
	EXPECT_EQ(01770, st.st_mode & 07777);

	EXPECT_EQ(-1, mount("none", dir, "pageshare", 0, "size=lots"));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, mount("none", dir, "pageshare", 0, "colour=blue"));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, umount(dir));
	rmdir(dir);
}

/* nr_inodes= bounds files and directories, the root included. */
TEST(nr_inodes_limit)
{
	char dir[] = "/tmp/pageshare-ni.XXXXXX", path[96];
	struct statfs sfs;
	int fd, i;

	REQUIRE_DEVICE();
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, mount("none", dir, "pageshare", 0, "nr_inodes=4"));
	snprintf(path, sizeof(path), "%s/d", dir);
	ASSERT_EQ(0, mkdir(path, 0700));
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		fd = open(path, O_RDWR | O_CREAT, 0600);
		ASSERT_LE(0, fd);
		close(fd);
	}
	ASSERT_EQ(0, statfs(dir, &sfs));
	EXPECT_EQ(4, sfs.f_files);
	EXPECT_EQ(0, sfs.f_ffree);
	snprintf(path, sizeof(path), "%s/f2", dir);
	EXPECT_EQ(-1, open(path, O_RDWR | O_CREAT, 0600));
	EXPECT_EQ(ENOSPC, errno);
	EXPECT_EQ(-1, open(dir, O_TMPFILE | O_RDWR, 0600));
	EXPECT_EQ(ENOSPC, errno);
	snprintf(path, sizeof(path), "%s/f0", dir);
	EXPECT_EQ(0, unlink(path));
	snprintf(path, sizeof(path), "%s/f2", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	EXPECT_LE(0, fd);
	close(fd);
	EXPECT_EQ(0, umount(dir));
	rmdir(dir);
}

/* Files nobody holds go with the mount; one the agent holds lives on. */
TEST(umount_frees_vms)
{
	char dir[] = "/tmp/pageshare-um.XXXXXX", path[96];
	struct pageshare_open_vm o = { 0 };
	struct pageshare_vm_info info;
	int fd, agent, vfd, i;
	long vms;

	REQUIRE_DEVICE();
	agent = ps_control();
	ASSERT_LE(0, agent);
	vms = global_vms();
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, mount("none", dir, "pageshare", 0, ""));
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/vm%d", dir, i);
		fd = open(path, O_RDWR | O_CREAT, 0600);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, ftruncate(fd, MIB));
		if (i == 2)
			ASSERT_EQ(0, ps_info(fd, &info));
		close(fd);
	}
	EXPECT_EQ(vms + 3, global_vms());
	o.id = info.id;
	vfd = ioctl(agent, PAGESHARE_OPEN_VM, &o);
	ASSERT_LE(0, vfd);
	EXPECT_EQ(0, umount(dir));
	EXPECT_EQ(vms + 1, global_vms());
	/* The survivor still works, and may be resized without its mount. */
	EXPECT_EQ(0, ps_set_size(vfd, 2 * MIB));
	close(vfd);
	EXPECT_EQ(vms, global_vms());
	close(agent);
	rmdir(dir);
}

/*
 * NUMA: a mapping bound with mbind(MPOL_BIND) gets its pages from the bound
 * node, the way QEMU's host-nodes=...,policy=bind binds guest RAM; a
 * copy-on-write copy too. The test VM has two nodes (vmtest).
 */
#define MPOL_BIND_	2

static long mbind_node(void *addr, size_t len, int node)
{
	unsigned long mask = 1UL << node;

	return syscall(__NR_mbind, addr, len, MPOL_BIND_, &mask, 8 * sizeof(mask), 0);
}

/* The node of each page, or -errno: move_pages() without a target. */
static void nodes_of(unsigned char *p, size_t n, int *status)
{
	void *pages[512];
	size_t i;

	for (i = 0; i < n; i++)
		pages[i] = p + i * PS_PAGE;
	if (syscall(__NR_move_pages, 0, n, pages, NULL, status, 0))
		for (i = 0; i < n; i++)
			status[i] = -errno;
}

TEST_F(mnt, numa_binding_holds)
{
	int status[512], f0, f1, i, on0 = 0, on1 = 0;
	unsigned char *m0, *m1;
	uint64_t h0, h1, group;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "one NUMA node");
	f0 = mkfile(self->dir, self->path, "a", 2 * MIB);
	f1 = mkfile(self->dir, self->path, "b", 2 * MIB);
	ASSERT_LE(0, f0);
	ASSERT_LE(0, f1);
	m0 = ps_map(f0, 2 * MIB, 0);
	m1 = ps_map(f1, 2 * MIB, 0);
	ASSERT_NE(MAP_FAILED, m0);
	ASSERT_NE(MAP_FAILED, m1);
	ASSERT_EQ(0, mbind_node(m0, 2 * MIB, 1)) TH_LOG("mbind: %s", strerror(errno));
	ASSERT_EQ(0, mbind_node(m1, 2 * MIB, 0));
	for (i = 0; i < 512; i++) {
		m0[i * PS_PAGE] = 0x33;
		m1[i * PS_PAGE] = 0x33;
	}
	nodes_of(m0, 512, status);
	for (i = 0; i < 512; i++)
		on1 += status[i] == 1;
	EXPECT_EQ(512, on1) TH_LOG("page 0 is on node %d", status[0]);
	nodes_of(m1, 512, status);
	for (i = 0; i < 512; i++)
		on0 += status[i] == 0;
	EXPECT_EQ(512, on0) TH_LOG("page 0 is on node %d", status[0]);

	/* b's page (node 0) backs a's gfn 7; a's write copies it to node 1. */
	ASSERT_EQ(0, ps_set_policy(f0, 0, PAGESHARE_POLICY_NEW_GROUP, &group));
	ASSERT_EQ(0, ps_set_policy(f1, group, 0, NULL));
	ASSERT_EQ(0, ps_nominate(f1, 7, &h1, NULL));
	ASSERT_EQ(0, ps_nominate(f0, 7, &h0, NULL));
	ASSERT_EQ(0, ps_share(f1, 7, h1, f0, 7, h0, PAGESHARE_SHARE_COMPARE));
	EXPECT_EQ(0x33, m0[7 * PS_PAGE]);
	nodes_of(m0 + 7 * PS_PAGE, 1, status);
	EXPECT_EQ(0, status[0]);
	m0[7 * PS_PAGE] = 0x44;
	nodes_of(m0 + 7 * PS_PAGE, 1, status);
	EXPECT_EQ(1, status[0]);
	EXPECT_EQ(0x33, m1[7 * PS_PAGE]);
	munmap(m0, 2 * MIB);
	munmap(m1, 2 * MIB);
	close(f0);
	close(f1);
}

TEST_HARNESS_MAIN
