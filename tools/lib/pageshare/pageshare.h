/* SPDX-License-Identifier: LGPL-2.1 OR BSD-2-Clause */
/*
 * libpageshare: a C interface to the files of a pageshare mount (the VMs),
 * the control node /dev/pageshare, and /sys/kernel/pageshare/.
 *
 * Every function that can fail returns 0 (or a non-negative value) on
 * success and a negative errno on failure; none prints or exits.
 * pageshare_strerror() tells what an errno means for a given operation.
 * Documentation/virt/pageshare/api.rst describes the ioctls underneath.
 *
 * The functions are thread-safe, except pageshare_set_device_path() and
 * pageshare_set_sysfs_root(), which a program calls once at start-up.
 */

#ifndef _PAGESHARE_H
#define _PAGESHARE_H

#include <stddef.h>
#include <stdint.h>

#include <linux/pageshare.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The control node, mount and sysfs directory the library uses by default. */
#define PAGESHARE_DEVICE_PATH	"/dev/pageshare"
#define PAGESHARE_MOUNT_DIR	"/run/pageshare"
#define PAGESHARE_SYSFS_ROOT	"/sys/kernel/pageshare"

/* The version of this library (its soname carries the major number). */
#define PAGESHARE_LIB_VERSION	"2.1.0"

/**
 * pageshare_set_device_path() - Use another device node than /dev/pageshare.
 * @path: the node's path, or NULL for the default. The string is copied.
 *
 * Not thread-safe: call it before any other function.
 *
 * Return: 0, or -ENOMEM.
 */
int pageshare_set_device_path(const char *path);

/**
 * pageshare_device_path() - The node pageshare_control_open() opens.
 *
 * Return: the path.
 */
const char *pageshare_device_path(void);

/**
 * pageshare_control_open() - Open the control node, as an agent does.
 *
 * The control node is no VM: it takes pageshare_vm_open_id(), the sharing
 * calls, pageshare_get_stats() (the global counters) and
 * pageshare_audit(). The descriptor is close-on-exec.
 *
 * Return: the descriptor, or a negative errno (-ENOENT when the module is
 * not loaded, -EACCES without the right to open the node: root's, 0600).
 */
int pageshare_control_open(void);

/**
 * pageshare_vm_create() - Create a VM: an unnamed file of a pageshare mount.
 * @dir: a directory of a pageshare mount, or NULL for PAGESHARE_MOUNT_DIR.
 *
 * The new VM has no size and no pages, and is in no share group. It is
 * an O_TMPFILE file, as QEMU's mem-path=<directory> makes (which QEMU
 * then unlinks): it goes with its last descriptor and mapping. The
 * descriptor is close-on-exec and read-write; its file mode is 0600.
 *
 * Return: the VM's descriptor, or a negative errno: -ENOENT (no such
 * directory), -EMEDIUMTYPE (@dir is not on a pageshare mount: mount -t
 * pageshare none @dir), -EACCES, -ENOSPC (the mount's nr_inodes).
 */
int pageshare_vm_create(const char *dir);

/**
 * pageshare_vm_open_id() - Get a descriptor of an existing VM, by its id.
 * @ctl_fd: the control node, or any VM's descriptor.
 * @id: the VM's id, as in /sys/kernel/pageshare/vm/<id>.
 *
 * Needs CAP_SYS_ADMIN. The descriptor keeps the VM alive until closed.
 *
 * Return: a close-on-exec file descriptor, or a negative errno (-ESRCH if
 * no VM has this id, -EPERM without CAP_SYS_ADMIN).
 */
int pageshare_vm_open_id(int ctl_fd, uint64_t id);

/**
 * pageshare_api_version() - The running module's PAGESHARE_API_VERSION.
 * @fd: the control node or a VM's descriptor.
 *
 * Return: the version (4 or later for everything in this library), or a
 * negative errno.
 */
int pageshare_api_version(int fd);

