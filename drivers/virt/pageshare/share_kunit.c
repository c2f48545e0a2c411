// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the sharing engine (share.c), the reverse map (rmap.c)
 * and the audit (audit.c): handles, sharing and coalescing, unsharing,
 * counters, the sharer limit, teardown of shared frames, and that the
 * audit catches state corrupted on purpose. Every test ends with an audit
 * that must find nothing.
 */

#include <kunit/test.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uaccess.h>

#include <linux/pageshare.h>

#include "pageshare.h"

#define PS_TEST_PAGES	64

static void ps_test_destroy_action(void *vm)
{
	/* The VM goes with its inode's last reference, as in real use. */
	iput(((struct ps_vm *)vm)->inode);
}

/*
 * The test's share group: made by ps_set_policy() for the test's first VM,
 * like any other group, so that no real VM's group can be the same.
 */
static u64 ps_test_group(struct kunit *test)
{
	return (u64)(uintptr_t)test->priv;
}

static struct ps_vm *ps_test_vm(struct kunit *test)
{
	struct ps_vm *vm = ps_vm_create();
	struct pageshare_policy p = { .flags = PAGESHARE_POLICY_NEW_GROUP };

	KUNIT_ASSERT_FALSE(test, IS_ERR(vm));
	KUNIT_ASSERT_EQ(test, 0,
			kunit_add_action_or_reset(test, ps_test_destroy_action, vm));
	KUNIT_ASSERT_EQ(test, 0, ps_vm_set_size(vm, PS_TEST_PAGES * PAGE_SIZE));
	/* The test VMs may share with each other: one share group. */
	if (!test->priv) {
		KUNIT_ASSERT_EQ(test, 0, ps_set_policy(vm, &p));
		test->priv = (void *)(uintptr_t)p.group;
	}
	p.flags = 0;
	p.group = ps_test_group(test);
	KUNIT_ASSERT_EQ(test, 0, ps_set_policy(vm, &p));
	return vm;
}

/* Gives gfn a page filled with @byte. */
static void ps_test_fill(struct kunit *test, struct ps_vm *vm, pgoff_t gfn, u8 byte)
{
	struct page *page = ps_vm_get_page(vm, gfn, NULL);

	KUNIT_ASSERT_FALSE(test, IS_ERR(page));
	memset_page(page, 0, byte, PAGE_SIZE);
	put_page(page);
}

static struct page *ps_test_page(struct ps_vm *vm, pgoff_t gfn)
{
	return ps_entry_page(xa_load(&vm->pages, gfn));
}

static bool ps_test_page_is(struct page *page, u8 byte)
{
	void *p = kmap_local_page(page);
	bool ret = !memchr_inv(p, byte, PAGE_SIZE);

	kunmap_local(p);
	return ret;
}

static u64 ps_test_nominate(struct kunit *test, struct ps_vm *vm, pgoff_t gfn)
{
	u64 handle = 0;

	KUNIT_ASSERT_EQ(test, 0, ps_nominate(vm, gfn, &handle, NULL));
	KUNIT_ASSERT_NE(test, handle, 0);
	return handle;
}

static long ps_stat(atomic_long_t *v)
{
	return atomic_long_read(v);
}

/* Snapshot of the global counters, to compare deltas. */
struct ps_test_globals {
	long private_pages, shared_frames, saved_frames;
};

static void ps_test_globals(struct ps_test_globals *g)
{
	g->private_pages = ps_stat_read(PS_STAT_PRIVATE_PAGES);
	g->shared_frames = ps_stat_read(PS_STAT_SHARED_FRAMES);
	g->saved_frames = ps_stat_read(PS_STAT_SAVED_FRAMES);
}

static void ps_test_audit_clean(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, ps_audit(), 0);
}

