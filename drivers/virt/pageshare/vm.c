// SPDX-License-Identifier: GPL-2.0
/*
 * One VM's memory: what a file of a pageshare mount names, its pages
 * and the fault path that hands them to the VMM's mappings and, through
 * them, to KVM.
 *
 * A private page lives in the VM inode's page cache, at its gfn: user
 * memory of the VM's memory cgroup ("file" in memory.stat), on the
 * unevictable LRU, placed by the faulting mapping's memory policy, movable
 * by compaction and memory offline through ps_vm_aops.migrate_folio, and
 * with a real folio->mapping, so GUP-fast (KVM's stage-2 faults) takes it.
 * The VM's own xarray (ps_vm::pages) is what names a gfn's page; for a
 * private gfn it names the page-cache folio and borrows the page cache's
 * reference, so migration's reference count holds (folio_expected_refs()).
 * A frame in shared state cannot sit in several page caches: it is a page
 * of its own, outside any, movable through migrate.c's movable_operations.
 *
 * Pages reach page tables through vm_fault::page, and KVM reaches them
 * through GUP on the VMM's mapping. Every change of what backs a gfn must
 * zap the VMM's PTEs with unmap_mapping_range() on this VM's own
 * address_space: the MMU-notifier invalidation that zapping triggers is
 * what makes KVM drop its stage-2 entries.
 *
 * The lock order is written down in share.c, which owns it.
 */

#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/pseudo_fs.h>
#include <linux/cred.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <linux/pageshare.h>

#include "pageshare.h"

/* "pshv": the private filesystem that gives each VM its own inode. */
#define PAGESHARE_VM_MAGIC	0x70736876

static struct vfsmount *ps_mnt;

/*
 * id -> struct ps_vm, for everything that must find a VM by its id. A VM
 * stays here until its last gfn has left every frame, so a frame's
 * reverse map always names VMs that can be found.
 */
static DEFINE_XARRAY_ALLOC1(ps_vms);
static DEFINE_MUTEX(ps_vms_mutex);
static u32 ps_vms_next_id;

/**
 * ps_vm_find() - Find a VM by id.
 * @id: the id.
 *
 * The caller must know the VM exists: it holds the lock of a frame that
 * one of the VM's gfns is on, or ps_vms_lock().
 *
 * Return: the VM or NULL.
 */
struct ps_vm *ps_vm_find(u32 id)
{
	return xa_load(&ps_vms, id);
}

/**
 * ps_vms_lock() - Hold off VM creation and destruction.
 */
void ps_vms_lock(void)
{
	mutex_lock(&ps_vms_mutex);
}

/**
 * ps_vms_unlock() - Allow them again.
 */
void ps_vms_unlock(void)
{
	mutex_unlock(&ps_vms_mutex);
}

/**
 * ps_vms_next() - Iterate over the VMs under ps_vms_lock().
 * @id: cursor, 0 to start.
 *
 * Return: the next VM or NULL.
 */
struct ps_vm *ps_vms_next(unsigned long *id)
{
	return xa_find_after(&ps_vms, id, ULONG_MAX, XA_PRESENT);
}

/*
 * A VM lives exactly as long as its inode on the private filesystem: the
 * inode's last reference going (the evict of a file on a pageshare
 * mount, the last descriptor PAGESHARE_OPEN_VM made) frees the VM. Every
 * path to a VM holds that inode.
 */
static void ps_vm_evict_inode(struct inode *inode)
{
	struct ps_vm *vm = inode->i_private;

	if (vm)
		ps_vm_destroy(vm);
	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
}

static const struct super_operations ps_vm_sops = {
	.statfs		= simple_statfs,
	.drop_inode	= generic_delete_inode,
	.evict_inode	= ps_vm_evict_inode,
};

static int ps_vm_init_fs_context(struct fs_context *fc)
{
	struct pseudo_fs_context *ctx = init_pseudo(fc, PAGESHARE_VM_MAGIC);

	if (!ctx)
		return -ENOMEM;
	ctx->ops = &ps_vm_sops;
	fc->s_iflags |= SB_I_NOEXEC | SB_I_NODEV;
	return 0;
}

/* Never registered: only kern_mount() sees it. */
static struct file_system_type ps_vm_fs_type = {
	.name		 = "pageshare_vm",
	.init_fs_context = ps_vm_init_fs_context,
	.kill_sb	 = kill_anon_super,
};

/**
 * ps_fs_init() - Mount the private filesystem that VM inodes come from.
 *
 * Return: 0 or a negative errno.
 */
int ps_fs_init(void)
{
	ps_mnt = kern_mount(&ps_vm_fs_type);
	return PTR_ERR_OR_ZERO(ps_mnt);
}

/**
 * ps_fs_exit() - Unmount it again; every VM must be gone.
 */
void ps_fs_exit(void)
{
	WARN_ON(!xa_empty(&ps_vms));
	kern_unmount(ps_mnt);
}

/* What a VM holds outside itself, dropped before its kobject goes. */
static void ps_vm_put_refs(struct ps_vm *vm)
{
	mem_cgroup_put(vm->memcg);
	vm->memcg = NULL;
}

/**
 * ps_vm_create() - Create an empty VM: no size, no pages.
 *
 * The VM's pages will be charged to the memory cgroup of the calling task.
 * The caller owns the one reference to @vm->inode, and the VM lives until
 * the last reference to that inode goes (ps_vm_evict_inode()). Until the
 * caller calls ps_vm_publish(), PAGESHARE_OPEN_VM does not find it.
 *
 * Context: Process context; takes ps_vms_mutex.
 * Return: the VM, or an ERR_PTR(): -ENOMEM, or -ENOSPC when every VM id
 * is in use.
 */
struct ps_vm *ps_vm_create(void)
{
	struct ps_vm *vm;
	int ret;