/**
 * pageshare_set_size() - Set the size of a VM's memory.
 * @fd: the VM's descriptor.
 * @bytes: a non-zero multiple of the page size.
 *
 * Return: 0, or a negative errno (-EBUSY while the VM is mapped, -EFBIG
 * above max_vm_size, -EINVAL for a bad size).
 */
int pageshare_set_size(int fd, uint64_t bytes);

/**
 * pageshare_get_info() - Describe a VM: its id, size, pages and mappings.
 * @fd: the VM's descriptor.
 * @info: filled in.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_get_info(int fd, struct pageshare_vm_info *info);

/**
 * pageshare_get_private() - List a VM's gfns backed by pages of their own.
 * @fd: the VM's descriptor (on the control node, which is no VM: -ENOTTY).
 * @start: the first gfn to look at.
 * @gfns: an array of @max entries, where the gfns found go, in increasing
 *	  order.
 * @max: entries in @gfns, any number: past PAGESHARE_BATCH_MAX, the walk
 *	 takes several calls, resumed where the last one stopped.
 * @count: set to the number of gfns stored; less than @max only when the
 *	   walk reached the end of the VM.
 * @next: set to where a next walk starts: one past the last gfn stored
 *	  when @gfns is full, else the VM's size (nothing more to find).
 * @discards: set to the number of gfns that discards (punched holes,
 *	      MADV_REMOVE) and shrinks have taken off a frame in the VM,
 *	      read at the end of the first call's walk; may be NULL.
 *
 * PAGESHARE_GET_PRIVATE, API version 5. It changes nothing. A gfn is
 * private from its first write, or the write or unshare that takes it out
 * of shared state, until it is nominated or loses its page: the private
 * gfns are those an agent has not seen since they were last written. A gfn
 * that turns private behind the walk is found by the next one. An agent
 * that finds @discards unchanged at its next walk knows that every gfn it
 * saw on a frame and does not find private still has its page, and its
 * handle unless a share (another agent's, say) moved its frame's gfns.
 *
 * Return: 0, or a negative errno: -ENOTTY on the control node or with a
 * module older than API version 5, -EFAULT, -EINTR (a fatal signal). When
 * a call after the first fails, *@count and *@next tell what was stored.
 */
int pageshare_get_private(int fd, uint64_t start, uint64_t *gfns, uint32_t max,
			  uint32_t *count, uint64_t *next, uint64_t *discards);

/**
 * pageshare_get_policy() - Read a VM's share group and policy flags.
 * @fd: the VM's descriptor.
 * @group: set to the share group (0: none); may be NULL.
 * @flags: set to the PAGESHARE_POLICY_* flags; may be NULL.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_get_policy(int fd, uint64_t *group, uint32_t *flags);

/**
 * pageshare_set_policy() - Set a VM's share group and policy flags.
 * @fd: the VM's descriptor.
 * @group: the group to be in: 0 for none, or a group id that some VM is in
 *	   already; 0 with PAGESHARE_POLICY_NEW_GROUP.
 * @flags: PAGESHARE_POLICY_NO_INTRA_VM and PAGESHARE_POLICY_NEW_GROUP.
 * @group_out: set to the VM's group afterwards (the new one with
 *	       PAGESHARE_POLICY_NEW_GROUP); may be NULL.
 *
 * Return: 0, or a negative errno (-ENOENT for a group no VM is in, -EBUSY
 * while a gfn of the VM is on a frame with other sharers).
 */
int pageshare_set_policy(int fd, uint64_t group, uint32_t flags, uint64_t *group_out);

/**
 * pageshare_new_group() - Put a VM in a new share group.
 * @fd: the VM's descriptor.
 * @flags: 0 or PAGESHARE_POLICY_NO_INTRA_VM.
 * @group: set to the new group's id, which other VMs join with.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_new_group(int fd, uint32_t flags, uint64_t *group);

/**
 * pageshare_join_group() - Put a VM in an existing share group.
 * @fd: the VM's descriptor.
 * @group: the group's id, from pageshare_new_group() on another VM.
 * @flags: 0 or PAGESHARE_POLICY_NO_INTRA_VM.
 *
 * Return: 0, or a negative errno (-ENOENT if no VM is in @group).
 */
