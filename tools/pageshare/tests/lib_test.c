// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of libpageshare on the host. The library is built into this
 * test with ioctl() renamed to lib_test_ioctl() (-Dioctl=lib_test_ioctl),
 * a fake that plays the kernel's part: batch splitting, resuming after
 * EINTR, -errno returns, group helpers. The sysfs readers read a tree made
 * in a temporary directory, and pageshare_strerror() is checked for the
 * meanings the agent relies on.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pageshare.h"
#include "tap.h"

#define MAX_CALLS 16

static struct {
	int calls;
	unsigned long req[MAX_CALLS];
	uint32_t count[MAX_CALLS];
	uint64_t first_gfn[MAX_CALLS];
	int fail_call;		/* the call that fails, or -1 */
	int fail_errno;
	uint32_t fail_done;	/* entries it processes first */
	uint8_t *seen;		/* times each gfn was processed */
	size_t nr_seen;
	uint64_t priv_size;	/* GET_PRIVATE: the VM's gfns, of which */
	uint64_t priv_step;	/* every priv_step-th is private */
} fake;

static void fake_reset(size_t nr_seen)
{
	free(fake.seen);
	memset(&fake, 0, sizeof(fake));
	fake.fail_call = -1;
	fake.seen = calloc(nr_seen ? nr_seen : 1, 1);
	fake.nr_seen = nr_seen;
}

