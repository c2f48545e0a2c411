// SPDX-License-Identifier: GPL-2.0
/*
 * One VM's memory: the file behind an open() of /dev/pageshare, its pages
 * and the fault path that hands them to the VMM's mappings and, through
 * them, to KVM.
 *
 * The pages never enter a page cache. The module owns them so that one
 * frame can later back gfns of several VMs, which a (mapping, index) pair
 * cannot describe. They reach page tables through vm_fault::page, like
 * other drivers that serve their own pages, and KVM reaches them through
 * GUP on the VMM's mapping. Every change of what backs a gfn must zap the
 * VMM's PTEs with unmap_mapping_range() on this VM's own address_space:
 * the MMU-notifier invalidation that zapping triggers is what makes KVM
 * drop its stage-2 entries.
 *
 * Lock order: mmap_lock (held by the core around ->mmap and
 * vm_operations_struct::open and ::close) nests outside ps_vm::lock.
 * The fault path takes no mutex: the xarray's spinlock orders concurrent
 * first touches of a gfn and protects the reference it hands out.
 */

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/pseudo_fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include <linux/pageshare.h>

#include "pageshare.h"

/* "pshr": the private filesystem that gives each VM its own inode. */
#define PAGESHARE_FS_MAGIC	0x70736872

static struct vfsmount *ps_mnt;

/* id -> struct ps_vm, for everything that must find a VM by its id. */
static DEFINE_XARRAY_ALLOC1(ps_vms);

static int ps_fs_init_fs_context(struct fs_context *fc)
{
	if (!init_pseudo(fc, PAGESHARE_FS_MAGIC))
		return -ENOMEM;
	fc->s_iflags |= SB_I_NOEXEC | SB_I_NODEV;
	return 0;
}

static struct file_system_type ps_fs_type = {
	.name		 = "pageshare",
	.init_fs_context = ps_fs_init_fs_context,
	.kill_sb	 = kill_anon_super,
};

/**
 * ps_fs_init() - Mount the private filesystem that VM inodes come from.
 *
 * Return: 0 or a negative errno.
 */
