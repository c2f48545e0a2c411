// SPDX-License-Identifier: GPL-2.0
/*
 * Injected allocation failures. failslab and fail_page_alloc are aimed at
 * pageshare.ko by their stack-trace filter (only allocations made from the
 * module's code count) and driven by /proc/thread-self/fail-nth: for
 * n = 1, 2, ... the n-th such allocation of one operation fails, until the
 * operation makes fewer than n. Each failure must give a clean error and
 * leave everything as it was, with the audit clean; once every VM is gone
 * the global counters are back where they started, and the runner's
 * kmemleak scan finds nothing.
 *
 * Swept: VM creation, nominate (single and batch), share (a frame's first
 * reverse-map table too), add_to_physmap, unshare, and the copy a write
 * to a shared page makes (through GUP, as KVM's writes arrive).
 */

#define _GNU_SOURCE
#include <sys/uio.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define VM_SIZE		(4 * 1024 * 1024UL)
#define MAX_NTH		64

static const char *const fi_dirs[] = {
	"/sys/kernel/debug/failslab/", "/sys/kernel/debug/fail_page_alloc/",
};

static int fi_set(const char *dir, const char *name, const char *val)
{
	char path[160];

	snprintf(path, sizeof(path), "%s%s", dir, name);
	return ps_write_file(path, val);
}

/* Aim both injectors at the module's code, for fail-nth only. */
static int inject_setup(bool on)
{
	unsigned long start, end;
	char s[32], e[32];
	unsigned int i;
	int ret = 0;

	if (on && ps_module_text(&start, &end))
		return -1;
	snprintf(s, sizeof(s), "%#lx", on ? start : 0);
	snprintf(e, sizeof(e), "%#lx", on ? end : ~0UL);
	for (i = 0; i < 2; i++) {
		const char *d = fi_dirs[i];

		ret |= fi_set(d, "probability", "0");
		ret |= fi_set(d, "verbose", "0");
		ret |= fi_set(d, "require-start", s);
		ret |= fi_set(d, "require-end", e);
		ret |= fi_set(d, "stacktrace-depth", "32");
		ret |= fi_set(d, "ignore-gfp-wait", on ? "N" : "Y");
	}
	ret |= fi_set(fi_dirs[1], "ignore-gfp-highmem", on ? "N" : "Y");
	ret |= fi_set(fi_dirs[1], "min-order", "0");
	return ret ? -1 : 0;
}

static int fail_nth(unsigned int n)
{
	char v[16];

	snprintf(v, sizeof(v), "%u", n);
	return ps_write_file("/proc/thread-self/fail-nth", v);
}

/* Disarms; returns what was left of the count (0: a failure was injected). */
static long fail_nth_left(void)
{
	char buf[16] = "";
	long left;
	int fd;

	fd = open("/proc/thread-self/fail-nth", O_RDONLY);
	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = 0;
	close(fd);
	left = strtol(buf, NULL, 10);
	fail_nth(0);
	return left;
}

/* Everything a failed operation must leave alone. */
struct snap {
	struct pageshare_stats st[3];
	struct pageshare_query q[3];
};

FIXTURE(inj) {
	int fd[3];
	unsigned char *m[3];
	uint64_t gfn;		/* next fresh gfn */
	long base_vms, base_private, base_frames, base_saved;
	struct snap before;
};

static void take(FIXTURE_DATA(inj) *self, struct snap *s, uint64_t gfn)
{
	int v;

	memset(s, 0, sizeof(*s));
	for (v = 0; v < 3; v++) {
		ps_stats(self->fd[v], &s->st[v]);
		ps_query(self->fd[v], gfn, &s->q[v]);
	}
}

FIXTURE_SETUP(inj)
{
	char path[64];
	int v;

	for (v = 0; v < 3; v++)
		self->fd[v] = -1;
	REQUIRE_DEVICE();
	snprintf(path, sizeof(path), "%srequire-start", fi_dirs[0]);
	if (access(path, W_OK) || access("/proc/thread-self/fail-nth", W_OK))
		SKIP(return, "no failslab with a stack-trace filter, or no fail-nth");
	self->base_vms = ps_sysfs_read("vms");
	self->base_private = ps_sysfs_read("private_pages");
	self->base_frames = ps_sysfs_read("shared_frames");
	self->base_saved = ps_sysfs_read("saved_frames");
	for (v = 0; v < 3; v++) {
		self->fd[v] = ps_open();
		ASSERT_LE(0, self->fd[v]);
		self->m[v] = ps_map(self->fd[v], VM_SIZE, 0);
		ASSERT_NE(MAP_FAILED, self->m[v]);
	}
	self->gfn = 1;
	ASSERT_EQ(0, inject_setup(true));
}

