// SPDX-License-Identifier: GPL-2.0
/*
 * Real KVM guests whose RAM comes from pageshare files: what a guest writes
 * the host reads through its mapping, what the host writes the guest reads,
 * two VMs at once, and several memslots carved out of one VM file.
 */

#define _GNU_SOURCE
#include <pthread.h>

#include "kselftest_harness.h"
#include "pageshare_util.h"

#define MIB		(1024UL * 1024)

FIXTURE(guest) {
	struct ps_kvm k;
	int fd;
	unsigned char *mem;
	size_t size;
	uint16_t sum_entry;
};

FIXTURE_SETUP(guest)
{
	self->fd = -1;
	if (access(PS_DEV, F_OK))
		SKIP(return, PS_DEV " is missing: load pageshare.ko");
	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");

	self->size = MIB;
	self->fd = ps_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ps_set_size(self->fd, self->size));
	self->mem = ps_map(self->fd, self->size, 0);
	ASSERT_NE(MAP_FAILED, self->mem);

	ASSERT_EQ(0, ps_kvm_create(&self->k)) TH_LOG("KVM: %s", strerror(errno));
	ASSERT_EQ(0, ps_kvm_add_slot(&self->k, 0, self->size, self->mem));
	ASSERT_EQ(0, ps_kvm_create_vcpu(&self->k));
	self->sum_entry = ps_load_code(self->mem + PS_CODE_GPA);
}

FIXTURE_TEARDOWN(guest)
{
	ps_kvm_destroy(&self->k);
	if (self->mem && self->mem != MAP_FAILED)
		munmap(self->mem, self->size);
	if (self->fd >= 0)
		close(self->fd);
}

#define RUN(entry, first_gfn, pages, seed, want_port, value) do {	\
	char err[128] = "";						\
	int port;							\
									\
	ASSERT_EQ(0, ps_kvm_run(&self->k, entry, ps_seg(first_gfn), pages,\
				seed, &port, value, err, sizeof(err)))	\
		TH_LOG("%s", err);					\
	ASSERT_EQ(want_port, port);					\
} while (0)

TEST_F_TIMEOUT(guest, guest_writes_host_reads, 300)
{
	uint16_t seed = 0x3c5a;
	unsigned char *again;
	uint32_t value;

	RUN(PS_CODE_GPA, PS_DATA_GFN, 64, seed, PS_PORT_FILLED, &value);
	EXPECT_EQ(0, ps_bad_fill_words(self->mem + PS_DATA_GFN * PS_PAGE, PS_DATA_GFN, 64, seed));
	/* Pages the guest did not touch are still zero. */
	EXPECT_EQ(0, ps_host_sum(self->mem + (PS_DATA_GFN + 64) * PS_PAGE, 16));

	/* A second mapping of the same memory sees the same bytes. */
	again = ps_map(self->fd, self->size, 0);
	ASSERT_NE(MAP_FAILED, again);
	EXPECT_EQ(0, ps_bad_fill_words(again + PS_DATA_GFN * PS_PAGE, PS_DATA_GFN, 64, seed));
	munmap(again, self->size);

	/* The guest reads back what it wrote. */
	RUN(self->sum_entry, PS_DATA_GFN, 64, 0, PS_PORT_SUM, &value);
	EXPECT_EQ(ps_host_sum(self->mem + PS_DATA_GFN * PS_PAGE, 64), value);
}

TEST_F_TIMEOUT(guest, host_writes_guest_reads, 300)
{
	unsigned char *data = self->mem + PS_DATA_GFN * PS_PAGE;
	uint32_t value, want;
	size_t i;

	srandom(42);
	for (i = 0; i < 32 * PS_PAGE; i++)
		data[i] = random();
	want = ps_host_sum(data, 32);
	RUN(self->sum_entry, PS_DATA_GFN, 32, 0, PS_PORT_SUM, &value);
	EXPECT_EQ(want, value);

	/* Pages the guest has mapped already: it must see the new bytes. */
	for (i = 0; i < 32; i++)
		data[i * PS_PAGE + 17] ^= 0xff;
	want = ps_host_sum(data, 32);
	RUN(self->sum_entry, PS_DATA_GFN, 32, 0, PS_PORT_SUM, &value);
	EXPECT_EQ(want, value);

	/* And after the guest wrote them itself, the host's change wins. */
	RUN(PS_CODE_GPA, PS_DATA_GFN, 32, 7, PS_PORT_FILLED, &value);
	data[5 * PS_PAGE] = 0xee;
	want = ps_host_sum(data, 32);
	RUN(self->sum_entry, PS_DATA_GFN, 32, 0, PS_PORT_SUM, &value);
	EXPECT_EQ(want, value);
}

struct vm_thread {
	uint16_t seed;
	int rounds;
	char err[160];
	int ok;
	uint64_t private_pages;
};

