// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of a VM's memory object (vm.c): ids, sizes, page allocation
 * on first use, zero fill, the page cache the pages live in, GUP-fast on
 * them, a batch of nominates' unmapping, and that every page goes back
 * when the VM does.
 * They run when the module loads.
 */

#include <kunit/test.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/pagemap.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/xxhash.h>

#include "pageshare.h"

static void ps_test_destroy_action(void *vm)
{
	/* The VM goes with its inode's last reference, as in real use. */
	iput(((struct ps_vm *)vm)->inode);
}

/* A VM destroyed when the test ends, however it ends. */
static struct ps_vm *ps_test_vm(struct kunit *test, u64 size)
{
	struct ps_vm *vm = ps_vm_create();

	KUNIT_ASSERT_FALSE(test, IS_ERR(vm));
	KUNIT_ASSERT_EQ(test, 0,
			kunit_add_action_or_reset(test, ps_test_destroy_action, vm));
	if (size)
		KUNIT_ASSERT_EQ(test, 0, ps_vm_set_size(vm, size));
	return vm;
}

static bool ps_test_page_is(struct page *page, u8 byte)
{
	void *p = kmap_local_page(page);
	bool ret = !memchr_inv(p, byte, PAGE_SIZE);

	kunmap_local(p);
	return ret;
}

static void ps_test_create_ids(struct kunit *test)
{
	long vms = ps_stat_read(PS_STAT_VMS);
	struct ps_vm *a = ps_test_vm(test, 0);
	struct ps_vm *b = ps_test_vm(test, 0);

	KUNIT_EXPECT_NE(test, a->id, 0);
	KUNIT_EXPECT_NE(test, b->id, 0);
	KUNIT_EXPECT_NE(test, a->id, b->id);
	KUNIT_EXPECT_EQ(test, a->size, 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&a->stats.private_pages), 0);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_VMS), vms + 2);
	KUNIT_EXPECT_PTR_NE(test, a->inode, b->inode);
	KUNIT_EXPECT_PTR_NE(test, a->inode->i_mapping, b->inode->i_mapping);

	kunit_release_action(test, ps_test_destroy_action, b);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_VMS), vms + 1);
}

static void ps_test_set_size(struct kunit *test)
{
	struct ps_vm *vm = ps_test_vm(test, 0);
	struct page *page;

	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, PAGE_SIZE + 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, ps_max_vm_size + PAGE_SIZE), -EFBIG);
	KUNIT_EXPECT_EQ(test, vm->size, 0);

	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 16 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, vm->size, 16 * PAGE_SIZE);

	/* While mapped, only the current size is accepted. */
	vm->nr_mappings = 1;
	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 16 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 32 * PAGE_SIZE), -EBUSY);
	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 8 * PAGE_SIZE), -EBUSY);
	KUNIT_EXPECT_EQ(test, vm->size, 16 * PAGE_SIZE);
	vm->nr_mappings = 0;

	/* 0, what ftruncate() to nothing asks: every page goes, no size. */
	page = ps_vm_get_page(vm, 3, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(page));
	put_page(page);
	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 0), 0);
	KUNIT_EXPECT_EQ(test, vm->size, 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&vm->stats.private_pages), 0);
}

static void ps_test_get_page(struct kunit *test)
{
	long pages = ps_stat_read(PS_STAT_PRIVATE_PAGES);
	struct ps_vm *vm = ps_test_vm(test, 0);
	struct page *page, *again;

	/* No size yet: no gfn exists. */
	KUNIT_EXPECT_EQ(test, PTR_ERR(ps_vm_get_page(vm, 0, NULL)), -ENXIO);

	KUNIT_ASSERT_EQ(test, ps_vm_set_size(vm, 4 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, PTR_ERR(ps_vm_get_page(vm, 4, NULL)), -ENXIO);
	KUNIT_EXPECT_EQ(test, PTR_ERR(ps_vm_get_page(vm, ULONG_MAX, NULL)), -ENXIO);

	page = ps_vm_get_page(vm, 3, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(page));
	/*
	 * The page cache's (which the entry shares) and ours, and the LRU-add
	 * batch's while the page waits in it.
	 */
	KUNIT_EXPECT_EQ(test, page_count(page), 2 + !folio_test_lru(page_folio(page)));
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(page, 0));
	KUNIT_EXPECT_EQ(test, atomic_long_read(&vm->stats.private_pages), 1);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_PRIVATE_PAGES), pages + 1);

	memset_page(page, 0, 0x5a, PAGE_SIZE);
	again = ps_vm_get_page(vm, 3, NULL);
	KUNIT_EXPECT_PTR_EQ(test, again, page);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(again, 0x5a));
	KUNIT_EXPECT_EQ(test, atomic_long_read(&vm->stats.private_pages), 1);
	put_page(again);
	put_page(page);
}

