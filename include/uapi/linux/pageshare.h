/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pageshare: guest RAM for KVM served by the module, so that the pages
 * can be shared between guests with Xen-style handles.
 *
 * Each regular file of a pageshare filesystem (mount -t pageshare) is one
 * VM's memory. mmap(MAP_SHARED) maps it; the page offset in the file is
 * the guest frame number (gfn). /dev/pageshare is the control node of a
 * deduplication agent: it is no VM, and takes PAGESHARE_GET_API_VERSION,
 * PAGESHARE_OPEN_VM, the sharing ioctls, PAGESHARE_GET_STATS (the global
 * counters) and PAGESHARE_AUDIT; a VM's own ioctls fail on it with ENOTTY.
 * Documentation/virt/pageshare/api.rst describes every ioctl below, and
 * memory.rst the filesystem.
 */

#ifndef _UAPI_LINUX_PAGESHARE_H
#define _UAPI_LINUX_PAGESHARE_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * Not registered: 0xB9 is unused in Linux 6.12's
 * Documentation/userspace-api/ioctl/ioctl-number.rst (0xB8 is the last
 * entry before 0xC0), and is to be registered there, for numbers 0x00-0x3F,
 * when this module is submitted (Documentation/virt/pageshare/api.rst,
 * section 5, gives the line).
 */
#define PAGESHARE_IOCTL_TYPE	0xB9

/* statfs()'s f_type on a pageshare mount: "pshr". */
#define PAGESHARE_SUPER_MAGIC	0x70736872

/* Returned by PAGESHARE_GET_API_VERSION. */
#define PAGESHARE_API_VERSION	5

/**
 * PAGESHARE_GET_API_VERSION - Report the version of this interface.
 *
 * Takes no argument. Returns PAGESHARE_API_VERSION. A later version only
 * adds ioctls, flags and fields that were reserved before, and says what
 * else changed. Version 2 added PAGESHARE_SET_POLICY, PAGESHARE_GET_POLICY
 * and PAGESHARE_OPEN_VM. Version 3 added the pageshare filesystem (a VM
 * per regular file, discard with fallocate(FALLOC_FL_PUNCH_HOLE)), and a
 * PAGESHARE_OPEN_VM descriptor is now a file of its own rather than the
 * owner's. Version 4 made /dev/pageshare a control node: its open() no
 * longer makes a VM, and a VM is a file of a pageshare mount only.
 * Version 5 added PAGESHARE_GET_PRIVATE.
 */
#define PAGESHARE_GET_API_VERSION	_IO(PAGESHARE_IOCTL_TYPE, 0x00)

/**
 * struct pageshare_size - Argument of PAGESHARE_SET_SIZE.
 * @size:	Bytes of guest RAM: a non-zero multiple of the page size, at
 *		most the module's max_vm_size.
 * @flags:	Must be zero: no flag is defined.
 * @reserved:	Must be zero.
 */
struct pageshare_size {
	__u64 size;
	__u64 flags;
	__u64 reserved[2];
};

/**
 * PAGESHARE_SET_SIZE - Set the size of a VM's memory.
 *
 * Only while nothing maps the VM. Shrinking frees the pages past the new
 * end; growing adds gfns without a page (holes). Setting the current size
 * again always succeeds.
 *
 * Return: 0 on success, or -1 with errno set to (in the order checked):
 *
 * * ``EFAULT`` - the argument is not readable.
 * * ``EINVAL`` - @flags or @reserved is not zero, or @size is zero or not
 *   a multiple of the page size.
 * * ``EFBIG``  - @size is larger than the module's max_vm_size.
 * * ``EBUSY``  - the VM's memory is mapped and @size differs from the
 *   current size.
 */
#define PAGESHARE_SET_SIZE	_IOW(PAGESHARE_IOCTL_TYPE, 0x01, struct pageshare_size)