static void ps_test_handles(struct kunit *test)
{
	struct ps_vm *vm = ps_test_vm(test);
	u64 h1, h2, again, hash1 = 0, hash2 = 0;

	KUNIT_EXPECT_EQ(test, ps_nominate(vm, 3, &h1, NULL), -ENODATA);
	KUNIT_EXPECT_EQ(test, ps_nominate(vm, PS_TEST_PAGES, &h1, NULL), -ENXIO);

	ps_test_fill(test, vm, 3, 0x11);
	ps_test_fill(test, vm, 4, 0x11);
	h1 = ps_test_nominate(test, vm, 3);
	h2 = ps_test_nominate(test, vm, 4);
	/* Unique, not ordered: each CPU hands out a block of its own. */
	KUNIT_EXPECT_NE(test, h2, h1);
	KUNIT_EXPECT_LE(test, max(h1, h2), ps_handles_issued());

	/* Nominating again names the same version. */
	KUNIT_EXPECT_EQ(test, 0, ps_nominate(vm, 3, &again, &hash1));
	KUNIT_EXPECT_EQ(test, again, h1);
	KUNIT_EXPECT_EQ(test, 0, ps_nominate(vm, 4, &again, &hash2));
	KUNIT_EXPECT_EQ(test, hash1, hash2);
	KUNIT_EXPECT_NE(test, hash1, 0);

	KUNIT_EXPECT_EQ(test, ps_stat(&vm->stats.shared_gfns), 2);
	KUNIT_EXPECT_EQ(test, ps_stat(&vm->stats.nominated_gfns), 2);
	KUNIT_EXPECT_EQ(test, ps_stat(&vm->stats.private_pages), 0);

	/* The last sharer's write kills the handle; a new one never repeats. */
	KUNIT_EXPECT_EQ(test, 0, ps_unshare(vm, 3));
	KUNIT_EXPECT_EQ(test, ps_stat(&vm->stats.nominated_gfns), 1);
	KUNIT_EXPECT_EQ(test, ps_stat(&vm->stats.cow_breaks), 1);
	again = ps_test_nominate(test, vm, 3);
	KUNIT_EXPECT_NE(test, again, h1);
	KUNIT_EXPECT_NE(test, again, h2);
	ps_test_audit_clean(test);
}

static int ps_test_cmp_u64(const void *x, const void *y)
{
	u64 a = *(const u64 *)x, b = *(const u64 *)y;

	return a < b ? -1 : a > b;
}

/*
 * Handles come from per-CPU blocks (share.c): nominated on every CPU in
 * turn, more than a block's worth on each, they are all different, never
 * 0 and never above what the audit takes for the highest issued.
 */
static void ps_test_handles_per_cpu(struct kunit *test)
{
	const unsigned int each = 300;	/* more than PS_HANDLE_BLOCK */
	const unsigned int max_cpus = 8;	/* a bounded test on big machines */
	unsigned int cpus = min(num_online_cpus(), max_cpus), used = 0;
	unsigned int cap = cpus * each, n = 0, i, cpu;
	struct ps_vm *vm = ps_test_vm(test);
	cpumask_var_t old;
	u64 *h;

	h = kunit_kcalloc(test, cap, sizeof(*h), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, h);
	KUNIT_ASSERT_TRUE(test, alloc_cpumask_var(&old, GFP_KERNEL));
	cpumask_copy(old, current->cpus_ptr);
	ps_test_fill(test, vm, 0, 0x0f);
	for_each_online_cpu(cpu) {
		if (used == cpus)
			break;
		if (set_cpus_allowed_ptr(current, cpumask_of(cpu)))
			continue;
		used++;
		/* Each unshare ends the frame: the next nominate takes a handle. */
		for (i = 0; i < each && n < cap; i++) {
			if (ps_nominate(vm, 0, &h[n], NULL) || ps_unshare(vm, 0))
				break;
			n++;
		}
	}
	set_cpus_allowed_ptr(current, old);
	free_cpumask_var(old);

	/* Two CPUs at least, where there are two: else it tested one block source. */
	KUNIT_ASSERT_GE(test, used, min(num_online_cpus(), 2U));
	KUNIT_ASSERT_EQ(test, n, used * each);
	sort(h, n, sizeof(*h), ps_test_cmp_u64, NULL);
	KUNIT_EXPECT_NE(test, h[0], 0);
	KUNIT_EXPECT_LE(test, h[n - 1], ps_handles_issued());
	for (i = 1; i < n; i++)
		KUNIT_EXPECT_NE(test, h[i], h[i - 1]);
	ps_test_audit_clean(test);
}

static void ps_test_share_two_vms(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	struct ps_test_globals g0, g1;
	u64 ha, hb, handle;
	u32 sharers, state;
	struct page *pa;

	ps_test_fill(test, a, 1, 0x42);
	ps_test_fill(test, b, 2, 0x42);
	ps_test_globals(&g0);
	ha = ps_test_nominate(test, a, 1);
	hb = ps_test_nominate(test, b, 2);
	pa = ps_test_page(a, 1);

	KUNIT_ASSERT_EQ(test, 0, ps_share(a, 1, ha, b, 2, hb, true));
	KUNIT_EXPECT_PTR_EQ(test, ps_test_page(b, 2), pa);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(pa, 0x42));

	ps_test_globals(&g1);
	KUNIT_EXPECT_EQ(test, g1.shared_frames - g0.shared_frames, 1);
	KUNIT_EXPECT_EQ(test, g1.saved_frames - g0.saved_frames, 1);
	KUNIT_EXPECT_EQ(test, g1.private_pages - g0.private_pages, -2);
	KUNIT_EXPECT_EQ(test, ps_stat(&a->stats.nominated_gfns), 0);
	KUNIT_EXPECT_EQ(test, ps_stat(&b->stats.nominated_gfns), 0);

	KUNIT_EXPECT_EQ(test, 0, ps_query(b, 2, &handle, &sharers, &state));
	KUNIT_EXPECT_EQ(test, handle, ha);
	KUNIT_EXPECT_EQ(test, sharers, 2);
	KUNIT_EXPECT_EQ(test, state, PAGESHARE_STATE_SHARED);

	/* The client handle died; the source handle lives; a repeat is a no-op. */
	KUNIT_EXPECT_EQ(test, ps_share(a, 1, ha, b, 2, hb, false), -EIDRM);
	KUNIT_EXPECT_EQ(test, ps_share(a, 1, ha, b, 2, ha, false), 0);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_SAVED_FRAMES), g1.saved_frames);
	ps_test_audit_clean(test);
}

