// SPDX-License-Identifier: GPL-2.0
/*
 * Who may share what.
 *
 * The right to operate on a VM is an open descriptor of it: its owner's,
 * one passed on by the owner, or one that a privileged agent got by the
 * VM's id (ps_open_vm()). On top of that each VM has a policy, set by a
 * holder of its descriptor:
 *
 * - a share group: two different VMs may back gfns with one frame only if
 *   both are in the same non-zero group. Group ids are random numbers the
 *   kernel makes, so a VM joins a group only if an owner of a member told
 *   its owner the id: no VM can put itself next to another uninvited;
 * - PAGESHARE_POLICY_NO_INTRA_VM: no two gfns of the VM on one frame, for
 *   owners who do not want the guest's own processes to learn about each
 *   other through copy-on-write timing.
 *
 * The invariant, which the audit checks: every frame's sharers are of one
 * VM or of one group, and no frame has two gfns of a no-intra VM. A VM's
 * policy changes only under its policy_sem and only while none of its
 * gfns is on a frame with other sharers, so sharing operations read
 * policies that cannot change under them, and a frame never ends up with
 * sharers whose policies disagree.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/string.h>

#include <linux/pageshare.h>

#include "pageshare.h"

#define PS_POLICY_SET_FLAGS	(PAGESHARE_POLICY_NO_INTRA_VM | PAGESHARE_POLICY_NEW_GROUP)

/* Under ps_vms_lock(). */
static bool ps_group_used(u64 group)
{
	unsigned long id = 0;
	struct ps_vm *vm;

	for (vm = ps_vms_next(&id); vm; vm = ps_vms_next(&id))
		if (vm->group == group)
			return true;
	return false;
}

/**
 * ps_set_policy() - Set a VM's share group and flags.
 * @vm: the VM.
 * @p: what PAGESHARE_SET_POLICY got; with PAGESHARE_POLICY_NEW_GROUP, the
 *     new group's id is stored in @p->group.
 *
 * Holds off the share and add_to_physmap calls that name @vm, the only
 * operations that put a gfn of @vm on a frame with other sharers; nothing
 * else waits. Whether @vm has such a gfn is one counter (multi_gfns),
 * which every other operation raises before it lowers: a nominate or a
 * copy-on-write in flight may make the answer -EBUSY for a moment, never
 * a wrong 0. Other VMs' calls cannot reach @vm's frames while it has no
 * gfn on a frame with other sharers. A policy is meant to be set once,
 * when the VM starts.
 *
 * Context: Process context; takes @vm->policy_sem for writing, then
 * ps_vms_mutex.
 * Return: 0; -EINVAL for bad flags or reserved fields; -ENOENT for a group
 * no VM is in; -EBUSY if the policy would change while a gfn of @vm is on
 * a frame with other sharers.
 */
int ps_set_policy(struct ps_vm *vm, struct pageshare_policy *p)
{
	u32 policy = p->flags & PAGESHARE_POLICY_NO_INTRA_VM;
	u64 group = p->group;
	int ret = 0;

	if ((p->flags & ~PS_POLICY_SET_FLAGS) || p->pad ||
	    memchr_inv(p->reserved, 0, sizeof(p->reserved)))
		return -EINVAL;
	if ((p->flags & PAGESHARE_POLICY_NEW_GROUP) && group)
		return -EINVAL;

	/* The current policy again: no need to hold every operation off. */
	if (!(p->flags & PAGESHARE_POLICY_NEW_GROUP) &&
	    group == READ_ONCE(vm->group) && policy == READ_ONCE(vm->policy))
		return 0;

	down_write(&vm->policy_sem);
	ps_vms_lock();
	if (p->flags & PAGESHARE_POLICY_NEW_GROUP) {
		do {
			group = get_random_u64();
		} while (!group || ps_group_used(group));
	} else if (group && group != vm->group && !ps_group_used(group)) {
		ret = -ENOENT;
		goto out;
	}
	if ((group != vm->group || policy != vm->policy) &&
	    atomic_long_read(&vm->stats.multi_gfns)) {
		ret = -EBUSY;
		goto out;
	}
	WRITE_ONCE(vm->group, group);
	WRITE_ONCE(vm->policy, policy);
	p->group = group;
out:
	ps_vms_unlock();
	up_write(&vm->policy_sem);
	return ret;
}