/**
 * struct pageshare_vm_info - Result of PAGESHARE_GET_INFO.
 * @id:		The VM's id, unique among the VMs that exist; never 0.
 * @size:	Bytes of guest RAM; 0 until set by PAGESHARE_SET_SIZE or by
 *		the first mmap().
 * @private_pages: Pages that back this VM's gfns and belong to it alone.
 * @mappings:	Number of mappings (VMAs) of this VM's memory.
 * @pad:	Zero.
 * @reserved:	Zero.
 */
struct pageshare_vm_info {
	__u64 id;
	__u64 size;
	__u64 private_pages;
	__u32 mappings;
	__u32 pad;
	__u64 reserved[4];
};

/**
 * PAGESHARE_GET_INFO - Describe the VM of this file descriptor.
 *
 * Return: 0 on success, or -1 with errno set to:
 *
 * * ``EFAULT`` - the argument is not writable.
 */
#define PAGESHARE_GET_INFO	_IOR(PAGESHARE_IOCTL_TYPE, 0x02, struct pageshare_vm_info)

/* pageshare_policy::flags */
/* No two gfns of this VM may be backed by one frame. */
#define PAGESHARE_POLICY_NO_INTRA_VM	(1U << 0)
/* SET only: put the VM in a new share group and return its id. */
#define PAGESHARE_POLICY_NEW_GROUP	(1U << 1)

/**
 * struct pageshare_policy - Who this VM's memory may be shared with.
 * @group:	Share group. 0 (the default): no sharing with other VMs. Else
 *		the VM may share frames with the VMs of the same group, and
 *		with no other. Group ids are random 64-bit numbers made by
 *		the kernel (PAGESHARE_POLICY_NEW_GROUP): knowing one is the
 *		right to join it, so an owner lets another VM in by telling
 *		that VM's owner the id. In for SET (0 with NEW_GROUP), out for
 *		GET and for SET with NEW_GROUP.
 * @flags:	PAGESHARE_POLICY_NO_INTRA_VM: no two of this VM's own gfns
 *		may be backed by one frame (sharing inside the VM is allowed
 *		by default). SET also takes PAGESHARE_POLICY_NEW_GROUP; GET
 *		never returns it. Any other bit is EINVAL.
 * @pad:	Must be zero.
 * @reserved:	Must be zero.
 */
struct pageshare_policy {
	__u64 group;
	__u32 flags;
	__u32 pad;
	__u64 reserved[2];
};

/**
 * PAGESHARE_SET_POLICY - Set the sharing policy of the VM of this descriptor.
 *
 * Only the VM's own descriptor sets its policy (a privileged agent that
 * opened the VM by id holds one too). A policy changes only while no gfn
 * of the VM is on a frame with two or more sharers, the VM's own other
 * gfns included, so every frame's sharers always satisfy every sharer's
 * policy. Setting the current policy again always succeeds. A change holds
 * off only the PAGESHARE_SHARE and PAGESHARE_ADD_TO_PHYSMAP calls that name
 * this VM while it is made; nothing else waits. On success the
 * argument is written back with @group set to the VM's group.
 *
 * Return: 0 on success, or -1 with errno set to (in the order checked):
 *
 * * ``EFAULT`` - the argument is not readable, or not writable (checked
 *   before anything changes, with or without NEW_GROUP).
 * * ``EINVAL`` - an unknown flag, a non-zero @pad or @reserved, or a
 *   non-zero @group with PAGESHARE_POLICY_NEW_GROUP.
 * * ``ENOENT`` - @group is not 0, not the VM's own, and no VM is in it.
 * * ``EBUSY``  - the policy would change and some gfn of the VM is on a
 *   frame with two or more sharers; unshare them first.
 */
#define PAGESHARE_SET_POLICY	_IOWR(PAGESHARE_IOCTL_TYPE, 0x03, struct pageshare_policy)

/**
 * PAGESHARE_GET_POLICY - Read the sharing policy of the VM of this descriptor.
 *
 * Return: 0 on success, or -1 with errno set to:
 *
 * * ``EFAULT`` - the argument is not writable.
 */
#define PAGESHARE_GET_POLICY	_IOR(PAGESHARE_IOCTL_TYPE, 0x04, struct pageshare_policy)

