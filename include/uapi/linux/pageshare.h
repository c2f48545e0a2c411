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
#define PAGESHARE_API_VERSION	1

/**
 * PAGESHARE_GET_API_VERSION - Report the version of this interface.
 *
 * Takes no argument. Returns PAGESHARE_API_VERSION. A later version only
 * adds ioctls, flags and fields that were reserved before.
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

#endif /* _UAPI_LINUX_PAGESHARE_H */
