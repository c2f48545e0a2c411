// SPDX-License-Identifier: GPL-2.0
/*
 * A VM's file as a VMM sees it: one VM per file of a pageshare mount, its
 * size, its mappings, its pages, and a documented errno for every bad
 * request; and /dev/pageshare, the agent's control node, which is no VM.
 */

#define _GNU_SOURCE
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB (1024UL * 1024)

static bool all_bytes(const void *p, int byte, size_t len)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (c[i] != byte)
			return false;
	return true;
}

TEST(api_version)
{
	int fd, ctl;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	EXPECT_EQ(PAGESHARE_API_VERSION, ioctl(fd, PAGESHARE_GET_API_VERSION));
	ctl = ps_control();
	ASSERT_LE(0, ctl);
	EXPECT_EQ(PAGESHARE_API_VERSION, ioctl(ctl, PAGESHARE_GET_API_VERSION));
	close(ctl);
	close(fd);
}

/*
 * Opening the control node makes no VM, and it takes none of a VM's own
 * ioctls, mmap() or fallocate(); the agent's ioctls work on it.
 */
TEST(control_node_is_no_vm)
{
	struct pageshare_policy p = { .flags = PAGESHARE_POLICY_NEW_GROUP };
	struct pageshare_size sz = { .size = MIB };
	struct pageshare_open_vm o = { 0 };
	struct pageshare_nominate n = { 0 };
	struct pageshare_vm_info info;
	struct pageshare_stats st;
	void *m;
	long vms;
	int ctl, fd, vfd;

	REQUIRE_DEVICE();
	vms = ps_sysfs_read("vms");
	ctl = ps_control();
	ASSERT_LE(0, ctl);
	EXPECT_EQ(vms, ps_sysfs_read("vms"));

	EXPECT_EQ(-1, ioctl(ctl, PAGESHARE_SET_SIZE, &sz));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(ctl, PAGESHARE_GET_INFO, &info));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(ctl, PAGESHARE_SET_POLICY, &p));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(ctl, PAGESHARE_GET_POLICY, &p));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIB, PROT_READ, MAP_SHARED, ctl, 0));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, fallocate(ctl, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, MIB));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(vms, ps_sysfs_read("vms"));

	/* The agent's work: global counters, a VM by id, sharing, the audit. */
	fd = ps_open();
	ASSERT_LE(0, fd);
	m = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, m);
	memset(&st, 0xa5, sizeof(st));
	ASSERT_EQ(0, ps_stats(ctl, &st));
	EXPECT_EQ(vms + 1, st.vms);
	EXPECT_EQ(0, st.private_pages);
	EXPECT_EQ(0, st.shared_gfns);
	EXPECT_EQ(0, st.nominated_gfns);
	EXPECT_EQ(0, st.cow_breaks);
	ASSERT_EQ(0, ps_info(fd, &info));
	o.id = info.id;
	vfd = ioctl(ctl, PAGESHARE_OPEN_VM, &o);
	ASSERT_LE(0, vfd);
	n.vm = vfd;
	EXPECT_EQ(-1, ioctl(ctl, PAGESHARE_NOMINATE, &n));
	EXPECT_EQ(ENODATA, errno);
	EXPECT_EQ(0, ioctl(ctl, PAGESHARE_AUDIT));
	munmap(m, MIB);
	close(vfd);
	close(fd);
	close(ctl);
}

TEST(each_open_is_a_vm)
{
	struct pageshare_vm_info a, b;
	int fa, fb;

	REQUIRE_DEVICE();
	fa = ps_open();
	fb = ps_open();
	ASSERT_LE(0, fa);
	ASSERT_LE(0, fb);
	memset(&a, 0xff, sizeof(a));
	ASSERT_EQ(0, ps_info(fa, &a));
	ASSERT_EQ(0, ps_info(fb, &b));
	EXPECT_NE(0, a.id);
	EXPECT_NE(a.id, b.id);
	EXPECT_EQ(0, a.size);
	EXPECT_EQ(0, a.private_pages);
	EXPECT_EQ(0, a.mappings);
	/* Everything copied out is initialised. */
	EXPECT_EQ(0, a.pad);
	EXPECT_TRUE(all_bytes(a.reserved, 0, sizeof(a.reserved)));
	close(fa);
	close(fb);
}