/**
 * struct pageshare_open_vm - Argument of PAGESHARE_OPEN_VM.
 * @id:		The VM's id, as in /sys/kernel/pageshare/vm/ and
 *		struct pageshare_vm_info.
 * @flags:	Must be zero: no flag is defined.
 * @pad:	Must be zero.
 * @reserved:	Must be zero.
 */
struct pageshare_open_vm {
	__u64 id;
	__u32 flags;
	__u32 pad;
	__u64 reserved[2];
};

/**
 * PAGESHARE_OPEN_VM - Get a descriptor of any VM, by its id.
 *
 * For a privileged deduplication agent (CAP_SYS_ADMIN), issued on the
 * control node /dev/pageshare (or on any VM descriptor). The new
 * descriptor is a read-write file of the VM itself (close-on-exec set),
 * whether the VM's file on its mount is linked or not: it
 * takes every ioctl, mmap() and fallocate(), and it keeps the VM alive
 * until closed, so an agent closes the descriptors of VMs whose VMM
 * exited.
 *
 * Return: a new file descriptor, or -1 with errno set to (in the order
 * checked):
 *
 * * ``EPERM``  - the caller lacks CAP_SYS_ADMIN.
 * * ``EFAULT`` - the argument is not readable.
 * * ``EINVAL`` - @flags, @pad or @reserved is not zero.
 * * ``EMFILE`` - the caller has no free descriptor.
 * * ``ESRCH``  - no VM has this id (it never existed, it is gone, or its
 *   last holder is letting go of it).
 * * ``ENOMEM`` - no memory for the file.
 */
#define PAGESHARE_OPEN_VM	_IOW(PAGESHARE_IOCTL_TYPE, 0x05, struct pageshare_open_vm)

/**
 * struct pageshare_private - Argument of PAGESHARE_GET_PRIVATE.
 * @gfns:	In: user address of an array of @max __u64, where the gfns
 *		found go, in increasing order.
 * @start:	In: the first gfn to look at.
 * @next:	Out: where to resume: one past the last gfn stored when the
 *		array is full (@start when @max is 0), else the VM's size
 *		(nothing more to find).
 * @discards:	Out: how many gfns of the VM discards
 *		(fallocate(FALLOC_FL_PUNCH_HOLE), madvise(MADV_REMOVE)) and
 *		shrinks have taken off a frame since the VM was made, read
 *		once the walk is over.
 * @max:	In: entries in @gfns, at most PAGESHARE_BATCH_MAX.
 * @count:	Out: gfns stored.
 * @flags:	In: must be zero: no flag is defined.
 * @pad:	Must be zero.
 * @reserved:	Must be zero.
 *
 * A gfn is private from the moment it gets a page of its own (its first
 * write, the write or PAGESHARE_UNSHARE that takes it out of shared
 * state) until it is nominated or loses its page. So the private gfns are
 * those that a deduplication agent has not nominated since they were last
 * written: the ones to nominate. (Also a hole read while there was no
 * memory for a zero page, and pages that nominate refuses for a memory
 * error or a pin, which stay private.) A gfn that was nominated or shared
 * at one call, and is not listed by a later one that read the same
 * @discards, has the same handle at both, unless it was written and
 * nominated again in between, or a PAGESHARE_SHARE by anyone moved the
 * frame it was on onto another (the moved gfns leave with the client
 * frame, whatever VM they are in): a share with the old handle then fails
 * with ESTALE or EIDRM. The walk costs in proportion to the private gfns
 * it finds, not to the VM's size.
 */
struct pageshare_private {
	__u64 gfns;
	__u64 start;
	__u64 next;
	__u64 discards;
	__u32 max;
	__u32 count;
	__u32 flags;
	__u32 pad;
	__u64 reserved[2];
};

