// SPDX-License-Identifier: GPL-2.0
/*
 * pageshare: Xen-style memory page sharing for KVM guests.
 *
 * Each regular file of a pageshare filesystem (fs.c) is one VM's memory,
 * which the VMM maps with mmap(MAP_SHARED) and hands to KVM as memslots.
 * /dev/pageshare is the control node of a deduplication agent: it opens
 * any VM by its id, and takes the sharing ioctls, the global counters and
 * the audit, but it is no VM. This file holds the ioctls and the file
 * operations of both; vm.c holds the memory.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <linux/pageshare.h>

#include "pageshare.h"

unsigned long ps_max_vm_size = 1UL << 40;

/* Page aligned, and within what the reverse map's 32-bit gfns can name. */
static int ps_max_vm_size_set(const char *val, const struct kernel_param *kp)
{
	unsigned long size;
	int ret;

	ret = kstrtoul(val, 0, &size);
	if (ret)
		return ret;
	if (!size || !PAGE_ALIGNED(size) || size > PS_VM_SIZE_LIMIT)
		return -EINVAL;
	WRITE_ONCE(ps_max_vm_size, size);
	return 0;
}

static const struct kernel_param_ops ps_max_vm_size_ops = {
	.set	= ps_max_vm_size_set,
	.get	= param_get_ulong,
};

module_param_cb(max_vm_size, &ps_max_vm_size_ops, &ps_max_vm_size, 0644);
MODULE_PARM_DESC(max_vm_size,
		 "Largest memory size of one VM, in bytes, page aligned, at most 16 TiB (default 1 TiB)");

unsigned int ps_max_sharers = 1U << 20;
module_param_named(max_sharers, ps_max_sharers, uint, 0644);
MODULE_PARM_DESC(max_sharers, "Most gfns one frame may back (default 1048576)");

static int ps_mmap(struct file *filp, struct vm_area_struct *vma)
{
	/*
	 * Someone who may only read a VM file must not pick its size (nor,
	 * by keeping it mapped, keep its owner from setting it).
	 */
	return ps_vm_mmap(filp->private_data, vma, filp->f_mode & FMODE_WRITE);
}

/* QEMU learns the size of a mem-path backend with lseek(fd, 0, SEEK_END). */
static loff_t ps_llseek(struct file *filp, loff_t offset, int whence)
{
	struct ps_vm *vm = filp->private_data;

	return fixed_size_llseek(filp, offset, whence, READ_ONCE(vm->size));
}

static int ps_ioctl_set_size(struct ps_vm *vm, void __user *argp)
{
	struct pageshare_size arg;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || memchr_inv(arg.reserved, 0, sizeof(arg.reserved)) ||
	    !arg.size)
		return -EINVAL;
	return ps_vm_set_size(vm, arg.size);
}

