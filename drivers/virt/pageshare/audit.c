// SPDX-License-Identifier: GPL-2.0
/*
 * The audit: every invariant of every VM and frame, checked with all
 * changes held off. Xen keeps its equivalent to debug builds; this one is
 * always there, so an operator can ask a production host.
 *
 * Invariants:
 * - every entry is below its VM's size, or below the size a shrink or the
 *   teardown is freeing it from;
 * - a private page has no frame; a page in shared state has one, whose
 *   handle is non-zero and no higher than the end of the last block of
 *   handles a CPU took (a handle in a block's unissued rest is not
 *   caught), and whose reverse map has the gfn;
 * - every key of a frame's reverse map names a live VM whose entry at that
 *   gfn is the frame (so with the count check, the maps agree both ways);
 * - a frame's sharer count is the number of entries naming it (lowering
 *   max_sharers does not split frames, so it is not checked against that);
 * - a frame's sharers are all of one VM or all of one share group, and a
 *   VM with PAGESHARE_POLICY_NO_INTRA_VM has at most one gfn on a frame;
 * - each VM's private, shared and nominated counts match its entries;
 * - the global counts match: VMs, private pages, frames in shared state,
 *   and saved frames = shared gfns - shared frames (Xen's invariant:
 *   the sum of shared gfns over VMs = saved frames + shared frames).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": audit: " fmt

#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/xarray.h>

#include <linux/pageshare.h>

#include "pageshare.h"

struct ps_audit {
	long errors;
	struct page **shared;	/* the page of every shared entry, sorted later */
	size_t nshared, cap;
	long vms, private_pages, shared_gfns, frames_seen;
};

