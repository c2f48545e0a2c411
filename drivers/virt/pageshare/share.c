// SPDX-License-Identifier: GPL-2.0
/*
 * The sharing engine: Xen's memory-sharing semantics on pages the module
 * owns.
 *
 * nominate(vm, gfn) turns the gfn's page into a frame in shared state: a
 * page of its own, outside every page cache, with the private page's
 * bytes; it gets a handle, a 64-bit number that is never 0, never reused
 * and names this version of the frame, and every mapping of it is
 * read-only. share() moves every gfn of the client's frame onto the
 * source's frame and frees the client's. A write to a gfn in shared state
 * arrives at page_mkwrite (the VMM's writes, KVM's through GUP with
 * FOLL_WRITE, any other GUP writer) and ends in ps_unshare_locked(): the
 * gfn gets a private copy in its VM's page cache, which a later share
 * needs a new handle for; the last sharer's departure ends the frame and
 * its handle. Every change of what backs a gfn zaps the gfn's PTEs in its VM's
 * own address_space; the MMU-notifier invalidation that the zap triggers
 * makes KVM drop its stage-2 entries, and KVM's next access faults the new
 * page in through GUP.
 *
 * A gfn's frame is found from its entry and the frame's metadata from the
 * page (page->private), so checking a handle is O(1) and there is no
 * handle table. A frame belongs to no VM: it lives while any gfn maps it.
 *
 * Lock order, for the whole driver:
 *
 *   inode_lock of a VM's file        (ftruncate(), before resize_sem)
 *   mmap_lock                        (the fault path; held by the core)
 *     ps_vm::resize_sem            (write: a size change; read: a punch,
 *                                     throughout)
 *       ps_vm::lock                  (a VM's size and mapping count)
 *         ps_size_limit::lock        (a mount's size limit; innermost)
 *       ps_vm::policy_sem, read side (share and add_to_physmap, of the
 *                                     two VMs they name, lower id first;
 *                                     that VM's SET_POLICY takes the
 *                                     write side)
 *         ps_ops_sem, read side      (every change of frames, and of
 *                                     entries other than a first touch;
 *                                     the audit takes the write side)
 *           ps_vms_mutex             (the table of VMs)
 *           page lock                (a frame's lock; of two frames, the
 *                                     lower pfn first)
 *             i_mmap_rwsem, PTE locks  (unmap_mapping_pages())
 *             ps_vm::pages xa_lock   (a VM's entries; innermost)
 *
 * What waits for what: a first touch (a hole becomes a private page) takes
 * only its VM's xa_lock, so nothing another VM's owner does, and not the
 * audit, delays it. A policy change waits for, and holds off, only the
 * share and add_to_physmap calls that name its own VM: the VMs on a frame
 * that such a call touches are either the two it names or VMs whose gfns
 * are on frames with other sharers, whose policies cannot change (EBUSY).
 * The audit holds off every sharing operation and copy-on-write for the
 * length of its walk; it needs CAP_SYS_ADMIN. Every read-side section of
 * ps_ops_sem is one operation on one entry or frame (the teardown, a
 * shrink and a punch take one per PS_FREE_BATCH gfns), so a writer waits
 * for a bounded amount of work before it gets in.
 *
 * An entry that names a page changes only under that page's lock, so a
 * fault that found a page, locked it and still finds it in the entry can
 * map it: whoever changes the entry next zaps after the fault is done.
 *
 * A zap is the costly part of every operation (the MMU-notifier round trip
 * into KVM, a TLB flush), and most gfns of a frame are never mapped once it
 * is made: nominate zaps the page, and then nothing maps it until a fault
 * does. So a frame's page carries PG_checked (owner_priv_1: the module owns
 * these pages) from the first fault that maps it until the frame ends, and
 * moving a gfn off a frame whose page never was mapped needs no zap: no PTE,
 * and so no stage-2 entry, can point at it. The fault sets the flag under
 * the page lock that every change of the entries holds.
 * There is no global lock on the nominate, share or unshare paths, and
 * no cacheline that two of them working on different VMs both write on
 * every operation (a CPU takes a new block of handles once in 256):
 * ps_ops_sem is a per-CPU rwsem whose read side touches no shared
 * cacheline, the module-wide counters are per CPU (struct ps_stats), and
 * each CPU hands out handles from a block of its own (ps_new_handle()).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/percpu-rwsem.h>
#include <linux/slab.h>
#include <linux/xxhash.h>

#include <linux/pageshare.h>

#include "pageshare.h"

DEFINE_STATIC_PERCPU_RWSEM(ps_ops_sem);

static struct kmem_cache *ps_frame_cache;

/*
 * Handles: each CPU takes a block of PS_HANDLE_BLOCK of them from the
 * global counter, with one atomic add, and hands them out one by one, so
 * that nominates on different CPUs do not write the counter's cacheline
 * each time. The counter is the end of the last block taken: no handle
 * above it was ever issued, which is what the audit checks. Handles are
 * unique and never 0 but not ordered: a task that moves to another CPU
 * may get a lower handle than its last one. A CPU that goes offline
 * keeps the rest of its block for when it comes back.
 */
#define PS_HANDLE_BLOCK		256