int pageshare_join_group(int fd, uint64_t group, uint32_t flags);

/**
 * pageshare_nominate() - Nominate one gfn (PAGESHARE_NOMINATE).
 * @fd: the control node or any VM's descriptor; @e->vm names the VM.
 * @e: the entry; @e->handle and @e->hash are filled in.
 *
 * Return: 0, or a negative errno (-ENODATA for a hole, -EBUSY for a pinned
 * page, -ENXIO past the VM's size).
 */
int pageshare_nominate(int fd, struct pageshare_nominate *e);

/**
 * pageshare_share() - Share one client gfn into a source (PAGESHARE_SHARE).
 * @fd: the control node or any VM's descriptor.
 * @e: the entry.
 *
 * Return: 0, or a negative errno (-ESTALE, -EIDRM, -EILSEQ, -EACCES, ...).
 */
int pageshare_share(int fd, struct pageshare_share *e);

/**
 * pageshare_add_to_physmap() - Map a shared frame into one hole.
 * @fd: the control node or any VM's descriptor.
 * @e: the entry.
 *
 * Return: 0, or a negative errno (-EEXIST if the client gfn has a page).
 */
int pageshare_add_to_physmap(int fd, struct pageshare_add_to_physmap *e);

/**
 * pageshare_unshare() - Give one gfn a private page again.
 * @fd: the control node or any VM's descriptor.
 * @e: the entry.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_unshare(int fd, struct pageshare_unshare *e);

/**
 * pageshare_query() - Tell what backs one gfn.
 * @fd: the control node or any VM's descriptor.
 * @e: the entry; @e->handle, @e->sharers and @e->state are filled in.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_query(int fd, struct pageshare_query *e);

/*
 * The batch wrappers below run any number of entries: they split them
 * into calls of at most PAGESHARE_BATCH_MAX entries, and resume at the
 * kernel's done count when a call is interrupted by a signal (EINTR). Each
 * entry gets its own result (0 or a negative errno) in its @result field.
 * They return 0 once every entry has its result, or the negative errno of
 * a call that failed as a whole (-EFAULT, -EINVAL, -ENOMEM, -ENOTTY); then
 * *@done, if @done is not NULL, tells how many entries have their result.
 */

/**
 * pageshare_nominate_batch() - Nominate many gfns.
 * @fd: the control node or any VM's descriptor.
 * @e: the entries; set PAGESHARE_NOMINATE_HASH in their flags for hashes.
 * @count: number of entries, any.
 * @done: set to the number of entries processed; may be NULL.
 *
 * Return: 0, or a negative errno of the call as a whole.
 */
int pageshare_nominate_batch(int fd, struct pageshare_nominate *e, size_t count, size_t *done);

/**
 * pageshare_share_batch() - Share many client gfns into sources.
 * @fd: the control node or any VM's descriptor.
 * @e: the entries.
 * @count: number of entries, any.
 * @done: set to the number of entries processed; may be NULL.
 *
 * Return: 0, or a negative errno of the call as a whole.
 */
int pageshare_share_batch(int fd, struct pageshare_share *e, size_t count, size_t *done);

/**
 * pageshare_add_to_physmap_batch() - Map shared frames into many holes.
 * @fd: the control node or any VM's descriptor.
 * @e: the entries.
 * @count: number of entries, any.
 * @done: set to the number of entries processed; may be NULL.
 *
 * Return: 0, or a negative errno of the call as a whole.
 */
int pageshare_add_to_physmap_batch(int fd, struct pageshare_add_to_physmap *e, size_t count,
				   size_t *done);