/* A batch of unshare entries: each gets a result from its gfn. */
static int fake_unshare_batch(struct pageshare_batch *b, int call)
{
	struct pageshare_unshare *e = (void *)(uintptr_t)b->entries;
	uint32_t i, n = b->count;
	int err = 0;

	if (b->count > PAGESHARE_BATCH_MAX) {
		errno = E2BIG;
		return -1;
	}
	fake.first_gfn[call] = n ? e[0].gfn : 0;
	if (call == fake.fail_call) {
		n = fake.fail_done < n ? fake.fail_done : n;
		err = fake.fail_errno;
	}
	for (i = 0; i < n; i++) {
		e[i].result = e[i].gfn % 3 ? 0 : -ENXIO;
		if (e[i].gfn < fake.nr_seen)
			fake.seen[e[i].gfn]++;
	}
	b->done = n;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* The VM descriptor of the GET_PRIVATE tests; any other is the control node. */
#define FAKE_VM_FD	5

/* PAGESHARE_GET_PRIVATE, as the kernel: checks, then the walk from @start. */
static int fake_get_private(int fd, struct pageshare_private *a, int call)
{
	uint64_t *out = (void *)(uintptr_t)a->gfns;
	uint64_t g;

	if (fd != FAKE_VM_FD) {
		errno = ENOTTY;
		return -1;
	}
	if (a->flags || a->pad || a->reserved[0] || a->reserved[1]) {
		errno = EINVAL;
		return -1;
	}
	if (a->max > PAGESHARE_BATCH_MAX) {
		errno = E2BIG;
		return -1;
	}
	fake.count[call] = a->max;
	fake.first_gfn[call] = a->start;
	if (call == fake.fail_call) {
		errno = fake.fail_errno;
		return -1;
	}
	/* Another count at each call: the wrapper must give the first one's. */
	a->discards = 40 + call;
	a->count = 0;
	a->next = fake.priv_size;
	g = (a->start + fake.priv_step - 1) / fake.priv_step * fake.priv_step;
	for (; g < fake.priv_size && a->count < a->max; g += fake.priv_step)
		out[a->count++] = g;
	if (a->max && a->count == a->max)
		a->next = out[a->count - 1] + 1;
	return 0;
}

int lib_test_ioctl(int fd, unsigned long req, ...)
{
	int call = fake.calls < MAX_CALLS ? fake.calls : MAX_CALLS - 1;
	struct pageshare_policy *pol;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	fake.calls++;
	fake.req[call] = req;
	switch (req) {
	case PAGESHARE_UNSHARE_BATCH:
	case PAGESHARE_NOMINATE_BATCH:
	case PAGESHARE_SHARE_BATCH:
	case PAGESHARE_QUERY_BATCH:
	case PAGESHARE_ADD_TO_PHYSMAP_BATCH:
		fake.count[call] = ((struct pageshare_batch *)arg)->count;
		if (req == PAGESHARE_UNSHARE_BATCH)
			return fake_unshare_batch(arg, call);
		((struct pageshare_batch *)arg)->done = fake.count[call];
		return 0;
	case PAGESHARE_GET_PRIVATE:
		return fake_get_private(fd, arg, call);
	case PAGESHARE_OPEN_VM:
		if (((struct pageshare_open_vm *)arg)->id == 42)
			return 7;
		errno = ESRCH;
		return -1;
	case PAGESHARE_AUDIT:
		return 3;
	case PAGESHARE_GET_API_VERSION:
		return PAGESHARE_API_VERSION;
	case PAGESHARE_SET_POLICY:
		pol = arg;
		if (pol->flags & PAGESHARE_POLICY_NEW_GROUP) {
			pol->group = 0xfeed;
			return 0;
		}
		if (pol->group == 0xdead) {
			errno = ENOENT;
			return -1;
		}
		return 0;
	case PAGESHARE_GET_POLICY:
		pol = arg;
		pol->group = 0xbeef;
		pol->flags = PAGESHARE_POLICY_NO_INTRA_VM;
		return 0;
	case PAGESHARE_NOMINATE:
		((struct pageshare_nominate *)arg)->handle = 99;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

static struct pageshare_unshare *entries(size_t n)
{
	struct pageshare_unshare *e = calloc(n, sizeof(*e));
	size_t i;

	for (i = 0; i < n; i++) {
		e[i].vm = 5;
		e[i].gfn = i;
		e[i].result = 12345;
	}
	return e;
}

static bool all_seen_once(size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fake.seen[i] != 1)
			return false;
	return true;
}

static bool results_set(const struct pageshare_unshare *e, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		if (e[i].result != (e[i].gfn % 3 ? 0 : -ENXIO))
			return false;
	return true;
}

static void test_batches(void)
{
	size_t big = PAGESHARE_BATCH_MAX + 10, done = 77;
	struct pageshare_unshare *e;
	int ret;

	fake_reset(0);
	ok(pageshare_unshare_batch(3, NULL, 0, &done) == 0 && done == 0 && fake.calls == 0,
	   "batch: no entries, no call");

	e = entries(big);
	fake_reset(big);
	ret = pageshare_unshare_batch(3, e, big, &done);
	ok(ret == 0 && done == big, "batch: 2^20 + 10 entries done");
	ok(fake.calls == 2 && fake.count[0] == PAGESHARE_BATCH_MAX && fake.count[1] == 10,
	   "batch: split into 2^20 and 10 (%u, %u)", fake.count[0], fake.count[1]);
	ok(fake.first_gfn[1] == PAGESHARE_BATCH_MAX, "batch: the second call starts at entry 2^20");
	ok(all_seen_once(big) && results_set(e, 0, big),
	   "batch: every entry once, with its result");
	free(e);

	e = entries(100);
	fake_reset(100);
	fake.fail_call = 0;
	fake.fail_errno = EINTR;
	fake.fail_done = 40;
	ret = pageshare_unshare_batch(3, e, 100, &done);
	ok(ret == 0 && done == 100, "EINTR: the batch completes");
	ok(fake.calls == 2 && fake.count[1] == 60 && fake.first_gfn[1] == 40,
	   "EINTR: resumed at done (entry 40, 60 left)");
	ok(all_seen_once(100) && results_set(e, 0, 100), "EINTR: every entry once");

	fake_reset(100);
	fake.fail_call = 0;
	fake.fail_errno = EINTR;
	fake.fail_done = 0;
	ok(pageshare_unshare_batch(3, e, 100, NULL) == 0 && fake.calls == 2 &&
	   fake.first_gfn[1] == 0 && all_seen_once(100),
	   "EINTR before any entry: retried");

	fake_reset(100);
	for (done = 0; done < 100; done++)
		e[done].result = 12345;
	fake.fail_call = 0;
	fake.fail_errno = EFAULT;
	fake.fail_done = 30;
	ret = pageshare_unshare_batch(3, e, 100, &done);
	ok(ret == -EFAULT && done == 30 && fake.calls == 1, "EFAULT: -EFAULT, done 30, no retry");
	ok(results_set(e, 0, 30) && e[30].result == 12345, "EFAULT: results up to done only");
	free(e);

	fake_reset(0);
	{
		struct pageshare_nominate n[3] = { { 0 } };
		struct pageshare_share s[2] = { { 0 } };
		struct pageshare_query q[1] = { { 0 } };
		struct pageshare_add_to_physmap a[1] = { { 0 } };

		ok(!pageshare_nominate_batch(3, n, 3, NULL) &&
		   !pageshare_share_batch(3, s, 2, NULL) &&
		   !pageshare_query_batch(3, q, 1, NULL) &&
		   !pageshare_add_to_physmap_batch(3, a, 1, NULL),
		   "batch: the other four batch calls succeed");
		ok(fake.req[0] == PAGESHARE_NOMINATE_BATCH &&
		   fake.req[1] == PAGESHARE_SHARE_BATCH &&
		   fake.req[2] == PAGESHARE_QUERY_BATCH &&
		   fake.req[3] == PAGESHARE_ADD_TO_PHYSMAP_BATCH && fake.count[0] == 3 &&
		   fake.count[1] == 2, "batch: each with its own ioctl and count");
	}
}

static void test_single(void)
{
	struct pageshare_nominate n = { 0 };
	struct pageshare_stats st;
	uint64_t group = 0;
	uint32_t flags = 0;

	fake_reset(0);
	ok(pageshare_vm_open_id(3, 42) == 7, "open_id: the new descriptor");
	ok(pageshare_vm_open_id(3, 5) == -ESRCH, "open_id: -ESRCH for a VM that is gone");
	ok(pageshare_audit(3) == 3, "audit: the number of problems");
	ok(pageshare_api_version(3) == PAGESHARE_API_VERSION, "api_version");
	ok(pageshare_get_stats(3, &st) == -ENOTTY, "an ioctl the fake lacks: -ENOTTY");
	ok(!pageshare_new_group(3, 0, &group) && group == 0xfeed, "new_group: returns the id");
	fake.calls = 0;
	ok(pageshare_join_group(3, 0, 0) == -EINVAL && fake.calls == 0,
	   "join_group: group 0 refused without a call");
	ok(pageshare_join_group(3, 0xdead, 0) == -ENOENT, "join_group: -ENOENT passed on");
	ok(!pageshare_get_policy(3, &group, &flags) && group == 0xbeef &&
	   flags == PAGESHARE_POLICY_NO_INTRA_VM, "get_policy");
	ok(!pageshare_nominate(3, &n) && n.handle == 99, "nominate: single form");
}

static bool private_listed(const uint64_t *gfns, uint32_t n, uint64_t first, uint64_t step)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (gfns[i] != first + i * step)
			return false;
	return true;
}

static void test_get_private(void)
{
	uint32_t big = PAGESHARE_BATCH_MAX + 10, count = 99;
	uint64_t gfns[16], next = 99, discards = 99, *many;
	int ret;

	/* gfns 0, 3, ..., 27 of 30 are private. */
	fake_reset(0);
	fake.priv_size = 30;
	fake.priv_step = 3;
	ret = pageshare_get_private(FAKE_VM_FD, 0, gfns, 16, &count, &next, &discards);
	ok(!ret && count == 10 && private_listed(gfns, 10, 0, 3),
	   "get_private: the 10 private gfns, in order (%d, %u)", ret, count);
	ok(next == 30 && discards == 40 && fake.calls == 1 && fake.req[0] == PAGESHARE_GET_PRIVATE,
	   "get_private: one call; next is the size, the discard count given");

	fake_reset(0);
	fake.priv_size = 30;
	fake.priv_step = 3;
	ret = pageshare_get_private(FAKE_VM_FD, 4, gfns, 4, &count, &next, NULL);
	ok(!ret && count == 4 && private_listed(gfns, 4, 6, 3) && next == 16,
	   "get_private: from gfn 4, a full array: 6..15, next 16 (%llu)",
	   (unsigned long long)next);
	ok(fake.count[0] == 4 && fake.first_gfn[0] == 4, "get_private: max and start passed on");
	ret = pageshare_get_private(FAKE_VM_FD, next, gfns, 16, &count, &next, NULL);
	ok(!ret && count == 4 && private_listed(gfns, 4, 18, 3) && next == 30,
	   "get_private: resumed at next: the 4 others, 18..27");
	ret = pageshare_get_private(FAKE_VM_FD, 0, gfns, 0, &count, &next, &discards);
	ok(!ret && count == 0 && next == 30 && discards == 40 + (uint64_t)fake.calls - 1,
	   "get_private: max 0: the discard count only");

	/* Past PAGESHARE_BATCH_MAX: two calls, the second from where the first stopped. */
	many = calloc(big, sizeof(*many));
	fake_reset(0);
	fake.priv_size = 4ULL * PAGESHARE_BATCH_MAX;
	fake.priv_step = 2;
	ret = many ? pageshare_get_private(FAKE_VM_FD, 0, many, big, &count, &next, &discards) :
		     -ENOMEM;
	ok(!ret && count == big && fake.calls == 2 && fake.count[0] == PAGESHARE_BATCH_MAX &&
	   fake.count[1] == 10, "get_private: 2^20 + 10 gfns in calls of 2^20 and 10");
	ok(fake.first_gfn[1] == 2ULL * PAGESHARE_BATCH_MAX - 1 && next == 2ULL * big - 1 &&
	   discards == 40 && many && private_listed(many, big, 0, 2),
	   "get_private: resumed at the first call's next; the first call's discard count");

	/* The VM ends within the first call's reach: one call, fewer than max. */
	fake_reset(0);
	fake.priv_size = 100;
	fake.priv_step = 2;
	ret = many ? pageshare_get_private(FAKE_VM_FD, 0, many, big, &count, &next, NULL) : -ENOMEM;
	ok(!ret && count == 50 && next == 100 && fake.calls == 1,
	   "get_private: a big array, 50 private gfns: one call");

	/* A second call fails: its errno, and what the first stored. */
	fake_reset(0);
	fake.priv_size = 4ULL * PAGESHARE_BATCH_MAX;
	fake.priv_step = 2;
	fake.fail_call = 1;
	fake.fail_errno = EINTR;
	ret = many ? pageshare_get_private(FAKE_VM_FD, 0, many, big, &count, &next, NULL) : -ENOMEM;
	ok(ret == -EINTR && count == PAGESHARE_BATCH_MAX && next == 2ULL * PAGESHARE_BATCH_MAX - 1,
	   "get_private: a failed second call: -EINTR, with the first call's count and next");
	free(many);

	fake_reset(0);
	ret = pageshare_get_private(3, 0, gfns, 16, &count, &next, &discards);
	ok(ret == -ENOTTY && count == 0 && next == 0,
	   "get_private: the control node (or an old module): -ENOTTY, nothing stored");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_GET_PRIVATE, ENOTTY), "API version 5"),
	   "strerror: get_private ENOTTY names the API version");
}