	vm = kzalloc(sizeof(*vm), GFP_KERNEL_ACCOUNT);
	if (!vm)
		return ERR_PTR(-ENOMEM);

	/* From here on, kobject_put() frees the VM through ps_vm_free(). */
	ps_vm_kobj_init(vm);
	xa_init(&vm->pages);
	xa_init(&vm->zero_map);
	mutex_init(&vm->lock);
	init_rwsem(&vm->resize_sem);
	init_rwsem(&vm->policy_sem);
	vm->pid = task_tgid_nr(current);
	vm->uid = current_euid();
	vm->memcg = get_mem_cgroup_from_mm(current->mm);

	vm->inode = alloc_anon_inode(ps_mnt->mnt_sb);
	if (IS_ERR(vm->inode)) {
		ret = PTR_ERR(vm->inode);
		vm->inode = NULL;
		goto err_put;
	}
	/*
	 * A regular file's page cache (truncate_inode_folio() wants one).
	 * Unevictable, like shmem's locked and secretmem's: the pages are
	 * never written back, and reclaim must not take guest RAM. Movable:
	 * compaction and memory offline migrate them.
	 */
	vm->inode->i_mode = S_IFREG | 0600;
	vm->inode->i_mapping->a_ops = &ps_vm_aops;
	mapping_set_gfp_mask(vm->inode->i_mapping, GFP_HIGHUSER_MOVABLE);
	mapping_set_unevictable(vm->inode->i_mapping);

	/*
	 * Cyclic, so that an id an agent read from sysfs does not name a new
	 * VM as soon as the old one exits.
	 */
	/* In the table and counted in one section: the audit checks both. */
	mutex_lock(&ps_vms_mutex);
	ret = xa_alloc_cyclic(&ps_vms, &vm->id, vm, xa_limit_31b, &ps_vms_next_id,
			      GFP_KERNEL);
	if (ret >= 0)
		ps_stat_inc(PS_STAT_VMS);
	mutex_unlock(&ps_vms_mutex);
	if (ret < 0) {
		ret = ret == -EBUSY ? -ENOSPC : ret;
		goto err_put;
	}
	ret = ps_vm_kobj_add(vm);
	if (ret)
		goto err_erase;
	/* From here on, the inode's last iput() frees the VM. */
	vm->inode->i_private = vm;
	return vm;

err_erase:
	mutex_lock(&ps_vms_mutex);
	xa_erase(&ps_vms, vm->id);
	ps_stat_dec(PS_STAT_VMS);
	mutex_unlock(&ps_vms_mutex);
err_put:
	if (vm->inode)
		iput(vm->inode);
	ps_vm_put_refs(vm);
	kobject_put(&vm->kobj);
	return ERR_PTR(ret);
}

/**
 * ps_vm_publish() - Let PAGESHARE_OPEN_VM find a VM.
 * @vm: the VM, whose creator can no longer fail.
 */
void ps_vm_publish(struct ps_vm *vm)
{
	/* Pairs with ps_vm_open_id(): all of the VM is set up before. */
	smp_store_release(&vm->published, true);
}

/**
 * ps_vm_open_id() - Open the VM with id @id: PAGESHARE_OPEN_VM's file.
 * @id: the VM's id.
 *
 * The file holds the VM's own inode, so it keeps the VM alive, maps its
 * memory, takes every ioctl, ftruncate() and fallocate(), whichever way
 * its file on a pageshare mount is linked or not. Its ->release (main.c) lets go of the VM's inode.
 *
 * Context: Process context; takes ps_vms_mutex.
 * Return: the file; ERR_PTR(-ESRCH) if no published VM has the id or its
 * inode is being freed; ERR_PTR(-ENOMEM).
 */
struct file *ps_vm_open_id(u32 id)
{
	struct inode *inode = NULL;
	struct file *file;
	struct ps_vm *vm;

	ps_vms_lock();
	vm = ps_vm_find(id);
	/* igrab() refuses an inode whose last reference already went. */
	if (vm && smp_load_acquire(&vm->published))
		inode = igrab(vm->inode);
	ps_vms_unlock();
	if (!inode)
		return ERR_PTR(-ESRCH);
	/*
	 * A file with an inode of its own, as guest_memfd makes: its
	 * ->release drops the VM's inode while the file's operations still
	 * pin the module, so a VM's teardown never runs after the module
	 * could go. A regular file whose mapping is the VM's, with the VM's
	 * size and discard.
	 */
	file = anon_inode_create_getfile("[pageshare]", &ps_vm_id_fops,
					 inode->i_private, O_RDWR, NULL);
	if (IS_ERR(file)) {
		iput(inode);
		return file;
	}
	file->f_inode->i_mode |= S_IFREG;
	file->f_inode->i_private = inode->i_private;
	file->f_inode->i_op = &ps_vm_iops;
	file->f_mapping = inode->i_mapping;
	return file;
}

/**
 * ps_vm_free() - Free what is left of a VM: the kobject's release.
 * @vm: the VM, without pages, references or place in the table of VMs.
 */
void ps_vm_free(struct ps_vm *vm)
{
	xa_destroy(&vm->pages);
	xa_destroy(&vm->zero_map);
	mutex_destroy(&vm->lock);
	kfree(vm);
}

/*
 * Forgets which holes from @first on were read, while nothing maps the VM
 * (a shrink, the teardown): no PTE can map them to a zero page.
 */