/**
 * pageshare_unshare_batch() - Give many gfns private pages again.
 * @fd: the control node or any VM's descriptor.
 * @e: the entries.
 * @count: number of entries, any.
 * @done: set to the number of entries processed; may be NULL.
 *
 * Return: 0, or a negative errno of the call as a whole.
 */
int pageshare_unshare_batch(int fd, struct pageshare_unshare *e, size_t count, size_t *done);

/**
 * pageshare_query_batch() - Tell what backs many gfns.
 * @fd: the control node or any VM's descriptor.
 * @e: the entries.
 * @count: number of entries, any.
 * @done: set to the number of entries processed; may be NULL.
 *
 * Return: 0, or a negative errno of the call as a whole.
 */
int pageshare_query_batch(int fd, struct pageshare_query *e, size_t count, size_t *done);

/**
 * pageshare_get_stats() - A VM's counters and the module-wide ones.
 * @fd: the VM's descriptor, or the control node (the module-wide counters only,
 *	the VM's fields 0).
 * @st: filled in.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_get_stats(int fd, struct pageshare_stats *st);

/**
 * pageshare_audit() - Check every invariant of every VM and frame.
 * @fd: the control node or any VM's descriptor.
 *
 * Needs CAP_SYS_ADMIN. Each problem found is described in the kernel log.
 *
 * Return: the number of problems (0 when all is well), or a negative errno.
 */
int pageshare_audit(int fd);

/**
 * struct pageshare_global_stats - The counters of /sys/kernel/pageshare/.
 * @vms:		VMs that exist.
 * @private_pages:	Pages that belong to one gfn of one VM.
 * @shared_frames:	Frames in shared state (nominated or shared).
 * @saved_frames:	Frames freed by sharing.
 * @meta_bytes:		Memory the module holds for frames and reverse maps.
 */
struct pageshare_global_stats {
	uint64_t vms;
	uint64_t private_pages;
	uint64_t shared_frames;
	uint64_t saved_frames;
	uint64_t meta_bytes;
};

/**
 * struct pageshare_vm_stat - One VM, from /sys/kernel/pageshare/vm/<id>/.
 * @id:			The VM's id.
 * @pid:		Process id of the task that created the VM's file.
 * @uid:		Its user id.
 * @size:		Bytes of guest RAM (0 until set).
 * @group:		Share group, 0 for none.
 * @policy:		PAGESHARE_POLICY_NO_INTRA_VM or 0.
 * @private_pages:	gfns backed by pages of their own.
 * @shared_gfns:	gfns backed by frames in shared state.
 * @nominated_gfns:	Of those, gfns alone on their frame.
 * @cow_breaks:		Times a gfn left a shared frame (a write, an unshare).
 */
struct pageshare_vm_stat {
	uint64_t id;
	int64_t pid;
	uint64_t uid;
	uint64_t size;
	uint64_t group;
	uint32_t policy;
	uint32_t pad;
	uint64_t private_pages;
	uint64_t shared_gfns;
	uint64_t nominated_gfns;
	uint64_t cow_breaks;
};

/**
 * pageshare_set_sysfs_root() - Read the counters from another directory.
 * @root: a directory laid out as /sys/kernel/pageshare (tests use a copy),
 *	  or NULL for the default. The string is copied.
 *
 * Not thread-safe: call it before any other function.
 *
 * Return: 0, or -ENOMEM.
 */
int pageshare_set_sysfs_root(const char *root);

/**
 * pageshare_sysfs_root() - The directory the sysfs readers use.
 *
 * Return: the path.
 */
const char *pageshare_sysfs_root(void);

/**
 * pageshare_read_global_stats() - Read the module-wide counters from sysfs.
 * @g: filled in.
 *
 * Return: 0, or a negative errno (-ENOENT when the module is not loaded,
 * -EACCES for a caller that is not root).
 */
int pageshare_read_global_stats(struct pageshare_global_stats *g);

/**
 * pageshare_read_vm() - Read one VM's directory in sysfs.
 * @id: the VM's id.
 * @vm: filled in.
 *
 * Return: 0, or a negative errno (-ENOENT if no VM has this id).
 */