static void ps_test_shrink_frees(struct kunit *test)
{
	struct ps_vm *vm = ps_test_vm(test, 8 * PAGE_SIZE);
	long pages = ps_stat_read(PS_STAT_PRIVATE_PAGES);
	struct page *page;
	pgoff_t gfn;

	for (gfn = 0; gfn < 8; gfn++) {
		page = ps_vm_get_page(vm, gfn, NULL);
		KUNIT_ASSERT_FALSE(test, IS_ERR(page));
		put_page(page);
	}
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_PRIVATE_PAGES), pages + 8);

	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 3 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&vm->stats.private_pages), 3);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_PRIVATE_PAGES), pages + 3);
	KUNIT_EXPECT_EQ(test, PTR_ERR(ps_vm_get_page(vm, 3, NULL)), -ENXIO);

	/* Growing again gives fresh zero pages, not the old contents. */
	KUNIT_EXPECT_EQ(test, ps_vm_set_size(vm, 8 * PAGE_SIZE), 0);
	page = ps_vm_get_page(vm, 7, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(page));
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(page, 0));
	put_page(page);
}

static void ps_test_destroy_frees(struct kunit *test)
{
	long pages = ps_stat_read(PS_STAT_PRIVATE_PAGES);
	struct ps_vm *vm = ps_test_vm(test, 2048 * PAGE_SIZE);
	struct page *page, *held;
	pgoff_t gfn;

	/* Spread over many xarray nodes, which teardown must all visit. */
	for (gfn = 0; gfn < 2048; gfn += 64) {
		page = ps_vm_get_page(vm, gfn, NULL);
		KUNIT_ASSERT_FALSE(test, IS_ERR(page));
		put_page(page);
	}
	held = ps_vm_get_page(vm, 2047, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(held));
	memset_page(held, 0, 0xa5, PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_PRIVATE_PAGES), pages + 33);

	kunit_release_action(test, ps_test_destroy_action, vm);
	KUNIT_EXPECT_EQ(test, ps_stat_read(PS_STAT_PRIVATE_PAGES), pages);

	/* A reference held past the VM keeps the page, out of the page cache. */
	KUNIT_EXPECT_EQ(test, page_count(held), 1 + !folio_test_lru(page_folio(held)));
	KUNIT_EXPECT_NULL(test, page_folio(held)->mapping);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(held, 0xa5));
	put_page(held);
}

static void ps_test_sparse_gfns(struct kunit *test)
{
	u64 size = 1ULL << 36;	/* 64 GiB, touched at three places */
	struct ps_vm *vm;
	pgoff_t gfns[] = { 0, (size >> PAGE_SHIFT) / 2, (size >> PAGE_SHIFT) - 1 };
	struct page *page;
	int i;

	if (size > ps_max_vm_size)
		kunit_skip(test, "max_vm_size is below 64 GiB");
	vm = ps_test_vm(test, size);
	for (i = 0; i < ARRAY_SIZE(gfns); i++) {
		page = ps_vm_get_page(vm, gfns[i], NULL);
		KUNIT_ASSERT_FALSE(test, IS_ERR(page));
		put_page(page);
	}
	KUNIT_EXPECT_EQ(test, atomic_long_read(&vm->stats.private_pages), ARRAY_SIZE(gfns));
}

/*
 * A private page is a folio of the VM inode's page cache at its gfn, dirty
 * (no invalidation drops it) and unevictable; a nominate moves its bytes
 * to a frame outside the page cache, and a punch takes the page out.
 */