/**
 * struct ps_handle_block - A CPU's block of handles.
 * @next:	The next handle to hand out.
 * @end:	One past the block's last; @next == @end: take a new block.
 */
struct ps_handle_block {
	u64 next;
	u64 end;
};

static DEFINE_PER_CPU(struct ps_handle_block, ps_handle_block);
/* A line of its own: what nominates read (ps_frame_cache) stays shared. */
static atomic64_t ps_handles_reserved __cacheline_aligned_in_smp = ATOMIC64_INIT(0);

/**
 * ps_ops_begin() - Enter a section that changes entries, frames or counters.
 */
void ps_ops_begin(void)
{
	percpu_down_read(&ps_ops_sem);
}

/**
 * ps_ops_trybegin() - ps_ops_begin(), unless an audit holds changes off.
 *
 * For migration, which holds page locks: those nest inside ps_ops_sem.
 *
 * Return: whether the section was entered.
 */
bool ps_ops_trybegin(void)
{
	return percpu_down_read_trylock(&ps_ops_sem);
}

/**
 * ps_ops_end() - Leave it.
 */
void ps_ops_end(void)
{
	percpu_up_read(&ps_ops_sem);
}

/**
 * ps_ops_freeze() - Wait for every change to finish and hold off new ones.
 *
 * First touches go on (see the top of this file): the audit allows for them.
 *
 * Context: Process context; sleeps. Takes ps_ops_sem for writing.
 */
void ps_ops_freeze(void)
{
	percpu_down_write(&ps_ops_sem);
}

/**
 * ps_ops_thaw() - Let changes go on.
 *
 * Context: After ps_ops_freeze().
 */
void ps_ops_thaw(void)
{
	percpu_up_write(&ps_ops_sem);
}

/*
 * The sections of share and add_to_physmap: the policies of the two VMs
 * they name (lower id first), then the rest.
 */
static void ps_share_begin(struct ps_vm *a, struct ps_vm *b)
{
	if (a->id > b->id)
		swap(a, b);
	down_read(&a->policy_sem);
	if (b != a)
		down_read_nested(&b->policy_sem, SINGLE_DEPTH_NESTING);
	percpu_down_read(&ps_ops_sem);
}

static void ps_share_end(struct ps_vm *a, struct ps_vm *b)
{
	percpu_up_read(&ps_ops_sem);
	if (b != a)
		up_read(&b->policy_sem);
	up_read(&a->policy_sem);
}

/*
 * A VM's shared and nominated counts, and with them its multi count: gfns
 * on a frame with other sharers, which SET_POLICY reads in one go. Each
 * operation raises before it lowers, so a reader in between sees too many
 * such gfns, never too few.
 */
static void ps_count_shared(struct ps_vm *vm, long delta)
{
	atomic_long_add(delta, &vm->stats.shared_gfns);
	atomic_long_add(delta, &vm->stats.multi_gfns);
}

static void ps_count_nominated(struct ps_vm *vm, long delta)
{
	atomic_long_add(delta, &vm->stats.nominated_gfns);
	atomic_long_sub(delta, &vm->stats.multi_gfns);
}

/**
 * ps_handles_issued() - A bound on the handles given out so far.
 *
 * The end of the last block of handles that a CPU took: every handle
 * issued is at most this (some below it are yet to be issued).
 *
 * Context: Any context. A handle found under ps_ops_freeze() was taken in
 * a section that ended before, so it is at most what this returns then.
 * Return: the bound, 0 if no handle was issued.
 */
u64 ps_handles_issued(void)
{
	return atomic64_read(&ps_handles_reserved);
}

/* A new handle: unique, never 0 (the first block starts at 1). */
static u64 ps_new_handle(void)
{
	struct ps_handle_block *b = get_cpu_ptr(&ps_handle_block);
	u64 handle;

	/* Preemption is off: no other task takes handles of this block. */
	if (b->next == b->end) {
		b->end = atomic64_add_return(PS_HANDLE_BLOCK, &ps_handles_reserved) + 1;
		b->next = b->end - PS_HANDLE_BLOCK;
	}
	handle = b->next++;
	put_cpu_ptr(&ps_handle_block);
	return handle;
}

/**
 * ps_share_init() - Create the frame cache.
 *
 * Return: 0 or -ENOMEM.
 */
int ps_share_init(void)
{
	ps_frame_cache = KMEM_CACHE(ps_frame, 0);
	return ps_frame_cache ? 0 : -ENOMEM;
}

/**
 * ps_share_exit() - Destroy it; every frame must be gone.
 */
void ps_share_exit(void)
{
	kmem_cache_destroy(ps_frame_cache);
}

static void ps_lock_two(struct page *a, struct page *b)
{
	if (a == b) {
		folio_lock(page_folio(a));
		return;
	}
	if (page_to_pfn(a) > page_to_pfn(b))
		swap(a, b);
	folio_lock(page_folio(a));
	folio_lock(page_folio(b));
}

static void ps_unlock_two(struct page *a, struct page *b)
{
	folio_unlock(page_folio(a));
	if (a != b)
		folio_unlock(page_folio(b));
}

static bool ps_entry_is(struct ps_vm *vm, pgoff_t gfn, void *entry)
{
	return xa_load(&vm->pages, gfn) == entry;
}