static void ps_test_stale_and_compare(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	u64 ha, hb, hc;

	ps_test_fill(test, a, 0, 0x01);
	ps_test_fill(test, b, 0, 0x02);
	ps_test_fill(test, b, 1, 0x01);
	ha = ps_test_nominate(test, a, 0);
	hb = ps_test_nominate(test, b, 0);
	hc = ps_test_nominate(test, b, 1);

	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, b, 0, hb, true), -EILSEQ);
	KUNIT_EXPECT_PTR_NE(test, ps_test_page(a, 0), ps_test_page(b, 0));
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha + 1000, b, 1, hc, false), -ESTALE);
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, b, 1, hc + 1000, false), -EIDRM);
	KUNIT_EXPECT_EQ(test, ps_share(a, 5, ha, b, 1, hc, false), -ESTALE);
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, b, 7, hc, false), -EIDRM);
	KUNIT_EXPECT_EQ(test, ps_share(a, PS_TEST_PAGES, ha, b, 1, hc, false), -ENXIO);

	/* A write (here: unshare, the same path) makes the handle stale. */
	KUNIT_EXPECT_EQ(test, 0, ps_unshare(a, 0));
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, b, 1, hc, false), -ESTALE);
	KUNIT_EXPECT_EQ(test, ps_stat(&a->stats.private_pages), 1);
	ps_test_audit_clean(test);
}

static void ps_test_coalesce(struct kunit *test)
{
	struct ps_vm *v[4];
	u64 h[4];
	long saved = ps_stat_read(PS_STAT_SAVED_FRAMES);
	struct page *frame;
	int i;

	for (i = 0; i < 4; i++) {
		v[i] = ps_test_vm(test);
		ps_test_fill(test, v[i], 9, 0x77);
		h[i] = ps_test_nominate(test, v[i], 9);
	}
	/* Two frames of two sharers each... */
	KUNIT_ASSERT_EQ(test, 0, ps_share(v[0], 9, h[0], v[1], 9, h[1], true));
	KUNIT_ASSERT_EQ(test, 0, ps_share(v[2], 9, h[2], v[3], 9, h[3], true));
	/* ...coalesce: every gfn of the client's frame moves. */
	KUNIT_ASSERT_EQ(test, 0, ps_share(v[0], 9, h[0], v[3], 9, h[2], true));
	frame = ps_test_page(v[0], 9);
	for (i = 1; i < 4; i++)
		KUNIT_EXPECT_PTR_EQ(test, ps_test_page(v[i], 9), frame);
	KUNIT_EXPECT_EQ(test, ps_page_frame(frame)->nr_sharers, 4);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_SAVED_FRAMES) - saved, 3);
	ps_test_audit_clean(test);
}

static void ps_test_unshare_copies(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	struct page *frame, *copy;
	u64 ha, hb, handle;
	u32 sharers, state;

	ps_test_fill(test, a, 4, 0x5a);
	ps_test_fill(test, b, 4, 0x5a);
	ha = ps_test_nominate(test, a, 4);
	hb = ps_test_nominate(test, b, 4);
	KUNIT_ASSERT_EQ(test, 0, ps_share(a, 4, ha, b, 4, hb, false));
	frame = ps_test_page(a, 4);

	/* Not the last sharer: b gets a copy, a keeps frame and handle. */
	KUNIT_ASSERT_EQ(test, 0, ps_unshare(b, 4));
	copy = ps_test_page(b, 4);
	KUNIT_EXPECT_PTR_NE(test, copy, frame);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(copy, 0x5a));
	memset_page(copy, 0, 0x99, PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(frame, 0x5a));
	KUNIT_EXPECT_EQ(test, 0, ps_query(a, 4, &handle, &sharers, &state));
	KUNIT_EXPECT_EQ(test, handle, ha);
	KUNIT_EXPECT_EQ(test, sharers, 1);
	KUNIT_EXPECT_EQ(test, state, PAGESHARE_STATE_NOMINATED);
	KUNIT_EXPECT_EQ(test, ps_stat(&a->stats.nominated_gfns), 1);
	KUNIT_EXPECT_EQ(test, ps_stat(&b->stats.cow_breaks), 1);
	ps_test_audit_clean(test);

	/*
	 * The last sharer gets a copy in its page cache too, and the frame
	 * ends: held here, its page is no frame and no longer movable.
	 */
	get_page(frame);
	KUNIT_ASSERT_EQ(test, 0, ps_unshare(a, 4));
	copy = ps_test_page(a, 4);
	KUNIT_EXPECT_PTR_NE(test, copy, frame);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(copy, 0x5a));
	KUNIT_EXPECT_PTR_EQ(test, page_folio(copy)->mapping, a->inode->i_mapping);
	KUNIT_EXPECT_EQ(test, page_folio(copy)->index, 4);
	KUNIT_EXPECT_EQ(test, 0, ps_query(a, 4, &handle, &sharers, &state));
	KUNIT_EXPECT_EQ(test, state, PAGESHARE_STATE_PRIVATE);
	KUNIT_EXPECT_EQ(test, handle, 0);
	KUNIT_EXPECT_EQ(test, page_private(frame), 0);
	KUNIT_EXPECT_FALSE(test, __PageMovable(frame) && page_movable_ops(frame));
	KUNIT_EXPECT_EQ(test, page_count(frame), 1);
	put_page(frame);
	/* Unsharing a private gfn or a hole changes nothing. */
	KUNIT_EXPECT_EQ(test, 0, ps_unshare(a, 4));
	KUNIT_EXPECT_EQ(test, 0, ps_unshare(a, 40));
	ps_test_audit_clean(test);
}