/**
 * PAGESHARE_GET_PRIVATE - List the gfns backed by pages of their own.
 *
 * A VM's own ioctl: ENOTTY on the control node. It changes nothing. The
 * gfns are those private during the call, each checked under the VM's
 * lock as the walk reaches it.
 *
 * Return: 0 on success, or -1 with errno set to (in the order checked):
 *
 * * ``EFAULT`` - the argument is not readable or not writable.
 * * ``EINVAL`` - @flags, @pad or @reserved is not zero.
 * * ``E2BIG``  - @max is above PAGESHARE_BATCH_MAX.
 * * ``EFAULT`` - @gfns cannot be written (the argument is not updated).
 * * ``EINTR``  - a fatal signal came.
 */
#define PAGESHARE_GET_PRIVATE	_IOWR(PAGESHARE_IOCTL_TYPE, 0x06, struct pageshare_private)

/*
 * Sharing. A VM is named by a descriptor of it that the caller holds (a
 * file of a pageshare mount, or from PAGESHARE_OPEN_VM); the ioctls may be
 * issued on any such descriptor or on the control node /dev/pageshare. Every
 * operation has a single form, which returns 0 or -1 with errno, and a
 * batch form (struct pageshare_batch), which stores a result per entry.
 *
 * A handle names a frame: a page in shared state, read-only everywhere,
 * that may back gfns of several VMs. Every gfn on a frame reports the
 * frame's handle; an operation given a handle checks that the gfn it names
 * is on the frame carrying it. A frame's bytes cannot change while it is in
 * shared state, and its handle dies when the frame ends: when its last
 * sharer is written or unshared (the frame turns private, or that gfn gets
 * a copy), when a share moves its gfns onto another frame, or when its last
 * sharer is dropped by a shrink or the VM's teardown. A gfn that leaves a
 * frame others keep no longer matches the handle, which stays valid for
 * them. Handles are never 0 and never reused.
 *
 * An entry's result field is ignored on input. The single form reads its
 * entry first (EFAULT if it cannot); nominate and query, which have
 * outputs, also write it back unchanged before they run, so an entry that
 * is not writable fails with EFAULT with nothing done. Share,
 * add_to_physmap and unshare only read their entry.
 *
 * Errors of the sharing operations, besides EFAULT and EINVAL (an unknown
 * flag bit, a non-zero pad, a gfn shared with itself);
 * Documentation/virt/pageshare/api.rst gives each operation's order of
 * checks:
 *
 * * ``EBADF``     - a VM descriptor is not an open descriptor of a VM.
 * * ``ENXIO``     - a gfn is not below its VM's size.
 * * ``ENODATA``   - nominate: the gfn has no page yet.
 * * ``EACCES``    - share, add_to_physmap: a VM's policy forbids it: two
 *   different VMs not in one share group (struct pageshare_policy), or two
 *   gfns of a VM with PAGESHARE_POLICY_NO_INTRA_VM on one frame.
 * * ``ESTALE``    - share, add_to_physmap: the source gfn is not on the
 *   frame that carries the source handle.
 * * ``EIDRM``     - share: the client gfn is not on the frame that carries
 *   the client handle.
 * * ``EHWPOISON`` - the page has a memory error: nominate (its bytes are
 *   neither hashed nor shared), share (either frame), add_to_physmap (the
 *   source frame), unshare (its bytes cannot be copied).
 * * ``EEXIST``    - add_to_physmap: the client gfn already has a page.
 * * ``EBUSY``     - nominate: the page has references beyond its entry's
 *   once its mappings are gone (a GUP pin, DMA, a pipe); share: either
 *   frame may be pinned for DMA (its references less its mappings reach
 *   GUP_PIN_COUNTING_BIAS); retry later or leave it.
 * * ``EILSEQ``    - share: the bytes were compared and differ.
 * * ``EMLINK``    - share, add_to_physmap: the frame would have more
 *   sharers than the module's max_sharers.
 * * ``ENOMEM``    - no memory; nothing was changed.
 *
 * A page fault that would map a gfn whose page has a memory error, and a
 * write to a gfn in shared state whose frame has one, get SIGBUS
 * (VM_FAULT_HWPOISON); for KVM's faults, KVM sends the vCPU thread SIGBUS
 * with BUS_MCEERR_AR, which the VMM turns into a machine check.
 */

/* pageshare_nominate::flags: also return the hash of the page's bytes. */
#define PAGESHARE_NOMINATE_HASH		(1U << 0)