/* One whole VM: its own pageshare file, KVM VM and vCPU. */
static void *vm_thread(void *arg)
{
	struct vm_thread *t = arg;
	struct pageshare_vm_info info;
	size_t pages = 48;
	struct ps_kvm k;
	unsigned char *mem;
	uint32_t value;
	int fd, port, r;
	uint16_t sum;

	fd = ps_open();
	if (fd < 0 || ps_set_size(fd, MIB)) {
		snprintf(t->err, sizeof(t->err), "open/size: %m");
		return NULL;
	}
	mem = ps_map(fd, MIB, 0);
	if (mem == MAP_FAILED) {
		snprintf(t->err, sizeof(t->err), "mmap: %m");
		close(fd);
		return NULL;
	}
	if (ps_kvm_create(&k) || ps_kvm_add_slot(&k, 0, MIB, mem) ||
	    ps_kvm_create_vcpu(&k)) {
		snprintf(t->err, sizeof(t->err), "kvm: %m");
		goto out;
	}
	sum = ps_load_code(mem + PS_CODE_GPA);
	for (r = 0; r < t->rounds; r++) {
		uint16_t seed = t->seed + r;

		if (ps_kvm_run(&k, PS_CODE_GPA, ps_seg(PS_DATA_GFN), pages, seed, &port,
			       &value, t->err, sizeof(t->err)))
			goto out;
		if (ps_bad_fill_words(mem + PS_DATA_GFN * PS_PAGE, PS_DATA_GFN, pages, seed)) {
			snprintf(t->err, sizeof(t->err), "round %d: wrong bytes", r);
			goto out;
		}
		if (ps_kvm_run(&k, sum, ps_seg(PS_DATA_GFN), pages, 0, &port, &value,
			       t->err, sizeof(t->err)))
			goto out;
		if (value != ps_host_sum(mem + PS_DATA_GFN * PS_PAGE, pages)) {
			snprintf(t->err, sizeof(t->err), "round %d: guest sum %#x",
				 r, value);
			goto out;
		}
	}
	if (ps_info(fd, &info) == 0) {
		t->private_pages = info.private_pages;
		t->ok = 1;
	}
out:
	ps_kvm_destroy(&k);
	munmap(mem, MIB);
	close(fd);
	return NULL;
}

/* No state: a fixture only to give these tests a longer timeout. */
FIXTURE(vms) {
	int unused;
};

FIXTURE_SETUP(vms)
{
}

FIXTURE_TEARDOWN(vms)
{
}

TEST_F_TIMEOUT(vms, two_vms_at_once, 300)
{
	struct vm_thread t[2] = {
		{ .seed = 0x1111, .rounds = 4 },
		{ .seed = 0x2222, .rounds = 4 },
	};
	pthread_t tid[2];
	int i;

	if (access(PS_DEV, F_OK))
		SKIP(return, PS_DEV " is missing: load pageshare.ko");
	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");

	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&tid[i], NULL, vm_thread, &t[i]));
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < 2; i++) {
		EXPECT_TRUE(t[i].ok) TH_LOG("VM %d: %s", i, t[i].err);
		/* Code page and data pages: each VM has its own. */
		EXPECT_EQ(1 + 48, t[i].private_pages);
	}
}

/*
 * One VM file, three mappings at different file offsets, three memslots:
 *   slot 0: gpa 0x00000-0x0ffff <- file 0x00000 (code)
 *   slot 1: gpa 0x10000-0x2ffff <- file 0x40000
 *   slot 2: gpa 0x30000-0x5ffff <- file 0x10000
 */
TEST_F_TIMEOUT(vms, several_memslots_one_file, 300)
{
	const uint64_t first = PS_DATA_GFN, pages = 80;	/* gpa 0x10000-0x5ffff */
	unsigned char *a, *b, *c, *whole;
	uint16_t seed = 0xbeef, sum;
	uint32_t value;
	struct ps_kvm k;
	char err[128];
	uint64_t gfn;
	size_t bad = 0;
	int fd, port;

	if (access(PS_DEV, F_OK))
		SKIP(return, PS_DEV " is missing: load pageshare.ko");
	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");

	fd = ps_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ps_set_size(fd, 512 * 1024));
	a = ps_map(fd, 0x10000, 0);
	b = ps_map(fd, 0x20000, 0x40000);
	c = ps_map(fd, 0x30000, 0x10000);
	whole = ps_map(fd, 512 * 1024, 0);
	ASSERT_NE(MAP_FAILED, a);
	ASSERT_NE(MAP_FAILED, b);
	ASSERT_NE(MAP_FAILED, c);
	ASSERT_NE(MAP_FAILED, whole);

	ASSERT_EQ(0, ps_kvm_create(&k));
	ASSERT_EQ(0, ps_kvm_add_slot(&k, 0x00000, 0x10000, a));
	ASSERT_EQ(0, ps_kvm_add_slot(&k, 0x10000, 0x20000, b));
	ASSERT_EQ(0, ps_kvm_add_slot(&k, 0x30000, 0x30000, c));
	ASSERT_EQ(0, ps_kvm_create_vcpu(&k));
	sum = ps_load_code(a + PS_CODE_GPA);

	ASSERT_EQ(0, ps_kvm_run(&k, PS_CODE_GPA, ps_seg(first), pages, seed, &port,
				&value, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(PS_PORT_FILLED, port);

	/* Read back through the whole-file mapping, by file offset. */
	for (gfn = first; gfn < first + pages; gfn++) {
		uint64_t off = gfn < 0x30 ? 0x40000 + (gfn - 0x10) * PS_PAGE :
					    0x10000 + (gfn - 0x30) * PS_PAGE;

		bad += ps_bad_fill_words(whole + off, gfn, 1, seed);
	}
	EXPECT_EQ(0, bad);
	/* The file page at 0x30000 is behind gpa 0x50000: filled too. */
	EXPECT_EQ(0, ps_bad_fill_words(whole + 0x30000, 0x50, 1, seed));
	/* No slot maps file pages 0x60000 and up: nothing there. */
	EXPECT_EQ(0, ps_host_sum(whole + 0x60000, 32));

	ASSERT_EQ(0, ps_kvm_run(&k, sum, ps_seg(first), pages, 0, &port, &value,
				err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(PS_PORT_SUM, port);
	EXPECT_EQ(ps_host_sum(b, 0x20) + ps_host_sum(c, 0x30), value);

	ps_kvm_destroy(&k);
	munmap(a, 0x10000);
	munmap(b, 0x20000);
	munmap(c, 0x30000);
	munmap(whole, 512 * 1024);
	close(fd);
}

TEST_HARNESS_MAIN
