/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the pageshare kselftests: VM files, the control node, and a
 * minimal VMM that runs real-mode code in a KVM guest whose memory comes
 * from a pageshare file.
 */

#ifndef PAGESHARE_UTIL_H
#define PAGESHARE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/pageshare.h>

#define PS_DEV		"/dev/pageshare"
#define PS_SYSFS	"/sys/kernel/pageshare/"
#define PS_PAGE		4096UL
#define PS_DIR		"/run/pageshare"

/*
 * The pageshare mount the tests make their VMs on: $PAGESHARE_DIR, or
 * /run/pageshare, which the test VM's runner mounts. The default is
 * mounted here if it is not a pageshare mount yet, as an operator would,
 * for a run outside the test VM; whoever unloads the module unmounts it
 * first. NULL if there is no pageshare mount there.
 */
static inline const char *ps_dir(void)
{
	static char dir[256];
	static int state;	/* 0: not looked at, 1: being set up, 2: set up */
	static bool ok;
	const char *env = getenv("PAGESHARE_DIR");
	struct statfs sf;
	int expect = 0;

	if (__atomic_compare_exchange_n(&state, &expect, 1, false,
					__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		snprintf(dir, sizeof(dir), "%s", env && *env ? env : PS_DIR);
		ok = !statfs(dir, &sf) && sf.f_type == PAGESHARE_SUPER_MAGIC;
		if (!ok && !(env && *env)) {
			mkdir(dir, 0755);
			ok = !mount("none", dir, "pageshare", 0, "mode=0755");
		}
		if (!ok)
			fprintf(stderr, "# %s is not a pageshare mount: mount -t pageshare none %s\n",
				dir, dir);
		__atomic_store_n(&state, 2, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != 2)
		;
	return ok ? dir : NULL;
}

/*
 * A VM in no share group: it can share only with itself. An unnamed file
 * of the mount, as QEMU's mem-path=<directory> makes (which then unlinks
 * it): it goes with its last descriptor and mapping. -1 with ENODEV if
 * there is no pageshare mount.
 */
static inline int ps_open_alone(void)
{
	const char *dir = ps_dir();

	if (!dir) {
		errno = ENODEV;
		return -1;
	}
	return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

/* The control node: what an agent opens. It is no VM. */
static inline int ps_control(void)
{
	return open(PS_DEV, O_RDWR | O_CLOEXEC);
}

static inline int ps_set_policy(int fd, uint64_t group, uint32_t flags,
				uint64_t *out)
{
	struct pageshare_policy p = { .group = group, .flags = flags };
	int ret = ioctl(fd, PAGESHARE_SET_POLICY, &p);

	if (!ret && out)
		*out = p.group;
	return ret;
}

static inline int ps_get_group(int fd, uint64_t *group)
{
	struct pageshare_policy p;
	int ret = ioctl(fd, PAGESHARE_GET_POLICY, &p);

	if (!ret)
		*group = p.group;
	return ret;
}

/*
 * A VM in this test's share group, which the first VM it opens creates:
 * the tests share across their VMs. A group lives while a VM is in it, so
 * a later VM may have to start a new one.
 */
static uint64_t ps_test_group;

static inline int ps_open(void)
{
	int fd = ps_open_alone();
	uint64_t group;

	if (fd < 0)
		return fd;
	group = __atomic_load_n(&ps_test_group, __ATOMIC_RELAXED);
	if (group && !ps_set_policy(fd, group, 0, NULL))
		return fd;
	if (ps_set_policy(fd, 0, PAGESHARE_POLICY_NEW_GROUP, &group)) {
		close(fd);
		return -1;
	}
	__atomic_store_n(&ps_test_group, group, __ATOMIC_RELAXED);
	return fd;
}

static inline int ps_set_size(int fd, uint64_t size)
{
	struct pageshare_size arg = { .size = size };

	return ioctl(fd, PAGESHARE_SET_SIZE, &arg);
}

static inline int ps_info(int fd, struct pageshare_vm_info *info)
{
	return ioctl(fd, PAGESHARE_GET_INFO, info);
}

/* A small file's text into @buf, NUL-terminated: its length, or -1. */
static inline ssize_t ps_read_text(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return n;
}

/* A counter from /sys/kernel/pageshare/, or -1. */
static inline long ps_sysfs_read(const char *name)
{
	char path[256], buf[64];

	snprintf(path, sizeof(path), PS_SYSFS "%s", name);
	if (ps_read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

static inline int ps_nominate(int fd, uint64_t gfn, uint64_t *handle,
			      uint64_t *hash)
{
	struct pageshare_nominate n = {
		.vm = fd, .gfn = gfn,
		.flags = hash ? PAGESHARE_NOMINATE_HASH : 0,
	};

	if (ioctl(fd, PAGESHARE_NOMINATE, &n))
		return -1;
	*handle = n.handle;
	if (hash)
		*hash = n.hash;
	return 0;
}

static inline int ps_share(int sfd, uint64_t sgfn, uint64_t sh, int cfd,
			   uint64_t cgfn, uint64_t ch, uint32_t flags)
{
	struct pageshare_share s = {
		.src_vm = sfd, .client_vm = cfd, .src_gfn = sgfn,
		.src_handle = sh, .client_gfn = cgfn, .client_handle = ch,
		.flags = flags,
	};

	return ioctl(sfd, PAGESHARE_SHARE, &s);
}

static inline int ps_add_to_physmap(int sfd, uint64_t sgfn, uint64_t sh,
				    int cfd, uint64_t cgfn)
{
	struct pageshare_add_to_physmap a = {
		.src_vm = sfd, .client_vm = cfd, .src_gfn = sgfn,
		.src_handle = sh, .client_gfn = cgfn,
	};

	return ioctl(sfd, PAGESHARE_ADD_TO_PHYSMAP, &a);
}

static inline int ps_unshare(int fd, uint64_t gfn)
{
	struct pageshare_unshare u = { .vm = fd, .gfn = gfn };

	return ioctl(fd, PAGESHARE_UNSHARE, &u);
}

/* Fills @q; returns 0 or -1. */
static inline int ps_query(int fd, uint64_t gfn, struct pageshare_query *q)
{
	memset(q, 0, sizeof(*q));
	q->vm = fd;
	q->gfn = gfn;
	return ioctl(fd, PAGESHARE_QUERY, q);
}

static inline int ps_stats(int fd, struct pageshare_stats *st)
{
	return ioctl(fd, PAGESHARE_GET_STATS, st);
}

static inline int ps_audit(int fd)
{
	return ioctl(fd, PAGESHARE_AUDIT);
}

/* The audit, through a descriptor of its own: inconsistencies, or -1. */
static inline int ps_audit_all(void)
{
	int fd = ps_control(), ret;

	if (fd < 0)
		return -1;
	ret = ps_audit(fd);
	close(fd);
	return ret;
}

/* The page frame number behind @p (root reads it from pagemap), or 0. */
static inline uint64_t ps_pfn_of(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (uintptr_t)p / PS_PAGE * sizeof(e)) != sizeof(e))
		e = 0;
	close(fd);
	return e & (1ULL << 63) ? e & ((1ULL << 55) - 1) : 0;
}

static inline int ps_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ret;

	if (fd < 0)
		return -1;
	ret = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -1;
	close(fd);
	return ret;
}

/* The address range of pageshare.ko's code, or -1. */
static inline int ps_module_text(unsigned long *start, unsigned long *end)
{
	char line[256], name[64];
	unsigned long size;
	FILE *f;
	int ok = 0;

	f = fopen("/sys/module/pageshare/sections/.text", "r");
	if (!f)
		return -1;
	ok = fscanf(f, "%lx", start) == 1;
	fclose(f);
	f = fopen("/proc/modules", "r");
	if (!f || !ok || !*start)
		return f ? fclose(f), -1 : -1;
	ok = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lu", name, &size) == 2 && !strcmp(name, "pageshare"))
			ok = 1;
	fclose(f);
	*end = *start + size;
	return ok ? 0 : -1;
}

/* For kselftest_harness tests: the runner loads the module first. */
#define REQUIRE_DEVICE() do {						\
	if (access(PS_DEV, F_OK))					\
		SKIP(return, PS_DEV " is missing: load pageshare.ko");	\
} while (0)

static inline int ps_batch(int fd, unsigned long cmd, void *entries,
			   uint32_t count, uint32_t *done)
{
	struct pageshare_batch b = {
		.entries = (uintptr_t)entries,
		.count = count,
	};
	int ret = ioctl(fd, cmd, &b);

	if (done)
		*done = b.done;
	return ret;
}

/* Maps a whole VM file of @size bytes read-write, shared. */
static inline void *ps_map(int fd, size_t size, off_t off)
{
	return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
}

/* KVM guests: 64-bit builds only (compat_test is built for i386). */
#ifdef __x86_64__

/*
 * The guest programs, 16-bit real mode. They take their arguments in
 * registers: BX = segment of the first page (gfn << 8), DX = number of
 * pages, SI = seed. Each ends with an OUT that reports, then HLT.
 *
 * ps_code_fill: every 16-bit word of page gfn := gfn ^ seed; OUT 0x10.
 * ps_code_sum:  EAX := sum of all 16-bit words of the pages; OUT 0x11.
 */
#define PS_PORT_FILLED	0x10
#define PS_PORT_SUM	0x11

extern const uint8_t ps_code_fill[], ps_code_fill_end[];
extern const uint8_t ps_code_sum[], ps_code_sum_end[];

asm(".pushsection .rodata\n"
	".code16\n"
	"ps_code_fill:\n"
	"1:	movw %bx, %es\n"
	"	movw %bx, %ax\n"
	"	shrw $8, %ax\n"
	"	xorw %si, %ax\n"
	"	xorw %di, %di\n"
	"	movw $2048, %cx\n"
	"	cld\n"
	"	rep stosw\n"
	"	addw $0x100, %bx\n"
	"	decw %dx\n"
	"	jnz 1b\n"
	"	outb %al, $0x10\n"
	"	hlt\n"
	"ps_code_fill_end:\n"
	"ps_code_sum:\n"
	"	xorl %edi, %edi\n"
	"1:	movw %bx, %es\n"
	"	xorw %si, %si\n"
	"	movw $2048, %cx\n"
	"2:	movzwl %es:(%si), %eax\n"
	"	addl %eax, %edi\n"
	"	addw $2, %si\n"
	"	loop 2b\n"
	"	addw $0x100, %bx\n"
	"	decw %dx\n"
	"	jnz 1b\n"
	"	movl %edi, %eax\n"
	"	outl %eax, $0x11\n"
	"	hlt\n"
	"ps_code_sum_end:\n"
	".code64\n"
	".popsection\n");

/* What ps_code_fill leaves in a page, as the host computes it. */
static inline uint16_t ps_fill_word(uint64_t gfn, uint16_t seed)
{
	return (uint16_t)gfn ^ seed;
}

#define PS_CODE_GPA	0x1000	/* guest code, in gfn 1 */
#define PS_DATA_GFN	16	/* first data page: segment 0x1000 */

/* Real-mode segment of a gfn. */
static inline uint16_t ps_seg(uint64_t gfn)
{
	return gfn << 8;
}

/* Copies both guest programs to PS_CODE_GPA; returns the entry of "sum". */
static inline uint16_t ps_load_code(unsigned char *code_page_hva)
{
	memcpy(code_page_hva, ps_code_fill, ps_code_fill_end - ps_code_fill);
	memcpy(code_page_hva + 0x800, ps_code_sum, ps_code_sum_end - ps_code_sum);
	return PS_CODE_GPA + 0x800;
}

/* What the guest's "sum" program computes, computed by the host. */
static inline uint32_t ps_host_sum(const unsigned char *p, size_t pages)
{
	const uint16_t *w = (const uint16_t *)p;
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < pages * PS_PAGE / 2; i++)
		sum += w[i];
	return sum;
}