/**
 * struct pageshare_nominate - Nominate a gfn for sharing.
 * @vm:		In: VM descriptor.
 * @flags:	In: PAGESHARE_NOMINATE_HASH or 0.
 * @gfn:	In: the gfn.
 * @handle:	Out: the handle of the gfn's frame, never 0.
 * @hash:	Out: with PAGESHARE_NOMINATE_HASH, a 64-bit hash (xxh64, seed
 *		0) of the page's bytes, taken while the page cannot change;
 *		else 0.
 * @result:	Ignored on input. Batch form: 0 or a negative errno. Single
 *		form: 0 on success, else left as it was.
 * @pad:	Must be zero.
 *
 * The gfn's page becomes read-only in every mapping, KVM's included; the
 * next write to the gfn gives it a page of its own (as PAGESHARE_UNSHARE
 * does), after which it no longer matches the handle. Nominating a gfn that
 * is already nominated or shared returns its frame's current handle. On
 * failure the single form writes no output; the batch form stores 0 in
 * @handle and @hash.
 */
struct pageshare_nominate {
	__u32 vm;
	__u32 flags;
	__u64 gfn;
	__u64 handle;
	__u64 hash;
	__s32 result;
	__u32 pad;
};

/* pageshare_share::flags: compare the two pages' bytes first. */
#define PAGESHARE_SHARE_COMPARE		(1U << 0)

/**
 * struct pageshare_share - Share a client gfn's frame into a source frame.
 * @src_vm:	In: VM descriptor of the source.
 * @client_vm:	In: VM descriptor of the client; may be the source's.
 * @src_gfn:	In: source gfn.
 * @src_handle:	In: handle of the source gfn's frame.
 * @client_gfn:	In: client gfn.
 * @client_handle: In: handle of the client gfn's frame.
 * @flags:	In: PAGESHARE_SHARE_COMPARE or 0.
 * @result:	Ignored on input. Batch form: 0 or a negative errno.
 *
 * Every gfn on the client's frame moves to the source's frame and the
 * client's frame is freed: the client handle dies, the source handle
 * lives. The moved gfns read the source's bytes afterwards. The caller
 * vouches for the bytes of the two VMs it names; if the client's frame also
 * backs a gfn of any other VM, the kernel compares the two frames' bytes
 * whatever PAGESHARE_SHARE_COMPARE says and fails with EILSEQ if they
 * differ, so a share changes what a gfn reads only in the two named VMs.
 * Both handles are checked first (ESTALE, then EIDRM); then two gfns
 * already on one frame succeed without change. A gfn shared with itself
 * is EINVAL.
 */
struct pageshare_share {
	__u32 src_vm;
	__u32 client_vm;
	__u64 src_gfn;
	__u64 src_handle;
	__u64 client_gfn;
	__u64 client_handle;
	__u32 flags;
	__s32 result;
};

/**
 * struct pageshare_add_to_physmap - Map a shared frame into a hole.
 * @src_vm:	In: VM descriptor of the source.
 * @client_vm:	In: VM descriptor of the client.
 * @src_gfn:	In: source gfn.
 * @src_handle:	In: handle of the source gfn's frame.
 * @client_gfn:	In: a client gfn that has no page yet.
 * @flags:	In: zero: no flag is defined.
 * @result:	Ignored on input. Batch form: 0 or a negative errno.
 *
 * The client gfn joins the source's frame. Errors are checked in this
 * order: EINVAL, EBADF, ENXIO, EACCES (share groups), ESTALE, EHWPOISON,
 * EEXIST, EACCES (PAGESHARE_POLICY_NO_INTRA_VM), EMLINK, ENOMEM; then the
 * insertion into the hole can still fail with EEXIST (a first touch won),
 * ENXIO (a shrink took the gfn) or ENOMEM.
 */
struct pageshare_add_to_physmap {
	__u32 src_vm;
	__u32 client_vm;
	__u64 src_gfn;
	__u64 src_handle;
	__u64 client_gfn;
	__u32 flags;
	__s32 result;
};

