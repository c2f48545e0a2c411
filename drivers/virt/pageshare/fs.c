// SPDX-License-Identifier: GPL-2.0
/*
 * The pageshare filesystem: guest RAM as files, mounted like hugetlbfs.
 *
 *	mount -t pageshare -o uid=,gid=,mode=,size=,nr_inodes= none /dir
 *
 * Each regular file is one VM's memory. QEMU uses it unmodified with
 * memory-backend-file,mem-path=<dir> (it creates a file there and unlinks
 * it) or mem-path=<dir>/<name>, and so does libvirt's memory_backing_dir.
 * ftruncate() sets the size, mmap(MAP_SHARED) maps it, the sharing ioctls
 * work on its descriptors, and fallocate(PUNCH_HOLE) and
 * madvise(MADV_REMOVE) discard, which is how virtio-balloon and
 * virtio-mem give memory back.
 *
 * A file's inode here only names the VM: the VM's memory hangs off its own
 * inode on the module's private filesystem (vm.c), whose address_space
 * the file's i_mapping points to. So a VM is the same object however it is
 * reached (this file or PAGESHARE_OPEN_VM), and it lives until
 * the last of them lets go of that inode: an unlinked file lives on while
 * a descriptor or a mapping of it does.
 *
 * Directories are there for libvirt, which makes one per domain.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/statfs.h>

#include <linux/pageshare.h>

#include "pageshare.h"

enum { PS_OPT_UID, PS_OPT_GID, PS_OPT_MODE, PS_OPT_SIZE, PS_OPT_NR_INODES };

/**
 * struct ps_fs_info - A pageshare mount (its superblock's s_fs_info).
 * @uid:	Owner of the root directory.
 * @gid:	Group of the root directory.
 * @mode:	Permissions of the root directory.
 * @given:	The options given (BIT(PS_OPT_*)), for a remount.
 * @limit:	size=: what the sizes of the files may add up to; its lock
 *		also protects @nr_inodes.
 * @max_inodes:	nr_inodes=: files and directories, the root included.
 * @nr_inodes:	How many there are, under @limit.lock.
 */
struct ps_fs_info {
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
	unsigned int given;
	struct ps_size_limit limit;
	u64 max_inodes;
	u64 nr_inodes;
};

/**
 * ps_limit_resize() - Account a VM's size change against its mount's limit.
 * @limit: the mount's limit, or NULL for a VM of no mount (KUnit's).
 * @old: the VM's size before.
 * @new: its size after.
 *
 * Context: The VM's lock is held, so @old is its accounted size.
 * Return: 0, or -ENOSPC if @new does not fit.
 */
int ps_limit_resize(struct ps_size_limit *limit, u64 old, u64 new)
{
	int ret = 0;

	if (!limit)
		return 0;
	spin_lock(&limit->lock);
	if (new > old && new - old > limit->max - limit->used)
		ret = -ENOSPC;
	else
		limit->used = limit->used - old + new;
	spin_unlock(&limit->lock);
	return ret;
}

static const struct inode_operations ps_dir_iops;

/* nr_inodes=: a mount that others may write to cannot fill the VM table. */
static bool ps_fs_take_inode(struct ps_fs_info *fsi)
{
	bool ok;

	spin_lock(&fsi->limit.lock);
	ok = fsi->nr_inodes < fsi->max_inodes;
	if (ok)
		fsi->nr_inodes++;
	spin_unlock(&fsi->limit.lock);
	return ok;
}

static void ps_fs_put_inode(struct ps_fs_info *fsi)
{
	spin_lock(&fsi->limit.lock);
	fsi->nr_inodes--;
	spin_unlock(&fsi->limit.lock);
}

/* ERR_PTR(-ENOSPC) past nr_inodes (the root counts), or ERR_PTR(-ENOMEM). */
static struct inode *ps_fs_new_inode(struct super_block *sb, struct inode *dir,
				     umode_t mode)
{
	struct ps_fs_info *fsi = sb->s_fs_info;
	struct inode *inode;

	if (!ps_fs_take_inode(fsi))
		return ERR_PTR(-ENOSPC);
	inode = new_inode(sb);
	if (!inode) {
		ps_fs_put_inode(fsi);
		return ERR_PTR(-ENOMEM);
	}
	/* From here on, its evict gives the count back. */
	inode->i_ino = get_next_ino();
	inode_init_owner(&nop_mnt_idmap, inode, dir, mode);
	simple_inode_init_ts(inode);
	return inode;
}

/* A regular file: a new VM, owned by the caller that creates it. */
static struct inode *ps_fs_new_file(struct inode *dir, umode_t mode)
{
	struct ps_fs_info *fsi = dir->i_sb->s_fs_info;
	struct inode *inode;
	struct ps_vm *vm;