static int ps_audit_grow(struct ps_audit *a)
{
	struct page **p;
	size_t cap = max_t(size_t, 256, a->cap * 2);

	p = kvrealloc(a->shared, cap * sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	a->shared = p;
	a->cap = cap;
	return 0;
}

static int ps_audit_cmp(const void *x, const void *y)
{
	unsigned long a = (unsigned long)*(struct page * const *)x;
	unsigned long b = (unsigned long)*(struct page * const *)y;

	return a < b ? -1 : a > b;
}

#define ps_audit_err(a, fmt, ...) do {				\
	(a)->errors++;						\
	pr_err_ratelimited(fmt "\n", ##__VA_ARGS__);		\
} while (0)

/*
 * An entry and its mark change together under the xa_lock, but a walk
 * under RCU alone may see one before the other (a first touch): look
 * again under the lock.
 */
static bool ps_audit_mark_ok(struct ps_vm *vm, pgoff_t gfn)
{
	void *entry;
	bool ok;

	xa_lock(&vm->pages);
	entry = xa_load(&vm->pages, gfn);
	ok = !entry || xa_get_mark(&vm->pages, gfn, PS_MARK_PRIVATE) != ps_entry_shared(entry);
	xa_unlock(&vm->pages);
	return ok;
}

static int ps_audit_vm(struct ps_audit *a, struct ps_vm *vm)
{
	long private = 0, shared = 0, nominated = 0, private0, private1;
	size_t first = a->nshared, i;
	pgoff_t end;
	XA_STATE(xas, &vm->pages, 0);
	struct ps_frame *frame;
	struct page *page;
	unsigned long gfn;
	bool marked;
	void *entry;
	int ret = 0;

	/*
	 * First touches go on during the audit: they add private pages, and
	 * count each one under the xa_lock that inserts it. So the private
	 * pages the walk finds lie between the count before it and the count
	 * after it, both read under that lock.
	 */
	xa_lock(&vm->pages);
	private0 = atomic_long_read(&vm->stats.private_pages);
	/* A shrink publishes both under this lock. */
	end = max(vm->size, vm->freeing) >> PAGE_SHIFT;
	xa_unlock(&vm->pages);

	/* One RCU section and one tree walk, not a lookup per entry. */
	rcu_read_lock();
	xas_for_each(&xas, entry, ULONG_MAX) {
		if (xas_retry(&xas, entry))
			continue;
		gfn = xas.xa_index;	/* xas_pause() moves the index on */
		/* And forgets the node, where the marks are. */
		marked = xas_get_mark(&xas, PS_MARK_PRIVATE);
		if (a->nshared == a->cap || need_resched()) {
			xas_pause(&xas);
			rcu_read_unlock();
			ret = a->nshared == a->cap ? ps_audit_grow(a) : 0;
			cond_resched();
			rcu_read_lock();
			if (ret)
				break;
		}
		page = ps_entry_page(entry);
		if (gfn >= end)
			ps_audit_err(a, "vm %u gfn %lu: past the size", vm->id, gfn);
		if (marked == ps_entry_shared(entry) && !ps_audit_mark_ok(vm, gfn))
			ps_audit_err(a, "vm %u gfn %lu: %s entry %s the private mark",
				     vm->id, gfn, ps_entry_shared(entry) ? "shared" : "private",
				     ps_entry_shared(entry) ? "has" : "lacks");
		if (!ps_entry_shared(entry)) {
			private++;
			if (page_private(page))
				ps_audit_err(a, "vm %u gfn %lu: private page has a frame",
					     vm->id, gfn);
			/* Migration changes both under the same section. */
			if (page->mapping != vm->inode->i_mapping || page->index != gfn ||
			    xa_load(&vm->inode->i_mapping->i_pages, gfn) != page_folio(page))
				ps_audit_err(a, "vm %u gfn %lu: private page not in the VM's page cache at its gfn",
					     vm->id, gfn);
			continue;
		}
		shared++;
		if ((unsigned long)page->mapping !=
		    ((unsigned long)&ps_frame_mops | PAGE_MAPPING_MOVABLE))
			ps_audit_err(a, "vm %u gfn %lu: frame is not movable", vm->id, gfn);
		frame = ps_page_frame(page);
		if (!frame) {
			ps_audit_err(a, "vm %u gfn %lu: shared page without a frame",
				     vm->id, gfn);
			continue;
		}
		if (!frame->handle || frame->handle > ps_handles_issued())
			ps_audit_err(a, "vm %u gfn %lu: handle %llu was never issued",
				     vm->id, gfn, frame->handle);
		if (!ps_rmap_has(frame, ps_rmap_key(vm->id, gfn)))
			ps_audit_err(a, "vm %u gfn %lu: missing from its frame's reverse map",
				     vm->id, gfn);
		if (frame->nr_sharers == 1)
			nominated++;
		a->shared[a->nshared++] = page;
	}
	rcu_read_unlock();
	if (ret)
		return ret;

	if (vm->policy & PAGESHARE_POLICY_NO_INTRA_VM) {
		sort(a->shared + first, a->nshared - first, sizeof(*a->shared),
		     ps_audit_cmp, NULL);
		for (i = first + 1; i < a->nshared; i++)
			if (a->shared[i] == a->shared[i - 1])
				ps_audit_err(a, "vm %u: no-intra-vm, but two gfns on frame %llu",
					     vm->id, ps_page_frame(a->shared[i])->handle);
	}

	xa_lock(&vm->pages);
	private1 = atomic_long_read(&vm->stats.private_pages);
	xa_unlock(&vm->pages);
	if (private < private0 || private > private1)
		ps_audit_err(a, "vm %u: %ld private pages, counted %ld to %ld", vm->id,
			     private, private0, private1);
	if (shared != atomic_long_read(&vm->stats.shared_gfns))
		ps_audit_err(a, "vm %u: %ld shared gfns, counted %ld", vm->id,
			     shared, atomic_long_read(&vm->stats.shared_gfns));
	if (nominated != atomic_long_read(&vm->stats.nominated_gfns))
		ps_audit_err(a, "vm %u: %ld nominated gfns, counted %ld", vm->id,
			     nominated, atomic_long_read(&vm->stats.nominated_gfns));
	if (shared - nominated != atomic_long_read(&vm->stats.multi_gfns))
		ps_audit_err(a, "vm %u: %ld gfns on frames with other sharers, counted %ld",
			     vm->id, shared - nominated,
			     atomic_long_read(&vm->stats.multi_gfns));
	a->vms++;
	a->private_pages += private;
	a->shared_gfns += shared;
	return 0;
}

static void ps_audit_frame(struct ps_audit *a, struct page *page, long entries)
{
	struct ps_frame *frame = ps_page_frame(page);
	struct ps_vm *vm, *first = NULL;
	u32 pos = 0, keys = 0;
	u64 key;

	a->frames_seen++;
	if (!frame)
		return;	/* reported per gfn */
	if (frame->nr_sharers != entries)
		ps_audit_err(a, "frame %llu: %u sharers, %ld gfns map it",
			     frame->handle, frame->nr_sharers, entries);
	while (ps_rmap_next(frame, &pos, &key)) {
		keys++;
		vm = ps_vm_find(ps_rmap_key_vm(key));
		if (!vm) {
			ps_audit_err(a, "frame %llu: sharer in VM %u, which is gone",
				     frame->handle, ps_rmap_key_vm(key));
			continue;
		}
		if (xa_load(&vm->pages, ps_rmap_key_gfn(key)) != ps_shared_entry(page))
			ps_audit_err(a, "frame %llu: vm %u gfn %lu does not map it",
				     frame->handle, vm->id, ps_rmap_key_gfn(key));
		if (!first)
			first = vm;
		else if (vm != first && (!vm->group || vm->group != first->group))
			ps_audit_err(a, "frame %llu: vms %u and %u share it outside a share group",
				     frame->handle, first->id, vm->id);
	}
	if (keys != frame->nr_sharers)
		ps_audit_err(a, "frame %llu: %u keys in its reverse map, %u sharers",
			     frame->handle, keys, frame->nr_sharers);
}

/**
 * ps_audit() - Check every invariant of every VM and frame.
 *
 * Holds off every change to entries, frames and counters while it runs,
 * and VM creation and destruction, but for first touches, which only add
 * private pages and are allowed for. Logs each inconsistency.
 *
 * Context: Process context; takes ps_ops_sem for writing, then
 * ps_vms_mutex, then each VM's xa_lock in turn.
 * Return: the number of inconsistencies, or -ENOMEM.
 */
long ps_audit(void)
{
	struct ps_audit a = { };
	unsigned long id = 0;
	size_t i, j;
	struct ps_vm *vm;
	long vms, private0, private1, frames, saved;
	int ret = 0;

	ps_ops_freeze();
	ps_vms_lock();
	/*
	 * The global counters are sums of per-CPU parts (stats.c), exact
	 * here: with ps_ops_sem and ps_vms_mutex held nothing changes them
	 * but first touches, which only add private pages, each under its
	 * VM's xa_lock and after its VM's own count. So a sum read now is at
	 * most what the walks below find, and one read after them at least
	 * that, as for each VM (ps_audit_vm()).
	 */
	private0 = ps_stat_read(PS_STAT_PRIVATE_PAGES);

	for (vm = ps_vms_next(&id); vm && !ret; vm = ps_vms_next(&id))
		ret = ps_audit_vm(&a, vm);
	if (!ret) {
		/* Entries naming one frame end up next to each other. */
		sort(a.shared, a.nshared, sizeof(*a.shared), ps_audit_cmp, NULL);
		for (i = 0; i < a.nshared; i = j) {
			for (j = i + 1; j < a.nshared && a.shared[j] == a.shared[i]; j++)
				;
			ps_audit_frame(&a, a.shared[i], j - i);
			if (!(a.frames_seen % 1024))
				cond_resched();
		}
	}

	vms = ps_stat_read(PS_STAT_VMS);
	if (a.vms != vms)
		ps_audit_err(&a, "%ld VMs, counted %ld", a.vms, vms);
	/* First touches, counted under each VM's xa_lock (ps_audit_vm()). */
	private1 = ps_stat_read(PS_STAT_PRIVATE_PAGES);
	if (a.private_pages < private0 || a.private_pages > private1)
		ps_audit_err(&a, "%ld private pages, counted %ld to %ld", a.private_pages,
			     private0, private1);
	frames = ps_stat_read(PS_STAT_SHARED_FRAMES);
	if (a.frames_seen != frames)
		ps_audit_err(&a, "%ld frames in shared state, counted %ld",
			     a.frames_seen, frames);
	saved = ps_stat_read(PS_STAT_SAVED_FRAMES);
	if (a.shared_gfns != saved + a.frames_seen)
		ps_audit_err(&a, "%ld shared gfns != %ld saved + %ld shared frames",
			     a.shared_gfns, saved, a.frames_seen);

	ps_vms_unlock();
	ps_ops_thaw();
	kvfree(a.shared);
	return ret ? ret : a.errors;
}