static void test_strerror(void)
{
	ok(!strcmp(pageshare_strerror(PAGESHARE_OP_SHARE, ESTALE),
		   "the source page changed since it was nominated"), "strerror: share ESTALE");
	ok(!strcmp(pageshare_strerror(PAGESHARE_OP_SHARE, -ESTALE),
		   pageshare_strerror(PAGESHARE_OP_SHARE, ESTALE)), "strerror: -errno as errno");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_SHARE, EIDRM), "client"),
	   "strerror: share EIDRM is about the client");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_SHARE, EILSEQ), "differ"),
	   "strerror: share EILSEQ");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_NOMINATE, ENODATA), "no page"),
	   "strerror: nominate ENODATA");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_OPEN_VM, EPERM), "CAP_SYS_ADMIN"),
	   "strerror: open_vm EPERM");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_CONTROL, ENOENT), "module"),
	   "strerror: control ENOENT");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_SET_POLICY, EBUSY), "unshare"),
	   "strerror: set_policy EBUSY");
	ok(!strcmp(pageshare_strerror(PAGESHARE_OP_SHARE, EDOM), strerror(EDOM)),
	   "strerror: no special meaning: the C library's");
	ok(strstr(pageshare_strerror(PAGESHARE_OP_GET_INFO, EBADF), "descriptor"),
	   "strerror: EBADF for any descriptor");
}