static void ps_vm_zero_trim(struct ps_vm *vm, pgoff_t first)
{
	unsigned long idx = first / PS_ZERO_CHUNK;
	unsigned long *bits;

	bits = xa_load(&vm->zero_map, idx);
	if (bits && first % PS_ZERO_CHUNK) {
		/* An add_to_physmap below @first may clear a bit of a word. */
		xa_lock(&vm->pages);
		bitmap_clear(bits, first % PS_ZERO_CHUNK,
			     PS_ZERO_CHUNK - first % PS_ZERO_CHUNK);
		xa_unlock(&vm->pages);
	} else if (bits) {
		kfree(xa_erase(&vm->zero_map, idx));
	}
	xa_for_each_start(&vm->zero_map, idx, bits, idx + 1)
		kfree(xa_erase(&vm->zero_map, idx));
}

/*
 * Drop the VM's gfns [first, last]: its own pages, and its places on
 * shared frames, whose last sharer frees them. A page that someone else
 * still holds (a GUP reference in flight) lives on until they let go. The
 * teardown and a shrink call it while nothing maps the VM; a punch while
 * it may be mapped (ps_release_gfn() zaps what a fault mapped again).
 *
 * PS_FREE_BATCH gfns per ps_ops section, and a chance to sleep between
 * gfns: a VM can have millions, and an audit waiting to freeze must wait
 * for a batch, not for the whole VM (every copy-on-write waits behind the
 * audit); a batch rather than one gfn, so that a teardown waits for a
 * pending audit once per batch. Each gfn leaves the counters exact, so the
 * audit can see a VM half released; @vm->freeing tells it which entries
 * past the size are on their way out.
 */
#define PS_FREE_BATCH	64

static void ps_vm_free_range(struct ps_vm *vm, pgoff_t first, pgoff_t last)
{
	struct folio_batch fbatch;
	unsigned long gfn;
	unsigned int n = 0;
	void *entry;

	folio_batch_init(&fbatch);
	ps_ops_begin();
	xa_for_each_range(&vm->pages, gfn, entry, first, last) {
		ps_release_gfn(vm, gfn, &fbatch);
		if (!(++n % PS_FREE_BATCH)) {
			ps_ops_end();
			folio_batch_release(&fbatch);
			cond_resched();
			ps_ops_begin();
		}
	}
	ps_ops_end();
	folio_batch_release(&fbatch);
}

/**
 * ps_vm_punch() - Discard a range of a VM's memory: fallocate(PUNCH_HOLE).
 * @vm: the VM, mapped or not.
 * @offset: first byte, page aligned.
 * @len: bytes, page aligned; the part past the VM's size is ignored.
 *
 * Every gfn in the range becomes a hole: its private page is freed, or it
 * leaves its frame, which its last sharer frees. The range then reads
 * zeros, and the next write allocates. This is how virtio-balloon,
 * virtio-mem and free page reporting give guest memory back (QEMU calls
 * fallocate() and madvise(MADV_REMOVE) on its backing file).
 *
 * The mappings are zapped first, in one go, so that most pages are no
 * longer mapped when their gfn goes; a fault that maps one again before
 * its gfn goes is zapped under the page lock (ps_release_gfn()), after
 * which the fault path finds the hole and allocates anew.
 *
 * Context: Process context; takes @vm->resize_sem (read), then ps_ops_sem
 * (read) once per PS_FREE_BATCH gfns.
 * Return: 0 or -EINVAL for a range that is not page aligned.
 */
int ps_vm_punch(struct ps_vm *vm, loff_t offset, loff_t len)
{
	pgoff_t first, end;

	if (offset < 0 || len <= 0 || !PAGE_ALIGNED(offset) || !PAGE_ALIGNED(len))
		return -EINVAL;

	/*
	 * No shrink meanwhile; mappings may come and go (not holding
	 * @vm->lock, which mmap(), fork() and munmap() take under the
	 * mmap_lock, keeps the VMM's faults going during a long punch).
	 */
	down_read(&vm->resize_sem);
	first = offset >> PAGE_SHIFT;
	end = min_t(u64, READ_ONCE(vm->size), (u64)offset + len) >> PAGE_SHIFT;
	if (first >= end)
		goto out;
	unmap_mapping_pages(vm->inode->i_mapping, first, end - first, false);
	ps_vm_free_range(vm, first, end - 1);
out:
	up_read(&vm->resize_sem);
	return 0;
}

/**
 * ps_vm_destroy() - Free a VM once nothing maps it and no file refers to it.
 * @vm: the VM; freed on return.
 *
 * Context: Process context, from the evict of the VM's inode.
 */
void ps_vm_destroy(struct ps_vm *vm)
{
	int i;

	WARN_ON(vm->nr_mappings);
	/* Gone from sysfs, and no reader of it left, before anything is freed. */
	kobject_del(&vm->kobj);
	ps_vm_free_range(vm, 0, ULONG_MAX);
	ps_vm_zero_trim(vm, 0);
	for (i = 0; i < PS_NR_ZERO; i++)
		if (vm->zero[i])
			put_page(vm->zero[i]);
	WARN_ON(atomic_long_read(&vm->stats.private_pages) ||
		atomic_long_read(&vm->stats.shared_gfns) ||
		atomic_long_read(&vm->stats.nominated_gfns));
	mutex_lock(&ps_vms_mutex);
	xa_erase(&ps_vms, vm->id);
	ps_stat_dec(PS_STAT_VMS);
	mutex_unlock(&ps_vms_mutex);
	ps_vm_put_refs(vm);
	kobject_put(&vm->kobj);
}

/**
 * ps_vm_set_size() - Set the size of a VM's memory.
 * @vm: the VM.
 * @size: bytes; shrinking frees the pages past the new end. 0 frees every
 *	  page and leaves the VM without a size, as when it was created.
 *
 * Context: Process context; takes @vm->resize_sem (write), @vm->lock, then
 * ps_ops_sem (read) once per PS_FREE_BATCH gfns freed.
 * Return: 0; -EINVAL if @size is not page aligned; -EFBIG if it is
 * above max_vm_size; -EBUSY if the VM is mapped and @size differs from
 * the current size; -ENOSPC past its mount's size limit.
 */