/* Counts the words of @pages pages at @p that are not what "fill" wrote. */
static inline size_t ps_bad_fill_words(const unsigned char *p, uint64_t first_gfn,
				       size_t pages, uint16_t seed)
{
	const uint16_t *w = (const uint16_t *)p;
	size_t i, bad = 0;

	for (i = 0; i < pages * PS_PAGE / 2; i++)
		if (w[i] != ps_fill_word(first_gfn + i / (PS_PAGE / 2), seed))
			bad++;
	return bad;
}

struct ps_kvm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	int nslots;
};

/* Returns 0, or -1 with errno set; errno ENOENT means there is no KVM. */
static inline int ps_kvm_create(struct ps_kvm *k)
{
	memset(k, 0, sizeof(*k));
	k->vm = -1;
	k->vcpu = -1;
	k->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm < 0)
		return -1;
	if (ioctl(k->kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return errno = EPROTO, -1;
	k->vm = ioctl(k->kvm, KVM_CREATE_VM, 0);
	if (k->vm < 0)
		return -1;
	/* Needed for real mode on Intel without unrestricted guest. */
	ioctl(k->vm, KVM_SET_TSS_ADDR, 0xfffbd000);
	return 0;
}

static inline int ps_kvm_add_slot(struct ps_kvm *k, uint64_t gpa, uint64_t size,
				  void *hva)
{
	struct kvm_userspace_memory_region region = {
		.slot = k->nslots,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &region))
		return -1;
	k->nslots++;
	return 0;
}