int pageshare_read_vm(uint64_t id, struct pageshare_vm_stat *vm);

/**
 * pageshare_list_vms() - Read every VM's directory in sysfs.
 * @vms: set to an array sorted by id, to be freed with
 *	 pageshare_free_vm_list(); NULL when there are no VMs.
 * @count: set to the number of VMs.
 *
 * A VM that goes away while it is being read is left out.
 *
 * Return: 0, or a negative errno.
 */
int pageshare_list_vms(struct pageshare_vm_stat **vms, size_t *count);

/**
 * pageshare_free_vm_list() - Free the array of pageshare_list_vms().
 * @vms: the array, or NULL.
 */
void pageshare_free_vm_list(struct pageshare_vm_stat *vms);

/**
 * enum pageshare_op - The operations pageshare_strerror() knows about.
 * @PAGESHARE_OP_CREATE:	pageshare_vm_create(), a file of a mount.
 * @PAGESHARE_OP_CONTROL:	pageshare_control_open().
 * @PAGESHARE_OP_OPEN_VM:	pageshare_vm_open_id().
 * @PAGESHARE_OP_API_VERSION:	pageshare_api_version().
 * @PAGESHARE_OP_SET_SIZE:	pageshare_set_size().
 * @PAGESHARE_OP_GET_INFO:	pageshare_get_info().
 * @PAGESHARE_OP_SET_POLICY:	pageshare_set_policy() and the group helpers.
 * @PAGESHARE_OP_GET_POLICY:	pageshare_get_policy().
 * @PAGESHARE_OP_NOMINATE:	nominate, single or an entry of a batch.
 * @PAGESHARE_OP_SHARE:		share, single or an entry of a batch.
 * @PAGESHARE_OP_ADD_TO_PHYSMAP: add_to_physmap, single or an entry of a batch.
 * @PAGESHARE_OP_UNSHARE:	unshare, single or an entry of a batch.
 * @PAGESHARE_OP_QUERY:		query, single or an entry of a batch.
 * @PAGESHARE_OP_BATCH:		a batch call as a whole.
 * @PAGESHARE_OP_GET_STATS:	pageshare_get_stats().
 * @PAGESHARE_OP_AUDIT:		pageshare_audit().
 * @PAGESHARE_OP_SYSFS:		the sysfs readers.
 * @PAGESHARE_OP_GET_PRIVATE:	pageshare_get_private().
 */
enum pageshare_op {
	PAGESHARE_OP_CREATE,
	PAGESHARE_OP_CONTROL,
	PAGESHARE_OP_OPEN_VM,
	PAGESHARE_OP_API_VERSION,
	PAGESHARE_OP_SET_SIZE,
	PAGESHARE_OP_GET_INFO,
	PAGESHARE_OP_SET_POLICY,
	PAGESHARE_OP_GET_POLICY,
	PAGESHARE_OP_NOMINATE,
	PAGESHARE_OP_SHARE,
	PAGESHARE_OP_ADD_TO_PHYSMAP,
	PAGESHARE_OP_UNSHARE,
	PAGESHARE_OP_QUERY,
	PAGESHARE_OP_BATCH,
	PAGESHARE_OP_GET_STATS,
	PAGESHARE_OP_AUDIT,
	PAGESHARE_OP_SYSFS,
	PAGESHARE_OP_GET_PRIVATE,
};

/**
 * pageshare_strerror() - What an errno means for a pageshare operation.
 * @op: the operation that failed.
 * @err: its errno, positive or negative.
 *
 * For example ESTALE on a share: "the source page changed since it was
 * nominated". An errno with no pageshare-specific meaning gets the C
 * library's strerror() text.
 *
 * Return: a constant string.
 */
const char *pageshare_strerror(enum pageshare_op op, int err);

#ifdef __cplusplus
}
#endif

#endif /* _PAGESHARE_H */