/*
 * Points a gfn's entry elsewhere: the slot exists, so nothing allocates.
 * The entry's mark says whether it is private, and changes with it.
 */
static void ps_set_entry(struct ps_vm *vm, pgoff_t gfn, void *entry)
{
	xa_lock(&vm->pages);
	__xa_store(&vm->pages, gfn, entry, 0);
	if (ps_entry_shared(entry))
		__xa_clear_mark(&vm->pages, gfn, PS_MARK_PRIVATE);
	else
		__xa_set_mark(&vm->pages, gfn, PS_MARK_PRIVATE);
	xa_unlock(&vm->pages);
}

static void ps_account_private(struct ps_vm *vm, long delta)
{
	atomic_long_add(delta, &vm->stats.private_pages);
	ps_stat_add(PS_STAT_PRIVATE_PAGES, delta);
}

/* A frame with a single sharer is "nominated": keep that VM's count. */
static void ps_frame_count_nominated(struct ps_frame *frame, long delta)
{
	struct ps_vm *vm;
	u32 pos = 0;
	u64 key;

	if (frame->nr_sharers != 1 || !ps_rmap_next(frame, &pos, &key))
		return;
	vm = ps_vm_find(ps_rmap_key_vm(key));
	if (!WARN_ON_ONCE(!vm))
		ps_count_nominated(vm, delta);
}

/* Zaps @gfn if the frame's page may be mapped (see the top of the file). */
static void ps_frame_zap(struct page *page, struct ps_vm *vm, pgoff_t gfn)
{
	if (folio_test_checked(page_folio(page)))
		ps_vm_zap(vm, gfn);
}

/*
 * Whether @page may be pinned for DMA. An order-0 folio has no pin count
 * of its own: FOLL_PIN adds GUP_PIN_COUNTING_BIAS references, which is
 * what folio_maybe_dma_pinned() tests for. A frame mapped by a thousand
 * gfns, or a private page by a thousand PTEs, has a thousand references
 * without any pin, so the mappings are taken off first; what is left is
 * the entry's or the frame's, the callers' and pins.
 */
static bool ps_page_pinned(struct page *page)
{
	struct folio *folio = page_folio(page);

	return folio_ref_count(folio) - folio_mapcount(folio) >= GUP_PIN_COUNTING_BIAS;
}

/*
 * A page for a new frame, near @nid, charged to @vm's memory cgroup (as
 * kernel memory: a module can charge nothing else outside a page cache),
 * locked, and movable through migrate.c before anyone can see it.
 *
 * Not from ZONE_MOVABLE (no __GFP_MOVABLE), though compaction moves it: a
 * long-term pin of a page there must first migrate it out, which GUP can
 * do only for LRU folios, and it would retry for ever on a frame.
 */
static struct page *ps_frame_page_alloc(struct ps_vm *vm, int nid)
{
	gfp_t gfp = GFP_HIGHUSER | __GFP_ACCOUNT | __GFP_NOWARN;
	struct mem_cgroup *old_memcg = set_active_memcg(vm->memcg);
	struct folio *folio = __folio_alloc_node(gfp, 0, nid);

	set_active_memcg(old_memcg);
	if (!folio)
		return NULL;
	__folio_set_locked(folio);
	__SetPageMovable(folio_page(folio, 0), &ps_frame_mops);
	return folio_page(folio, 0);
}

/*
 * The frame ends: its page is no frame and no longer movable (a migration
 * that isolated it meanwhile sees that and lets it go). The caller drops
 * the frame's reference.
 */
static void ps_frame_free(struct page *page, struct ps_frame *frame)
{
	VM_WARN_ON_FOLIO(!folio_test_locked(page_folio(page)), page_folio(page));
	__ClearPageMovable(page);
	folio_clear_checked(page_folio(page));
	ps_rmap_free(frame);
	set_page_private(page, 0);
	kmem_cache_free(ps_frame_cache, frame);
	ps_stat_sub(PS_STAT_META_BYTES, kmem_cache_size(ps_frame_cache));
	ps_stat_dec(PS_STAT_SHARED_FRAMES);
}

/*
 * Looks up two gfns (@vb NULL: one), locks their pages in order and checks
 * that the entries did not change meanwhile. Returns 0 with the pages
 * locked and referenced, -EAGAIN to look again, or -ENOENT / -ENODATA
 * when the first / the second gfn has no page.
 */
static int ps_lock_gfns(struct ps_vm *va, pgoff_t ga, struct page **pa, bool *sa,
			struct ps_vm *vb, pgoff_t gb, struct page **pb, bool *sb)
{
	*pa = ps_vm_lookup(va, ga, sa);
	*pb = vb ? ps_vm_lookup(vb, gb, sb) : NULL;
	if (!*pa || (vb && !*pb)) {
		if (*pa)
			put_page(*pa);
		if (*pb)
			put_page(*pb);
		return !*pa ? -ENOENT : -ENODATA;
	}
	ps_lock_two(*pa, *pb ? *pb : *pa);
	if (ps_entry_is(va, ga, *sa ? ps_shared_entry(*pa) : *pa) &&
	    (!vb || ps_entry_is(vb, gb, *sb ? ps_shared_entry(*pb) : *pb)))
		return 0;
	ps_unlock_two(*pa, *pb ? *pb : *pa);
	put_page(*pa);
	if (*pb)
		put_page(*pb);
	return -EAGAIN;
}