TEST(set_size_and_lseek)
{
	struct pageshare_vm_info info;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, lseek(fd, 0, SEEK_END));
	ASSERT_EQ(0, ps_set_size(fd, 3 * MIB));
	EXPECT_EQ(3 * MIB, lseek(fd, 0, SEEK_END));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(3 * MIB, info.size);
	/* The same size again is not a change. */
	EXPECT_EQ(0, ps_set_size(fd, 3 * MIB));
	close(fd);
}

TEST(set_size_bad_arguments)
{
	struct pageshare_size arg = { .size = MIB };
	struct pageshare_vm_info info;
	void *none;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_size(fd, 2 * MIB));

	EXPECT_EQ(-1, ps_set_size(fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ps_set_size(fd, MIB + 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ps_set_size(fd, 1ULL << 62));
	EXPECT_EQ(EFBIG, errno);

	arg.flags = 1;
	EXPECT_EQ(-1, ioctl(fd, PAGESHARE_SET_SIZE, &arg));
	EXPECT_EQ(EINVAL, errno);
	arg.flags = 0;
	arg.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(fd, PAGESHARE_SET_SIZE, &arg));
	EXPECT_EQ(EINVAL, errno);

	EXPECT_EQ(-1, ioctl(fd, PAGESHARE_SET_SIZE, NULL));
	EXPECT_EQ(EFAULT, errno);
	none = mmap(NULL, PS_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, none);
	EXPECT_EQ(-1, ioctl(fd, PAGESHARE_SET_SIZE, none));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(fd, PAGESHARE_GET_INFO, none));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(fd, PAGESHARE_GET_INFO, NULL));
	EXPECT_EQ(EFAULT, errno);
	munmap(none, PS_PAGE);

	/* None of it changed anything. */
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2 * MIB, info.size);
	close(fd);
}

TEST(unknown_ioctls)
{
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, _IO(PAGESHARE_IOCTL_TYPE, 0x7f)));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(fd, _IOW(PAGESHARE_IOCTL_TYPE, 0x01, uint32_t), 0));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(fd, KVM_CREATE_VM, 0));
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
}

TEST(size_from_first_mapping)
{
	struct pageshare_vm_info info;
	void *p;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = ps_map(fd, 2 * MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2 * MIB, info.size);
	EXPECT_EQ(1, info.mappings);
	EXPECT_EQ(2 * MIB, lseek(fd, 0, SEEK_END));
	munmap(p, 2 * MIB);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.mappings);
	close(fd);
}

TEST(private_mapping_refused)
{
	struct pageshare_vm_info info;
	void *p;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.size);
	EXPECT_EQ(0, info.mappings);
	close(fd);
}

TEST(mapping_past_size_refused)
{
	void *p;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_size(fd, MIB));
	p = ps_map(fd, 2 * MIB, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(ENXIO, errno);
	p = ps_map(fd, PS_PAGE, MIB);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(ENXIO, errno);
	p = ps_map(fd, PS_PAGE, MIB - PS_PAGE);
	ASSERT_NE(MAP_FAILED, p);
	/* mremap() cannot grow it past the end either. */
	EXPECT_EQ(MAP_FAILED, mremap(p, PS_PAGE, 2 * PS_PAGE, MREMAP_MAYMOVE));
	munmap(p, PS_PAGE);
	close(fd);
}

TEST(size_change_while_mapped)
{
	struct pageshare_vm_info info;
	char *p;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_size(fd, 4 * MIB));
	p = ps_map(fd, MIB, MIB);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	EXPECT_EQ(-1, ps_set_size(fd, 8 * MIB));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, ps_set_size(fd, 2 * MIB));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(0, ps_set_size(fd, 4 * MIB));
	/* A split mapping is still a mapping. */
	ASSERT_EQ(0, munmap(p + PS_PAGE, PS_PAGE));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2, info.mappings);
	EXPECT_EQ(-1, ps_set_size(fd, 2 * MIB));
	EXPECT_EQ(EBUSY, errno);
	munmap(p, MIB);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.mappings);
	EXPECT_EQ(1, info.private_pages);
	/* Unmapped, it can shrink, and the page past the end goes. */
	EXPECT_EQ(0, ps_set_size(fd, MIB));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.private_pages);
	close(fd);
}