static void ps_test_add_to_physmap(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	long saved = ps_stat_read(PS_STAT_SAVED_FRAMES);
	u64 ha;

	ps_test_fill(test, a, 2, 0x33);
	ps_test_fill(test, b, 6, 0x44);
	ha = ps_test_nominate(test, a, 2);
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(a, 2, ha, b, 6), -EEXIST);
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(a, 2, ha + 1, b, 7), -ESTALE);
	KUNIT_ASSERT_EQ(test, ps_add_to_physmap(a, 2, ha, b, 7), 0);
	KUNIT_EXPECT_PTR_EQ(test, ps_test_page(b, 7), ps_test_page(a, 2));
	KUNIT_EXPECT_EQ(test, ps_stat(&b->stats.shared_gfns), 1);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_SAVED_FRAMES) - saved, 1);
	/* A first touch of that gfn now finds the frame. */
	KUNIT_EXPECT_PTR_EQ(test, ps_test_page(b, 7), ps_test_page(a, 2));
	ps_test_audit_clean(test);
}

static void ps_test_sharer_limit(struct kunit *test)
{
	unsigned int old = ps_max_sharers;
	struct ps_vm *vm = ps_test_vm(test);
	u64 h[4];
	int i;

	for (i = 0; i < 4; i++) {
		ps_test_fill(test, vm, i, 0xee);
		h[i] = ps_test_nominate(test, vm, i);
	}
	ps_max_sharers = 2;
	KUNIT_EXPECT_EQ(test, ps_share(vm, 0, h[0], vm, 1, h[1], false), 0);
	KUNIT_EXPECT_EQ(test, ps_share(vm, 0, h[0], vm, 2, h[2], false), -EMLINK);
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(vm, 0, h[0], vm, 10), -EMLINK);
	KUNIT_EXPECT_EQ(test, ps_share(vm, 2, h[2], vm, 3, h[3], false), 0);
	KUNIT_EXPECT_EQ(test, ps_share(vm, 0, h[0], vm, 3, h[2], false), -EMLINK);
	ps_max_sharers = old;
	KUNIT_EXPECT_EQ(test, ps_share(vm, 0, h[0], vm, 3, h[2], false), 0);
	KUNIT_EXPECT_EQ(test, ps_page_frame(ps_test_page(vm, 0))->nr_sharers, 4);
	ps_test_audit_clean(test);
}

static void ps_test_teardown_while_shared(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	struct ps_test_globals g0, g1;
	struct page *frame;
	u64 ha, hb;
	int gfn;

	ps_test_globals(&g0);
	for (gfn = 0; gfn < 8; gfn++) {
		ps_test_fill(test, a, gfn, 0x10 + gfn);
		ps_test_fill(test, b, gfn, 0x10 + gfn);
		ha = ps_test_nominate(test, a, gfn);
		hb = ps_test_nominate(test, b, gfn);
		KUNIT_ASSERT_EQ(test, 0, ps_share(a, gfn, ha, b, gfn, hb, true));
	}
	frame = ps_test_page(b, 5);
	get_page(frame);

	/* The frames belong to no VM: b keeps them when a goes. */
	kunit_release_action(test, ps_test_destroy_action, a);
	KUNIT_EXPECT_PTR_EQ(test, ps_test_page(b, 5), frame);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(frame, 0x15));
	KUNIT_EXPECT_EQ(test, ps_page_frame(frame)->nr_sharers, 1);
	KUNIT_EXPECT_EQ(test, ps_stat(&b->stats.nominated_gfns), 8);
	ps_test_audit_clean(test);

	kunit_release_action(test, ps_test_destroy_action, b);
	ps_test_globals(&g1);
	KUNIT_EXPECT_EQ(test, g1.shared_frames, g0.shared_frames);
	KUNIT_EXPECT_EQ(test, g1.saved_frames, g0.saved_frames);
	KUNIT_EXPECT_EQ(test, g1.private_pages, g0.private_pages);
	KUNIT_EXPECT_EQ(test, page_private(frame), 0);
	KUNIT_EXPECT_EQ(test, page_count(frame), 1);
	put_page(frame);
	ps_test_audit_clean(test);
}