/* One gfn: its page locked and referenced, or -ENOENT for a hole. */
static int ps_lock_gfn(struct ps_vm *vm, pgoff_t gfn, struct page **page, bool *shared)
{
	struct page *none;
	int ret;

	do {
		ret = ps_lock_gfns(vm, gfn, page, shared, NULL, 0, &none, NULL);
	} while (ret == -EAGAIN);
	return ret;
}

static void ps_unlock_gfns(struct page *pa, struct page *pb)
{
	ps_unlock_two(pa, pb ? pb : pa);
	put_page(pa);
	if (pb)
		put_page(pb);
}

/*
 * @gfn's page: private and mapped (1), private (0), or a frame, a hole or
 * a page pinned for DMA, which nominate refuses and so must not unmap (-1).
 */
static int ps_nominate_peek(struct ps_vm *vm, pgoff_t gfn)
{
	struct page *page;
	void *entry;
	int ret = -1;

	/* The entry's page cannot go while the entry names it. */
	xa_lock(&vm->pages);
	entry = xa_load(&vm->pages, gfn);
	if (entry && !ps_entry_shared(entry)) {
		page = ps_entry_page(entry);
		if (!ps_page_pinned(page))
			ret = folio_mapped(page_folio(page));
	}
	xa_unlock(&vm->pages);
	return ret;
}

/**
 * ps_nominate_zap() - Unmap gfns about to be nominated, in runs.
 * @vm: the VM.
 * @gfn: the first gfn.
 * @nr: how many consecutive gfns from @gfn.
 *
 * A nominate zaps a mapped private page, one MMU-notifier round into KVM
 * and one TLB flush each. For a batch of consecutive gfns, this does it
 * once per stretch of private pages: over the range from the first
 * mapped one to the last. Frames (read-only everywhere: a nominate leaves
 * them alone), holes and pages pinned for DMA end a stretch, so that their
 * PTEs stay. What it
 * sees is only a hint, and nothing depends on it: ps_nominate() looks
 * again under the page lock and zaps a page mapped meanwhile.
 *
 * Context: Process context; may sleep. Takes the VM's xa_lock for each gfn,
 * then the locks of ps_vm_zap_range(); none of the module's may be held.
 */
void ps_nominate_zap(struct ps_vm *vm, pgoff_t gfn, pgoff_t nr)
{
	pgoff_t i, first = 0, last = 0;
	bool pending = false;
	int state;

	/* Below the size, gfn + i cannot wrap around. */
	for (i = 0; i < nr && ps_gfn_valid(vm, gfn + i); i++) {
		state = ps_nominate_peek(vm, gfn + i);
		if (state > 0) {
			if (!pending)
				first = i;
			pending = true;
			last = i;
		} else if (state < 0 && pending) {
			ps_vm_zap_range(vm, gfn + first, last - first + 1);
			pending = false;
		}
	}
	if (pending)
		ps_vm_zap_range(vm, gfn + first, last - first + 1);
}

/**
 * ps_nominate() - Put a gfn's page in shared state and name its version.
 * @vm: the VM.
 * @gfn: the gfn.
 * @handle: out: the handle.
 * @hash: out, if not NULL: xxh64 of the page's bytes.
 *
 * Context: Process context; takes ps_ops_sem (read), then the gfn's page
 * lock, and zaps the gfn under it if some PTE maps the page.
 * Return: 0; -ENXIO past the VM's size; -ENODATA for a gfn without a page;
 * -EHWPOISON if the page has a memory error; -EBUSY if the page has
 * references beyond its mappings; -ENOMEM.
 */