static inline int ps_kvm_create_vcpu(struct ps_kvm *k)
{
	int size;

	k->vcpu = ioctl(k->vm, KVM_CREATE_VCPU, 0);
	if (k->vcpu < 0)
		return -1;
	size = ioctl(k->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < 0)
		return -1;
	k->run_size = size;
	k->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu, 0);
	if (k->run == MAP_FAILED) {
		k->run = NULL;
		return -1;
	}
	return 0;
}

/*
 * Run real-mode code at guest physical @entry (below 64 KiB, CS = 0) with
 * the given BX, DX, SI until it halts. The last OUT's port and value are
 * stored in @port and @value. Returns 0, or -1 with a message in @err.
 */
static inline int ps_kvm_run(struct ps_kvm *k, uint16_t entry, uint16_t bx,
			     uint16_t dx, uint16_t si, int *port,
			     uint32_t *value, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(k->vcpu, KVM_GET_SREGS, &sregs))
		return snprintf(err, errlen, "KVM_GET_SREGS: %m"), -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(k->vcpu, KVM_SET_SREGS, &sregs))
		return snprintf(err, errlen, "KVM_SET_SREGS: %m"), -1;
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rflags = 2;
	regs.rbx = bx;
	regs.rdx = dx;
	regs.rsi = si;
	if (ioctl(k->vcpu, KVM_SET_REGS, &regs))
		return snprintf(err, errlen, "KVM_SET_REGS: %m"), -1;

	*port = -1;
	for (;;) {
		if (ioctl(k->vcpu, KVM_RUN, 0))
			return snprintf(err, errlen, "KVM_RUN: %m"), -1;
		switch (k->run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)k->run + k->run->io.data_offset;

			if (k->run->io.direction != KVM_EXIT_IO_OUT)
				return snprintf(err, errlen, "unexpected IN"), -1;
			*port = k->run->io.port;
			*value = 0;
			memcpy(value, data, k->run->io.size);
			break;
		}
		case KVM_EXIT_HLT:
			return 0;
		default:
			return snprintf(err, errlen, "unexpected exit %u",
					k->run->exit_reason), -1;
		}
	}
}