FIXTURE_TEARDOWN(inj)
{
	int v;

	if (self->fd[0] < 0)
		return;
	fail_nth(0);
	EXPECT_EQ(0, inject_setup(false));
	EXPECT_EQ(0, ps_audit_all());
	for (v = 0; v < 3; v++) {
		munmap(self->m[v], VM_SIZE);
		close(self->fd[v]);
	}
	EXPECT_EQ(0, ps_audit_all());
	/* Nothing left behind by any failure. */
	EXPECT_EQ(self->base_vms, ps_sysfs_read("vms"));
	EXPECT_EQ(self->base_private, ps_sysfs_read("private_pages"));
	EXPECT_EQ(self->base_frames, ps_sysfs_read("shared_frames"));
	EXPECT_EQ(self->base_saved, ps_sysfs_read("saved_frames"));
}

/* Fresh identical pages at gfn @g of every VM; @nominate: and nominated. */
static void prepare(FIXTURE_DATA(inj) *self, uint64_t g, bool nominate, uint64_t *h)
{
	int v;

	for (v = 0; v < 3; v++) {
		memset(self->m[v] + g * PS_PAGE, 0x5e, PS_PAGE);
		if (nominate && ps_nominate(self->fd[v], g, &h[v], NULL))
			h[v] = 0;
	}
}

/*
 * The sweep: for n = 1, 2, ..., on a fresh gfn g of every VM (nominated,
 * handles in h[]), run @setup (0 on success) unarmed, then @op with the
 * n-th module allocation armed to fail; @op is 0 or -1 with errno. Stops
 * once @op makes fewer than n allocations. Evaluates to the number of
 * failures injected.
 */
#define SWEEP(setup, op) ({						\
	unsigned int __n, __injected = 0;				\
	for (__n = 1; __n <= MAX_NTH; __n++) {				\
		uint64_t g = self->gfn++, h[3];				\
		struct snap __after;					\
		long __left;						\
		int __ret, __err;					\
		prepare(self, g, true, h);				\
		ASSERT_EQ(0, (setup)) TH_LOG("setup, n=%u", __n);	\
		take(self, &self->before, g);				\
		ASSERT_EQ(0, fail_nth(__n));				\
		__ret = (op);						\
		__err = errno;						\
		__left = fail_nth_left();				\
		if (__left > 0) {					\
			EXPECT_EQ(0, __ret) TH_LOG("n=%u errno %d", __n, __err); \
			break;						\
		}							\
		__injected++;						\
		if (__ret) {						\
			EXPECT_TRUE(__err == ENOMEM || __err == EFAULT)	\
				TH_LOG("n=%u: errno %d", __n, __err);	\
			take(self, &__after, g);			\
			EXPECT_EQ(0, memcmp(&__after, &self->before,	\
					    sizeof(__after)))		\
				TH_LOG("n=%u changed state", __n);	\
		}							\
		EXPECT_EQ(0, ps_audit_all()) TH_LOG("n=%u", __n);	\
	}								\
	EXPECT_GE(MAX_NTH, __n) TH_LOG("never ran out of allocations"); \
	__injected;							\
})

static int cow_write(unsigned char *addr)
{
	struct iovec l, r;
	char byte = 0x11;

	l.iov_base = &byte;
	l.iov_len = 1;
	r.iov_base = addr;
	r.iov_len = 1;
	return process_vm_writev(getpid(), &l, 1, &r, 1, 0) == 1 ? 0 : -1;
}

/* add_to_physmap into a hole of VM 2; failing, the hole must stay one. */
static int atp_hole(FIXTURE_DATA(inj) *self, uint64_t g, uint64_t h)
{
	uint64_t hole = VM_SIZE / PS_PAGE - 1 - g;
	struct pageshare_query q;
	int r, e;

	r = ps_add_to_physmap(self->fd[0], g, h, self->fd[2], hole);
	e = errno;
	if (r && (ps_query(self->fd[2], hole, &q) || q.state != PAGESHARE_STATE_HOLE))
		e = EEXIST;
	errno = e;
	return r;
}

TEST_F(inj, vm_creation)
{
	unsigned int n, injected = 0;
	long vms = ps_sysfs_read("vms");

	for (n = 1; n <= MAX_NTH; n++) {
		int fd, err;
		long left;

		ASSERT_EQ(0, fail_nth(n));
		fd = ps_open_alone();
		err = errno;
		left = fail_nth_left();
		if (fd >= 0) {
			EXPECT_EQ(vms + 1, ps_sysfs_read("vms"));
			close(fd);
		}
		if (left > 0) {
			EXPECT_LE(0, fd);
			break;
		}
		injected++;
		if (fd < 0)
			EXPECT_EQ(ENOMEM, err);
		EXPECT_EQ(vms, ps_sysfs_read("vms"));
		EXPECT_EQ(0, ps_audit_all());
	}
	EXPECT_LT(0, injected);
	TH_LOG("%u allocation failures injected", injected);
}

