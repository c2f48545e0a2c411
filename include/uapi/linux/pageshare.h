/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pageshare: guest RAM for KVM served by a character device, so that the
 * pages can later be shared between guests with Xen-style handles.
 *
 * Each open() of /dev/pageshare is one VM's memory. mmap(MAP_SHARED) maps
 * it; the page offset in the file is the guest frame number (gfn).
 * Documentation/virt/pageshare/api.rst describes every ioctl below.
 */

#ifndef _UAPI_LINUX_PAGESHARE_H
#define _UAPI_LINUX_PAGESHARE_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Registered in Documentation/userspace-api/ioctl/ioctl-number.rst. */
#define PAGESHARE_IOCTL_TYPE	0xB9

/* Returned by PAGESHARE_GET_API_VERSION. */
#define PAGESHARE_API_VERSION	2

/**
 * PAGESHARE_GET_API_VERSION - Report the version of this interface.
 *
 * Takes no argument. Returns PAGESHARE_API_VERSION. A later version only
 * adds ioctls, flags and fields that were reserved before. Version 2 added
 * PAGESHARE_SET_POLICY, PAGESHARE_GET_POLICY and PAGESHARE_OPEN_VM.
 */
#define PAGESHARE_GET_API_VERSION	_IO(PAGESHARE_IOCTL_TYPE, 0x00)

/**
 * struct pageshare_size - Argument of PAGESHARE_SET_SIZE.
 * @size:	Bytes of guest RAM: a non-zero multiple of the page size, at
 *		most the module's max_vm_size.
 * @flags:	Must be zero.
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
 * end. Setting the current size again always succeeds.
 *
 * Return: 0 on success, or -1 with errno set to:
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
 *		by default). SET also takes PAGESHARE_POLICY_NEW_GROUP.
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
 * opened the VM by id holds one too). A policy changes only while none of
 * the VM's gfns is on a frame with other sharers, so every frame's sharers
 * always satisfy every sharer's policy. Setting the current policy again
 * always succeeds.
 *
 * Return: 0 on success, or -1 with errno set to:
 *
 * * ``EFAULT`` - the argument is not readable, or (NEW_GROUP) not writable.
 * * ``EINVAL`` - an unknown flag, a non-zero @pad or @reserved, or a
 *   non-zero @group with PAGESHARE_POLICY_NEW_GROUP.
 * * ``ENOENT`` - @group is not 0 and no VM is in that group.
 * * ``EBUSY``  - the policy would change and some gfn of the VM is on a
 *   frame with other sharers; unshare them first.
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
 * @flags:	Must be zero.
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
 * For a privileged deduplication agent (CAP_SYS_ADMIN), which may be issued
 * on any /dev/pageshare descriptor. The new descriptor refers to the VM
 * exactly as its owner's does (close-on-exec set): it keeps the VM alive
 * until closed, so an agent closes the descriptors of VMs whose VMM exited.
 *
 * Return: a new file descriptor, or -1 with errno set to:
 *
 * * ``EPERM``  - the caller lacks CAP_SYS_ADMIN.
 * * ``EFAULT`` - the argument is not readable.
 * * ``EINVAL`` - @flags, @pad or @reserved is not zero.
 * * ``ESRCH``  - no VM has this id (it never existed, or it is gone).
 * * ``EMFILE`` - the caller has no free descriptor.
 */
#define PAGESHARE_OPEN_VM	_IOW(PAGESHARE_IOCTL_TYPE, 0x05, struct pageshare_open_vm)

/*
 * Sharing. A VM is named by a file descriptor of /dev/pageshare that the
 * caller holds; the ioctls may be issued on any such descriptor. Every
 * operation has a single form, which returns 0 or -1 with errno, and a
 * batch form (struct pageshare_batch), which stores a result per entry.
 *
 * Errors of the sharing operations, besides EFAULT and EINVAL:
 *
 * * ``EBADF``   - a VM descriptor is not an open /dev/pageshare file.
 * * ``ENXIO``   - a gfn is not below its VM's size.
 * * ``ENODATA`` - nominate: the gfn has no page yet.
 * * ``EBUSY``   - nominate: the page has references beyond its mappings
 *   (a GUP pin, DMA); share: a page was pinned for DMA since its nominate;
 *   retry later or leave it.
 * * ``ESTALE``  - share, add_to_physmap: the source handle does not name
 *   the source gfn's current version (it was written, or never had it).
 * * ``EIDRM``   - share: the client handle does not name the client gfn's
 *   current version.
 * * ``EILSEQ``  - share with PAGESHARE_SHARE_COMPARE: the bytes differ.
 * * ``EMLINK``  - share, add_to_physmap: the frame would have more sharers
 *   than the module's max_sharers.
 * * ``EEXIST``  - add_to_physmap: the client gfn already has a page.
 * * ``EACCES``  - share, add_to_physmap: a VM's policy forbids it: two
 *   different VMs not in one share group (struct pageshare_policy), or two
 *   gfns of a VM with PAGESHARE_POLICY_NO_INTRA_VM on one frame.
 * * ``ENOMEM``  - no memory; nothing was changed.
 */

