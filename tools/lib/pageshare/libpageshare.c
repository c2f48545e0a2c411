// SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause
/*
 * libpageshare: thin wrappers of the pageshare ioctls that return
 * -errno, batch wrappers that take any number of entries, readers of
 * /sys/kernel/pageshare/, and the meaning of each errno per operation.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "pageshare.h"

static char *ps_device;
static char *ps_sysfs;

static int ps_set_path(char **where, const char *path)
{
	char *copy = NULL;

	if (path) {
		copy = strdup(path);
		if (!copy)
			return -ENOMEM;
	}
	free(*where);
	*where = copy;
	return 0;
}

int pageshare_set_device_path(const char *path)
{
	return ps_set_path(&ps_device, path);
}

const char *pageshare_device_path(void)
{
	return ps_device ? ps_device : PAGESHARE_DEVICE_PATH;
}

int pageshare_set_sysfs_root(const char *root)
{
	return ps_set_path(&ps_sysfs, root);
}

const char *pageshare_sysfs_root(void)
{
	return ps_sysfs ? ps_sysfs : PAGESHARE_SYSFS_ROOT;
}

/* An ioctl whose non-negative return is the answer. */
static int ps_ioctl(int fd, unsigned long req, void *arg)
{
	int ret = ioctl(fd, req, arg);

	return ret < 0 ? -errno : ret;
}