int ps_nominate(struct ps_vm *vm, pgoff_t gfn, u64 *handle, u64 *hash)
{
	struct ps_frame *frame;
	struct page *page, *fp;
	bool shared;
	int ret;

	if (!ps_gfn_valid(vm, gfn))
		return -ENXIO;

	ps_ops_begin();
	ret = ps_lock_gfn(vm, gfn, &page, &shared);
	if (ret) {
		ps_ops_end();
		return -ENODATA;
	}
	/* Its bytes are lost: neither hashed (a machine check) nor shared. */
	if (PageHWPoison(page)) {
		ret = -EHWPOISON;
		goto out;
	}

	if (shared) {
		frame = ps_page_frame(page);
		goto done;
	}
	/*
	 * Pinned for DMA or direct I/O, the page may be written behind our
	 * back: the count check below would refuse it, but only after the
	 * zap had cost its VM a fault.
	 */
	if (ps_page_pinned(page)) {
		ret = -EBUSY;
		goto out;
	}

	frame = kmem_cache_zalloc(ps_frame_cache, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	fp = frame ? ps_frame_page_alloc(vm, page_to_nid(page)) : NULL;
	if (!fp) {
		if (frame)
			kmem_cache_free(ps_frame_cache, frame);
		ret = -ENOMEM;
		goto out;
	}

	/*
	 * With every PTE gone (and KVM's stage-2 entries with them), the
	 * page's only references are the page cache's (which the entry
	 * shares) and ours. Any other is a GUP pin or DMA that could write
	 * behind our back: refuse. Off the LRU, one more is the LRU-add
	 * batch's of the CPU that faulted it in (a module cannot drain it)
	 * or a compaction's isolation: neither writes the page, and the
	 * page is not ours after this anyway.
	 *
	 * Only a page that some PTE maps needs the zap. A PTE of a private
	 * page is only ever made under its page lock, which we hold (fork()
	 * copies only PTEs that exist): the fault path returns the page
	 * locked (->fault and ->page_mkwrite both answer VM_FAULT_LOCKED
	 * after checking the entry, and there is no ->map_pages), and
	 * migration maps the new page while it is locked. So folio_mapped()
	 * is exact here and no PTE can appear before the entry names the
	 * frame; a stage-2 entry of KVM's exists only while the PTE it came
	 * from does. A PTE that someone else's zap took away may still be in
	 * a TLB until that zap's flush, but until then the zap also holds a
	 * reference to the page, which the count below refuses. A batch
	 * unmaps its gfns beforehand in runs (ps_nominate_zap()), one flush
	 * for many, so that most of them are not mapped by now.
	 */
	if (folio_mapped(page_folio(page)))
		ps_vm_zap(vm, gfn);
	if (page_count(page) != 2 + !folio_test_lru(page_folio(page))) {
		ret = -EBUSY;
		goto out_free;
	}
	/*
	 * The frame is a page of its own, outside any page cache, because
	 * other VMs' gfns will map it (see vm.c). The copy is the price of
	 * that: a page-cache folio cannot leave its LRU from a module.
	 */
	if (copy_mc_highpage(fp, page)) {
		ret = -EHWPOISON;
		goto out_free;
	}

	frame->handle = ps_new_handle();
	ps_rmap_add(frame, ps_rmap_key(vm->id, gfn));
	set_page_private(fp, (unsigned long)frame);
	ps_set_entry(vm, gfn, ps_shared_entry(fp));
	ps_vm_remove_folio(vm, page_folio(page));
	/* The entry names the frame now: the rest of the work is on it. */
	folio_unlock(page_folio(page));
	put_page(page);
	get_page(fp);		/* ours, as for the page it replaces */
	page = fp;

	ps_stat_add(PS_STAT_META_BYTES, kmem_cache_size(ps_frame_cache));
	ps_stat_inc(PS_STAT_SHARED_FRAMES);
	ps_account_private(vm, -1);
	ps_count_shared(vm, 1);
	ps_count_nominated(vm, 1);

done:
	*handle = frame->handle;
	if (hash) {
		void *p = kmap_local_page(page);

		/* Read-only everywhere and locked: the bytes cannot change. */
		*hash = xxh64(p, PAGE_SIZE, 0);
		kunmap_local(p);
	}
out:
	ps_unlock_gfns(page, NULL);
	ps_ops_end();
	return ret;

out_free:
	__ClearPageMovable(fp);
	folio_unlock(page_folio(fp));
	put_page(fp);
	kmem_cache_free(ps_frame_cache, frame);
	goto out;
}

/* Whether @handle names @gfn's current version. */
static bool ps_check_handle(struct ps_vm *vm, pgoff_t gfn, u64 handle)
{
	struct page *page;
	bool shared, ok;

	if (ps_lock_gfn(vm, gfn, &page, &shared))
		return false;
	ok = shared && ps_page_frame(page)->handle == handle;
	ps_unlock_gfns(page, NULL);
	return ok;
}

/* Whether @frame has a sharer in neither @a nor @b. Under its page lock. */
static bool ps_frame_has_others(const struct ps_frame *frame, struct ps_vm *a,
				struct ps_vm *b)
{
	u32 pos = 0, n = 0;
	u64 key;

	while (ps_rmap_next(frame, &pos, &key)) {
		if (ps_rmap_key_vm(key) != a->id && ps_rmap_key_vm(key) != b->id)
			return true;
		/* Up to max_sharers keys, under two page locks. */
		if (!(++n % 1024))
			cond_resched();
	}
	return false;
}

static bool ps_pages_differ(struct page *a, struct page *b)
{
	void *pa = kmap_local_page(a);
	void *pb = kmap_local_page(b);
	bool differ = memcmp(pa, pb, PAGE_SIZE) != 0;

	kunmap_local(pb);
	kunmap_local(pa);
	return differ;
}

/**
 * ps_share() - Move every gfn of the client's frame onto the source's frame.
 * @svm: the source VM.
 * @sgfn: the source gfn.
 * @shandle: the source gfn's current handle.
 * @cvm: the client VM; may be @svm.
 * @cgfn: the client gfn.
 * @chandle: the client gfn's current handle.
 * @compare: refuse if the two pages' bytes differ.
 *
 * Every gfn on the client frame moves, so a share changes what they read.
 * The caller holds descriptors of @svm and @cvm and vouches for their
 * bytes; if the client frame also backs a gfn of any other VM, the bytes
 * are compared whatever @compare says.
 *
 * Context: Process context; takes the two VMs' policy_sem and ps_ops_sem
 * (read), then the two frames' page locks.
 * Return: 0, also when both gfns are already on one frame; -EINVAL for a
 * gfn shared with itself; -ENXIO past a VM's size; -EACCES if a policy
 * forbids it (policy.c); -ESTALE for a stale source handle; -EIDRM for a
 * stale client handle; -EHWPOISON if either frame has a memory error;
 * -EBUSY if either page is pinned for DMA; -EILSEQ if the bytes differ
 * and were compared; -EMLINK past max_sharers; -ENOMEM.
 * Nothing changes on failure.
 */
int ps_share(struct ps_vm *svm, pgoff_t sgfn, u64 shandle,
	     struct ps_vm *cvm, pgoff_t cgfn, u64 chandle, bool compare)
{
	struct ps_frame *sframe, *cframe;
	struct page *sp, *cp;
	bool sshared, cshared;
	u32 pos = 0, moved = 0;
	u64 key;
	int ret;

	if (!ps_gfn_valid(svm, sgfn) || !ps_gfn_valid(cvm, cgfn))
		return -ENXIO;
	if (svm == cvm && sgfn == cgfn)
		return -EINVAL;

	ps_share_begin(svm, cvm);
	if (!ps_policy_pair_ok(svm, cvm)) {
		ps_share_end(svm, cvm);
		return -EACCES;
	}
	do {
		ret = ps_lock_gfns(svm, sgfn, &sp, &sshared, cvm, cgfn, &cp, &cshared);
	} while (ret == -EAGAIN);
	if (ret == -ENODATA) {
		/* The client is a hole; the source's handle is checked first. */
		ret = ps_check_handle(svm, sgfn, shandle) ? -EIDRM : -ESTALE;
		ps_share_end(svm, cvm);
		return ret;
	}
	if (ret) {
		ps_share_end(svm, cvm);
		/* A gfn without a page has no version for a handle to name. */
		return -ESTALE;
	}

	sframe = sshared ? ps_page_frame(sp) : NULL;
	cframe = cshared ? ps_page_frame(cp) : NULL;
	if (!sframe || sframe->handle != shandle) {
		ret = -ESTALE;
		goto out;
	}
	if (!cframe || cframe->handle != chandle) {
		ret = -EIDRM;
		goto out;
	}
	if (sp == cp)
		goto out;
	if (!ps_policy_frames_ok(sframe, cvm, cframe)) {
		ret = -EACCES;
		goto out;
	}
	if (PageHWPoison(sp) || PageHWPoison(cp)) {
		ret = -EHWPOISON;
		goto out;
	}
	/*
	 * A frame pinned for DMA since its nominate (a read-only pin through
	 * a read-only PTE) must not gain sharers whose writes the device
	 * would never see.
	 */
	if (ps_page_pinned(sp) || ps_page_pinned(cp)) {
		ret = -EBUSY;
		goto out;
	}
	/*
	 * The caller vouches for the bytes of the two VMs it named, not for
	 * a third VM's gfns on the client frame: those may change what they
	 * read only if the bytes are equal. Both frames are locked and
	 * read-only everywhere, so the compare is race-free.
	 */
	if ((compare || ps_frame_has_others(cframe, svm, cvm)) &&
	    ps_pages_differ(sp, cp)) {
		ret = -EILSEQ;
		goto out;
	}
	if ((u64)sframe->nr_sharers + cframe->nr_sharers > READ_ONCE(ps_max_sharers)) {
		ret = -EMLINK;
		goto out;
	}
	ret = ps_rmap_reserve(sframe, cframe->nr_sharers);
	if (ret)
		goto out;

	ps_frame_count_nominated(sframe, -1);
	ps_frame_count_nominated(cframe, -1);
	while (ps_rmap_next(cframe, &pos, &key)) {
		struct ps_vm *vm = ps_vm_find(ps_rmap_key_vm(key));
		pgoff_t gfn = ps_rmap_key_gfn(key);

		ps_set_entry(vm, gfn, ps_shared_entry(sp));
		ps_rmap_add(sframe, key);
		ps_frame_zap(cp, vm, gfn);
		/* Up to max_sharers gfns; the page locks are sleeping locks. */
		if (!(++moved % 1024))
			cond_resched();
	}
	ps_frame_free(cp, cframe);
	/* The client frame's own reference; ours goes below. */
	put_page(cp);
	ps_stat_inc(PS_STAT_SAVED_FRAMES);
out:
	ps_unlock_gfns(sp, cp);
	ps_share_end(svm, cvm);
	return ret;
}

/**
 * ps_add_to_physmap() - Map a frame in shared state into a gfn without a page.
 * @svm: the source VM.
 * @sgfn: the source gfn.
 * @shandle: the source gfn's current handle.
 * @cvm: the client VM.
 * @cgfn: the client gfn, a hole.
 *
 * Context: Process context; takes the two VMs' policy_sem and ps_ops_sem
 * (read), then the source frame's page lock.
 * Return: 0; -ENXIO past a VM's size; -EACCES if a policy forbids it;
 * -ESTALE for a stale source handle; -EHWPOISON if the frame has a memory
 * error; -EEXIST if @cgfn has a page; -EMLINK past max_sharers; -ENOMEM.
 */
int ps_add_to_physmap(struct ps_vm *svm, pgoff_t sgfn, u64 shandle,
		      struct ps_vm *cvm, pgoff_t cgfn)
{
	struct ps_frame *frame;
	struct page *sp;
	bool shared;
	int ret;

	if (!ps_gfn_valid(svm, sgfn) || !ps_gfn_valid(cvm, cgfn))
		return -ENXIO;

	ps_share_begin(svm, cvm);
	if (!ps_policy_pair_ok(svm, cvm)) {
		ps_share_end(svm, cvm);
		return -EACCES;
	}
	ret = ps_lock_gfn(svm, sgfn, &sp, &shared);
	if (ret) {
		ps_share_end(svm, cvm);
		return -ESTALE;
	}

	frame = shared ? ps_page_frame(sp) : NULL;
	if (!frame || frame->handle != shandle) {
		ret = -ESTALE;
		goto out;
	}
	if (PageHWPoison(sp)) {
		ret = -EHWPOISON;
		goto out;
	}
	if (xa_load(&cvm->pages, cgfn)) {
		ret = -EEXIST;
		goto out;
	}
	if (!ps_policy_frames_ok(frame, cvm, NULL)) {
		ret = -EACCES;
		goto out;
	}
	if ((u64)frame->nr_sharers + 1 > READ_ONCE(ps_max_sharers)) {
		ret = -EMLINK;
		goto out;
	}
	ret = ps_rmap_reserve(frame, 1);
	if (ret)
		goto out;

	/* A first touch of the hole may race with us: whoever fills it wins. */
	ret = ps_vm_fill_hole(cvm, cgfn, ps_shared_entry(sp));
	if (ret)
		goto out;

	ps_frame_count_nominated(frame, -1);
	ps_rmap_add(frame, ps_rmap_key(cvm->id, cgfn));
	ps_count_shared(cvm, 1);
	ps_stat_inc(PS_STAT_SAVED_FRAMES);
out:
	ps_unlock_gfns(sp, NULL);
	ps_share_end(svm, cvm);
	return ret;
}

/**
 * ps_unshare_locked() - Give a gfn a page of its own: the write path.
 * @vm: the VM.
 * @gfn: the gfn.
 * @page: the page the caller found behind @gfn, locked, and referenced
 *        exactly once by the caller.
 * @vmf: the write fault, whose mapping's memory policy places a copy; NULL
 *	 for PAGESHARE_UNSHARE.
 *
 * If @page is a frame in shared state, @gfn gets a copy in its VM's page
 * cache and leaves the frame: its other sharers keep the old bytes and the
 * handle, and a frame left without sharers ends, its page living on only
 * as long as whoever still holds it. The last sharer gets a copy too: a
 * frame is outside every page cache and cannot enter one (vm.c), and the
 * copy costs what the in-place reuse's check of the reference count
 * spared, only when it succeeded.
 *
 * Context: Process context, inside ps_ops_begin(), with @page locked.
 * Return: 0 if @page already is @gfn's private page; 1 if @gfn got a new
 * page; -EAGAIN if @gfn's entry no longer names @page, or a first touch of
 * the gfn that lost its race is still leaving the page cache; -EHWPOISON
 * if @page has a memory error (its bytes are lost; a copy that meets an
 * error not reported yet is caught by copy_mc_highpage()); -ENOMEM.
 * Nothing changes unless it returns 1.
 */
int ps_unshare_locked(struct ps_vm *vm, pgoff_t gfn, struct page *page,
		      const struct vm_fault *vmf)
{
	void *entry = xa_load(&vm->pages, gfn);
	struct ps_frame *frame;
	struct folio *copy;
	bool last;

	percpu_rwsem_assert_held(&ps_ops_sem);
	VM_WARN_ON_FOLIO(!folio_test_locked(page_folio(page)), page_folio(page));
	if (ps_entry_page(entry) != page)
		return -EAGAIN;
	if (!ps_entry_shared(entry))
		return 0;

	frame = ps_page_frame(page);
	last = frame->nr_sharers == 1;
	/* Its bytes are lost; and a copy must not consume an error. */
	if (PageHWPoison(page))
		return -EHWPOISON;
	copy = ps_vm_new_folio(vm, gfn, page, vmf);
	if (IS_ERR(copy))
		return PTR_ERR(copy) == -EEXIST ? -EAGAIN : PTR_ERR(copy);

	WARN_ON_ONCE(!ps_rmap_del(frame, ps_rmap_key(vm->id, gfn)));
	ps_set_entry(vm, gfn, folio_page(copy, 0));
	/* Before the copy is unlocked: a fault may map the copy from then on. */
	ps_frame_zap(page, vm, gfn);
	folio_unlock(copy);
	folio_put(copy);	/* the entry shares the page cache's */
	if (last) {
		ps_frame_free(page, frame);
		put_page(page);	/* the frame's; the caller still has one */
		ps_count_nominated(vm, -1);
	} else {
		ps_frame_count_nominated(frame, 1);
		ps_stat_dec(PS_STAT_SAVED_FRAMES);
	}
	atomic_long_inc(&vm->stats.cow_breaks);
	ps_count_shared(vm, -1);
	ps_account_private(vm, 1);
	return 1;
}

/**
 * ps_unshare() - Give a gfn a page of its own, as a write would.
 * @vm: the VM.
 * @gfn: the gfn; a private gfn or a hole is left alone.
 *
 * Context: Process context; takes ps_ops_sem (read), then the gfn's page
 * lock.
 * Return: 0; -ENXIO past the VM's size; -EHWPOISON if the gfn's frame has
 * a memory error; -ENOMEM.
 */
int ps_unshare(struct ps_vm *vm, pgoff_t gfn)
{
	struct page *page;
	bool shared;
	int ret = 0;

	if (!ps_gfn_valid(vm, gfn))
		return -ENXIO;

	do {
		ret = 0;
		ps_ops_begin();
		if (!ps_lock_gfn(vm, gfn, &page, &shared)) {
			if (shared)
				ret = ps_unshare_locked(vm, gfn, page, NULL);
			ps_unlock_gfns(page, NULL);
		}
		ps_ops_end();
		/* Only a first touch leaving the page cache: short. */
		if (ret == -EAGAIN)
			cond_resched();
	} while (ret == -EAGAIN);
	return ret < 0 ? ret : 0;
}

/**
 * ps_query() - Tell what backs a gfn.
 * @vm: the VM.
 * @gfn: the gfn.
 * @handle: out: its handle, 0 if it has none.
 * @sharers: out: gfns on its frame (0 for a hole, 1 for a private page).
 * @state: out: PAGESHARE_STATE_*.
 *
 * Return: 0 or -ENXIO past the VM's size.
 */
int ps_query(struct ps_vm *vm, pgoff_t gfn, u64 *handle, u32 *sharers,
	     u32 *state)
{
	struct ps_frame *frame;
	struct page *page;
	bool shared;

	if (!ps_gfn_valid(vm, gfn))
		return -ENXIO;

	*handle = 0;
	*sharers = 0;
	*state = PAGESHARE_STATE_HOLE;
	if (ps_lock_gfn(vm, gfn, &page, &shared))
		return 0;

	*sharers = 1;
	*state = PAGESHARE_STATE_PRIVATE;
	if (shared) {
		frame = ps_page_frame(page);
		*handle = frame->handle;
		*sharers = frame->nr_sharers;
		*state = frame->nr_sharers == 1 ? PAGESHARE_STATE_NOMINATED :
						  PAGESHARE_STATE_SHARED;
	}
	ps_unlock_gfns(page, NULL);
	return 0;
}

/**
 * ps_release_gfn() - Turn a gfn into a hole.
 * @vm: the VM, being destroyed or shrunk (nothing maps it), or punched
 *	(ps_vm_punch(), mapped or not).
 * @gfn: the gfn.
 * @fbatch: where the page goes once released; the caller releases the
 *	    batch (folio_batch_release()), which frees the pages nobody else
 *	    holds with one LRU lock for all of them, as truncation does.
 *
 * The caller is inside ps_ops_begin(). A private page goes with its gfn; a
 * frame in shared state loses a sharer, and goes with its last one. The
 * page is looked up, referenced and locked here, and the entry checked
 * again under the lock, like everywhere else: a share or an unshare
 * through another VM may change the entry until then.
 *
 * A PTE of @vm that still maps the page is zapped before the page lock
 * goes: the fault path maps a page only under that lock and only while
 * the entry is the page, so none is left behind, and nothing of @vm reads
 * a frame through a PTE its mapcount counts but its sharers do not.
 */
void ps_release_gfn(struct ps_vm *vm, pgoff_t gfn, struct folio_batch *fbatch)
{
	struct ps_frame *frame;
	struct page *page;
	bool shared;

	percpu_rwsem_assert_held(&ps_ops_sem);
	if (ps_lock_gfn(vm, gfn, &page, &shared))
		return;

	/*
	 * A gfn that leaves its frame without turning private is counted
	 * with the erase, under one hold of the lock: PAGESHARE_GET_PRIVATE
	 * reads the count under it after its walk, so a caller whose two
	 * calls read the same count knows that no gfn of the VM left a frame
	 * this way in between.
	 */
	xa_lock(&vm->pages);
	__xa_erase(&vm->pages, gfn);
	if (shared)
		atomic64_inc(&vm->discards);
	xa_unlock(&vm->pages);
	/* Only this VM's mappings: a no-op when nothing of it maps the gfn. */
	if (folio_mapped(page_folio(page)))
		ps_vm_zap(vm, gfn);
	if (!shared) {
		ps_account_private(vm, -1);
		ps_vm_remove_folio(vm, page_folio(page));
		goto out;
	}

	frame = ps_page_frame(page);
	ps_frame_count_nominated(frame, -1);
	WARN_ON_ONCE(!ps_rmap_del(frame, ps_rmap_key(vm->id, gfn)));
	ps_count_shared(vm, -1);
	if (!frame->nr_sharers) {
		ps_frame_free(page, frame);
		put_page(page);		/* the frame's reference */
	} else {
		ps_frame_count_nominated(frame, 1);
		ps_stat_dec(PS_STAT_SAVED_FRAMES);
	}
out:
	/* Our reference is most likely the last: let it go with others. */
	folio_unlock(page_folio(page));
	if (!folio_batch_add(fbatch, page_folio(page)))
		folio_batch_release(fbatch);
}