TEST_F(inj, nominate)
{
	uint64_t hh;
	/* prepare() nominated g; its last sharer's unshare makes it private. */
	unsigned int injected = SWEEP(ps_unshare(self->fd[0], g),
				      ps_nominate(self->fd[0], g, &hh, NULL));

	EXPECT_LT(0, injected);
	TH_LOG("%u allocation failures injected", injected);
}

/*
 * Up to 64 rounds of 80 nominates, each a frame and a copy, and 80 copies
 * back: past the harness's default 30 s under TCG with the debug kernel.
 */
TEST_F_TIMEOUT(inj, nominate_batch, 600)
{
	struct pageshare_nominate e[80];
	unsigned int n, i, injected = 0;
	uint32_t done;

	for (n = 1; n <= MAX_NTH; n++) {
		uint64_t g = 512;	/* made private again after each round */
		long left;
		int ret;

		memset(e, 0, sizeof(e));
		for (i = 0; i < 80; i++) {
			memset(self->m[1] + (g + i) * PS_PAGE, i, PS_PAGE);
			e[i].vm = self->fd[1];
			e[i].gfn = g + i;
			e[i].flags = PAGESHARE_NOMINATE_HASH;
		}
		ASSERT_EQ(0, fail_nth(n));
		done = 0;
		ret = ps_batch(self->fd[0], PAGESHARE_NOMINATE_BATCH, e, 80, &done);
		left = fail_nth_left();
		if (!left)
			injected++;
		if (ret) {
			EXPECT_EQ(ENOMEM, errno);
			EXPECT_EQ(0, done);
		}
		/* Each entry nominated exactly when its result says so. */
		for (i = 0; i < (ret ? 80 : done); i++) {
			struct pageshare_query q;

			ASSERT_EQ(0, ps_query(self->fd[1], g + i, &q));
			if (!ret && e[i].result == 0) {
				EXPECT_EQ(PAGESHARE_STATE_NOMINATED, q.state);
				EXPECT_EQ(e[i].handle, q.handle);
			} else {
				if (!ret)
					EXPECT_EQ(-ENOMEM, e[i].result);
				EXPECT_EQ(PAGESHARE_STATE_PRIVATE, q.state);
			}
		}
		EXPECT_EQ(0, ps_audit_all());
		for (i = 0; i < 80; i++)
			ASSERT_EQ(0, ps_unshare(self->fd[1], g + i));
		if (left > 0)
			break;
	}
	EXPECT_LT(0, injected);
	TH_LOG("%u allocation failures injected", injected);
}

TEST_F(inj, share)
{
	unsigned int injected = SWEEP(0, ps_share(self->fd[0], g, h[0], self->fd[1], g,
						  h[1], PAGESHARE_SHARE_COMPARE));

	TH_LOG("%u allocation failures injected", injected);
}

/* A third sharer: the frame's reverse map moves to a table. */
TEST_F(inj, share_third_sharer)
{
	unsigned int injected =
		SWEEP(ps_share(self->fd[0], g, h[0], self->fd[1], g, h[1], 0),
		      ps_share(self->fd[0], g, h[0], self->fd[2], g, h[2], 0));

	EXPECT_LT(0, injected);
	TH_LOG("%u allocation failures injected", injected);
}

TEST_F(inj, add_to_physmap)
{
	unsigned int injected =
		SWEEP(ps_share(self->fd[0], g, h[0], self->fd[1], g, h[1], 0),
		      atp_hole(self, g, h[0]));

	TH_LOG("%u allocation failures injected", injected);
}

TEST_F(inj, unshare)
{
	unsigned int injected =
		SWEEP(ps_share(self->fd[0], g, h[0], self->fd[1], g, h[1], 0),
		      ps_unshare(self->fd[1], g));

	EXPECT_LT(0, injected);
	TH_LOG("%u allocation failures injected", injected);
}

/* A write through GUP (as KVM's arrive) to a shared page needs a copy. */
TEST_F(inj, write_to_shared_page)
{
	unsigned int injected =
		SWEEP(ps_share(self->fd[0], g, h[0], self->fd[1], g, h[1], 0),
		      cow_write(self->m[1] + g * PS_PAGE + 9));

	EXPECT_LT(0, injected);
	TH_LOG("%u allocation failures injected", injected);
}

TEST_HARNESS_MAIN