/* Adjacent mappings of adjacent file ranges stay two mappings, counted. */
TEST(adjacent_mappings_counted)
{
	struct pageshare_vm_info info;
	char *p, *q;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_size(fd, 4 * MIB));
	/*
	 * Reserve the 4 MiB first: MAP_FIXED on whatever happens to lie
	 * above a 2 MiB mapping would replace the test's own memory.
	 */
	p = mmap(NULL, 4 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	q = mmap(p, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 0);
	ASSERT_EQ(p, q);
	q = mmap(p + 2 * MIB, 2 * MIB, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 2 * MIB);
	ASSERT_EQ(p + 2 * MIB, q);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2, info.mappings);
	ASSERT_EQ(0, munmap(p, 4 * MIB));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.mappings);
	EXPECT_EQ(0, ps_set_size(fd, MIB));
	close(fd);
}

TEST(pages_on_first_touch_zero_filled)
{
	struct pageshare_vm_info info;
	unsigned char *p;
	int fd, i;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.private_pages);

	/* A read maps zeros and allocates nothing; a write allocates. */
	EXPECT_TRUE(all_bytes(p, 0, PS_PAGE));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(0, info.private_pages);

	memset(p + 5 * PS_PAGE, 0x77, PS_PAGE);
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(1, info.private_pages);
	p[0] = 0;
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2, info.private_pages);

	for (i = 0; i < 256; i++)
		EXPECT_TRUE(all_bytes(p + i * PS_PAGE, i == 5 ? 0x77 : 0, PS_PAGE));
	ASSERT_EQ(0, ps_info(fd, &info));
	EXPECT_EQ(2, info.private_pages);
	munmap(p, MIB);
	close(fd);
}

TEST(bytes_agree_across_mappings)
{
	unsigned char *a, *b, buf[64];
	struct iovec local, remote;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_size(fd, MIB));
	a = ps_map(fd, MIB, 0);
	b = ps_map(fd, MIB / 2, MIB / 2);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);

	memcpy((char *)a + MIB / 2 + 100, "through a", 10);
	EXPECT_STREQ("through a", (char *)b + 100);
	memcpy((char *)b + 3 * PS_PAGE, "through b", 10);
	EXPECT_STREQ("through b", (char *)a + MIB / 2 + 3 * PS_PAGE);

	/* Through GUP, the way KVM and vhost reach guest memory. */
	memcpy(buf, "through gup", 12);
	local.iov_base = buf;
	local.iov_len = 12;
	remote.iov_base = a + MIB / 2 + 7 * PS_PAGE + 10;
	remote.iov_len = 12;
	ASSERT_EQ(12, process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_STREQ("through gup", (char *)b + 7 * PS_PAGE + 10);
	memset(buf, 0, sizeof(buf));
	remote.iov_base = b + 100;
	remote.iov_len = 10;
	ASSERT_EQ(10, process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_STREQ("through a", (char *)buf);

	munmap(a, MIB);
	munmap(b, MIB / 2);
	close(fd);
}

TEST(read_only_shared_mapping)
{
	unsigned char *p;
	char path[64];
	int rw, fd;

	REQUIRE_DEVICE();
	rw = ps_open();
	ASSERT_LE(0, rw);
	ASSERT_EQ(0, ps_set_size(rw, MIB));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	close(rw);
	p = mmap(NULL, MIB, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_TRUE(all_bytes(p, 0, 4 * PS_PAGE));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	EXPECT_EQ(EACCES, errno);
	munmap(p, MIB);
	close(fd);
}

TEST(fork_shares_the_mapping)
{
	unsigned char *p;
	int fd, status;
	pid_t pid;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		p[0] = 2;
		p[PS_PAGE * 9] = 3;
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(2, p[0]);
	EXPECT_EQ(3, p[PS_PAGE * 9]);
	munmap(p, MIB);
	close(fd);
}

TEST(close_fd_while_mapped)
{
	long pages = ps_sysfs_read("private_pages");
	long vms = ps_sysfs_read("vms");
	unsigned char *p;
	int fd, i;

	REQUIRE_DEVICE();
	ASSERT_LE(0, pages);
	ASSERT_LE(0, vms);
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < 64; i++)
		p[i * PS_PAGE] = i;
	EXPECT_EQ(vms + 1, ps_sysfs_read("vms"));
	EXPECT_EQ(pages + 64, ps_sysfs_read("private_pages"));

	/* The mapping keeps the VM alive... */
	close(fd);
	EXPECT_EQ(vms + 1, ps_sysfs_read("vms"));
	for (i = 0; i < 64; i++)
		EXPECT_EQ(i, p[i * PS_PAGE]);
	p[100 * PS_PAGE] = 100;
	EXPECT_EQ(pages + 65, ps_sysfs_read("private_pages"));

	/* ...and its end frees everything. */
	munmap(p, MIB);
	EXPECT_EQ(vms, ps_sysfs_read("vms"));
	EXPECT_EQ(pages, ps_sysfs_read("private_pages"));
}

TEST(freed_when_last_fd_closes)
{
	long pages = ps_sysfs_read("private_pages");
	unsigned char *p;
	int fd, dup_fd, i;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < 32; i++)
		p[i * PS_PAGE] = 1;
	munmap(p, MIB);
	dup_fd = dup(fd);
	close(fd);
	EXPECT_EQ(pages + 32, ps_sysfs_read("private_pages"));
	close(dup_fd);
	EXPECT_EQ(pages, ps_sysfs_read("private_pages"));
}