/* A sysfs tree in a temporary directory. */
static char root[64];

static void put(const char *rel, const char *val)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		diag("cannot write %s", path);
	if (fd >= 0)
		close(fd);
}

static void mkd(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	mkdir(path, 0700);
}

static void put_vm(const char *id, const char *size, const char *group, const char *policy,
		   const char *shared)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "vm/%s", id);
	mkd(rel);
#define PUT(name, val) do { \
		snprintf(rel, sizeof(rel), "vm/%s/%s", id, name); \
		put(rel, val); \
	} while (0)
	PUT("size", size);
	PUT("pid", "4242\n");
	PUT("uid", "1000\n");
	PUT("group", group);
	PUT("policy", policy);
	PUT("private_pages", "100\n");
	PUT("shared_gfns", shared);
	PUT("nominated_gfns", "3\n");
	PUT("cow_breaks", "7\n");
#undef PUT
}

static void test_sysfs(void)
{
	struct pageshare_global_stats g;
	struct pageshare_vm_stat *vms, one;
	size_t n = 99;
	char cmd[128];

	snprintf(root, sizeof(root), "/tmp/pageshare-lib-test.XXXXXX");
	if (!mkdtemp(root)) {
		ok(false, "sysfs: mkdtemp");
		return;
	}
	ok(pageshare_set_sysfs_root(root) == 0 && !strcmp(pageshare_sysfs_root(), root),
	   "sysfs: root set");
	ok(pageshare_list_vms(&vms, &n) == -ENOENT, "sysfs: no vm/ directory: -ENOENT");
	put("vms", "2\n");
	put("private_pages", "200\n");
	put("shared_frames", "5\n");
	put("saved_frames", "10\n");
	put("meta_bytes", "4096\n");
	mkd("vm");
	ok(pageshare_list_vms(&vms, &n) == 0 && n == 0 && !vms, "sysfs: no VMs");
	put_vm("3", "1073741824\n", "0x1a2b3c4d5e6f7081\n", "no-intra-vm\n", "30\n");
	put_vm("1", "8192\n", "0\n", "default\n", "10\n");
	mkd("vm/5");		/* a VM going away: its files are gone */
	mkd("vm/abc");		/* not a VM */
	ok(pageshare_read_global_stats(&g) == 0 && g.vms == 2 && g.private_pages == 200 &&
	   g.shared_frames == 5 && g.saved_frames == 10 && g.meta_bytes == 4096,
	   "sysfs: global counters");
	ok(pageshare_list_vms(&vms, &n) == 0 && n == 2, "sysfs: two VMs listed (%zu)", n);
	if (n == 2) {
		ok(vms[0].id == 1 && vms[1].id == 3, "sysfs: sorted by id");
		ok(vms[0].group == 0 && vms[1].group == 0x1a2b3c4d5e6f7081ULL,
		   "sysfs: groups, 0 and hex");
		ok(vms[0].policy == 0 && vms[1].policy == PAGESHARE_POLICY_NO_INTRA_VM,
		   "sysfs: policies");
		ok(vms[1].size == 1073741824 && vms[1].pid == 4242 && vms[1].uid == 1000 &&
		   vms[1].private_pages == 100 && vms[1].shared_gfns == 30 &&
		   vms[1].nominated_gfns == 3 && vms[1].cow_breaks == 7, "sysfs: counters");
	}
	pageshare_free_vm_list(vms);
	ok(pageshare_read_vm(3, &one) == 0 && one.id == 3 && one.shared_gfns == 30,
	   "sysfs: one VM");
	ok(pageshare_read_vm(9, &one) == -ENOENT, "sysfs: a VM that is not there: -ENOENT");
	put("vm/1/policy", "weird\n");
	ok(pageshare_read_vm(1, &one) == -EINVAL, "sysfs: an unknown policy: -EINVAL");
	put("vm/1/policy", "default\n");
	put("saved_frames", "lots\n");
	ok(pageshare_read_global_stats(&g) == -EINVAL, "sysfs: not a number: -EINVAL");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd))
		diag("cannot remove %s", root);
	pageshare_set_sysfs_root(NULL);
	ok(!strcmp(pageshare_sysfs_root(), PAGESHARE_SYSFS_ROOT), "sysfs: default root again");
}