/**
 * ps_get_policy() - Read a VM's share group and flags.
 * @vm: the VM.
 * @p: zeroed by the caller; filled in.
 */
void ps_get_policy(struct ps_vm *vm, struct pageshare_policy *p)
{
	p->group = READ_ONCE(vm->group);
	p->flags = READ_ONCE(vm->policy);
}

/**
 * ps_open_vm() - Install a descriptor of the VM with id @id.
 * @id: the VM's id.
 *
 * The caller has checked for CAP_SYS_ADMIN. The descriptor refers to the
 * VM itself (its inode), whether its file on a pageshare mount is linked
 * or not: it takes every ioctl and mmap() as
 * the owner's does, and keeps the VM alive until it is closed.
 *
 * Return: the descriptor; -ESRCH if no VM has the id, or if it is being
 * freed; -EMFILE; -ENOMEM.
 */
int ps_open_vm(u64 id)
{
	struct file *file;
	int fd;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return fd;
	file = id && id <= U32_MAX ? ps_vm_open_id(id) : ERR_PTR(-ESRCH);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		return PTR_ERR(file);
	}
	fd_install(fd, file);
	return fd;
}

/**
 * ps_policy_pair_ok() - Whether two VMs' policies let them share at all.
 * @svm: the source VM.
 * @cvm: the client VM, maybe @svm.
 *
 * Inside ps_share_begin(), which holds both VMs' policy_sem. Intra-VM
 * sharing is decided per frame, by
 * ps_policy_frames_ok().
 *
 * Return: true if they are one VM, or in one share group.
 */
bool ps_policy_pair_ok(struct ps_vm *svm, struct ps_vm *cvm)
{
	return svm == cvm || (svm->group && svm->group == cvm->group);
}

/*
 * The walks below may cover max_sharers keys under two page locks, which
 * are sleeping locks: they let other tasks on the CPU run as they go, as
 * the share's merge loop does.
 */
static bool ps_frame_has_vm(const struct ps_frame *frame, u32 id)
{
	u32 pos = 0, n = 0;
	u64 key;

	while (ps_rmap_next(frame, &pos, &key)) {
		if (ps_rmap_key_vm(key) == id)
			return true;
		if (!(++n % 1024))
			cond_resched();
	}
	return false;
}

/**
 * ps_policy_frames_ok() - Whether merging two frames respects no-intra VMs.
 * @sframe: the source frame, locked.
 * @cvm: the client VM, for add_to_physmap.
 * @cframe: the client frame, locked; NULL for add_to_physmap, whose one
 *          new sharer is in @cvm.
 *
 * Inside ps_share_begin(), after ps_policy_pair_ok(): the other VMs on
 * the frames have gfns on frames with other sharers, so their policies
 * cannot change either (ps_set_policy()). Costs a walk of
 * @cframe (which the merge walks anyway) and, only for each sharer in a
 * no-intra VM, a walk of @sframe: default policies share in O(1).
 *
 * Return: true unless a no-intra VM would have two gfns on the result.
 */
bool ps_policy_frames_ok(const struct ps_frame *sframe, struct ps_vm *cvm,
			 const struct ps_frame *cframe)
{
	struct ps_vm *vm;
	u32 pos = 0, n = 0;
	u64 key;

	if (!cframe)
		return !(cvm->policy & PAGESHARE_POLICY_NO_INTRA_VM) ||
		       !ps_frame_has_vm(sframe, cvm->id);
	while (ps_rmap_next(cframe, &pos, &key)) {
		vm = ps_vm_find(ps_rmap_key_vm(key));
		if (vm && (vm->policy & PAGESHARE_POLICY_NO_INTRA_VM) &&
		    ps_frame_has_vm(sframe, vm->id))
			return false;
		if (!(++n % 1024))
			cond_resched();
	}
	return true;
}