/**
 * struct pageshare_unshare - Give a gfn a private page again.
 * @vm:		In: VM descriptor.
 * @flags:	In: zero: no flag is defined.
 * @gfn:	In: the gfn.
 * @result:	Ignored on input. Batch form: 0 or a negative errno.
 * @pad:	Must be zero.
 *
 * What a write does, without writing: the gfn gets a copy of the frame's
 * bytes in a private page of its own, the last sharer too (a frame lives
 * outside every page cache and cannot enter one). A frame left without
 * sharers ends, its page living on only with whoever still holds it. A
 * private gfn or a hole is left as it is.
 */
struct pageshare_unshare {
	__u32 vm;
	__u32 flags;
	__u64 gfn;
	__s32 result;
	__u32 pad;
};

/* pageshare_query::state */
#define PAGESHARE_STATE_HOLE		0	/* no page yet */
#define PAGESHARE_STATE_PRIVATE		1	/* a page of its own */
#define PAGESHARE_STATE_NOMINATED	2	/* sole gfn on a frame with a handle */
#define PAGESHARE_STATE_SHARED		3	/* on a frame with other gfns */

/**
 * struct pageshare_query - What backs a gfn.
 * @vm:		In: VM descriptor.
 * @flags:	In: zero: no flag is defined.
 * @gfn:	In: the gfn.
 * @handle:	Out: the handle of its frame, or 0 for a hole or a private
 *		page.
 * @sharers:	Out: gfns (in all VMs) on the gfn's frame: 0 for a hole, 1
 *		for a private or nominated page.
 * @state:	Out: PAGESHARE_STATE_*.
 * @result:	Ignored on input. Batch form: 0 or a negative errno. Single
 *		form: 0 on success, else left as it was.
 * @pad:	Must be zero.
 */
struct pageshare_query {
	__u32 vm;
	__u32 flags;
	__u64 gfn;
	__u64 handle;
	__u32 sharers;
	__u32 state;
	__s32 result;
	__u32 pad;
};

/**
 * struct pageshare_batch - Argument of the batch forms.
 * @entries:	In: user address of an array of @count entries of the
 *		operation's type (struct pageshare_nominate for
 *		PAGESHARE_NOMINATE_BATCH, and so on).
 * @count:	In: number of entries, at most PAGESHARE_BATCH_MAX.
 * @flags:	In: zero: no flag is defined.
 * @done:	Out: entries run, each with its result stored. Set to 0
 *		before any entry runs, and to @count on success; less only
 *		when the call fails with EINTR, EFAULT or ENOMEM, so a caller
 *		can resume at entry @done. Not written when the header is
 *		refused (the first EFAULT, EINVAL, E2BIG).
 * @pad:	Must be zero.
 * @reserved:	Must be zero.
 *
 * The header is checked in this order: EFAULT (not readable), EINVAL
 * (@flags, @pad or @reserved not zero), E2BIG (@count above
 * PAGESHARE_BATCH_MAX), EFAULT (@done cannot be stored), ENOMEM. Entries
 * are then run in order, in chunks of up to 64, each of which is read and
 * written back before any of its entries runs: a chunk that is not both
 * readable and writable fails the call with EFAULT and none of it runs, so
 * no change is made without its result reaching the caller (unless the
 * caller unmaps or write-protects the array while the call runs). One
 * entry's failure does not stop the batch. After each chunk, if entries
 * remain and any signal is pending (not only a fatal one), the call fails
 * with EINTR. A @count of 0 runs nothing, stores 0 in @done and returns 0.
 *
 * Return: 0 once every entry has its result, or -1 with errno set to
 * EFAULT, EINVAL, E2BIG, ENOMEM or EINTR (resume at @done).
 */
struct pageshare_batch {
	__u64 entries;
	__u32 count;
	__u32 flags;
	__u32 done;
	__u32 pad;
	__u64 reserved[2];
};

#define PAGESHARE_BATCH_MAX	(1U << 20)

