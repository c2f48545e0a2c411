// SPDX-License-Identifier: GPL-2.0
/*
 * How compaction, memory offline and NUMA balancing move a running VM's
 * pages: guest RAM must not pin the host's physical memory in place.
 *
 * A private page is a folio of its VM's page cache (vm.c). The core
 * isolates it from the LRU, unmaps it through the VM's i_mmap (the MMU
 * notifiers take KVM's stage-2 entries with the PTEs), and calls
 * ps_vm_migrate_folio() with both folios locked: migrate_folio() copies the
 * bytes and replaces the folio in the page cache with its reference count
 * frozen, and the VM's entry follows under the same page lock that every
 * change of an entry holds. A lookup that found the old folio waits for
 * that lock and then sees that the entry moved on.
 *
 * A frame in shared state is in no page cache and on no LRU: several VMs'
 * gfns map it, which no (mapping, index) pair can say. It is a non-LRU
 * movable page (ps_frame_mops), and the core leaves the unmapping to us:
 * ps_frame_migrate() zaps every sharer found through the frame's reverse
 * map (KVM's stage-2 entries go with the PTEs), refuses while anybody but
 * the frame and the isolation holds the page, copies, re-points every
 * entry at the new page, and only then lets the old page go.
 *
 * Both callbacks run under the page lock of the page they move, and enter
 * a ps_ops section with a trylock (ps_ops_sem nests outside page locks): an
 * audit in progress makes them answer -EAGAIN, and the core tries again.
 */

#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

#include "pageshare.h"

/**
 * ps_vm_migrate_folio() - Move a private page: the VM's a_ops->migrate_folio.
 * @mapping: the VM inode's mapping.
 * @dst: the new folio, locked.
 * @src: the old folio, locked, isolated and unmapped.
 * @mode: how hard to try.
 *
 * Context: Process context; @src and @dst locked; takes ps_ops_sem (read,
 * trylock), the page cache's xa_lock and the VM's entries' xa_lock.
 * Return: MIGRATEPAGE_SUCCESS; -EAGAIN if someone else holds @src or an
 * audit runs; another errno from migrate_folio().
 */
int ps_vm_migrate_folio(struct address_space *mapping, struct folio *dst,
			struct folio *src, enum migrate_mode mode)
{
	struct ps_vm *vm = mapping->host->i_private;
	void *old;
	int ret;

	VM_WARN_ON_FOLIO(!folio_test_locked(src), src);
	if (!ps_ops_trybegin())
		return -EAGAIN;
	ret = migrate_folio(mapping, dst, src, mode);
	if (ret == MIGRATEPAGE_SUCCESS) {
		xa_lock(&vm->pages);
		old = __xa_store(&vm->pages, dst->index, folio_page(dst, 0), 0);
		xa_unlock(&vm->pages);
		/* In the page cache, locked: it was the entry, and still is. */
		WARN_ON_ONCE(old != folio_page(src, 0));
	}
	ps_ops_end();
	return ret;
}

/* Locked by the core. A frame still, and one whose bytes can be read. */
static bool ps_frame_isolate(struct page *page, isolate_mode_t mode)
{
	return page_private(page) && !PageHWPoison(page);
}

static struct ps_vm *ps_frame_sharer(u64 key)
{
	/* A gfn of it is on the locked frame: the VM exists. */
	struct ps_vm *vm = ps_vm_find(ps_rmap_key_vm(key));

	WARN_ON_ONCE(!vm);
	return vm;
}

static int ps_frame_migrate(struct page *dst, struct page *src,
			    enum migrate_mode mode)
{
	struct ps_frame *frame = ps_page_frame(src);
	struct ps_vm *vm;
	u32 pos = 0;
	int ret;
	u64 key;

	VM_WARN_ON_FOLIO(!folio_test_locked(page_folio(src)), page_folio(src));
	VM_WARN_ON_FOLIO(!folio_test_locked(page_folio(dst)), page_folio(dst));
	if (!frame)
		return -EAGAIN;
	if (!ps_ops_trybegin())
		return -EAGAIN;

	/* Nothing may map the old page once its bytes are copied. */
	if (folio_test_checked(page_folio(src))) {
		while (ps_rmap_next(frame, &pos, &key)) {
			vm = ps_frame_sharer(key);
			if (vm)
				ps_vm_zap(vm, ps_rmap_key_gfn(key));
			/* Up to max_sharers gfns, as in a share. */
			if (!(pos % 1024))
				cond_resched();
		}
		folio_clear_checked(page_folio(src));
	}
	/*
	 * The frame's reference and the isolation's. A lookup in flight
	 * (it waits for our lock, then finds the entry moved) or a GUP
	 * holder (it would go on reading the old page) has one more.
	 */
	if (page_count(src) != 2) {
		ret = -EAGAIN;
		goto out;
	}
	ret = folio_mc_copy(page_folio(dst), page_folio(src));
	if (ret)
		goto out;

	set_page_private(dst, (unsigned long)frame);
	get_page(dst);		/* the frame's */
#ifdef CONFIG_MEMCG
	/*
	 * The kernel-memory charge goes with the frame: the core moves no
	 * memcg data for a movable_operations page, and the old page would
	 * uncharge it when it is freed.
	 */
	page_folio(dst)->memcg_data = page_folio(src)->memcg_data;
	page_folio(src)->memcg_data = 0;
#endif
	__SetPageMovable(dst, &ps_frame_mops);
	pos = 0;
	while (ps_rmap_next(frame, &pos, &key)) {
		vm = ps_frame_sharer(key);
		if (!vm)
			continue;
		xa_lock(&vm->pages);
		__xa_store(&vm->pages, ps_rmap_key_gfn(key), ps_shared_entry(dst), 0);
		xa_unlock(&vm->pages);
		if (!(pos % 1024))
			cond_resched();
	}
	set_page_private(src, 0);
	__ClearPageMovable(src);
	put_page(src);		/* the frame's; the core drops the isolation's */
	ret = MIGRATEPAGE_SUCCESS;
out:
	ps_ops_end();
	return ret;
}

/* Nothing to undo: isolation changed nothing of ours. */
static void ps_frame_putback(struct page *page)
{
}

const struct movable_operations ps_frame_mops = {
	.isolate_page	= ps_frame_isolate,
	.migrate_page	= ps_frame_migrate,
	.putback_page	= ps_frame_putback,
};