	inode = ps_fs_new_inode(dir->i_sb, dir, S_IFREG | (mode & 07777));
	if (IS_ERR(inode))
		return inode;
	vm = ps_vm_create();
	if (IS_ERR(vm)) {
		iput(inode);
		return ERR_CAST(vm);
	}
	/* Before anyone can size it. */
	vm->limit = &fsi->limit;
	inode->i_private = vm;
	inode->i_mapping = vm->inode->i_mapping;
	inode->i_op = &ps_vm_iops;
	inode->i_fop = &ps_vm_file_fops;
	ps_vm_publish(vm);
	return inode;
}

static int ps_fs_create(struct mnt_idmap *idmap, struct inode *dir,
			struct dentry *dentry, umode_t mode, bool excl)
{
	struct inode *inode = ps_fs_new_file(dir, mode);

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	d_instantiate(dentry, inode);
	dget(dentry);	/* pinned until unlink, as on ramfs */
	inode_set_mtime_to_ts(dir, inode_set_ctime_current(dir));
	return 0;
}

/* O_TMPFILE: a VM that goes with its last descriptor and mapping. */
static int ps_fs_tmpfile(struct mnt_idmap *idmap, struct inode *dir,
			 struct file *file, umode_t mode)
{
	struct inode *inode;

	/*
	 * The VFS refuses O_DIRECT (no direct_IO) only once the file is
	 * open, after the new VM was published: PAGESHARE_OPEN_VM could hand
	 * out a VM whose open() then fails. Refuse it before.
	 */
	if (file->f_flags & O_DIRECT)
		return -EINVAL;
	inode = ps_fs_new_file(dir, mode);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	d_tmpfile(file, inode);
	return finish_open_simple(file, 0);
}

static int ps_fs_mkdir(struct mnt_idmap *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode)
{
	struct inode *inode = ps_fs_new_inode(dir->i_sb, dir, S_IFDIR | (mode & 07777));

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	inode->i_op = &ps_dir_iops;
	inode->i_fop = &simple_dir_operations;
	inc_nlink(inode);	/* "." */
	inc_nlink(dir);		/* its ".." */
	d_instantiate(dentry, inode);
	dget(dentry);
	inode_set_mtime_to_ts(dir, inode_set_ctime_current(dir));
	return 0;
}

/*
 * The size of a file is its VM's size: ftruncate() is PAGESHARE_SET_SIZE
 * (shrinking frees the pages past the end; 0 frees all of them), and like
 * it refuses to change the size of a mapped VM.
 */
static int ps_fs_setattr(struct mnt_idmap *idmap, struct dentry *dentry,
			 struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	int ret;

	ret = setattr_prepare(idmap, dentry, attr);
	if (ret)
		return ret;
	if ((attr->ia_valid & ATTR_SIZE) && S_ISREG(inode->i_mode)) {
		ret = ps_vm_set_size(inode->i_private, attr->ia_size);
		if (ret)
			return ret;
		i_size_write(inode, attr->ia_size);
	}
	setattr_copy(idmap, inode, attr);
	return 0;
}

/* The VM's size may also come from PAGESHARE_SET_SIZE or the first mmap(). */
static int ps_fs_getattr(struct mnt_idmap *idmap, const struct path *path,
			 struct kstat *stat, u32 request_mask,
			 unsigned int query_flags)
{
	struct inode *inode = d_inode(path->dentry);
	struct pageshare_vm_info info = { };

	generic_fillattr(idmap, request_mask, inode, stat);
	if (S_ISREG(inode->i_mode)) {
		ps_vm_get_info(inode->i_private, &info);
		stat->size = info.size;
		stat->blocks = info.private_pages << (PAGE_SHIFT - 9);
	}
	return 0;
}

static const struct inode_operations ps_dir_iops = {
	.create		= ps_fs_create,
	.lookup		= simple_lookup,
	.unlink		= simple_unlink,
	.mkdir		= ps_fs_mkdir,
	.rmdir		= simple_rmdir,
	.rename		= simple_rename,
	.tmpfile	= ps_fs_tmpfile,
	.setattr	= ps_fs_setattr,
};

/* A VM's file: here, and PAGESHARE_OPEN_VM's (vm.c). */
const struct inode_operations ps_vm_iops = {
	.setattr	= ps_fs_setattr,
	.getattr	= ps_fs_getattr,
};

/**
 * ps_fs_open() - open() of a regular file on a pageshare mount.
 * @inode: the file's inode, whose i_private is its VM.
 * @filp: the new file.
 *
 * Return: 0.
 */