/* Guest pages are charged to the cgroup of the task that opened the VM. */
TEST(charged_to_openers_memcg)
{
	const char *cg = "/sys/fs/cgroup/pageshare-test";
	char path[256], buf[64];
	long before, after;
	unsigned char *p;
	int fd, cfd, i;
	ssize_t n;

	REQUIRE_DEVICE();
	cfd = open("/sys/fs/cgroup/cgroup.controllers", O_RDONLY);
	if (cfd < 0)
		SKIP(return, "cgroup2 is not mounted on /sys/fs/cgroup");
	n = read(cfd, buf, sizeof(buf) - 1);
	close(cfd);
	buf[n > 0 ? n : 0] = 0;
	if (!strstr(buf, "memory"))
		SKIP(return, "no memory controller");

	cfd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY);
	ASSERT_LE(0, cfd);
	ASSERT_LT(0, write(cfd, "+memory", 7));
	close(cfd);
	rmdir(cg);
	ASSERT_EQ(0, mkdir(cg, 0755));

	/* Open from inside the cgroup, fault from outside it. */
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	cfd = open(path, O_WRONLY);
	ASSERT_LE(0, cfd);
	n = snprintf(buf, sizeof(buf), "%d", getpid());
	ASSERT_EQ(n, write(cfd, buf, n));
	close(cfd);
	fd = ps_open();
	cfd = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY);
	ASSERT_LE(0, cfd);
	ASSERT_EQ(n, write(cfd, buf, n));
	close(cfd);
	ASSERT_LE(0, fd);

	snprintf(path, sizeof(path), "%s/memory.current", cg);
	cfd = open(path, O_RDONLY);
	ASSERT_LE(0, cfd);
	n = pread(cfd, buf, sizeof(buf) - 1, 0);
	ASSERT_LT(0, n);
	buf[n] = 0;
	before = atol(buf);

	p = ps_map(fd, 4 * MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < 1024; i++)
		p[i * PS_PAGE] = 1;
	n = pread(cfd, buf, sizeof(buf) - 1, 0);
	ASSERT_LT(0, n);
	buf[n] = 0;
	after = atol(buf);
	TH_LOG("memory.current %ld -> %ld", before, after);
	EXPECT_LE(before + 4 * MIB, after);

	munmap(p, 4 * MIB);
	close(fd);
	n = pread(cfd, buf, sizeof(buf) - 1, 0);
	ASSERT_LT(0, n);
	buf[n] = 0;
	EXPECT_GT(before + MIB, atol(buf));
	close(cfd);
	EXPECT_EQ(0, rmdir(cg));
}

static long module_refs(void)
{
	FILE *f = fopen("/sys/module/pageshare/refcnt", "r");
	long n = -1;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

/*
 * A VM pins the module while anything holds it, a mapping alone included.
 * Its mount pins the module too, so count the references rather than try
 * to unload.
 */
TEST(module_pinned_while_a_vm_exists)
{
	long refs;
	void *p;
	int fd;

	REQUIRE_DEVICE();
	fd = ps_open();
	ASSERT_LE(0, fd);
	p = ps_map(fd, MIB, 0);
	ASSERT_NE(MAP_FAILED, p);
	refs = module_refs();
	ASSERT_LE(0, refs);
	close(fd);
	/* Only the mapping holds the VM now. */
	EXPECT_EQ(refs, module_refs());
	munmap(p, MIB);
	EXPECT_EQ(refs - 1, module_refs());
}

TEST_HARNESS_MAIN