static inline void ps_kvm_destroy(struct ps_kvm *k)
{
	if (k->run)
		munmap(k->run, k->run_size);
	if (k->vcpu >= 0)
		close(k->vcpu);
	if (k->vm >= 0)
		close(k->vm);
	if (k->kvm >= 0)
		close(k->kvm);
	k->run = NULL;
	k->kvm = -1;
	k->vm = -1;
	k->vcpu = -1;
}

/*
 * A whole test VM: a pageshare file of @size bytes, mapped at @mem, as the
 * one memslot of a KVM VM with one vCPU and the guest programs loaded.
 */
struct ps_guest {
	int fd;
	unsigned char *mem;
	size_t size;
	struct ps_kvm k;
	uint16_t sum_entry;
	char err[160];
};

static inline int ps_guest_create(struct ps_guest *g, size_t size)
{
	memset(g, 0, sizeof(*g));
	g->k.kvm = -1;
	g->k.vm = -1;
	g->k.vcpu = -1;
	g->size = size;
	g->fd = ps_open();
	if (g->fd < 0 || ps_set_size(g->fd, size))
		return snprintf(g->err, sizeof(g->err), "pageshare: %m"), -1;
	g->mem = ps_map(g->fd, size, 0);
	if (g->mem == MAP_FAILED) {
		g->mem = NULL;
		return snprintf(g->err, sizeof(g->err), "mmap: %m"), -1;
	}
	if (ps_kvm_create(&g->k) || ps_kvm_add_slot(&g->k, 0, size, g->mem) ||
	    ps_kvm_create_vcpu(&g->k))
		return snprintf(g->err, sizeof(g->err), "kvm: %m"), -1;
	g->sum_entry = ps_load_code(g->mem + PS_CODE_GPA);
	return 0;
}

/* The guest fills @pages pages from @gfn; 0 or -1 with g->err set. */
static inline int ps_guest_fill(struct ps_guest *g, uint64_t gfn, uint16_t pages,
				uint16_t seed)
{
	uint32_t value;
	int port;

	if (ps_kvm_run(&g->k, PS_CODE_GPA, ps_seg(gfn), pages, seed, &port,
		       &value, g->err, sizeof(g->err)))
		return -1;
	if (port != PS_PORT_FILLED)
		return snprintf(g->err, sizeof(g->err), "fill: port %d", port), -1;
	return 0;
}

/* The guest sums @pages pages from @gfn into @sum; 0 or -1. */
static inline int ps_guest_sum(struct ps_guest *g, uint64_t gfn, uint16_t pages,
			       uint32_t *sum)
{
	int port;

	if (ps_kvm_run(&g->k, g->sum_entry, ps_seg(gfn), pages, 0, &port, sum,
		       g->err, sizeof(g->err)))
		return -1;
	if (port != PS_PORT_SUM)
		return snprintf(g->err, sizeof(g->err), "sum: port %d", port), -1;
	return 0;
}

static inline void ps_guest_destroy(struct ps_guest *g)
{
	ps_kvm_destroy(&g->k);
	if (g->mem)
		munmap(g->mem, g->size);
	if (g->fd >= 0)
		close(g->fd);
	g->mem = NULL;
	g->fd = -1;
}

#endif /* __x86_64__ */

#endif /* PAGESHARE_UTIL_H */