int ps_fs_open(struct inode *inode, struct file *filp)
{
	filp->private_data = inode->i_private;
	return 0;
}

/* A file's or a directory's inode goes; a file lets go of its VM's. */
static void ps_fs_evict_inode(struct inode *inode)
{
	struct ps_vm *vm = inode->i_private;

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	ps_fs_put_inode(inode->i_sb->s_fs_info);
	if (!vm)
		return;
	/* The VM may outlive the mount through PAGESHARE_OPEN_VM. */
	mutex_lock(&vm->lock);
	ps_limit_resize(vm->limit, vm->size, 0);
	vm->limit = NULL;
	mutex_unlock(&vm->lock);
	iput(vm->inode);
}

static int ps_fs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct ps_fs_info *fsi = dentry->d_sb->s_fs_info;

	simple_statfs(dentry, buf);
	buf->f_bsize = PAGE_SIZE;
	spin_lock(&fsi->limit.lock);
	if (fsi->limit.max != U64_MAX) {
		buf->f_blocks = fsi->limit.max >> PAGE_SHIFT;
		buf->f_bfree = (fsi->limit.max - fsi->limit.used) >> PAGE_SHIFT;
		buf->f_bavail = buf->f_bfree;
	}
	if (fsi->max_inodes != U64_MAX) {
		buf->f_files = fsi->max_inodes;
		buf->f_ffree = fsi->max_inodes - fsi->nr_inodes;
	}
	spin_unlock(&fsi->limit.lock);
	return 0;
}

static int ps_fs_show_options(struct seq_file *m, struct dentry *root)
{
	struct ps_fs_info *fsi = root->d_sb->s_fs_info;

	if (!uid_eq(fsi->uid, GLOBAL_ROOT_UID))
		seq_printf(m, ",uid=%u", from_kuid_munged(&init_user_ns, fsi->uid));
	if (!gid_eq(fsi->gid, GLOBAL_ROOT_GID))
		seq_printf(m, ",gid=%u", from_kgid_munged(&init_user_ns, fsi->gid));
	if (fsi->mode != 0755)
		seq_printf(m, ",mode=%o", fsi->mode);
	if (fsi->limit.max != U64_MAX)
		seq_printf(m, ",size=%llu", fsi->limit.max);
	if (fsi->max_inodes != U64_MAX)
		seq_printf(m, ",nr_inodes=%llu", fsi->max_inodes);
	return 0;
}

static const struct super_operations ps_fs_sops = {
	.statfs		= ps_fs_statfs,
	.drop_inode	= generic_delete_inode,
	.evict_inode	= ps_fs_evict_inode,
	.show_options	= ps_fs_show_options,
};

static const struct fs_parameter_spec ps_fs_params[] = {
	fsparam_u32("uid", PS_OPT_UID),
	fsparam_u32("gid", PS_OPT_GID),
	fsparam_u32oct("mode", PS_OPT_MODE),
	fsparam_string("size", PS_OPT_SIZE),
	fsparam_string("nr_inodes", PS_OPT_NR_INODES),
	{}
};

static int ps_fs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct ps_fs_info *fsi = fc->s_fs_info;
	struct fs_parse_result result;
	unsigned long long size;
	char *rest;
	int opt;

	opt = fs_parse(fc, ps_fs_params, param, &result);
	if (opt < 0)
		return opt;
	switch (opt) {
	case PS_OPT_UID:
		fsi->uid = make_kuid(current_user_ns(), result.uint_32);
		if (!uid_valid(fsi->uid))
			return invalfc(fc, "Invalid uid");
		break;
	case PS_OPT_GID:
		fsi->gid = make_kgid(current_user_ns(), result.uint_32);
		if (!gid_valid(fsi->gid))
			return invalfc(fc, "Invalid gid");
		break;
	case PS_OPT_MODE:
		fsi->mode = result.uint_32 & 07777;
		break;
	case PS_OPT_SIZE:
		/* Bytes, with k, m, g or t, like tmpfs and hugetlbfs. */
		size = memparse(param->string, &rest);
		if (*rest || !size)
			return invalfc(fc, "Invalid size");
		fsi->limit.max = round_down(size, PAGE_SIZE);
		break;
	case PS_OPT_NR_INODES:
		/* As tmpfs: k, m, g suffixes; 0 for no limit. */
		size = memparse(param->string, &rest);
		if (*rest)
			return invalfc(fc, "Invalid nr_inodes");
		fsi->max_inodes = size ?: U64_MAX;
		break;
	}
	fsi->given |= BIT(opt);
	return 0;
}