static int ps_ioctl_get_info(struct ps_vm *vm, void __user *argp)
{
	struct pageshare_vm_info info;

	memset(&info, 0, sizeof(info));
	ps_vm_get_info(vm, &info);
	if (copy_to_user(argp, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static int ps_ioctl_get_private(struct ps_vm *vm, void __user *argp)
{
	struct pageshare_private arg;
	int ret;

	/* The outputs must reach the caller: refuse before the walk. */
	if (copy_from_user(&arg, argp, sizeof(arg)) || copy_to_user(argp, &arg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.pad || memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;
	if (arg.max > PAGESHARE_BATCH_MAX)
		return -E2BIG;
	ret = ps_vm_get_private(vm, &arg, u64_to_user_ptr(arg.gfns));
	if (ret)
		return ret;
	if (copy_to_user(argp, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

static int ps_ioctl_set_policy(struct ps_vm *vm, void __user *argp)
{
	struct pageshare_policy p;
	int ret;

	/* The new group's id must reach the caller: refuse before changing. */
	if (copy_from_user(&p, argp, sizeof(p)) || copy_to_user(argp, &p, sizeof(p)))
		return -EFAULT;
	ret = ps_set_policy(vm, &p);
	if (ret)
		return ret;
	/* The new group's id: the only output. */
	if (copy_to_user(argp, &p, sizeof(p)))
		return -EFAULT;
	return 0;
}

static int ps_ioctl_get_policy(struct ps_vm *vm, void __user *argp)
{
	struct pageshare_policy p;

	memset(&p, 0, sizeof(p));
	ps_get_policy(vm, &p);
	if (copy_to_user(argp, &p, sizeof(p)))
		return -EFAULT;
	return 0;
}

static int ps_ioctl_open_vm(void __user *argp)
{
	struct pageshare_open_vm arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.pad || memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
		return -EINVAL;
	return ps_open_vm(arg.id);
}

/* @vm is NULL on the control node: only the global counters. */
static int ps_ioctl_get_stats(struct ps_vm *vm, void __user *argp)
{
	struct pageshare_stats st;

	memset(&st, 0, sizeof(st));
	ps_get_stats(vm, &st);
	if (copy_to_user(argp, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

/*
 * The VM behind a descriptor the caller holds. The caller keeps @f until
 * it is done with the VM: the open file is what keeps the VM alive.
 */
static bool ps_is_vm_file(const struct file *file)
{
	return file->f_op == &ps_vm_file_fops || file->f_op == &ps_vm_id_fops;
}

/*
 * Whoever may only read a VM's memory may not change it either: every
 * operation but a query needs each VM it names open for writing. A file
 * of a pageshare mount may be open read-only by someone who is not its
 * owner (a file QEMU made 0644, say).
 */
static struct ps_vm *ps_vm_fdget(u32 fd, struct fd *f, bool write)
{
	*f = fdget(fd);
	if (!fd_file(*f))
		return ERR_PTR(-EBADF);
	if (!ps_is_vm_file(fd_file(*f)) ||
	    (write && !(fd_file(*f)->f_mode & FMODE_WRITE))) {
		fdput(*f);
		return ERR_PTR(-EBADF);
	}
	return fd_file(*f)->private_data;
}

/* Two VMs, possibly the same descriptor twice, both open for writing. */
static int ps_vm_fdget2(u32 a, u32 b, struct fd *fa, struct fd *fb,
			struct ps_vm **va, struct ps_vm **vb)
{
	*va = ps_vm_fdget(a, fa, true);
	if (IS_ERR(*va))
		return PTR_ERR(*va);
	*vb = ps_vm_fdget(b, fb, true);
	if (IS_ERR(*vb)) {
		fdput(*fa);
		return PTR_ERR(*vb);
	}
	return 0;
}

static bool ps_nominate_valid(const struct pageshare_nominate *e)
{
	return !(e->flags & ~PAGESHARE_NOMINATE_HASH) && !e->pad;
}

/*
 * One handler per operation; each validates its entry, runs it and fills
 * in its outputs (zeroed on failure), and returns 0 or a negative errno.
 */
static int ps_op_nominate(void *arg)
{
	struct pageshare_nominate *e = arg;
	struct ps_vm *vm;
	struct fd f;
	int ret;

	e->handle = 0;
	e->hash = 0;
	if (!ps_nominate_valid(e))
		return -EINVAL;
	vm = ps_vm_fdget(e->vm, &f, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	ret = ps_nominate(vm, e->gfn, &e->handle,
			  e->flags & PAGESHARE_NOMINATE_HASH ? &e->hash : NULL);
	fdput(f);
	return ret;
}

/*
 * Before a chunk of a nominate batch runs: each run of valid entries that
 * name consecutive gfns through one descriptor is unmapped in one go
 * (ps_nominate_zap()), one MMU-notifier round into KVM and one TLB flush
 * rather than one per gfn, and the nominates then find their pages
 * unmapped and zap nothing. Only an optimisation: each nominate checks
 * under the page lock whether its page is mapped (again), so a fault in
 * between, or a descriptor that names another VM by the time the entry
 * runs, costs a zap of its own and nothing else.
 */
static void ps_op_nominate_prepare(void *entries, u32 n)
{
	struct pageshare_nominate *e = entries;
	struct ps_vm *vm;
	struct fd f;
	u32 i, j;

	for (i = 0; i < n; i = j) {
		j = i + 1;
		if (!ps_nominate_valid(&e[i]))
			continue;
		while (j < n && ps_nominate_valid(&e[j]) && e[j].vm == e[i].vm &&
		       e[j].gfn == e[j - 1].gfn + 1)
			j++;
		/* A single gfn gains nothing: its nominate zaps it if need be. */
		if (j - i < 2)
			continue;
		/* Not for a descriptor that its nominates would refuse. */
		vm = ps_vm_fdget(e[i].vm, &f, true);
		if (IS_ERR(vm))
			continue;
		ps_nominate_zap(vm, e[i].gfn, j - i);
		fdput(f);
	}
}

static int ps_op_share(void *arg)
{
	struct pageshare_share *e = arg;
	struct ps_vm *svm, *cvm;
	struct fd fs, fc;
	int ret;

	if (e->flags & ~PAGESHARE_SHARE_COMPARE)
		return -EINVAL;
	ret = ps_vm_fdget2(e->src_vm, e->client_vm, &fs, &fc, &svm, &cvm);
	if (ret)
		return ret;
	ret = ps_share(svm, e->src_gfn, e->src_handle, cvm, e->client_gfn,
		       e->client_handle, e->flags & PAGESHARE_SHARE_COMPARE);
	fdput(fc);
	fdput(fs);
	return ret;
}

static int ps_op_add_to_physmap(void *arg)
{
	struct pageshare_add_to_physmap *e = arg;
	struct ps_vm *svm, *cvm;
	struct fd fs, fc;
	int ret;

	if (e->flags)
		return -EINVAL;
	ret = ps_vm_fdget2(e->src_vm, e->client_vm, &fs, &fc, &svm, &cvm);
	if (ret)
		return ret;
	ret = ps_add_to_physmap(svm, e->src_gfn, e->src_handle, cvm, e->client_gfn);
	fdput(fc);
	fdput(fs);
	return ret;
}

static int ps_op_unshare(void *arg)
{
	struct pageshare_unshare *e = arg;
	struct ps_vm *vm;
	struct fd f;
	int ret;

	if (e->flags || e->pad)
		return -EINVAL;
	vm = ps_vm_fdget(e->vm, &f, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	ret = ps_unshare(vm, e->gfn);
	fdput(f);
	return ret;
}

static int ps_op_query(void *arg)
{
	struct pageshare_query *e = arg;
	struct ps_vm *vm;
	struct fd f;
	int ret;

	e->handle = 0;
	e->sharers = 0;
	e->state = 0;
	if (e->flags || e->pad)
		return -EINVAL;
	vm = ps_vm_fdget(e->vm, &f, false);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	ret = ps_query(vm, e->gfn, &e->handle, &e->sharers, &e->state);
	fdput(f);
	return ret;
}

/**
 * struct ps_op - A sharing operation, in its single and its batch form.
 * @size: size of one entry.
 * @result: offset of the entry's __s32 result.
 * @out: the entry has outputs: the single form writes the entry back
 *       before it runs (so that an output that cannot be stored follows
 *       no change) and again, with the outputs, on success.
 * @run: the handler.
 * @prepare: if not NULL, called with each chunk of a batch's entries
 *	     before they run, for work that is cheaper for many at once.
 */
struct ps_op {
	size_t size;
	size_t result;
	bool out;
	int (*run)(void *entry);
	void (*prepare)(void *entries, u32 n);
};

#define PS_OP(type, out_, fn, prepare_) {				\
	.size = sizeof(struct type),					\
	.result = offsetof(struct type, result),			\
	.out = out_,							\
	.run = fn,							\
	.prepare = prepare_,						\
}

static const struct ps_op ps_op_nominate_op =
	PS_OP(pageshare_nominate, true, ps_op_nominate, ps_op_nominate_prepare);
static const struct ps_op ps_op_share_op = PS_OP(pageshare_share, false, ps_op_share, NULL);
static const struct ps_op ps_op_atp_op =
	PS_OP(pageshare_add_to_physmap, false, ps_op_add_to_physmap, NULL);
static const struct ps_op ps_op_unshare_op =
	PS_OP(pageshare_unshare, false, ps_op_unshare, NULL);
static const struct ps_op ps_op_query_op = PS_OP(pageshare_query, true, ps_op_query, NULL);

/* Room for any one entry, for the single forms. */
union ps_op_entry {
	struct pageshare_nominate nominate;
	struct pageshare_share share;
	struct pageshare_add_to_physmap add_to_physmap;
	struct pageshare_unshare unshare;
	struct pageshare_query query;
};

static long ps_ioctl_single(void __user *argp, const struct ps_op *op)
{
	union ps_op_entry buf;
	int ret;

	if (copy_from_user(&buf, argp, op->size))
		return -EFAULT;
	/* An output that cannot be stored must not follow a change made. */
	if (op->out && copy_to_user(argp, &buf, op->size))
		return -EFAULT;
	ret = op->run(&buf);
	if (!ret && op->out) {
		memset((u8 *)&buf + op->result, 0, sizeof(s32));
		if (copy_to_user(argp, &buf, op->size))
			return -EFAULT;
	}
	return ret;
}

/* Entries are copied in and out in chunks, so a batch needs no big buffer. */
#define PS_BATCH_CHUNK	64

static long ps_ioctl_batch(struct pageshare_batch __user *argp,
			   const struct ps_op *op)
{
	struct pageshare_batch b;
	u32 done = 0, n, i;
	long ret = 0;
	u8 *buf, *e;
	s32 result;

	if (copy_from_user(&b, argp, sizeof(b)))
		return -EFAULT;
	if (b.flags || b.pad || memchr_inv(b.reserved, 0, sizeof(b.reserved)))
		return -EINVAL;
	if (b.count > PAGESHARE_BATCH_MAX)
		return -E2BIG;
	/* A done count that cannot be stored must not follow changes made. */
	if (put_user(0, &argp->done))
		return -EFAULT;
	if (!b.count)
		return 0;

	buf = kmalloc_array(PS_BATCH_CHUNK, op->size, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	while (done < b.count) {
		void __user *uentries = u64_to_user_ptr(b.entries) + (size_t)done * op->size;

		n = min_t(u32, PS_BATCH_CHUNK, b.count - done);
		/*
		 * Results that cannot be stored must not follow changes made:
		 * entries that are not writable are not run.
		 */
		if (copy_from_user(buf, uentries, (size_t)n * op->size) ||
		    copy_to_user(uentries, buf, (size_t)n * op->size)) {
			ret = -EFAULT;
			break;
		}
		if (op->prepare)
			op->prepare(buf, n);
		for (i = 0, e = buf; i < n; i++, e += op->size) {
			result = op->run(e);
			memcpy(e + op->result, &result, sizeof(result));
		}
		if (copy_to_user(uentries, buf, (size_t)n * op->size)) {
			ret = -EFAULT;
			break;
		}
		done += n;
		if (done < b.count && signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	kfree(buf);

	if (put_user(done, &argp->done))
		return -EFAULT;
	return ret;
}

/*
 * What the control node and every VM descriptor take alike: the sharing
 * operations name their VMs by descriptor in each entry, whichever
 * descriptor they are issued on. -ENOIOCTLCMD for anything else.
 */
static long ps_ioctl_common(struct ps_vm *vm, unsigned int cmd, void __user *argp)
{
	long ret;

	switch (cmd) {
	case PAGESHARE_GET_API_VERSION:
		return PAGESHARE_API_VERSION;
	case PAGESHARE_GET_STATS:
		return ps_ioctl_get_stats(vm, argp);
	case PAGESHARE_OPEN_VM:
		return ps_ioctl_open_vm(argp);
	case PAGESHARE_NOMINATE:
		return ps_ioctl_single(argp, &ps_op_nominate_op);
	case PAGESHARE_SHARE:
		return ps_ioctl_single(argp, &ps_op_share_op);
	case PAGESHARE_ADD_TO_PHYSMAP:
		return ps_ioctl_single(argp, &ps_op_atp_op);
	case PAGESHARE_UNSHARE:
		return ps_ioctl_single(argp, &ps_op_unshare_op);
	case PAGESHARE_QUERY:
		return ps_ioctl_single(argp, &ps_op_query_op);
	case PAGESHARE_NOMINATE_BATCH:
		return ps_ioctl_batch(argp, &ps_op_nominate_op);
	case PAGESHARE_SHARE_BATCH:
		return ps_ioctl_batch(argp, &ps_op_share_op);
	case PAGESHARE_ADD_TO_PHYSMAP_BATCH:
		return ps_ioctl_batch(argp, &ps_op_atp_op);
	case PAGESHARE_UNSHARE_BATCH:
		return ps_ioctl_batch(argp, &ps_op_unshare_op);
	case PAGESHARE_QUERY_BATCH:
		return ps_ioctl_batch(argp, &ps_op_query_op);
	case PAGESHARE_AUDIT:
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		ret = ps_audit();
		return min_t(long, ret, INT_MAX);
	default:
		return -ENOIOCTLCMD;
	}
}

/* The control node is no VM: a VM's own ioctls are not for it. */
static long ps_ctl_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	long ret = ps_ioctl_common(NULL, cmd, (void __user *)arg);

	return ret == -ENOIOCTLCMD ? -ENOTTY : ret;
}

static long ps_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct ps_vm *vm = filp->private_data;
	void __user *argp = (void __user *)arg;
	long ret;

	/*
	 * A read-only descriptor may neither resize the VM nor change or
	 * learn its policy: the group id is the right to join the group.
	 */
	switch (cmd) {
	case PAGESHARE_SET_SIZE:
	case PAGESHARE_SET_POLICY:
	case PAGESHARE_GET_POLICY:
		if (!(filp->f_mode & FMODE_WRITE))
			return -EBADF;
		break;
	}

	switch (cmd) {
	case PAGESHARE_SET_SIZE:
		return ps_ioctl_set_size(vm, argp);
	case PAGESHARE_GET_INFO:
		return ps_ioctl_get_info(vm, argp);
	case PAGESHARE_GET_PRIVATE:
		return ps_ioctl_get_private(vm, argp);
	case PAGESHARE_SET_POLICY:
		return ps_ioctl_set_policy(vm, argp);
	case PAGESHARE_GET_POLICY:
		return ps_ioctl_get_policy(vm, argp);
	}
	ret = ps_ioctl_common(vm, cmd, argp);
	return ret == -ENOIOCTLCMD ? -ENOTTY : ret;
}

static void ps_show_fdinfo_file(struct seq_file *m, struct file *filp)
{
	ps_show_fdinfo(filp->private_data, m);
}

/*
 * The control node. Its open() makes nothing: the node's mode (root's,
 * 0600) is what keeps others out, and each ioctl checks what it needs.
 */
static const struct file_operations ps_ctl_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.unlocked_ioctl	= ps_ctl_ioctl,
	/* Every argument is fixed-size and 64-bit aligned. */
	.compat_ioctl	= compat_ptr_ioctl,
};

/*
 * Discard: what QEMU does for virtio-balloon, virtio-mem and free page
 * reporting, and what madvise(MADV_REMOVE) turns into. Only punching a
 * hole: guest memory is allocated by touching it.
 */
static long ps_fallocate(struct file *filp, int mode, loff_t offset, loff_t len)
{
	if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	return ps_vm_punch(filp->private_data, offset, len);
}

/*
 * A VM's file: a regular file on a pageshare mount (fs.c sets
 * private_data at open()). The VM goes with the inode, not with the file.
 */
const struct file_operations ps_vm_file_fops = {
	.owner		= THIS_MODULE,
	.open		= ps_fs_open,
	.mmap		= ps_mmap,
	.llseek		= ps_llseek,
	.fallocate	= ps_fallocate,
	.show_fdinfo	= ps_show_fdinfo_file,
	.unlocked_ioctl	= ps_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

/*
 * A PAGESHARE_OPEN_VM descriptor holds the VM's inode (ps_vm_open_id())
 * and lets go of it here, while its operations still pin the module: the
 * VM's teardown may run now.
 */
static int ps_id_release(struct inode *inode, struct file *filp)
{
	struct ps_vm *vm = filp->private_data;

	iput(vm->inode);
	return 0;
}

const struct file_operations ps_vm_id_fops = {
	.owner		= THIS_MODULE,
	.release	= ps_id_release,
	.mmap		= ps_mmap,
	.llseek		= ps_llseek,
	.fallocate	= ps_fallocate,
	.show_fdinfo	= ps_show_fdinfo_file,
	.unlocked_ioctl	= ps_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice ps_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "pageshare",
	.fops	= &ps_ctl_fops,
};

static int __init ps_init(void)
{
	int ret;

	ret = ps_share_init();
	if (ret)
		return ret;
	ret = ps_fs_init();
	if (ret)
		goto err_share;
	ret = ps_sysfs_init();
	if (ret)
		goto err_fs;
	ret = ps_mountfs_init();
	if (ret)
		goto err_sysfs;
	/* Last: once it is there, an agent may ask for any VM. */
	ret = misc_register(&ps_misc);
	if (ret)
		goto err_mountfs;
	return 0;

err_mountfs:
	ps_mountfs_exit();
err_sysfs:
	ps_sysfs_exit();
err_fs:
	ps_fs_exit();
err_share:
	ps_share_exit();
	return ret;
}

/*
 * No VM can exist here. Whatever holds one pins the module until the VM's
 * teardown is over: a descriptor from PAGESHARE_OPEN_VM through its
 * operations (the teardown runs in ->release), a file of a pageshare
 * mount through the mount (it runs in the file's evict).
 */
static void __exit ps_exit(void)
{
	misc_deregister(&ps_misc);
	ps_mountfs_exit();
	ps_sysfs_exit();
	ps_fs_exit();
	ps_share_exit();
}

module_init(ps_init);
module_exit(ps_exit);

MODULE_DESCRIPTION("Xen-style memory page sharing for KVM guests");
MODULE_LICENSE("GPL");