int ps_vm_set_size(struct ps_vm *vm, u64 size)
{
	int ret = 0;

	if (!PAGE_ALIGNED(size))
		return -EINVAL;
	if (size > ps_max_size())
		return -EFBIG;

	/* No punch meanwhile: it walks gfns below the size it read. */
	down_write(&vm->resize_sem);
	mutex_lock(&vm->lock);
	if (size != vm->size) {
		if (vm->nr_mappings)
			ret = -EBUSY;
		else
			ret = ps_limit_resize(vm->limit, vm->size, size);
		if (!ret) {
			/*
			 * Publish the size first, under the lock that inserts
			 * entries: nothing can fill a gfn past it afterwards
			 * (ps_vm_fill_hole_locked()). Until the gfns past it
			 * are gone, the audit counts them as being freed.
			 */
			xa_lock(&vm->pages);
			WRITE_ONCE(vm->freeing, max(vm->size, size));
			WRITE_ONCE(vm->size, size);
			xa_unlock(&vm->pages);
			ps_vm_free_range(vm, size >> PAGE_SHIFT, ULONG_MAX);
			ps_vm_zero_trim(vm, size >> PAGE_SHIFT);
			WRITE_ONCE(vm->freeing, 0);
		}
	}
	mutex_unlock(&vm->lock);
	up_write(&vm->resize_sem);
	return ret;
}

/**
 * ps_vm_new_folio() - Make a private page for a gfn, in the VM's page cache.
 * @vm: the VM.
 * @gfn: the gfn; nothing of the page cache is there.
 * @src: the page to copy, or NULL for a zeroed page.
 * @vmf: the fault it is for, whose mapping's memory policy places it; or
 *	 NULL (an ioctl), for the calling task's policy.
 *
 * The folio goes into the page cache of @vm's inode at @gfn: charged to
 * the VM's memory cgroup as file memory whichever task faults it in, and
 * on the unevictable LRU. It is marked dirty, so that no page-cache
 * invalidation (drop_caches through a mount's inode, say) ever drops it:
 * its only copy is this one. The caller points @gfn's entry at it, which
 * shares the page cache's reference, then unlocks it.
 *
 * Context: Process context; may sleep.
 * Return: the folio, locked, with a reference the caller owns;
 * ERR_PTR(-ENOMEM); ERR_PTR(-EHWPOISON) if @src has a memory error;
 * ERR_PTR(-EEXIST) if another first touch of @gfn is under way.
 */
struct folio *ps_vm_new_folio(struct ps_vm *vm, pgoff_t gfn, struct page *src,
			      const struct vm_fault *vmf)
{
	struct address_space *mapping = vm->inode->i_mapping;
	gfp_t gfp = mapping_gfp_mask(mapping) | __GFP_NOWARN;
	struct mem_cgroup *old_memcg;
	struct folio *folio;
	int ret;

	/*
	 * On the node the faulting mapping's memory policy picks (mbind(),
	 * QEMU's host-nodes=...,policy=), as for anonymous memory.
	 */
	if (vmf)
		folio = vma_alloc_folio(gfp | (src ? 0 : __GFP_ZERO), 0, vmf->vma,
					vmf->address, false);
	else
		folio = filemap_alloc_folio(gfp | (src ? 0 : __GFP_ZERO), 0);
	if (!folio)
		return ERR_PTR(-ENOMEM);
	if (src && copy_mc_highpage(folio_page(folio, 0), src)) {
		folio_put(folio);
		return ERR_PTR(-EHWPOISON);
	}

	old_memcg = set_active_memcg(vm->memcg);
	ret = filemap_add_folio(mapping, folio, gfn, gfp);
	set_active_memcg(old_memcg);
	if (ret) {
		folio_put(folio);
		return ERR_PTR(ret);
	}
	folio_mark_uptodate(folio);
	folio_mark_dirty(folio);
	return folio;
}

/**
 * ps_vm_remove_folio() - Take a private page out of the VM's page cache.
 * @vm: the VM.
 * @folio: the page, locked, whose gfn's entry no longer names it.
 *
 * Unmaps it (the caller may have zapped already) and drops the page
 * cache's reference; the caller's own keeps the folio until it lets go.
 *
 * Context: Process context; @folio locked.
 */
void ps_vm_remove_folio(struct ps_vm *vm, struct folio *folio)
{
	VM_WARN_ON_FOLIO(!folio_test_locked(folio), folio);
	VM_WARN_ON_FOLIO(folio->mapping != vm->inode->i_mapping, folio);
	/* truncate_inode_folio(), the one way a module has to do it. */
	WARN_ON_ONCE(generic_error_remove_folio(vm->inode->i_mapping, folio));
}

/**
 * ps_vm_lookup() - Find the page that backs a gfn.
 * @vm: the VM.
 * @gfn: the gfn.
 * @shared: out: whether it is a frame in shared state.
 *
 * Return: the page with a reference the caller owns, or NULL for a hole.
 */
struct page *ps_vm_lookup(struct ps_vm *vm, pgoff_t gfn, bool *shared)
{
	struct page *page;
	void *entry;

	/*
	 * Entries change under xa_lock: the page cannot be freed while we
	 * hold it. Its count can be frozen at 0 though, by a migration that
	 * is replacing it (ps_vm_migrate_folio()): look again, it is short.
	 */
	for (;;) {
		xa_lock(&vm->pages);
		entry = xa_load(&vm->pages, gfn);
		if (!entry) {
			xa_unlock(&vm->pages);
			return NULL;
		}
		page = ps_entry_page(entry);
		*shared = ps_entry_shared(entry);
		if (folio_try_get(page_folio(page))) {
			xa_unlock(&vm->pages);
			return page;
		}
		xa_unlock(&vm->pages);
		cond_resched();
	}
}

