/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pageshare: private declarations shared by the files of the driver.
 *
 *   main.c	the misc device, its file operations and the ioctl switch
 *   vm.c	one VM's memory: its file, its pages, the fault path
 *   stats.c	counters and their sysfs view
 */

#ifndef _PAGESHARE_H
#define _PAGESHARE_H

#include <linux/atomic.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/xarray.h>

struct inode;
struct mem_cgroup;
struct page;
struct pageshare_vm_info;
struct vm_area_struct;

/**
 * struct ps_vm - One VM's memory: what an open() of /dev/pageshare creates.
 * @inode:	Private inode. Its i_mapping is this VM's address_space, so
 *		its i_mmap lists exactly this VM's mappings and zapping a
 *		range of it reaches this VM and no other.
 * @pages:	gfn -> the page backing it. Holds one reference per page.
 * @lock:	Serialises changes of @size against new mappings.
 * @size:	Bytes of guest RAM; 0 until set. Read without @lock on the
 *		fault path, which is safe because it only changes while
 *		@nr_mappings is zero.
 * @nr_mappings: VMAs that map this VM, counted under @lock.
 * @nr_private:	Pages in @pages.
 * @memcg:	Memory cgroup of the opener, charged for every guest page
 *		whichever task faults it in.
 * @id:		Index in the table of VMs; never 0.
 */
struct ps_vm {
	struct inode *inode;
	struct xarray pages;
	struct mutex lock;	/* protects @size and @nr_mappings */
	u64 size;
	unsigned int nr_mappings;
	atomic_long_t nr_private;
	struct mem_cgroup *memcg;
	u32 id;
};

/**
 * struct ps_stats - Module-wide counters.
 * @vms:		VMs that exist.
 * @private_pages:	Pages owned by one VM, summed over all VMs.
 */
struct ps_stats {
	atomic_long_t vms;
	atomic_long_t private_pages;
};

extern struct ps_stats ps_stats;
extern unsigned long ps_max_vm_size;

int ps_fs_init(void);
void ps_fs_exit(void);

struct ps_vm *ps_vm_create(void);
void ps_vm_destroy(struct ps_vm *vm);
int ps_vm_set_size(struct ps_vm *vm, u64 size);
struct page *ps_vm_get_page(struct ps_vm *vm, pgoff_t gfn);
int ps_vm_mmap(struct ps_vm *vm, struct vm_area_struct *vma);
void ps_vm_get_info(struct ps_vm *vm, struct pageshare_vm_info *info);

int ps_sysfs_init(void);
void ps_sysfs_exit(void);

#endif /* _PAGESHARE_H */