static void ps_test_shrink_while_shared(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	u64 ha, hb;
	int gfn;

	for (gfn = 30; gfn < 40; gfn++) {
		ps_test_fill(test, a, gfn, gfn);
		ps_test_fill(test, b, gfn, gfn);
		ha = ps_test_nominate(test, a, gfn);
		hb = ps_test_nominate(test, b, gfn);
		/* a's gfns are the clients: they move onto b's frames. */
		KUNIT_ASSERT_EQ(test, 0, ps_share(b, gfn, hb, a, gfn, ha, true));
	}
	hb = ps_test_nominate(test, b, 39);

	/* a shrinks below 32..39: they leave the frames, b keeps them. */
	KUNIT_ASSERT_EQ(test, 0, ps_vm_set_size(a, 32 * PAGE_SIZE));
	KUNIT_EXPECT_EQ(test, ps_stat(&a->stats.shared_gfns), 2);
	KUNIT_EXPECT_EQ(test, ps_stat(&a->stats.private_pages), 0);
	KUNIT_EXPECT_EQ(test, ps_stat(&b->stats.nominated_gfns), 8);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(ps_test_page(b, 35), 35));
	/* Nothing can fill a gfn past the new end. */
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(b, 39, hb, a, 33), -ENXIO);
	KUNIT_EXPECT_EQ(test, PTR_ERR(ps_vm_get_page(a, 33, NULL)), -ENXIO);
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(b, 39, hb, a, 5), 0);
	ps_test_audit_clean(test);
}

static void ps_test_rmap(struct kunit *test)
{
	long bytes = ps_stat_read(PS_STAT_META_BYTES);
	struct ps_frame frame = { };
	u32 i, n = 5000, pos = 0, seen = 0;
	u64 key;

	for (i = 0; i < n; i++) {
		KUNIT_ASSERT_EQ(test, 0, ps_rmap_reserve(&frame, 1));
		ps_rmap_add(&frame, ps_rmap_key(1 + i % 7, i));
	}
	KUNIT_EXPECT_EQ(test, frame.nr_sharers, n);
	KUNIT_EXPECT_GE(test, frame.cap, n + n / 3);
	/* At least a third full: at most 24 bytes a sharer. */
	KUNIT_EXPECT_LE(test, ps_rmap_bytes(&frame), 24 * (size_t)n);
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_TRUE(test, ps_rmap_has(&frame, ps_rmap_key(1 + i % 7, i)));
	KUNIT_EXPECT_FALSE(test, ps_rmap_has(&frame, ps_rmap_key(1, n + 1)));

	for (i = 0; i < n; i += 2)
		KUNIT_EXPECT_TRUE(test, ps_rmap_del(&frame, ps_rmap_key(1 + i % 7, i)));
	KUNIT_EXPECT_FALSE(test, ps_rmap_del(&frame, ps_rmap_key(1, 0)));
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, ps_rmap_has(&frame, ps_rmap_key(1 + i % 7, i)),
				i % 2 == 1);
	while (ps_rmap_next(&frame, &pos, &key))
		seen++;
	KUNIT_EXPECT_EQ(test, seen, n / 2);

	/* Down to two sharers the map moves back inside the frame. */
	for (i = 1; i < n - 4; i += 2)
		KUNIT_EXPECT_TRUE(test, ps_rmap_del(&frame, ps_rmap_key(1 + i % 7, i)));
	KUNIT_EXPECT_EQ(test, frame.nr_sharers, 2);
	KUNIT_EXPECT_EQ(test, frame.cap, 0);
	KUNIT_EXPECT_TRUE(test, ps_rmap_has(&frame, ps_rmap_key(1 + (n - 3) % 7, n - 3)));
	KUNIT_EXPECT_TRUE(test, ps_rmap_has(&frame, ps_rmap_key(1 + (n - 1) % 7, n - 1)));
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_META_BYTES), bytes);
	ps_rmap_free(&frame);
}