/*
 * Points @gfn's entry, a hole, at @entry. Returns NULL if it went in, the
 * entry in the way, or an XA_ERROR(): -ENXIO past the VM's size, -ENOMEM.
 *
 * __xa_cmpxchg() may drop the lock to allocate a node, and a shrink may
 * publish a smaller size meanwhile and walk past @gfn before the entry is
 * in. So the size is checked again once the entry is in, still under the
 * lock that a shrink publishes the size under, and the entry comes out if
 * the gfn is no longer in the VM: nothing past the size survives a shrink.
 */
static void *ps_vm_fill_hole_locked(struct ps_vm *vm, pgoff_t gfn, void *entry,
				    bool *was_read)
{
	unsigned long *bits;
	void *cur;

	lockdep_assert_held(&vm->pages.xa_lock);
	*was_read = false;
	if (!ps_gfn_valid(vm, gfn))
		return XA_ERROR(-ENXIO);
	cur = __xa_cmpxchg(&vm->pages, gfn, NULL, entry,
			   GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!cur && !ps_gfn_valid(vm, gfn)) {
		__xa_erase(&vm->pages, gfn);
		cur = XA_ERROR(-ENXIO);
	}
	if (!cur) {
		if (!ps_entry_shared(entry))
			__xa_set_mark(&vm->pages, gfn, PS_MARK_PRIVATE);
		/* Every bit of the VM changes under this lock. */
		bits = xa_load(&vm->zero_map, gfn / PS_ZERO_CHUNK);
		*was_read = bits && __test_and_clear_bit(gfn % PS_ZERO_CHUNK, bits);
	}
	return cur;
}

/*
 * A hole that was read became a page: no PTE may go on mapping it to a
 * zero page. A read fault that found the hole holds that zero page's lock
 * until its PTE is in, so, with the lock, this zap comes after it.
 */
static void ps_vm_zap_zero(struct ps_vm *vm, pgoff_t gfn)
{
	struct folio *zero = page_folio(vm->zero[gfn % PS_NR_ZERO]);

	folio_lock(zero);
	ps_vm_zap(vm, gfn);
	folio_unlock(zero);
}

/**
 * ps_vm_fill_hole() - Point a hole at a frame: add_to_physmap's insert.
 * @vm: the VM.
 * @gfn: the gfn, which should be a hole.
 * @entry: the new entry.
 *
 * Context: Process context; takes the VM's xa_lock, may sleep to allocate.
 * Return: 0; -EEXIST if @gfn has a page; -ENXIO if @gfn is past the VM's
 * size, also when a shrink got there first; -ENOMEM.
 */
int ps_vm_fill_hole(struct ps_vm *vm, pgoff_t gfn, void *entry)
{
	struct mem_cgroup *old_memcg = set_active_memcg(vm->memcg);
	bool was_read;
	void *cur;

	xa_lock(&vm->pages);
	cur = ps_vm_fill_hole_locked(vm, gfn, entry, &was_read);
	xa_unlock(&vm->pages);
	set_active_memcg(old_memcg);
	if (was_read)
		ps_vm_zap_zero(vm, gfn);
	if (!cur)
		return 0;
	return xa_is_err(cur) ? xa_err(cur) : -EEXIST;
}

/**
 * ps_vm_get_page() - Find the page backing a gfn, allocating it on first use.
 * @vm: the VM.
 * @gfn: guest frame number (page offset in the VM's file).
 * @vmf: the fault, whose mapping's memory policy places a new page; NULL
 *	 outside the fault path.
 *
 * A new page is zero-filled, so nothing the host had in it reaches the
 * guest, and charged to the VM's memory cgroup.
 *
 * A first touch takes no lock but the VM's own: its page cache's and its
 * entries' xa_locks. No other VM's operation, no policy change and no
 * audit can make it wait. It counts the new page under the lock that
 * inserts the entry, which is what lets the audit check a VM's private
 * pages while first touches go on (audit.c). The page enters the page
 * cache first, locked, and its entry second; when something else filled
 * the entry meanwhile, it leaves the page cache again.
 *
 * Context: Process context (the fault path); may sleep to allocate.
 * Return: the page with a reference the caller owns; ERR_PTR(-ENXIO) past
 * the VM's size; ERR_PTR(-ENOMEM), also past the memory cgroup's limit;
 * ERR_PTR(-EINTR) if the task was killed while it waited.
 */
struct page *ps_vm_get_page(struct ps_vm *vm, pgoff_t gfn,
			    const struct vm_fault *vmf)
{
	struct address_space *mapping = vm->inode->i_mapping;
	struct mem_cgroup *old_memcg;
	struct folio *folio;
	bool shared, was_read;
	struct page *page;
	void *cur;

again:
	if (!ps_gfn_valid(vm, gfn))
		return ERR_PTR(-ENXIO);

	page = ps_vm_lookup(vm, gfn, &shared);
	if (page)
		return page;

	folio = ps_vm_new_folio(vm, gfn, NULL, vmf);
	if (IS_ERR(folio)) {
		/* Another first touch is in the page cache, not yet in the entry. */
		if (PTR_ERR(folio) != -EEXIST)
			return ERR_CAST(folio);
		if (fatal_signal_pending(current))
			return ERR_PTR(-EINTR);
		cond_resched();
		goto again;
	}

	old_memcg = set_active_memcg(vm->memcg);	/* for xarray nodes too */
	xa_lock(&vm->pages);
	cur = ps_vm_fill_hole_locked(vm, gfn, folio_page(folio, 0), &was_read);
	set_active_memcg(old_memcg);
	if (!cur) {
		atomic_long_inc(&vm->stats.private_pages);
		ps_stat_inc(PS_STAT_PRIVATE_PAGES);
		xa_unlock(&vm->pages);
		/*
		 * Before the page is unlocked: until then no fault can map it
		 * and no write can land in it, so no task can see the write
		 * while another still reads zeros there.
		 */
		if (was_read)
			ps_vm_zap_zero(vm, gfn);
		folio_unlock(folio);
		return folio_page(folio, 0);
	}
	xa_unlock(&vm->pages);
	/*
	 * Another fault or add_to_physmap filled the gfn, or it is past the
	 * size, or no memory: out of the page cache again, unmapped (nobody
	 * could map it: its entry never named it).
	 */
	generic_error_remove_folio(mapping, folio);
	folio_unlock(folio);
	folio_put(folio);
	if (xa_is_err(cur))
		return ERR_PTR(xa_err(cur));
	goto again;
}