int ps_fs_init(void)
{
	ps_mnt = kern_mount(&ps_fs_type);
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

/**
 * ps_vm_create() - Create an empty VM: no size, no pages.
 *
 * The VM's pages will be charged to the memory cgroup of the calling task.
 *
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

	xa_init(&vm->pages);
	mutex_init(&vm->lock);
	atomic_long_set(&vm->nr_private, 0);

	vm->inode = alloc_anon_inode(ps_mnt->mnt_sb);
	if (IS_ERR(vm->inode)) {
		ret = PTR_ERR(vm->inode);
		goto err_free;
	}
	vm->inode->i_private = vm;
	vm->memcg = get_mem_cgroup_from_mm(current->mm);

	ret = xa_alloc(&ps_vms, &vm->id, vm, xa_limit_31b, GFP_KERNEL);
	if (ret) {
		ret = ret == -EBUSY ? -ENOSPC : ret;
		goto err_iput;
	}

	atomic_long_inc(&ps_stats.vms);
	return vm;

err_iput:
	mem_cgroup_put(vm->memcg);
	iput(vm->inode);
err_free:
	mutex_destroy(&vm->lock);
	kfree(vm);
	return ERR_PTR(ret);
}

/*
 * Drop the VM's reference to the pages of gfns [first, ULONG_MAX]. A page
 * that someone else still holds (a GUP reference in flight) lives on until
 * they let go. Only called while nothing maps the VM, so no fault races
 * with it. Sleeps between pages: a VM can have millions.
 */
static void ps_vm_free_from(struct ps_vm *vm, pgoff_t first)
{
	struct page *page;
	unsigned long gfn;
	long freed = 0;

	xa_for_each_start(&vm->pages, gfn, page, first) {
		page = xa_erase(&vm->pages, gfn);
		if (page) {
			put_page(page);
			freed++;
		}
		cond_resched();
	}

	atomic_long_sub(freed, &vm->nr_private);
	atomic_long_sub(freed, &ps_stats.private_pages);
}

/**
 * ps_vm_destroy() - Free a VM once nothing maps it and no file refers to it.
 * @vm: the VM; freed on return.
 */
void ps_vm_destroy(struct ps_vm *vm)
{
	WARN_ON(vm->nr_mappings);
	xa_erase(&ps_vms, vm->id);
	ps_vm_free_from(vm, 0);
	WARN_ON(atomic_long_read(&vm->nr_private));
	xa_destroy(&vm->pages);
	mem_cgroup_put(vm->memcg);
	iput(vm->inode);
	mutex_destroy(&vm->lock);
	kfree(vm);
	atomic_long_dec(&ps_stats.vms);
}

/**
 * ps_vm_set_size() - Set the size of a VM's memory.
 * @vm: the VM.
 * @size: bytes; shrinking frees the pages past the new end.
 *
 * Return: 0; -EINVAL if @size is 0 or not page aligned; -EFBIG if it is
 * above max_vm_size; -EBUSY if the VM is mapped and @size differs from
 * the current size.
 */
int ps_vm_set_size(struct ps_vm *vm, u64 size)
{
	int ret = 0;

	if (!size || !PAGE_ALIGNED(size))
		return -EINVAL;
	if (size > READ_ONCE(ps_max_vm_size))
		return -EFBIG;

	mutex_lock(&vm->lock);
	if (size != vm->size) {
		if (vm->nr_mappings) {
			ret = -EBUSY;
		} else {
			ps_vm_free_from(vm, size >> PAGE_SHIFT);
			WRITE_ONCE(vm->size, size);
		}
	}
	mutex_unlock(&vm->lock);
	return ret;
}

/**
 * ps_vm_get_page() - Find the page backing a gfn, allocating it on first use.
 * @vm: the VM.
 * @gfn: guest frame number (page offset in the VM's file).
 *
 * A new page is zero-filled, so nothing the host had in it reaches the
 * guest, and charged to the VM's memory cgroup.
 *
 * Return: the page with a reference the caller owns, or ERR_PTR(-ENXIO)
 * past the VM's size, or ERR_PTR(-ENOMEM).
 */
struct page *ps_vm_get_page(struct ps_vm *vm, pgoff_t gfn)
{
	struct mem_cgroup *old_memcg;
	struct page *page, *cur;

	if (gfn >= READ_ONCE(vm->size) >> PAGE_SHIFT)
		return ERR_PTR(-ENXIO);

	xa_lock(&vm->pages);
	page = xa_load(&vm->pages, gfn);
	if (page)
		get_page(page);
	xa_unlock(&vm->pages);
	if (page)
		return page;

	/*
	 * Not movable: the pages are not on the LRU and nothing could migrate
	 * them. Charged as kernel memory of the VM's cgroup, the only
	 * charging interface a module has.
	 */
	old_memcg = set_active_memcg(vm->memcg);
	page = alloc_page(GFP_HIGHUSER | __GFP_ZERO | __GFP_ACCOUNT);
	set_active_memcg(old_memcg);
	if (!page)
		return ERR_PTR(-ENOMEM);

	xa_lock(&vm->pages);
	cur = __xa_cmpxchg(&vm->pages, gfn, NULL, page, GFP_KERNEL);
	if (cur) {
		/* Another fault won the race, or the xarray had no memory. */
		if (!xa_is_err(cur))
			get_page(cur);
		xa_unlock(&vm->pages);
		put_page(page);
		return xa_is_err(cur) ? ERR_PTR(xa_err(cur)) : cur;
	}
	get_page(page);
	xa_unlock(&vm->pages);

	atomic_long_inc(&vm->nr_private);
	atomic_long_inc(&ps_stats.private_pages);
	return page;
}

static vm_fault_t ps_vm_fault(struct vm_fault *vmf)
{
	struct ps_vm *vm = vmf->vma->vm_private_data;
	struct page *page;

	page = ps_vm_get_page(vm, vmf->pgoff);
	if (IS_ERR(page))
		return vmf_error(PTR_ERR(page));

	/* The core locks the page and turns our reference into the PTE's. */
	vmf->page = page;
	return 0;
}

/*
 * Every first write to a page of the VM comes here (write-notify is on
 * because this callback exists). The page is not in a page cache, so it
 * must come back locked: otherwise the core sees a NULL folio->mapping,
 * takes it for a truncated page and retries the fault forever.
 */
static vm_fault_t ps_vm_page_mkwrite(struct vm_fault *vmf)
{
	folio_lock(page_folio(vmf->page));
	return VM_FAULT_LOCKED;
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
 *
 * The first mapping of a VM whose size was never set sets it to the end
 * of the mapping: an unmodified QEMU only asks the size with lseek() and
 * then maps it.
 *
 * Return: 0; -EINVAL for a private mapping, which would turn guest writes
 * into anonymous copies the module does not own; -ENXIO if the mapping
 * goes past the VM's size; -EFBIG if a first mapping is larger than
 * max_vm_size.
 */
int ps_vm_mmap(struct ps_vm *vm, struct vm_area_struct *vma)
{
	u64 max = READ_ONCE(ps_max_vm_size);
	u64 end;
	int ret = 0;

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff > max >> PAGE_SHIFT)
		return -ENXIO;
	end = ((u64)vma->vm_pgoff << PAGE_SHIFT) + vma->vm_end - vma->vm_start;

	mutex_lock(&vm->lock);
	if (!vm->size) {
		if (end > max)
			ret = -EFBIG;
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
	vma->vm_private_data = vm;
	vma->vm_ops = &ps_vm_ops;
	return 0;
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
	info->private_pages = atomic_long_read(&vm->nr_private);
	info->mappings = READ_ONCE(vm->nr_mappings);
}