int pageshare_control_open(void)
{
	int fd = open(pageshare_device_path(), O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int pageshare_vm_create(const char *dir)
{
	struct statfs sf;
	int fd;

	/*
	 * O_TMPFILE works on most filesystems: a file made elsewhere would
	 * be ordinary memory that nothing here can share.
	 */
	fd = open(dir ? dir : PAGESHARE_MOUNT_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EOPNOTSUPP ? -EMEDIUMTYPE : -errno;
	if (fstatfs(fd, &sf)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (sf.f_type != PAGESHARE_SUPER_MAGIC) {
		close(fd);
		return -EMEDIUMTYPE;
	}
	return fd;
}

int pageshare_vm_open_id(int ctl_fd, uint64_t id)
{
	struct pageshare_open_vm arg = { .id = id };

	return ps_ioctl(ctl_fd, PAGESHARE_OPEN_VM, &arg);
}

int pageshare_api_version(int fd)
{
	return ps_ioctl(fd, PAGESHARE_GET_API_VERSION, NULL);
}

int pageshare_set_size(int fd, uint64_t bytes)
{
	struct pageshare_size arg = { .size = bytes };

	return ps_ioctl(fd, PAGESHARE_SET_SIZE, &arg);
}

int pageshare_get_info(int fd, struct pageshare_vm_info *info)
{
	memset(info, 0, sizeof(*info));
	return ps_ioctl(fd, PAGESHARE_GET_INFO, info);
}

int pageshare_get_private(int fd, uint64_t start, uint64_t *gfns, uint32_t max,
			  uint32_t *count, uint64_t *next, uint64_t *discards)
{
	struct pageshare_private arg;
	uint32_t done = 0;
	int ret;

	*count = 0;
	*next = start;
	/*
	 * A call stores PAGESHARE_BATCH_MAX gfns at most: go on from where a
	 * full one stopped, so that fewer than @max means the end of the VM.
	 * The discard count is the first call's, read before any gfn.
	 */
	do {
		memset(&arg, 0, sizeof(arg));
		arg.gfns = (uintptr_t)(gfns + done);
		arg.start = *next;
		arg.max = max - done < PAGESHARE_BATCH_MAX ? max - done : PAGESHARE_BATCH_MAX;
		ret = ps_ioctl(fd, PAGESHARE_GET_PRIVATE, &arg);
		if (ret)
			return ret;
		/* A count past the call's own would be a kernel bug. */
		if (arg.count > arg.max)
			return -EIO;
		if (!done && discards)
			*discards = arg.discards;
		done += arg.count;
		*count = done;
		*next = arg.next;
	} while (done < max && arg.count == arg.max);
	return 0;
}

int pageshare_get_policy(int fd, uint64_t *group, uint32_t *flags)
{
	struct pageshare_policy p = { 0 };
	int ret = ps_ioctl(fd, PAGESHARE_GET_POLICY, &p);

	if (ret)
		return ret;
	if (group)
		*group = p.group;
	if (flags)
		*flags = p.flags;
	return 0;
}

int pageshare_set_policy(int fd, uint64_t group, uint32_t flags, uint64_t *group_out)
{
	struct pageshare_policy p = { .group = group, .flags = flags };
	int ret = ps_ioctl(fd, PAGESHARE_SET_POLICY, &p);

	if (!ret && group_out)
		*group_out = p.group;
	return ret;
}

int pageshare_new_group(int fd, uint32_t flags, uint64_t *group)
{
	return pageshare_set_policy(fd, 0, flags | PAGESHARE_POLICY_NEW_GROUP, group);
}

int pageshare_join_group(int fd, uint64_t group, uint32_t flags)
{
	/* Group 0 would leave every group, which is not what "join" means. */
	if (!group || (flags & PAGESHARE_POLICY_NEW_GROUP))
		return -EINVAL;
	return pageshare_set_policy(fd, group, flags, NULL);
}

int pageshare_nominate(int fd, struct pageshare_nominate *e)
{
	return ps_ioctl(fd, PAGESHARE_NOMINATE, e);
}

int pageshare_share(int fd, struct pageshare_share *e)
{
	return ps_ioctl(fd, PAGESHARE_SHARE, e);
}

int pageshare_add_to_physmap(int fd, struct pageshare_add_to_physmap *e)
{
	return ps_ioctl(fd, PAGESHARE_ADD_TO_PHYSMAP, e);
}

int pageshare_unshare(int fd, struct pageshare_unshare *e)
{
	return ps_ioctl(fd, PAGESHARE_UNSHARE, e);
}

int pageshare_query(int fd, struct pageshare_query *e)
{
	return ps_ioctl(fd, PAGESHARE_QUERY, e);
}

/*
 * Run @count entries of @size bytes through the batch ioctl @req, in calls
 * of at most PAGESHARE_BATCH_MAX entries. A signal interrupts a call after
 * some entries (EINTR with @done set): those have their results, so carry
 * on from there rather than give the caller a half-done batch.
 */
static int ps_batch(int fd, unsigned long req, void *entries, size_t size, size_t count,
		    size_t *done)
{
	size_t off = 0;
	int ret = 0;

	while (off < count) {
		size_t n = count - off;
		struct pageshare_batch b;

		if (n > PAGESHARE_BATCH_MAX)
			n = PAGESHARE_BATCH_MAX;
		memset(&b, 0, sizeof(b));
		b.entries = (uintptr_t)((char *)entries + off * size);
		b.count = n;
		if (ioctl(fd, req, &b) == 0) {
			off += n;
			continue;
		}
		ret = -errno;
		/* A done count past the call's own would be a kernel bug. */
		if (b.done <= n)
			off += b.done;
		if (ret != -EINTR)
			break;
		ret = 0;
	}
	if (done)
		*done = off;
	return ret;
}

int pageshare_nominate_batch(int fd, struct pageshare_nominate *e, size_t count, size_t *done)
{
	return ps_batch(fd, PAGESHARE_NOMINATE_BATCH, e, sizeof(*e), count, done);
}

int pageshare_share_batch(int fd, struct pageshare_share *e, size_t count, size_t *done)
{
	return ps_batch(fd, PAGESHARE_SHARE_BATCH, e, sizeof(*e), count, done);
}

int pageshare_add_to_physmap_batch(int fd, struct pageshare_add_to_physmap *e, size_t count,
				   size_t *done)
{
	return ps_batch(fd, PAGESHARE_ADD_TO_PHYSMAP_BATCH, e, sizeof(*e), count, done);
}

int pageshare_unshare_batch(int fd, struct pageshare_unshare *e, size_t count, size_t *done)
{
	return ps_batch(fd, PAGESHARE_UNSHARE_BATCH, e, sizeof(*e), count, done);
}

int pageshare_query_batch(int fd, struct pageshare_query *e, size_t count, size_t *done)
{
	return ps_batch(fd, PAGESHARE_QUERY_BATCH, e, sizeof(*e), count, done);
}

int pageshare_get_stats(int fd, struct pageshare_stats *st)
{
	memset(st, 0, sizeof(*st));
	return ps_ioctl(fd, PAGESHARE_GET_STATS, st);
}

int pageshare_audit(int fd)
{
	return ps_ioctl(fd, PAGESHARE_AUDIT, NULL);
}

/* Read a sysfs file of one line into @buf, without its newline. */
static int ps_read_line(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do {
		n = read(fd, buf, len - 1);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return n;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int ps_read_u64(const char *dir, const char *name, uint64_t *val)
{
	char path[4096], buf[64], *end;
	int ret;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	ret = ps_read_line(path, buf, sizeof(buf));
	if (ret)
		return ret;
	/* Base 0: the group is printed as "%#llx", the counters in decimal. */
	errno = 0;
	*val = strtoull(buf, &end, 0);
	if (errno || end == buf || *end || buf[0] == '-')
		return -EINVAL;
	return 0;
}

int pageshare_read_global_stats(struct pageshare_global_stats *g)
{
	const char *root = pageshare_sysfs_root();
	int ret;

	memset(g, 0, sizeof(*g));
	ret = ps_read_u64(root, "vms", &g->vms);
	if (!ret)
		ret = ps_read_u64(root, "private_pages", &g->private_pages);
	if (!ret)
		ret = ps_read_u64(root, "shared_frames", &g->shared_frames);
	if (!ret)
		ret = ps_read_u64(root, "saved_frames", &g->saved_frames);
	if (!ret)
		ret = ps_read_u64(root, "meta_bytes", &g->meta_bytes);
	return ret;
}

int pageshare_read_vm(uint64_t id, struct pageshare_vm_stat *vm)
{
	char dir[4096], path[4160], buf[64];
	uint64_t pid;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->id = id;
	if (snprintf(dir, sizeof(dir), "%s/vm/%llu", pageshare_sysfs_root(),
		     (unsigned long long)id) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	ret = ps_read_u64(dir, "size", &vm->size);
	if (!ret)
		ret = ps_read_u64(dir, "pid", &pid);
	if (!ret) {
		vm->pid = (int64_t)pid;
		ret = ps_read_u64(dir, "uid", &vm->uid);
	}
	if (!ret)
		ret = ps_read_u64(dir, "group", &vm->group);
	if (!ret)
		ret = ps_read_u64(dir, "private_pages", &vm->private_pages);
	if (!ret)
		ret = ps_read_u64(dir, "shared_gfns", &vm->shared_gfns);
	if (!ret)
		ret = ps_read_u64(dir, "nominated_gfns", &vm->nominated_gfns);
	if (!ret)
		ret = ps_read_u64(dir, "cow_breaks", &vm->cow_breaks);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "%s/policy", dir);
	ret = ps_read_line(path, buf, sizeof(buf));
	if (ret)
		return ret;
	if (!strcmp(buf, "no-intra-vm"))
		vm->policy = PAGESHARE_POLICY_NO_INTRA_VM;
	else if (strcmp(buf, "default"))
		return -EINVAL;
	return 0;
}

static int ps_cmp_vm(const void *a, const void *b)
{
	const struct pageshare_vm_stat *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* A directory entry's name as a VM id: digits only, not 0. */
static bool ps_parse_id(const char *name, uint64_t *id)
{
	char *end;

	if (name[0] < '1' || name[0] > '9')
		return false;
	errno = 0;
	*id = strtoull(name, &end, 10);
	return !errno && !*end;
}

int pageshare_list_vms(struct pageshare_vm_stat **vms, size_t *count)
{
	struct pageshare_vm_stat *arr = NULL, *tmp;
	size_t n = 0, cap = 0;
	char dir[4096];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	*vms = NULL;
	*count = 0;
	if (snprintf(dir, sizeof(dir), "%s/vm", pageshare_sysfs_root()) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return -errno;
	for (;;) {
		uint64_t id;

		errno = 0;
		de = readdir(d);
		if (!de) {
			ret = -errno;
			break;
		}
		if (!ps_parse_id(de->d_name, &id))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			tmp = realloc(arr, cap * sizeof(*arr));
			if (!tmp) {
				ret = -ENOMEM;
				break;
			}
			arr = tmp;
		}
		ret = pageshare_read_vm(id, &arr[n]);
		/* The VM exited between readdir() and the read. */
		if (ret == -ENOENT) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		n++;
	}
	closedir(d);
	if (ret) {
		free(arr);
		return ret;
	}
	if (n) {
		qsort(arr, n, sizeof(*arr), ps_cmp_vm);
	} else {
		free(arr);
		arr = NULL;
	}
	*vms = arr;
	*count = n;
	return 0;
}

void pageshare_free_vm_list(struct pageshare_vm_stat *vms)
{
	free(vms);
}

/* The meaning of an errno for one operation; NULL if it has none special. */
static const char *ps_op_error(enum pageshare_op op, int err)
{
	switch (op) {
	case PAGESHARE_OP_CREATE:
		switch (err) {
		case ENOENT:
			return "no such directory (mount -t pageshare none <dir>)";
		case EMEDIUMTYPE:
			return "not a pageshare mount: mount -t pageshare none <dir>";
		case ENOSPC:
			return "the mount has its nr_inodes files, or every VM id is in use";
		case EACCES:
		case EPERM:
			return "no permission to create a file in that directory";
		}
		break;
	case PAGESHARE_OP_CONTROL:
		switch (err) {
		case ENOENT:
			return "no such device node: is the pageshare module loaded?";
		case ENXIO:
		case ENODEV:
			return "the pageshare module is not loaded";
		case EACCES:
		case EPERM:
			return "no permission to open the device (root only by default)";
		}
		break;
	case PAGESHARE_OP_OPEN_VM:
		switch (err) {
		case EPERM:
			return "opening another process's VM needs CAP_SYS_ADMIN";
		case ESRCH:
			return "no VM has this id (it exited, or never existed)";
		case EINVAL:
			return "flags, pad or reserved fields are not zero";
		}
		break;
	case PAGESHARE_OP_API_VERSION:
		break;
	case PAGESHARE_OP_SET_SIZE:
		switch (err) {
		case EINVAL:
			return "the size is zero or not a multiple of the page size";
		case EFBIG:
			return "the size is above the module's max_vm_size";
		case EBUSY:
			return "the VM's memory is mapped, so its size cannot change";
		}
		break;
	case PAGESHARE_OP_GET_INFO:
	case PAGESHARE_OP_GET_POLICY:
	case PAGESHARE_OP_GET_STATS:
		break;
	case PAGESHARE_OP_SET_POLICY:
		switch (err) {
		case EINVAL:
			return "an unknown policy flag, or a group id with NEW_GROUP";
		case ENOENT:
			return "no VM is in that share group (it ended, or the id is wrong)";
		case EBUSY:
			return "the VM has pages shared with other sharers; unshare them first";
		}
		break;
	case PAGESHARE_OP_NOMINATE:
		switch (err) {
		case ENODATA:
			return "the gfn has no page yet (the guest never touched it)";
		case EBUSY:
			return "the page is pinned (GUP, DMA) and cannot be shared now";
		case ENXIO:
			return "the gfn is past the end of the VM's memory";
		case EINVAL:
			return "an unknown flag or a non-zero pad field";
		}
		break;
	case PAGESHARE_OP_SHARE:
		switch (err) {
		case ESTALE:
			return "the source page changed since it was nominated";
		case EIDRM:
			return "the client page changed since it was nominated";
		case EILSEQ:
			return "the two pages' bytes differ";
		case EACCES:
			return "the VMs' policies forbid it (no common share group, or no-intra)";
		case EBUSY:
			return "a page was pinned for DMA since it was nominated";
		case EMLINK:
			return "the frame already has the module's max_sharers sharers";
		case ENXIO:
			return "a gfn is past the end of its VM's memory";
		case EINVAL:
			return "a gfn shared with itself, or an unknown flag";
		}
		break;
	case PAGESHARE_OP_ADD_TO_PHYSMAP:
		switch (err) {
		case ESTALE:
			return "the source page changed since it was nominated";
		case EEXIST:
			return "the client gfn already has a page";
		case EACCES:
			return "the VMs' policies forbid it (no common share group, or no-intra)";
		case EMLINK:
			return "the frame already has the module's max_sharers sharers";
		case ENXIO:
			return "a gfn is past the end of its VM's memory";
		case EINVAL:
			return "a non-zero flags field";
		}
		break;
	case PAGESHARE_OP_UNSHARE:
	case PAGESHARE_OP_QUERY:
		switch (err) {
		case ENXIO:
			return "the gfn is past the end of the VM's memory";
		case EINVAL:
			return "a non-zero flags or pad field";
		}
		break;
	case PAGESHARE_OP_BATCH:
		switch (err) {
		case E2BIG:
			return "more entries than PAGESHARE_BATCH_MAX in one call";
		case EINTR:
			return "interrupted by a signal";
		case EINVAL:
			return "flags, pad or reserved fields of the batch are not zero";
		}
		break;
	case PAGESHARE_OP_AUDIT:
		if (err == EPERM)
			return "the audit needs CAP_SYS_ADMIN";
		break;
	case PAGESHARE_OP_GET_PRIVATE:
		switch (err) {
		case ENOTTY:
			return "not a VM's descriptor, or a module older than API version 5";
		case EINVAL:
			return "flags, pad or reserved fields are not zero";
		case EINTR:
			return "interrupted by a fatal signal";
		}
		break;
	case PAGESHARE_OP_SYSFS:
		switch (err) {
		case ENOENT:
			return "no such file in sysfs: is the pageshare module loaded?";
		case EACCES:
		case EPERM:
			return "the pageshare sysfs files are readable by root only";
		case EINVAL:
			return "unexpected contents in a sysfs file";
		}
		break;
	}
	return NULL;
}

const char *pageshare_strerror(enum pageshare_op op, int err)
{
	const char *msg;

	if (err < 0)
		err = -err;
	msg = ps_op_error(op, err);
	if (msg)
		return msg;
	/* Meanings that hold for every operation on a descriptor. */
	switch (err) {
	case EBADF:
		return "not an open descriptor of a pageshare VM";
	case ENOTTY:
		return "not a pageshare descriptor, a call it does not take, or an old module";
	case EFAULT:
		return "bad address";
	case ENOMEM:
		return "out of memory; nothing was changed";
	case EMFILE:
		return "too many open files";
	}
	return strerror(err);
}