/* The zero page for @gfn, allocated on first use; NULL without memory. */
static struct page *ps_vm_zero_page(struct ps_vm *vm, pgoff_t gfn)
{
	struct page **slot = &vm->zero[gfn % PS_NR_ZERO];
	struct page *page = READ_ONCE(*slot), *old;
	struct mem_cgroup *old_memcg;

	if (page)
		return page;
	/* Not movable: a handful per VM, in ZONE_NORMAL like page tables. */
	old_memcg = set_active_memcg(vm->memcg);
	page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_NOWARN);
	set_active_memcg(old_memcg);
	if (!page)
		return NULL;
	old = cmpxchg(slot, NULL, page);
	if (old) {
		put_page(page);
		page = old;
	}
	return page;
}

/* The bits for @gfn's chunk, allocated on first use; NULL without memory. */
static unsigned long *ps_vm_zero_bits(struct ps_vm *vm, pgoff_t gfn)
{
	unsigned long idx = gfn / PS_ZERO_CHUNK;
	unsigned long *bits = xa_load(&vm->zero_map, idx), *old;
	struct mem_cgroup *old_memcg;

	if (bits)
		return bits;
	old_memcg = set_active_memcg(vm->memcg);
	bits = kzalloc(PAGE_SIZE, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (bits) {
		old = xa_cmpxchg(&vm->zero_map, idx, NULL, bits,
				 GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
		if (old) {
			kfree(bits);
			bits = xa_is_err(old) ? NULL : old;
		}
	}
	set_active_memcg(old_memcg);
	return bits;
}

/*
 * A read of a hole maps one of the VM's zero pages, read-only, and
 * allocates nothing per gfn: QEMU's migration reads all of guest RAM, and
 * a guest reads memory it never wrote. The first write (page_mkwrite)
 * allocates. Whoever fills the hole (that write, a write through another
 * mapping, add_to_physmap) clears the gfn's bit and zaps the gfn under the
 * zero page's lock, which this fault holds from the moment it sees the
 * hole until the core has installed its PTE: so no PTE can go on showing
 * zeros over a page. Returns 0 to take the ordinary path (the gfn has a
 * page, or there is no memory for the cheap way), else the fault's result.
 */
static vm_fault_t ps_vm_zero_fault(struct ps_vm *vm, struct vm_fault *vmf)
{
	pgoff_t gfn = vmf->pgoff;
	unsigned long *bits;
	struct folio *zero;
	struct page *page;
	bool hole, valid;

	if (xa_load(&vm->pages, gfn) || !ps_gfn_valid(vm, gfn))
		return 0;
	bits = ps_vm_zero_bits(vm, gfn);
	page = bits ? ps_vm_zero_page(vm, gfn) : NULL;
	if (!page)
		return 0;
	zero = page_folio(page);
	if (folio_lock_killable(zero))
		return VM_FAULT_NOPAGE;
	/*
	 * The core's own handling of a poisoned page after ->fault would
	 * unmap it through its mapping, which a zero page has not: such a
	 * read takes the ordinary path and gets a page of its own.
	 */
	if (unlikely(PageHWPoison(page))) {
		folio_unlock(zero);
		return 0;
	}
	xa_lock(&vm->pages);
	valid = ps_gfn_valid(vm, gfn);
	hole = !xa_load(&vm->pages, gfn);
	if (valid && hole)
		__set_bit(gfn % PS_ZERO_CHUNK, bits);
	xa_unlock(&vm->pages);
	if (!valid || !hole) {
		folio_unlock(zero);
		return 0;
	}
	folio_get(zero);
	vmf->page = folio_page(zero, 0);
	return VM_FAULT_LOCKED;
}

/* Whether @page is the zero page that @gfn's hole is mapped to. */
static bool ps_vm_is_zero(struct ps_vm *vm, pgoff_t gfn, struct page *page)
{
	return READ_ONCE(vm->zero[gfn % PS_NR_ZERO]) == page;
}

static vm_fault_t ps_vm_fault(struct vm_fault *vmf)
{
	struct ps_vm *vm = vmf->vma->vm_private_data;
	struct folio *folio;
	struct page *page;
	vm_fault_t ret;
	void *entry;

	if (!(vmf->flags & FAULT_FLAG_WRITE)) {
		ret = ps_vm_zero_fault(vm, vmf);
		if (ret)
			return ret;
	}

	page = ps_vm_get_page(vm, vmf->pgoff, vmf);
	if (IS_ERR(page))
		return vmf_error(PTR_ERR(page));

	/*
	 * Whoever points the gfn elsewhere does so under this lock and zaps
	 * afterwards; we hold it until the PTE is in. A page that left the
	 * entry meanwhile must not be mapped: fault again.
	 */
	folio = page_folio(page);
	if (folio_lock_killable(folio)) {
		/* The task dies before it could retry. */
		put_page(page);
		return VM_FAULT_NOPAGE;
	}
	entry = xa_load(&vm->pages, vmf->pgoff);
	if (ps_entry_page(entry) != page) {
		folio_unlock(folio);
		put_page(page);
		return VM_FAULT_NOPAGE;
	}
	/*
	 * A memory error: the faulting task gets SIGBUS (KVM sends a vCPU
	 * thread SIGBUS with BUS_MCEERR_AR, and the VMM injects a machine
	 * check into the guest). The page must not reach the core's
	 * own poison handling, which would take it for a page-cache page and
	 * unmap it through its (NULL) mapping, nor be mapped.
	 */
	if (unlikely(PageHWPoison(page))) {
		folio_unlock(folio);
		put_page(page);
		return VM_FAULT_HWPOISON;
	}
	/* Some PTE maps this frame now: whoever moves its gfns must zap. */
	if (ps_entry_shared(entry))
		folio_set_checked(folio);
	vmf->page = page;
	return VM_FAULT_LOCKED;
}

/*
 * Every first write to a page of the VM comes here (write-notify is on
 * because this callback exists): a write to a gfn in shared state breaks
 * it. The page must come back locked when the write may go on: it is not
 * in a page cache, and with a NULL folio->mapping the core would take it
 * for a truncated page and retry the fault forever.
 */
static vm_fault_t ps_vm_page_mkwrite(struct vm_fault *vmf)
{
	struct ps_vm *vm = vmf->vma->vm_private_data;
	struct folio *folio = page_folio(vmf->page);
	struct page *page;
	void *entry;
	int ret;

	/*
	 * A write to a hole that a read mapped to a zero page: this is its
	 * first touch. The fill zaps the zero page's PTEs (and zapping here
	 * too covers a fill by someone else that has not zapped yet); the
	 * fault is retried and finds the new page.
	 */
	if (ps_vm_is_zero(vm, vmf->pgoff, vmf->page)) {
		page = ps_vm_get_page(vm, vmf->pgoff, vmf);
		if (IS_ERR(page))
			return vmf_error(PTR_ERR(page));
		put_page(page);
		ps_vm_zap_zero(vm, vmf->pgoff);
		return VM_FAULT_NOPAGE;
	}

	if (folio_lock_killable(folio))
		return VM_FAULT_NOPAGE;
	if (unlikely(PageHWPoison(vmf->page))) {
		/* Poisoned while mapped read-only: no write into it either. */
		folio_unlock(folio);
		return VM_FAULT_HWPOISON;
	}
	entry = xa_load(&vm->pages, vmf->pgoff);
	if (entry == vmf->page)
		return VM_FAULT_LOCKED;	/* private: the common case */
	folio_unlock(folio);

	ps_ops_begin();
	if (folio_lock_killable(folio)) {
		ps_ops_end();
		return VM_FAULT_NOPAGE;
	}
	ret = ps_unshare_locked(vm, vmf->pgoff, vmf->page, vmf);
	ps_ops_end();
	if (!ret)
		return VM_FAULT_LOCKED;
	folio_unlock(folio);
	switch (ret) {
	case -ENOMEM:
		return VM_FAULT_OOM;
	case -EHWPOISON:
		return VM_FAULT_HWPOISON;
	default:
		/* A new page (or someone else's change) is behind the gfn: refault. */
		return VM_FAULT_NOPAGE;
	}
}

static void ps_vm_vma_open(struct vm_area_struct *vma)
{
	struct ps_vm *vm = vma->vm_private_data;

	mutex_lock(&vm->lock);
	vm->nr_mappings++;
	mutex_unlock(&vm->lock);
}

static void ps_vm_vma_close(struct vm_area_struct *vma)
{
	struct ps_vm *vm = vma->vm_private_data;

	mutex_lock(&vm->lock);
	vm->nr_mappings--;
	mutex_unlock(&vm->lock);
}

/*
 * A memory error in a private page (memory_failure() -> truncate_error_folio()):
 * the page stays in the page cache and in its entry, as shmem's do, so that
 * every later access of the gfn finds it and gets VM_FAULT_HWPOISON (the
 * fault path, nominate and the copy on write check), rather than a zeroed
 * page in its place that would hide the loss from the guest. The core has
 * already unmapped it and sent SIGBUS to whoever had it mapped.
 */
static int ps_vm_error_remove_folio(struct address_space *mapping,
				    struct folio *folio)
{
	return 0;
}

const struct address_space_operations ps_vm_aops = {
	.dirty_folio		= noop_dirty_folio,
	.migrate_folio		= ps_vm_migrate_folio,
	.error_remove_folio	= ps_vm_error_remove_folio,
};

static const struct vm_operations_struct ps_vm_ops = {
	.open		= ps_vm_vma_open,
	.close		= ps_vm_vma_close,
	.fault		= ps_vm_fault,
	.page_mkwrite	= ps_vm_page_mkwrite,
};

/**
 * ps_vm_mmap() - Map a VM's memory; file offset = gfn << PAGE_SHIFT.
 * @vm: the VM.
 * @vma: the new mapping.
 * @may_size: the mapping may give a VM without a size its size: the file
 *	      is open for writing.
 *
 * The first mapping of a VM whose size was never set sets it to the end
 * of the mapping: an unmodified QEMU only asks the size with lseek() and
 * then maps it.
 *
 * Return: 0; -EINVAL for a private mapping, which would turn guest writes
 * into anonymous copies the module does not own; -EPERM for an executable
 * one; -ENXIO for a VM without a size and !@may_size; -ENXIO if the mapping
 * goes past the VM's size; -EFBIG if the VM has no size yet and the
 * mapping ends past max_vm_size (what PAGESHARE_SET_SIZE answers for that
 * size); -ENOMEM if that size does not fit in its mount's size limit.
 */
int ps_vm_mmap(struct ps_vm *vm, struct vm_area_struct *vma, bool may_size)
{
	u64 max = ps_max_size();
	u64 end = U64_MAX;
	int ret = 0;

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	/* Guest RAM is data to the host, whichever file maps it. */
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	/* U64_MAX: an offset so far out that no VM can be that large. */
	if (vma->vm_pgoff <= max >> PAGE_SHIFT)
		end = ((u64)vma->vm_pgoff << PAGE_SHIFT) + vma->vm_end - vma->vm_start;

	mutex_lock(&vm->lock);
	if (!vm->size) {
		/* As PAGESHARE_SET_SIZE answers for that size. */
		if (!may_size)
			ret = -ENXIO;
		else if (end > max)
			ret = -EFBIG;
		else if (ps_limit_resize(vm->limit, 0, end))
			ret = -ENOMEM;
		else
			WRITE_ONCE(vm->size, end);
	} else if (end > vm->size) {
		ret = -ENXIO;
	}
	if (!ret)
		vm->nr_mappings++;
	mutex_unlock(&vm->lock);
	if (ret)
		return ret;

	/*
	 * DONTEXPAND: mremap() must not grow a mapping past the size.
	 * Never PFNMAP or IO: KVM would then bypass GUP and our fault path.
	 */
	vm_flags_set(vma, VM_DONTEXPAND);
	vm_flags_clear(vma, VM_MAYEXEC);
	vma->vm_private_data = vm;
	vma->vm_ops = &ps_vm_ops;
	return 0;
}

/**
 * ps_vm_zap() - Remove every PTE that maps a gfn, and KVM's mappings with them.
 * @vm: the VM.
 * @gfn: the gfn.
 *
 * The MMU-notifier invalidation that zapping triggers is what makes KVM
 * drop its stage-2 entries for the gfn.
 */
void ps_vm_zap(struct ps_vm *vm, pgoff_t gfn)
{
	ps_vm_zap_range(vm, gfn, 1);
}

/**
 * ps_vm_zap_range() - ps_vm_zap() for @nr gfns from @gfn, in one go.
 * @vm: the VM.
 * @gfn: the first gfn.
 * @nr: how many.
 *
 * One MMU-notifier round into KVM and one TLB flush per mapping of the VM
 * that the range meets, whatever @nr is.
 *
 * Context: Process context; may sleep. Takes the VM mapping's
 * i_mmap_rwsem (read) and PTE locks, so only locks above those in the lock
 * order (share.c) may be held.
 */
void ps_vm_zap_range(struct ps_vm *vm, pgoff_t gfn, pgoff_t nr)
{
	unmap_mapping_pages(vm->inode->i_mapping, gfn, nr, false);
}

/**
 * ps_vm_get_info() - Fill in what PAGESHARE_GET_INFO reports.
 * @vm: the VM.
 * @info: zeroed by the caller.
 */
void ps_vm_get_info(struct ps_vm *vm, struct pageshare_vm_info *info)
{
	info->id = vm->id;
	info->size = READ_ONCE(vm->size);
	info->private_pages = atomic_long_read(&vm->stats.private_pages);
	info->mappings = READ_ONCE(vm->nr_mappings);
}

/* gfns found per hold of the xa_lock: the copy to the user goes between. */
#define PS_PRIVATE_CHUNK	32

/**
 * ps_vm_get_private() - List a VM's private gfns: PAGESHARE_GET_PRIVATE.
 * @vm: the VM.
 * @arg: the checked argument; @arg->next, @arg->discards and @arg->count
 *	 are filled in.
 * @gfns: where the gfns go, @arg->max of them at most.
 *
 * Walks the entries marked private (PS_MARK_PRIVATE), so its cost follows
 * the private gfns, not the VM's size. A gfn is listed if it is private
 * when the walk reaches it: one that turns private behind the walk was
 * written after the call began, and the next call finds it.
 *
 * The discard count is read in the walk's last hold of the xa_lock, under
 * which ps_release_gfn() erases a gfn from its frame and counts it: a
 * caller that reads the same count at its next call knows that no gfn
 * left a frame by a discard or a shrink in between, nor since this walk
 * passed it.
 *
 * Context: Process context; takes the VM's xa_lock for each
 * PS_PRIVATE_CHUNK gfns.
 * Return: 0; -EFAULT if @gfns cannot be written; -EINTR on a fatal signal.
 */
int ps_vm_get_private(struct ps_vm *vm, struct pageshare_private *arg,
		      u64 __user *gfns)
{
	u64 buf[PS_PRIVATE_CHUNK];
	pgoff_t end, gfn = arg->start;
	unsigned int n, limit;
	bool last;
	void *entry;

	/* No gfn fits in an index past the size; nor a start past it. */
	end = READ_ONCE(vm->size) >> PAGE_SHIFT;
	arg->count = 0;
	for (;;) {
		XA_STATE(xas, &vm->pages, gfn);

		limit = min_t(u32, PS_PRIVATE_CHUNK, arg->max - arg->count);
		n = 0;
		xas_lock(&xas);
		if (gfn < end && limit) {
			xas_for_each_marked(&xas, entry, end - 1, PS_MARK_PRIVATE) {
				buf[n++] = xas.xa_index;
				if (n == limit)
					break;
			}
		}
		/* The walk is over, or the array full. */
		last = n < limit || arg->count + n == arg->max;
		if (last)
			arg->discards = atomic64_read(&vm->discards);
		xas_unlock(&xas);
		if (n && copy_to_user(gfns + arg->count, buf, n * sizeof(*buf)))
			return -EFAULT;
		arg->count += n;
		if (n)
			gfn = buf[n - 1] + 1;
		if (last)
			break;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	/* Past the last gfn stored when the array is full (@start for none). */
	arg->next = arg->count == arg->max ? gfn : end;
	return 0;
}