/* pageshare_nominate::flags: also return the hash of the page's bytes. */
#define PAGESHARE_NOMINATE_HASH		(1U << 0)

/**
 * struct pageshare_nominate - Nominate a gfn for sharing.
 * @vm:		In: VM descriptor.
 * @flags:	In: PAGESHARE_NOMINATE_HASH or 0.
 * @gfn:	In: the gfn.
 * @handle:	Out: the handle of the gfn's current version, never 0.
 * @hash:	Out: with PAGESHARE_NOMINATE_HASH, a 64-bit hash (xxh64, seed
 *		0) of the page's bytes, taken while the page cannot change;
 *		else 0.
 * @result:	Out, batch form only: 0 or a negative errno.
 * @pad:	Zero.
 *
 * The gfn's page becomes read-only in every mapping, KVM's included; the
 * next write to it gives the writer a private copy and kills the handle.
 * Nominating a gfn that is already nominated or shared returns its current
 * handle.
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
 * @src_handle:	In: handle of the source gfn's current version.
 * @client_gfn:	In: client gfn.
 * @client_handle: In: handle of the client gfn's current version.
 * @flags:	In: PAGESHARE_SHARE_COMPARE or 0.
 * @result:	Out, batch form only: 0 or a negative errno.
 *
 * Every gfn on the client's frame moves to the source's frame and the
 * client's frame is freed: the client handle dies, the source handle
 * lives. Two gfns already on one frame succeed without change; a gfn
 * shared with itself is EINVAL.
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
 * @src_handle:	In: handle of the source gfn's current version.
 * @client_gfn:	In: a client gfn that has no page yet.
 * @flags:	In: zero.
 * @result:	Out, batch form only: 0 or a negative errno.
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
 * @flags:	In: zero.
 * @gfn:	In: the gfn.
 * @result:	Out, batch form only: 0 or a negative errno.
 * @pad:	Zero.
 *
 * What a write does, without writing: the last sharer of a frame keeps
 * it without a copy, any other gets a copy. A private gfn or a hole is
 * left as it is.
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
 * @flags:	In: zero.
 * @gfn:	In: the gfn.
 * @handle:	Out: the current handle, or 0 for a hole or a private page.
 * @sharers:	Out: gfns (in all VMs) on the gfn's frame: 0 for a hole, 1
 *		for a private or nominated page.
 * @state:	Out: PAGESHARE_STATE_*.
 * @result:	Out, batch form only: 0 or a negative errno.
 * @pad:	Zero.
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
 * @flags:	In: zero.
 * @done:	Out: entries processed; each has its result set. Less than
 *		@count only when the call fails (EINTR on a signal, EFAULT),
 *		so a caller can resume at entry @done.
 * @pad:	Zero.
 * @reserved:	Zero.
 *
 * Entries are processed in order; one entry's failure does not stop the
 * batch. The ioctl returns 0 once every entry has its result. Entries are
 * processed in chunks of up to 64, each of which must be readable and
 * writable: a chunk that is not (EFAULT) is not run, so no change is ever
 * made without its result reaching the caller. The same holds for the
 * single forms that return outputs (nominate, query).
 *
 * Return: 0, or -1 with errno set to EFAULT (the argument or a chunk of
 * entries is not readable and writable), EINVAL (@flags, @pad or
 * @reserved not zero), E2BIG (@count above PAGESHARE_BATCH_MAX), EINTR (a
 * signal arrived; resume at @done) or ENOMEM.
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
 * @cow_breaks:		Times a gfn of this VM left a shared frame, by a
 *			write or an unshare.
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
 * Return: 0, or -1 with errno EFAULT.
 */
#define PAGESHARE_GET_STATS	_IOR(PAGESHARE_IOCTL_TYPE, 0x30, struct pageshare_stats)

/**
 * PAGESHARE_AUDIT - Check every invariant of every VM and frame.
 *
 * Takes no argument. Stops every sharing operation while it runs and
 * reports each inconsistency in the kernel log.
 *
 * Return: the number of inconsistencies found (0 when all is well), or -1
 * with errno EPERM (the caller lacks CAP_SYS_ADMIN) or ENOMEM.
 */
#define PAGESHARE_AUDIT		_IO(PAGESHARE_IOCTL_TYPE, 0x31)

#endif /* _UAPI_LINUX_PAGESHARE_H */