static void ps_test_audit_catches(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	struct ps_frame *frame;
	u64 ha, hb, key;

	ps_test_fill(test, a, 0, 0xab);
	ps_test_fill(test, b, 0, 0xab);
	ps_test_fill(test, b, 1, 0xcd);
	ha = ps_test_nominate(test, a, 0);
	hb = ps_test_nominate(test, b, 0);
	KUNIT_ASSERT_EQ(test, 0, ps_share(a, 0, ha, b, 0, hb, true));
	ps_test_audit_clean(test);
	frame = ps_page_frame(ps_test_page(a, 0));

	/* A sharer count that disagrees with the entries. */
	frame->nr_sharers++;
	KUNIT_EXPECT_GT(test, ps_audit(), 0);
	frame->nr_sharers--;
	ps_test_audit_clean(test);

	/* A reverse map naming the wrong gfn. */
	key = frame->keys[1];
	frame->keys[1] = ps_rmap_key(b->id, 1);
	KUNIT_EXPECT_GE(test, ps_audit(), 2);
	frame->keys[1] = key;
	ps_test_audit_clean(test);

	/* A VM counter off by one, and the global invariant with it. */
	atomic_long_inc(&b->stats.shared_gfns);
	KUNIT_EXPECT_EQ(test, ps_audit(), 1);
	ps_stat_inc(PS_STAT_SAVED_FRAMES);
	KUNIT_EXPECT_EQ(test, ps_audit(), 2);
	ps_stat_dec(PS_STAT_SAVED_FRAMES);
	atomic_long_dec(&b->stats.shared_gfns);

	/* A handle that was never issued. */
	frame->handle = ps_handles_issued() + 1;
	KUNIT_EXPECT_EQ(test, ps_audit(), 2);
	frame->handle = ha;
	ps_test_audit_clean(test);

	/* Sharers outside one share group, and a no-intra VM twice on a frame. */
	b->group = 0;
	KUNIT_EXPECT_EQ(test, ps_audit(), 1);
	b->group = ps_test_group(test);
	KUNIT_ASSERT_EQ(test, 0, ps_share(a, 0, ha, b, 1, ps_test_nominate(test, b, 1), false));
	ps_test_audit_clean(test);
	b->policy = PAGESHARE_POLICY_NO_INTRA_VM;
	KUNIT_EXPECT_EQ(test, ps_audit(), 1);
	b->policy = 0;
	ps_test_audit_clean(test);
}

/*
 * Lists @vm's private gfns from @start, @max at most, through the ioctl's
 * walk into a user buffer, and returns how many; @out gets them.
 */