static void ps_test_page_cache(struct kunit *test)
{
	struct ps_vm *vm = ps_test_vm(test, 8 * PAGE_SIZE);
	struct address_space *mapping = vm->inode->i_mapping;
	struct folio *folio;
	struct page *page;
	u64 handle;

	page = ps_vm_get_page(vm, 5, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(page));
	folio = page_folio(page);
	KUNIT_EXPECT_PTR_EQ(test, folio->mapping, mapping);
	KUNIT_EXPECT_EQ(test, folio->index, 5);
	KUNIT_EXPECT_PTR_EQ(test, xa_load(&mapping->i_pages, 5), folio);
	KUNIT_EXPECT_TRUE(test, folio_test_dirty(folio));
	KUNIT_EXPECT_TRUE(test, folio_test_uptodate(folio));
	KUNIT_EXPECT_TRUE(test, mapping_unevictable(mapping));
	KUNIT_EXPECT_EQ(test, mapping->nrpages, 1);
	memset_page(page, 0, 0x3c, PAGE_SIZE);
	put_page(page);

	/* drop_caches through a mount's inode: nothing goes. */
	KUNIT_EXPECT_EQ(test, invalidate_mapping_pages(mapping, 0, -1), 0);
	KUNIT_EXPECT_EQ(test, mapping->nrpages, 1);

	KUNIT_ASSERT_EQ(test, 0, ps_nominate(vm, 5, &handle, NULL));
	KUNIT_EXPECT_EQ(test, mapping->nrpages, 0);
	KUNIT_EXPECT_NULL(test, xa_load(&mapping->i_pages, 5));
	page = ps_entry_page(xa_load(&vm->pages, 5));
	KUNIT_EXPECT_TRUE(test, __PageMovable(page));
	KUNIT_EXPECT_PTR_EQ(test, page_movable_ops(page), &ps_frame_mops);
	KUNIT_EXPECT_TRUE(test, ps_test_page_is(page, 0x3c));

	page = ps_vm_get_page(vm, 6, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(page));
	put_page(page);
	KUNIT_EXPECT_EQ(test, mapping->nrpages, 1);
	KUNIT_EXPECT_EQ(test, ps_vm_punch(vm, 6 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, mapping->nrpages, 0);
	KUNIT_EXPECT_NULL(test, xa_load(&vm->pages, 6));
}

/*
 * Maps the first @pages gfns of @vm, shared and writable, into a user mm of
 * the test's own (kunit_vm_mmap()), through a file of the VM as
 * PAGESHARE_OPEN_VM gives; the address, or the case stops.
 */
static unsigned long ps_test_map(struct kunit *test, struct ps_vm *vm, pgoff_t pages)
{
	unsigned long addr;
	struct file *file;

	ps_vm_publish(vm);
	file = ps_vm_open_id(vm->id);
	KUNIT_ASSERT_FALSE(test, IS_ERR(file));
	addr = kunit_vm_mmap(test, file, 0, pages * PAGE_SIZE,
			     PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	fput(file);		/* the mapping holds its own */
	KUNIT_ASSERT_NE_MSG(test, addr, 0, "no user mm for the test");
	return addr;
}

/*
 * KVM's stage-2 faults try GUP-fast first. It refuses a file folio whose
 * ->mapping it cannot trust; a page of the VM's page cache it takes.
 */
static void ps_test_gup_fast(struct kunit *test)
{
	struct ps_vm *vm = ps_test_vm(test, 4 * PAGE_SIZE);
	struct page *page = NULL;
	unsigned long addr;
	u8 byte = 0x5e, *p;

	addr = ps_test_map(test, vm, 4);
	KUNIT_ASSERT_EQ(test, 0, copy_to_user((void __user *)addr + 2 * PAGE_SIZE,
					      &byte, 1));

	KUNIT_ASSERT_EQ(test, 1, get_user_pages_fast_only(addr + 2 * PAGE_SIZE, 1,
							  FOLL_WRITE, &page));
	KUNIT_EXPECT_PTR_EQ(test, page, ps_entry_page(xa_load(&vm->pages, 2)));
	p = kmap_local_page(page);
	KUNIT_EXPECT_EQ(test, p[0], 0x5e);
	kunmap_local(p);
	put_page(page);

	/* The next case counts VMs: this one must be gone by then. */
	KUNIT_EXPECT_EQ(test, 0, vm_munmap(addr, 4 * PAGE_SIZE));
	flush_delayed_fput();
}

/* Whether a PTE maps @gfn's page, a private one, of @vm. */
static bool ps_test_mapped(struct ps_vm *vm, pgoff_t gfn)
{
	return folio_mapped(page_folio(ps_entry_page(xa_load(&vm->pages, gfn))));
}

/*
 * A nominate batch unmaps each run of gfns in one go (ps_nominate_zap()),
 * and each nominate zaps its page again only if a PTE maps it. Whether a
 * page was mapped writable before the run's zap or faulted in again
 * between that zap and its nominate, none is left writable through the
 * VMM's mapping, and every hash is that of the bytes written.
 */
static void ps_test_nominate_batch(struct kunit *test)
{
	const pgoff_t n = 8, again = 5;
	struct ps_vm *vm = ps_test_vm(test, n * PAGE_SIZE);
	u64 handle, hash, *want;
	struct page *page;
	unsigned long addr;
	u8 byte, *buf;
	pgoff_t gfn;

	buf = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	want = kunit_kcalloc(test, n, sizeof(*want), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, buf);
	KUNIT_ASSERT_NOT_NULL(test, want);
	addr = ps_test_map(test, vm, n);

	/* Every gfn written through the mapping, so mapped writable. */
	for (gfn = 0; gfn < n; gfn++) {
		byte = 0x40 + gfn;
		KUNIT_ASSERT_EQ(test, 0, copy_to_user((void __user *)addr + gfn * PAGE_SIZE,
						      &byte, 1));
		buf[0] = byte;
		want[gfn] = xxh64(buf, PAGE_SIZE, 0);
		KUNIT_EXPECT_TRUE(test, ps_test_mapped(vm, gfn));
	}

	ps_nominate_zap(vm, 0, n);
	for (gfn = 0; gfn < n; gfn++)
		KUNIT_EXPECT_FALSE(test, ps_test_mapped(vm, gfn));
	/* A write fault between the run's zap and the gfn's nominate. */
	byte = 0x40 + again;
	KUNIT_ASSERT_EQ(test, 0, copy_to_user((void __user *)addr + again * PAGE_SIZE,
					      &byte, 1));
	KUNIT_EXPECT_TRUE(test, ps_test_mapped(vm, again));

	for (gfn = 0; gfn < n; gfn++) {
		KUNIT_ASSERT_EQ(test, 0, ps_nominate(vm, gfn, &handle, &hash));
		KUNIT_EXPECT_TRUE(test, ps_entry_shared(xa_load(&vm->pages, gfn)));
		KUNIT_EXPECT_EQ(test, hash, want[gfn]);
		/* No writable PTE: a write must fault, and unshare. */
		page = NULL;
		KUNIT_EXPECT_EQ(test, 0,
				get_user_pages_fast_only(addr + gfn * PAGE_SIZE, 1,
							 FOLL_WRITE, &page));
		if (page)
			put_page(page);
	}
	/* Read through the mapping: the frame's bytes, read-only. */
	KUNIT_ASSERT_EQ(test, 0, copy_from_user(&byte, (void __user *)addr + again * PAGE_SIZE,
						1));
	KUNIT_EXPECT_EQ(test, byte, 0x40 + again);
	page = NULL;
	KUNIT_EXPECT_EQ(test, 0, get_user_pages_fast_only(addr + again * PAGE_SIZE, 1,
							  FOLL_WRITE, &page));
	if (page)
		put_page(page);

	/* The next case counts VMs: this one must be gone by then. */
	KUNIT_EXPECT_EQ(test, 0, vm_munmap(addr, n * PAGE_SIZE));
	flush_delayed_fput();
}

/*
 * A page pinned for DMA cannot be nominated: neither the batch's run zap
 * nor the nominate may unmap it first, which would only cost its VM a
 * fault. Its neighbours are unmapped and nominated as usual.
 */
static void ps_test_nominate_pinned(struct kunit *test)
{
	const pgoff_t n = 4, pinned = 2;
	struct ps_vm *vm = ps_test_vm(test, n * PAGE_SIZE);
	struct page *page = NULL;
	unsigned long addr;
	u64 handle;
	pgoff_t gfn;
	u8 byte = 1;

	addr = ps_test_map(test, vm, n);
	for (gfn = 0; gfn < n; gfn++)
		KUNIT_ASSERT_EQ(test, 0, copy_to_user((void __user *)addr + gfn * PAGE_SIZE,
						      &byte, 1));
	KUNIT_ASSERT_EQ(test, 1, pin_user_pages_fast(addr + pinned * PAGE_SIZE, 1,
						     FOLL_WRITE, &page));

	ps_nominate_zap(vm, 0, n);
	for (gfn = 0; gfn < n; gfn++)
		KUNIT_EXPECT_EQ(test, ps_test_mapped(vm, gfn), gfn == pinned);
	KUNIT_EXPECT_EQ(test, -EBUSY, ps_nominate(vm, pinned, &handle, NULL));
	KUNIT_EXPECT_TRUE(test, ps_test_mapped(vm, pinned));
	KUNIT_EXPECT_FALSE(test, ps_entry_shared(xa_load(&vm->pages, pinned)));
	KUNIT_EXPECT_EQ(test, 0, ps_nominate(vm, pinned + 1, &handle, NULL));

	unpin_user_page(page);
	KUNIT_EXPECT_EQ(test, 0, ps_nominate(vm, pinned, &handle, NULL));
	KUNIT_EXPECT_FALSE(test, ps_test_mapped(vm, pinned));

	/* The next case counts VMs: this one must be gone by then. */
	KUNIT_EXPECT_EQ(test, 0, vm_munmap(addr, n * PAGE_SIZE));
	flush_delayed_fput();
}

static struct kunit_case ps_vm_test_cases[] = {
	KUNIT_CASE(ps_test_page_cache),
	KUNIT_CASE(ps_test_gup_fast),
	KUNIT_CASE(ps_test_nominate_batch),
	KUNIT_CASE(ps_test_nominate_pinned),
	KUNIT_CASE(ps_test_create_ids),
	KUNIT_CASE(ps_test_set_size),
	KUNIT_CASE(ps_test_get_page),
	KUNIT_CASE(ps_test_shrink_frees),
	KUNIT_CASE(ps_test_destroy_frees),
	KUNIT_CASE(ps_test_sparse_gfns),
	{}
};

static struct kunit_suite ps_vm_test_suite = {
	.name = "pageshare_vm",
	.test_cases = ps_vm_test_cases,
};

kunit_test_suites(&ps_vm_test_suite);
