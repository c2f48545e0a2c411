// SPDX-License-Identifier: GPL-2.0
/*
 * pageshare: Xen-style memory page sharing for KVM guests.
 *
 * /dev/pageshare serves guest RAM: each open() is one VM's memory, which
 * the VMM maps with mmap(MAP_SHARED) and hands to KVM as memslots. This
 * file holds the device and its file operations; vm.c holds the memory.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include <linux/pageshare.h>

#include "pageshare.h"

unsigned long ps_max_vm_size = 1UL << 40;
module_param_named(max_vm_size, ps_max_vm_size, ulong, 0644);
MODULE_PARM_DESC(max_vm_size, "Largest memory size of one VM, in bytes (default 1 TiB)");

static int ps_open(struct inode *inode, struct file *filp)
{
	struct ps_vm *vm;

	vm = ps_vm_create();
	if (IS_ERR(vm))
		return PTR_ERR(vm);

	/*
	 * Every open() of the device node shares its inode: give this file
	 * the VM's own address_space, so that mappings and zapping are per VM.
	 */
	filp->f_mapping = vm->inode->i_mapping;
	filp->private_data = vm;
	return 0;
}

/* Called once the last fd is closed and the last mapping is gone. */
static int ps_release(struct inode *inode, struct file *filp)
{
	ps_vm_destroy(filp->private_data);
	return 0;
}

static int ps_mmap(struct file *filp, struct vm_area_struct *vma)
{
	return ps_vm_mmap(filp->private_data, vma);
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
	if (arg.flags || memchr_inv(arg.reserved, 0, sizeof(arg.reserved)))
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

static long ps_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct ps_vm *vm = filp->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case PAGESHARE_GET_API_VERSION:
		return PAGESHARE_API_VERSION;
	case PAGESHARE_SET_SIZE:
		return ps_ioctl_set_size(vm, argp);
	case PAGESHARE_GET_INFO:
		return ps_ioctl_get_info(vm, argp);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations ps_fops = {
	.owner		= THIS_MODULE,
	.open		= ps_open,
	.release	= ps_release,
	.mmap		= ps_mmap,
	.llseek		= ps_llseek,
	.unlocked_ioctl	= ps_ioctl,
	/* Every argument is fixed-size and 64-bit aligned. */
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice ps_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "pageshare",
	.fops	= &ps_fops,
};

static int __init ps_init(void)
{
	int ret;

	ret = ps_fs_init();
	if (ret)
		return ret;
	ret = ps_sysfs_init();
	if (ret)
		goto err_fs;
	ret = misc_register(&ps_misc);
	if (ret)
		goto err_sysfs;
	return 0;

err_sysfs:
	ps_sysfs_exit();
err_fs:
	ps_fs_exit();
	return ret;
}

/* No VM can exist here: every open file pins the module. */
static void __exit ps_exit(void)
{
	misc_deregister(&ps_misc);
	ps_sysfs_exit();
	ps_fs_exit();
}

module_init(ps_init);
module_exit(ps_exit);

MODULE_DESCRIPTION("Xen-style memory page sharing for KVM guests");
MODULE_LICENSE("GPL");