static u32 ps_test_private(struct kunit *test, struct ps_vm *vm, u64 start, u32 max,
			   u64 *out, u64 *next, u64 *discards)
{
	struct pageshare_private arg = { .start = start, .max = max };
	unsigned long ubuf;

	ubuf = kunit_vm_mmap(test, NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE(test, ubuf, 0);
	KUNIT_ASSERT_LE(test, max, PAGE_SIZE / sizeof(u64));
	KUNIT_ASSERT_EQ(test, 0, ps_vm_get_private(vm, &arg, (u64 __user *)ubuf));
	KUNIT_ASSERT_EQ(test, 0,
			copy_from_user(out, (void __user *)ubuf, arg.count * sizeof(u64)));
	*next = arg.next;
	*discards = arg.discards;
	return arg.count;
}

/* Expects @vm's private gfns to be @want[0..@nr), and nothing more. */
static void ps_test_expect_private(struct kunit *test, struct ps_vm *vm,
				   const u64 *want, u32 nr)
{
	u64 got[8], next, discards;
	u32 n = ps_test_private(test, vm, 0, ARRAY_SIZE(got), got, &next, &discards);

	KUNIT_EXPECT_EQ(test, n, nr);
	KUNIT_EXPECT_EQ(test, next, PS_TEST_PAGES);
	if (n == nr && nr)
		KUNIT_EXPECT_MEMEQ(test, got, want, nr * sizeof(*want));
}

/* The list of gfns, possibly empty, after @vm. */
#define PS_TEST_EXPECT_PRIVATE(test, vm, ...)					\
	ps_test_expect_private(test, vm, (const u64[]){ 0, ##__VA_ARGS__ } + 1,	\
			       sizeof((u64[]){ 0, ##__VA_ARGS__ }) / sizeof(u64) - 1)

/*
 * The private mark follows every way in and out of the private state, the
 * walk finds exactly the marked gfns and resumes where it stopped, the
 * discard count moves only once a discard is over, and the audit catches a
 * mark that disagrees with its entry.
 */
static void ps_test_private_marks(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	u64 got[4], next, d0, d1, ha, hb;

	KUNIT_EXPECT_EQ(test, ps_test_private(test, a, 0, 4, got, &next, &d0), 0);
	KUNIT_EXPECT_EQ(test, next, PS_TEST_PAGES);

	/* First touches. */
	ps_test_fill(test, a, 1, 0x33);
	ps_test_fill(test, a, 5, 0x33);
	ps_test_fill(test, a, 40, 0x44);
	ps_test_fill(test, a, PS_TEST_PAGES - 1, 0x55);
	ps_test_fill(test, b, 1, 0x33);
	PS_TEST_EXPECT_PRIVATE(test, a, 1, 5, 40, PS_TEST_PAGES - 1);

	/* A full array stops the walk, which resumes past its last gfn. */
	KUNIT_EXPECT_EQ(test, ps_test_private(test, a, 0, 2, got, &next, &d1), 2);
	KUNIT_EXPECT_EQ(test, got[1], 5);
	KUNIT_EXPECT_EQ(test, next, 6);
	KUNIT_EXPECT_EQ(test, ps_test_private(test, a, next, 2, got, &next, &d1), 2);
	KUNIT_EXPECT_EQ(test, got[0], 40);
	KUNIT_EXPECT_EQ(test, next, PS_TEST_PAGES);
	KUNIT_EXPECT_EQ(test, ps_test_private(test, a, next, 2, got, &next, &d1), 0);
	KUNIT_EXPECT_EQ(test, ps_test_private(test, a, 41, 0, got, &next, &d1), 0);
	KUNIT_EXPECT_EQ(test, next, 41);
	KUNIT_EXPECT_EQ(test, d1, d0);

	/* Nominated, then shared: no longer private, here or in @b. */
	ha = ps_test_nominate(test, a, 5);
	PS_TEST_EXPECT_PRIVATE(test, a, 1, 40, PS_TEST_PAGES - 1);
	hb = ps_test_nominate(test, b, 1);
	KUNIT_ASSERT_EQ(test, 0, ps_share(a, 5, ha, b, 1, hb, true));
	KUNIT_ASSERT_EQ(test, 0, ps_share(a, 5, ha, a, 1, ps_test_nominate(test, a, 1), true));
	PS_TEST_EXPECT_PRIVATE(test, a, 40, PS_TEST_PAGES - 1);
	PS_TEST_EXPECT_PRIVATE(test, b);

	/* An unshare (a write does the same) makes a gfn private again. */
	KUNIT_ASSERT_EQ(test, 0, ps_unshare(b, 1));
	PS_TEST_EXPECT_PRIVATE(test, b, 1);
	PS_TEST_EXPECT_PRIVATE(test, a, 40, PS_TEST_PAGES - 1);

	/*
	 * A discard takes gfns out, private or shared, and counts those it
	 * took off a frame: 5 here, not 40.
	 */
	KUNIT_ASSERT_EQ(test, 0, ps_vm_punch(a, 5 * PAGE_SIZE, 36 * PAGE_SIZE));
	PS_TEST_EXPECT_PRIVATE(test, a, PS_TEST_PAGES - 1);
	ps_test_private(test, a, 0, 4, got, &next, &d1);
	KUNIT_EXPECT_EQ(test, d1, d0 + 1);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(ps_test_page(a, 1), 0x33));
	ps_test_audit_clean(test);

	/* The audit catches a private entry without the mark, and the reverse. */
	xa_clear_mark(&a->pages, PS_TEST_PAGES - 1, PS_MARK_PRIVATE);
	KUNIT_EXPECT_EQ(test, ps_audit(), 1);
	xa_set_mark(&a->pages, PS_TEST_PAGES - 1, PS_MARK_PRIVATE);
	xa_set_mark(&a->pages, 1, PS_MARK_PRIVATE);
	KUNIT_EXPECT_EQ(test, ps_audit(), 1);
	xa_clear_mark(&a->pages, 1, PS_MARK_PRIVATE);
	ps_test_audit_clean(test);

	/* A shrink counts the gfn it takes off a frame (a:1), not a:63. */
	KUNIT_ASSERT_EQ(test, 0, ps_vm_set_size(a, PAGE_SIZE));
	ps_test_private(test, a, 0, 4, got, &next, &d1);
	KUNIT_EXPECT_EQ(test, d1, d0 + 2);
	KUNIT_EXPECT_EQ(test, next, 1);
	KUNIT_ASSERT_EQ(test, 0, ps_vm_set_size(a, PS_TEST_PAGES * PAGE_SIZE));
	ps_test_private(test, a, 0, 4, got, &next, &d1);
	KUNIT_EXPECT_EQ(test, d1, d0 + 2);	/* growing takes nothing */
	ps_test_audit_clean(test);
}

static void ps_test_policy(struct kunit *test)
{
	struct ps_vm *a = ps_test_vm(test), *b = ps_test_vm(test);
	struct ps_vm *loner = ps_test_vm(test), *d = ps_test_vm(test);
	struct pageshare_policy p = { .group = ps_test_group(test) };
	u64 ha, hd0, hd1;

	for (int i = 0; i < 4; i++) {
		ps_test_fill(test, a, i, 0x5a);
		ps_test_fill(test, b, i, 0x5a);
		ps_test_fill(test, loner, i, 0x5a);
		ps_test_fill(test, d, i, 0x5a);
	}
	loner->group = 0;
	ha = ps_test_nominate(test, a, 0);

	/* Across VMs only inside one group, in both directions. */
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, loner, 0, ps_test_nominate(test, loner, 0),
				       false), -EACCES);
	KUNIT_EXPECT_EQ(test, ps_share(loner, 0, ps_test_nominate(test, loner, 0), a, 0, ha,
				       false), -EACCES);
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(a, 0, ha, loner, 5), -EACCES);
	KUNIT_EXPECT_EQ(test, 0, ps_share(a, 0, ha, b, 0, ps_test_nominate(test, b, 0), false));
	/* Inside a VM of no group, by default. */
	KUNIT_EXPECT_EQ(test, 0, ps_share(loner, 0, ps_test_nominate(test, loner, 0),
					  loner, 1, ps_test_nominate(test, loner, 1), false));
	KUNIT_EXPECT_EQ(test, ps_share(loner, 1, ps_test_nominate(test, loner, 1),
				       loner, 1, ps_test_nominate(test, loner, 1), false), -EINVAL);

	/* Bad policies, and groups nobody is in. */
	p.flags = PAGESHARE_POLICY_NEW_GROUP;
	KUNIT_EXPECT_EQ(test, ps_set_policy(d, &p), -EINVAL);
	p.flags = 1U << 7;
	KUNIT_EXPECT_EQ(test, ps_set_policy(d, &p), -EINVAL);
	p.flags = 0;
	p.group = ~ps_test_group(test);
	KUNIT_EXPECT_EQ(test, ps_set_policy(d, &p), -ENOENT);
	KUNIT_EXPECT_EQ(test, d->group, ps_test_group(test));

	/* No intra-VM sharing for d, even through another VM's frame. */
	p.group = ps_test_group(test);
	p.flags = PAGESHARE_POLICY_NO_INTRA_VM;
	KUNIT_ASSERT_EQ(test, 0, ps_set_policy(d, &p));
	hd0 = ps_test_nominate(test, d, 0);
	hd1 = ps_test_nominate(test, d, 1);
	KUNIT_EXPECT_EQ(test, ps_share(d, 0, hd0, d, 1, hd1, false), -EACCES);
	KUNIT_EXPECT_EQ(test, 0, ps_share(a, 0, ha, d, 0, hd0, false));
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, d, 1, hd1, false), -EACCES);
	KUNIT_EXPECT_EQ(test, ps_add_to_physmap(a, 0, ha, d, 5), -EACCES);
	KUNIT_EXPECT_EQ(test, 0, ps_add_to_physmap(a, 0, ha, b, 5));

	/* No policy change while shared; the same policy again is fine. */
	KUNIT_EXPECT_EQ(test, 0, ps_set_policy(d, &p));
	p.flags = 0;
	KUNIT_EXPECT_EQ(test, ps_set_policy(d, &p), -EBUSY);
	KUNIT_EXPECT_EQ(test, 0, ps_unshare(d, 0));
	KUNIT_EXPECT_EQ(test, 0, ps_set_policy(d, &p));
	KUNIT_EXPECT_EQ(test, d->policy, 0);

	/* A new group: random, non-zero, and only d in it. */
	p.group = 0;
	p.flags = PAGESHARE_POLICY_NEW_GROUP;
	KUNIT_ASSERT_EQ(test, 0, ps_set_policy(d, &p));
	KUNIT_EXPECT_NE(test, p.group, 0);
	KUNIT_EXPECT_NE(test, p.group, ps_test_group(test));
	KUNIT_EXPECT_EQ(test, d->group, p.group);
	KUNIT_EXPECT_EQ(test, ps_share(a, 0, ha, d, 1, hd1, false), -EACCES);
	ps_test_audit_clean(test);
}

static struct kunit_case ps_share_test_cases[] = {
	KUNIT_CASE(ps_test_handles),
	KUNIT_CASE(ps_test_handles_per_cpu),
	KUNIT_CASE(ps_test_share_two_vms),
	KUNIT_CASE(ps_test_stale_and_compare),
	KUNIT_CASE(ps_test_coalesce),
	KUNIT_CASE(ps_test_unshare_copies),
	KUNIT_CASE(ps_test_add_to_physmap),
	KUNIT_CASE(ps_test_sharer_limit),
	KUNIT_CASE(ps_test_teardown_while_shared),
	KUNIT_CASE(ps_test_shrink_while_shared),
	KUNIT_CASE(ps_test_rmap),
	KUNIT_CASE(ps_test_audit_catches),
	KUNIT_CASE(ps_test_private_marks),
	KUNIT_CASE(ps_test_policy),
	{}
};

static struct kunit_suite ps_share_test_suite = {
	.name = "pageshare_share",
	.test_cases = ps_share_test_cases,
};

kunit_test_suites(&ps_share_test_suite);