static void test_device(void)
{
	ok(!strcmp(pageshare_device_path(), PAGESHARE_DEVICE_PATH), "device: default path");
	pageshare_set_device_path("/nonexistent/pageshare");
	ok(pageshare_control_open() == -ENOENT, "device: a missing node: -ENOENT");
	pageshare_set_device_path(NULL);
	ok(!strcmp(pageshare_device_path(), PAGESHARE_DEVICE_PATH), "device: default again");
}

/* A VM is a file of a pageshare mount, and of nothing else. */
static void test_create(void)
{
	char dir[] = "/dev/shm/pageshare-lib.XXXXXX";
	int ret;

	ok(pageshare_vm_create("/nonexistent/pageshare") == -ENOENT,
	   "create: a missing directory: -ENOENT");
	/* tmpfs makes O_TMPFILE files: the library must refuse them. */
	if (!mkdtemp(dir)) {
		diag("mkdtemp %s: %s", dir, strerror(errno));
		ok(0, "create: a tmpfs directory: -EMEDIUMTYPE");
		return;
	}
	ret = pageshare_vm_create(dir);
	ok(ret == -EMEDIUMTYPE, "create: a tmpfs directory: -EMEDIUMTYPE (got %d)", ret);
	if (ret >= 0)
		close(ret);
	rmdir(dir);
	ok(strstr(pageshare_strerror(PAGESHARE_OP_CREATE, EMEDIUMTYPE), "mount"),
	   "strerror: create EMEDIUMTYPE names the mount");
}

int main(void)
{
	printf("TAP version 13\n");
	test_batches();
	test_single();
	test_get_private();
	test_strerror();
	test_sysfs();
	test_device();
	test_create();
	fake_reset(0);
	free(fake.seen);
	return tap_done();
}