/**
 * struct pageshare_stats - Result of PAGESHARE_GET_STATS.
 * @private_pages:	This VM's gfns backed by pages of their own.
 * @shared_gfns:	This VM's gfns backed by frames in shared state
 *			(nominated or shared).
 * @nominated_gfns:	Of those, gfns that are alone on their frame.
 * @cow_breaks:		One each time a gfn of this VM leaves shared
 *			state (nominated or shared) by a write or by
 *			PAGESHARE_UNSHARE, the frame's last sharer
 *			included, whether it keeps the frame in place or
 *			gets a copy. A shrink, the teardown or a share
 *			that moves the gfn does not count.
 * @vms:		VMs that exist.
 * @total_private_pages: Private pages of all VMs.
 * @shared_frames:	Frames in shared state.
 * @saved_frames:	Frames freed by sharing: the sum of every VM's
 *			@shared_gfns is @saved_frames + @shared_frames.
 * @meta_bytes:		Memory the module holds for frames and reverse maps.
 * @reserved:		Zero.
 */
struct pageshare_stats {
	__u64 private_pages;
	__u64 shared_gfns;
	__u64 nominated_gfns;
	__u64 cow_breaks;
	__u64 vms;
	__u64 total_private_pages;
	__u64 shared_frames;
	__u64 saved_frames;
	__u64 meta_bytes;
	__u64 reserved[7];
};

#define PAGESHARE_NOMINATE	_IOWR(PAGESHARE_IOCTL_TYPE, 0x10, struct pageshare_nominate)
#define PAGESHARE_SHARE		_IOW(PAGESHARE_IOCTL_TYPE, 0x11, struct pageshare_share)
#define PAGESHARE_ADD_TO_PHYSMAP \
	_IOW(PAGESHARE_IOCTL_TYPE, 0x12, struct pageshare_add_to_physmap)
#define PAGESHARE_UNSHARE	_IOW(PAGESHARE_IOCTL_TYPE, 0x13, struct pageshare_unshare)
#define PAGESHARE_QUERY		_IOWR(PAGESHARE_IOCTL_TYPE, 0x14, struct pageshare_query)

#define PAGESHARE_NOMINATE_BATCH	_IOWR(PAGESHARE_IOCTL_TYPE, 0x20, struct pageshare_batch)
#define PAGESHARE_SHARE_BATCH		_IOWR(PAGESHARE_IOCTL_TYPE, 0x21, struct pageshare_batch)
#define PAGESHARE_ADD_TO_PHYSMAP_BATCH	_IOWR(PAGESHARE_IOCTL_TYPE, 0x22, struct pageshare_batch)
#define PAGESHARE_UNSHARE_BATCH		_IOWR(PAGESHARE_IOCTL_TYPE, 0x23, struct pageshare_batch)
#define PAGESHARE_QUERY_BATCH		_IOWR(PAGESHARE_IOCTL_TYPE, 0x24, struct pageshare_batch)

/**
 * PAGESHARE_GET_STATS - This VM's counters and the global ones.
 *
 * On the control node, which is no VM, the VM's own fields are 0.
 * Documentation/virt/pageshare/api.rst (3.10) lists every counter and
 * where else it is shown (fdinfo, /sys/kernel/pageshare/).
 *
 * Return: 0, or -1 with errno EFAULT.
 */
#define PAGESHARE_GET_STATS	_IOR(PAGESHARE_IOCTL_TYPE, 0x30, struct pageshare_stats)

/**
 * PAGESHARE_AUDIT - Check every invariant of every VM and frame.
 *
 * Takes no argument. Holds off every sharing operation, copy-on-write,
 * policy change, shrink and VM creation and teardown while it runs, but
 * not first touches of holes, which it allows for. Reports each
 * inconsistency in the kernel log.
 *
 * Return: the number of inconsistencies found (0 when all is well; at most
 * INT_MAX), or -1 with errno EPERM (the caller lacks CAP_SYS_ADMIN) or
 * ENOMEM.
 */
#define PAGESHARE_AUDIT		_IO(PAGESHARE_IOCTL_TYPE, 0x31)

#endif /* _UAPI_LINUX_PAGESHARE_H */