/*
 * mount -o remount: the options given change, the others stay. size= and
 * nr_inodes= cannot go below what is in use.
 */
static int ps_fs_reconfigure(struct fs_context *fc)
{
	struct ps_fs_info *new = fc->s_fs_info;
	struct super_block *sb = fc->root->d_sb;
	struct ps_fs_info *fsi = sb->s_fs_info;
	struct inode *root = d_inode(sb->s_root);
	int ret = 0;

	spin_lock(&fsi->limit.lock);
	if ((new->given & BIT(PS_OPT_SIZE)) && new->limit.max < fsi->limit.used)
		ret = -EBUSY;
	else if ((new->given & BIT(PS_OPT_NR_INODES)) && new->max_inodes < fsi->nr_inodes)
		ret = -EBUSY;
	if (!ret && (new->given & BIT(PS_OPT_SIZE)))
		fsi->limit.max = new->limit.max;
	if (!ret && (new->given & BIT(PS_OPT_NR_INODES)))
		fsi->max_inodes = new->max_inodes;
	spin_unlock(&fsi->limit.lock);
	if (ret)
		return invalfc(fc, "size or nr_inodes below what is in use");

	inode_lock(root);
	if (new->given & BIT(PS_OPT_UID)) {
		fsi->uid = new->uid;
		root->i_uid = new->uid;
	}
	if (new->given & BIT(PS_OPT_GID)) {
		fsi->gid = new->gid;
		root->i_gid = new->gid;
	}
	if (new->given & BIT(PS_OPT_MODE)) {
		fsi->mode = new->mode;
		root->i_mode = S_IFDIR | new->mode;
	}
	inode_unlock(root);
	return 0;
}

static int ps_fs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct ps_fs_info *fsi = sb->s_fs_info;
	struct inode *root;

	sb->s_maxbytes = min_t(u64, PS_VM_SIZE_LIMIT, MAX_LFS_FILESIZE);
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_magic = PAGESHARE_SUPER_MAGIC;
	sb->s_op = &ps_fs_sops;
	sb->s_time_gran = 1;
	sb->s_iflags |= SB_I_NOEXEC | SB_I_NODEV;

	root = ps_fs_new_inode(sb, NULL, S_IFDIR | fsi->mode);
	if (IS_ERR(root))
		return PTR_ERR(root);
	root->i_uid = fsi->uid;
	root->i_gid = fsi->gid;
	root->i_op = &ps_dir_iops;
	root->i_fop = &simple_dir_operations;
	inc_nlink(root);
	sb->s_root = d_make_root(root);
	return sb->s_root ? 0 : -ENOMEM;
}

static int ps_fs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, ps_fs_fill_super);
}

static void ps_fs_free_fc(struct fs_context *fc)
{
	kfree(fc->s_fs_info);
}

static const struct fs_context_operations ps_fs_context_ops = {
	.free		= ps_fs_free_fc,
	.parse_param	= ps_fs_parse_param,
	.get_tree	= ps_fs_get_tree,
	.reconfigure	= ps_fs_reconfigure,
};

static int ps_fs_init_fs_context(struct fs_context *fc)
{
	struct ps_fs_info *fsi = kzalloc(sizeof(*fsi), GFP_KERNEL);

	if (!fsi)
		return -ENOMEM;
	fsi->uid = current_fsuid();
	fsi->gid = current_fsgid();
	fsi->mode = 0755;
	spin_lock_init(&fsi->limit.lock);
	fsi->limit.max = U64_MAX;
	fsi->max_inodes = U64_MAX;
	fc->s_fs_info = fsi;
	fc->ops = &ps_fs_context_ops;
	return 0;
}

/* Unlinks what is left, as on ramfs; open or mapped VMs live on. */
static void ps_fs_kill_sb(struct super_block *sb)
{
	kill_litter_super(sb);
	kfree(sb->s_fs_info);
}

static struct file_system_type ps_fs_type = {
	.owner		 = THIS_MODULE,
	.name		 = "pageshare",
	.init_fs_context = ps_fs_init_fs_context,
	.parameters	 = ps_fs_params,
	.kill_sb	 = ps_fs_kill_sb,
};
MODULE_ALIAS_FS("pageshare");

/**
 * ps_mountfs_init() - Register the pageshare filesystem.
 *
 * Return: 0 or a negative errno.
 */
int ps_mountfs_init(void)
{
	return register_filesystem(&ps_fs_type);
}

/**
 * ps_mountfs_exit() - Unregister it; no mount is left (each pins the module).
 */
void ps_mountfs_exit(void)
{
	unregister_filesystem(&ps_fs_type);
}
