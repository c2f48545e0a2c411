/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pageshare: private declarations shared by the files of the driver.
 *
 *   main.c	the control node, the VMs' file operations, the ioctl switch
 *		and the batch runner
 *   fs.c	the pageshare filesystem: a VM per regular file
 *   vm.c	one VM's memory: its inode, its pages, the fault path,
 *		discard
 *   share.c	the sharing engine: frames, handles, nominate, share,
 *		add_to_physmap, unshare (the write path) and release; it
 *		owns the lock order
 *   policy.c	who may share what: share groups, no-intra-VM sharing,
 *		and the privileged agent's way to a VM by its id
 *   rmap.c	a frame's reverse map
 *   migrate.c	how compaction and memory offline move private pages and
 *		frames
 *   audit.c	the invariant walk
 *   stats.c	counters, sysfs and fdinfo
 *
 * A gfn's entry in its VM's xarray is either a page of its own (a plain
 * pointer to a folio of the VM inode's page cache, at index gfn) or the
 * page of a frame in shared state (the page pointer tagged with
 * PS_ENTRY_SHARED), a non-LRU movable page whose struct ps_frame hangs off
 * page->private.
 */

#ifndef _PAGESHARE_H
#define _PAGESHARE_H

#include <linux/atomic.h>
#include <linux/kobject.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/xarray.h>

struct file;
struct inode;
struct mem_cgroup;
struct page;
struct pageshare_policy;
struct pageshare_private;
struct pageshare_stats;
struct pageshare_vm_info;
struct seq_file;
struct vm_area_struct;
struct vm_fault;

#define PS_ENTRY_SHARED		1UL

/*
 * The mark of every private entry of a VM's xarray, and of no other: set
 * and cleared with the entry, under its xa_lock (ps_vm_fill_hole(),
 * ps_set_entry()). An xarray node keeps a summary of its children's marks,
 * so PAGESHARE_GET_PRIVATE walks only the parts of the tree that hold
 * private gfns (ps_vm_get_private()). XA_MARK_0 is an allocating xarray's
 * free mark: @pages must not become one.
 */
#define PS_MARK_PRIVATE		XA_MARK_0

/* Zero pages a VM maps its holes to; and gfns per page of the hole bitmap. */
#define PS_NR_ZERO		8
#define PS_ZERO_CHUNK		(PAGE_SIZE * BITS_PER_BYTE)

/**
 * struct ps_vm_stats - One VM's counters.
 * @private_pages:	gfns backed by a page of their own.
 * @shared_gfns:	gfns backed by a frame in shared state.
 * @nominated_gfns:	Of those, gfns alone on their frame.
 * @cow_breaks:		gfns that left shared or nominated state by a write
 *			or an unshare; a shrink or
 *			the teardown does not count.
 * @multi_gfns:		shared_gfns - nominated_gfns, kept in one counter
 *			so that SET_POLICY reads it at once (share.c).
 */
struct ps_vm_stats {
	atomic_long_t private_pages;
	atomic_long_t shared_gfns;
	atomic_long_t nominated_gfns;
	atomic_long_t cow_breaks;
	atomic_long_t multi_gfns;
};

/**
 * struct ps_size_limit - The size= limit of a pageshare mount (fs.c).
 * @lock:	Protects @used.
 * @max:	Bytes that the sizes of the mount's files may add up to.
 * @used:	Bytes they add up to.
 */
struct ps_size_limit {
	spinlock_t lock;	/* protects @used */
	u64 max;
	u64 used;
};

int ps_limit_resize(struct ps_size_limit *limit, u64 old, u64 new);

/**
 * struct ps_vm - One VM's memory: what a file of a pageshare mount names.
 * @inode:	Private inode. Its i_mapping is this VM's address_space, so
 *		its i_mmap lists exactly this VM's mappings and zapping a
 *		range of it reaches this VM and no other.
 * @pages:	gfn -> the page backing it. Holds one reference per page.
 * @lock:	Serialises changes of @size against new mappings.
 * @resize_sem:	Write side: a size change; read side: a punch, which
 *		walks the gfns below the size it read.
 * @policy_sem:	Write side: SET_POLICY of this VM; read side: share and
 *		add_to_physmap calls that name it (share.c).
 * @size:	Bytes of guest RAM; 0 until set. Read without @lock on the
 *		fault path, which is safe because it only changes while
 *		@nr_mappings is zero. Written under @lock (a shrink also
 *		under the xa_lock of @pages).
 * @freeing:	While a shrink or the teardown frees gfns: the size they
 *		are freed from, so that the audit tells entries on their way
 *		out from entries past the size. 0 otherwise.
 * @nr_mappings: VMAs that map this VM, counted under @lock.
 * @stats:	Counters.
 * @discards:	gfns that a discard (punch) or a shrink took off a frame,
 *		counted under the xa_lock of @pages with the erase
 *		(PAGESHARE_GET_PRIVATE).
 * @memcg:	Memory cgroup of the opener, charged for every guest page
 *		whichever task faults it in.
 * @kobj:	/sys/kernel/pageshare/vm/<id>/; its release frees the VM.
 * @pid:	Thread-group id of the opener.
 * @uid:	Effective uid of the opener.
 * @id:		Index in the table of VMs; never 0.
 * @policy:	PAGESHARE_POLICY_NO_INTRA_VM or 0.
 * @group:	Share group, 0 for none. With @policy, changes only under
 *		@policy_sem, so a sharing operation reads both once.
 * @published:	Set once the VM's creator can no longer fail; only then
 *		does PAGESHARE_OPEN_VM find it.
 * @limit:	The size limit of the pageshare mount whose file the VM is,
 *		or NULL; changed under @lock.
 * @zero_map:	gfn / PS_ZERO_CHUNK -> a page of bits, one per gfn that a
 *		PTE may map to a zero page (a hole that was read). A bit is
 *		set and cleared under the xa_lock of @pages, and only while
 *		its gfn is a hole: whoever fills the hole clears it and zaps.
 * @zero:	Read-only zero pages that holes are mapped to, allocated on
 *		the first read of a hole; gfn % PS_NR_ZERO picks one, so that
 *		the vCPUs of one VM do not all wait for one page lock.
 */
struct ps_vm {
	struct inode *inode;
	struct xarray pages;
	struct mutex lock;	/* protects @size and @nr_mappings */
	struct rw_semaphore resize_sem;
	struct rw_semaphore policy_sem;
	u64 size;
	u64 freeing;
	unsigned int nr_mappings;
	struct ps_vm_stats stats;
	atomic64_t discards;
	struct mem_cgroup *memcg;
	struct kobject kobj;
	pid_t pid;
	kuid_t uid;
	u32 id;
	u32 policy;
	u64 group;
	bool published;
	struct ps_size_limit *limit;
	struct xarray zero_map;
	struct page *zero[PS_NR_ZERO];
};

/**
 * struct ps_frame - A frame in shared state: its page's page->private.
 * @handle:	Handle of the frame's current version; never 0.
 * @nr_sharers:	gfns (of any VM) that the frame backs; at most max_sharers.
 * @cap:	0 while the reverse map fits in @keys, else slots in @table.
 * @keys:	Reverse map of up to two sharers.
 * @table:	Reverse map as an open-addressing hash set.
 *
 * Everything here is protected by the lock of the frame's page. The frame
 * belongs to no VM: it lives while any gfn maps it. 32 bytes.
 */
struct ps_frame {
	u64 handle;
	u32 nr_sharers;
	u32 cap;
	union {
		u64 keys[2];
		u64 *table;
	};
};

/**
 * enum ps_stat_item - Module-wide counters.
 * @PS_STAT_VMS:		VMs that exist.
 * @PS_STAT_PRIVATE_PAGES:	Pages owned by one VM, summed over all VMs.
 * @PS_STAT_SHARED_FRAMES:	Frames in shared state.
 * @PS_STAT_SAVED_FRAMES:	Frames that sharing freed.
 * @PS_STAT_META_BYTES:		Bytes held in frames and reverse maps.
 * @PS_NR_STATS:		How many there are.
 */
enum ps_stat_item {
	PS_STAT_VMS,
	PS_STAT_PRIVATE_PAGES,
	PS_STAT_SHARED_FRAMES,
	PS_STAT_SAVED_FRAMES,
	PS_STAT_META_BYTES,
	PS_NR_STATS,
};

/**
 * struct ps_stats - One CPU's part of the module-wide counters.
 * @count:	Per enum ps_stat_item, what this CPU added; a counter is the
 *		sum of its parts over every possible CPU (ps_stat_read()).
 *
 * Every nominate, share and unshare changes some of them: kept per CPU,
 * two threads working on different VMs write no cacheline in common. A
 * part may be negative (a frame made on one CPU and freed on another).
 */
struct ps_stats {
	long count[PS_NR_STATS];
};

DECLARE_PER_CPU(struct ps_stats, ps_stats);

/* Preemption and interrupts may come: this_cpu_add() is one operation. */
static inline void ps_stat_add(enum ps_stat_item item, long delta)
{
	this_cpu_add(ps_stats.count[item], delta);
}

static inline void ps_stat_sub(enum ps_stat_item item, long delta)
{
	this_cpu_sub(ps_stats.count[item], delta);
}

static inline void ps_stat_inc(enum ps_stat_item item)
{
	ps_stat_add(item, 1);
}

static inline void ps_stat_dec(enum ps_stat_item item)
{
	ps_stat_add(item, -1);
}

extern unsigned long ps_max_vm_size;
extern unsigned int ps_max_sharers;

static inline bool ps_entry_shared(const void *entry)
{
	return ((unsigned long)entry & PS_ENTRY_SHARED) != 0;
}

static inline struct page *ps_entry_page(void *entry)
{
	return (struct page *)((unsigned long)entry & ~PS_ENTRY_SHARED);
}

static inline void *ps_shared_entry(struct page *page)
{
	return (void *)((unsigned long)page | PS_ENTRY_SHARED);
}

static inline struct ps_frame *ps_page_frame(struct page *page)
{
	return (struct ps_frame *)page_private(page);
}

/*
 * The reverse map names a sharer by VM id and gfn, in one u64: gfns must fit
 * in 32 bits, so no VM is larger than 16 TiB whatever max_vm_size says.
 */
#define PS_VM_SIZE_LIMIT	(1ULL << (32 + PAGE_SHIFT))

static inline u64 ps_max_size(void)
{
	return min_t(u64, READ_ONCE(ps_max_vm_size), PS_VM_SIZE_LIMIT);
}

/* Whether @gfn is below @vm's size; exact under the VM's xa_lock. */
#define ps_gfn_valid(vm, gfn)	((gfn) < READ_ONCE((vm)->size) >> PAGE_SHIFT)

static inline u64 ps_rmap_key(u32 vm_id, pgoff_t gfn)
{
	return (u64)vm_id << 32 | (u32)gfn;
}

static inline u32 ps_rmap_key_vm(u64 key)
{
	return key >> 32;
}

static inline pgoff_t ps_rmap_key_gfn(u64 key)
{
	return (u32)key;
}

/* vm.c */
int ps_fs_init(void);
void ps_fs_exit(void);
int ps_mountfs_init(void);
void ps_mountfs_exit(void);
int ps_fs_open(struct inode *inode, struct file *filp);
extern const struct file_operations ps_vm_file_fops;
extern const struct file_operations ps_vm_id_fops;
extern const struct inode_operations ps_vm_iops;
struct ps_vm *ps_vm_create(void);
void ps_vm_publish(struct ps_vm *vm);
struct file *ps_vm_open_id(u32 id);
int ps_vm_punch(struct ps_vm *vm, loff_t offset, loff_t len);
void ps_vm_destroy(struct ps_vm *vm);
void ps_vm_free(struct ps_vm *vm);
int ps_vm_set_size(struct ps_vm *vm, u64 size);
struct page *ps_vm_get_page(struct ps_vm *vm, pgoff_t gfn,
			    const struct vm_fault *vmf);
int ps_vm_fill_hole(struct ps_vm *vm, pgoff_t gfn, void *entry);
struct folio *ps_vm_new_folio(struct ps_vm *vm, pgoff_t gfn, struct page *src,
			      const struct vm_fault *vmf);
void ps_vm_remove_folio(struct ps_vm *vm, struct folio *folio);
extern const struct address_space_operations ps_vm_aops;
struct page *ps_vm_lookup(struct ps_vm *vm, pgoff_t gfn, bool *shared);
struct ps_vm *ps_vm_find(u32 id);
int ps_vm_mmap(struct ps_vm *vm, struct vm_area_struct *vma, bool may_size);
void ps_vm_zap(struct ps_vm *vm, pgoff_t gfn);
void ps_vm_zap_range(struct ps_vm *vm, pgoff_t gfn, pgoff_t nr);
void ps_vm_get_info(struct ps_vm *vm, struct pageshare_vm_info *info);
int ps_vm_get_private(struct ps_vm *vm, struct pageshare_private *arg,
		      u64 __user *gfns);
void ps_vms_lock(void);
void ps_vms_unlock(void);
struct ps_vm *ps_vms_next(unsigned long *id);

/* share.c */
int ps_share_init(void);
void ps_share_exit(void);
void ps_ops_begin(void);
bool ps_ops_trybegin(void);
void ps_ops_end(void);
void ps_ops_freeze(void);
void ps_ops_thaw(void);
u64 ps_handles_issued(void);
void ps_nominate_zap(struct ps_vm *vm, pgoff_t gfn, pgoff_t nr);
int ps_nominate(struct ps_vm *vm, pgoff_t gfn, u64 *handle, u64 *hash);
int ps_share(struct ps_vm *svm, pgoff_t sgfn, u64 shandle,
	     struct ps_vm *cvm, pgoff_t cgfn, u64 chandle, bool compare);
int ps_add_to_physmap(struct ps_vm *svm, pgoff_t sgfn, u64 shandle,
		      struct ps_vm *cvm, pgoff_t cgfn);
int ps_unshare(struct ps_vm *vm, pgoff_t gfn);
int ps_unshare_locked(struct ps_vm *vm, pgoff_t gfn, struct page *page,
		      const struct vm_fault *vmf);
int ps_query(struct ps_vm *vm, pgoff_t gfn, u64 *handle, u32 *sharers,
	     u32 *state);
struct folio_batch;
void ps_release_gfn(struct ps_vm *vm, pgoff_t gfn, struct folio_batch *fbatch);

/* migrate.c */
extern const struct movable_operations ps_frame_mops;
int ps_vm_migrate_folio(struct address_space *mapping, struct folio *dst,
			struct folio *src, enum migrate_mode mode);

/* policy.c */
int ps_set_policy(struct ps_vm *vm, struct pageshare_policy *p);
void ps_get_policy(struct ps_vm *vm, struct pageshare_policy *p);
int ps_open_vm(u64 id);
bool ps_policy_pair_ok(struct ps_vm *svm, struct ps_vm *cvm);
bool ps_policy_frames_ok(const struct ps_frame *sframe, struct ps_vm *cvm,
			 const struct ps_frame *cframe);

/* rmap.c */
int ps_rmap_reserve(struct ps_frame *frame, u32 more);
void ps_rmap_add(struct ps_frame *frame, u64 key);
bool ps_rmap_del(struct ps_frame *frame, u64 key);
bool ps_rmap_has(const struct ps_frame *frame, u64 key);
bool ps_rmap_next(const struct ps_frame *frame, u32 *pos, u64 *key);
void ps_rmap_free(struct ps_frame *frame);
size_t ps_rmap_bytes(const struct ps_frame *frame);

/* audit.c */
long ps_audit(void);

/* stats.c */
long ps_stat_read(enum ps_stat_item item);
int ps_sysfs_init(void);
void ps_sysfs_exit(void);
void ps_vm_kobj_init(struct ps_vm *vm);
int ps_vm_kobj_add(struct ps_vm *vm);
void ps_get_stats(struct ps_vm *vm, struct pageshare_stats *st);
void ps_show_fdinfo(struct ps_vm *vm, struct seq_file *m);

#endif /* _PAGESHARE_H */
