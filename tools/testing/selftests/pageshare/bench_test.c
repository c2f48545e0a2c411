// SPDX-License-Identifier: GPL-2.0
/*
 * pageshare's benchmarks, each a ratio against a baseline measured in the
 * same run: KSM for deduplication and copy-on-write, anonymous memory for
 * KVM guests' faults and steady state, small cases for scaling, one thread
 * for parallelism. Absolute times on a shared 2-core machine under TCG mean
 * little; ratios taken seconds apart on the same kernel do.
 *
 *   bench_test            small sizes, as a kselftest: each benchmark's
 *                         plumbing must work (a benchmark that measures
 *                         nothing fails), the figures are not judged
 *   bench_test --full     the sizes of Documentation/virt/pageshare/
 *                         performance.rst; prints a table and the JSON
 *   --only NAME[,NAME]    these benchmarks only
 *
 * Each result is printed as an "@@ RESULT" line of JSON; the VM runner
 * (make bench) assembles them into build/bench/results.json.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include "kselftest.h"
#include "pageshare_util.h"

#define PAGE		PS_PAGE
#define MIB		(1024UL * 1024)
#define KSM		"/sys/kernel/mm/ksm/"

static bool full;
static const char *only;
static int failures;

/* ---- the results ---------------------------------------------------- */

#define MAX_DETAIL	16

struct result {
	const char *name, *unit, *better;
	double value, target;
	int ndetail;
	const char *dkey[MAX_DETAIL];
	double dval[MAX_DETAIL];
};

static struct result results[16];
static int nresults;

static struct result *result(const char *name, const char *unit, const char *better,
			     double target)
{
	struct result *r = &results[nresults++];

	r->name = name;
	r->unit = unit;
	r->better = better;
	r->target = target;
	r->value = NAN;
	return r;
}

static void detail(struct result *r, const char *key, double v)
{
	if (r->ndetail < MAX_DETAIL) {
		r->dkey[r->ndetail] = key;
		r->dval[r->ndetail++] = v;
	}
}

static bool selected(const char *name)
{
	const char *p;
	size_t n = strlen(name);

	if (!only)
		return true;
	for (p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

/* A benchmark that could not measure what it claims fails, loudly. */
#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		ksft_print_msg("check failed: %s: ", #cond);		\
		printf(__VA_ARGS__);					\
		printf("\n");						\
		return -1;						\
	}								\
} while (0)

/* ---- clocks and counters ---------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_of(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts))
		return NAN;
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void)
{
	return cpu_of(CLOCK_PROCESS_CPUTIME_ID);
}

static long meminfo(const char *field)
{
	char line[128];
	size_t n = strlen(field);
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return kb * 1024;
}

/* A number from a sysfs or debugfs file; -1 if it cannot be read. */
static long read_long(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return strtol(buf, NULL, 10);
}

static long ksm_read(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), KSM "%s", name);
	return read_long(path);
}

static int ksm_write(const char *name, long v)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), KSM "%s", name);
	snprintf(buf, sizeof(buf), "%ld", v);
	return ps_write_file(path, buf);
}

static pid_t find_ksmd(void)
{
	char path[300], comm[32];
	struct dirent *d;
	pid_t pid = -1;
	DIR *dir = opendir("/proc");
	FILE *f;

	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n"))
			pid = atoi(d->d_name);
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return pid;
}

/* ---- VMs, content, batches -------------------------------------------- */

/* Page @i's content, the same in every VM: unique per page. */
static void fill_page(unsigned char *p, uint64_t i)
{
	uint64_t *w = (uint64_t *)p, x = i * 0x9e3779b97f4a7c15ULL + 1;
	size_t k;

	for (k = 0; k < PAGE / 8; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[k] = x;
	}
}

struct vm {
	int fd;
	unsigned char *mem;
	size_t size;
};

static int vm_open(struct vm *v, size_t size)
{
	v->size = size;
	v->mem = MAP_FAILED;
	v->fd = ps_open();
	if (v->fd < 0 || ps_set_size(v->fd, size))
		return -1;
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

/*
 * @populate: give every gfn a page. MAP_POPULATE would not: on a shared
 * mapping it populates by reading, and a read of a hole maps a zero page.
 */
static int vm_map(struct vm *v, bool populate)
{
	v->mem = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->mem == MAP_FAILED)
		return -1;
	return populate ? madvise(v->mem, v->size, MADV_POPULATE_WRITE) : 0;
}

static void vm_unmap(struct vm *v)
{
	if (v->mem != MAP_FAILED)
		munmap(v->mem, v->size);
	v->mem = MAP_FAILED;
}

static void vm_close(struct vm *v)
{
	vm_unmap(v);
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

/* Nominates gfns [first, first + n) of @v; returns how many succeeded. */
static long nominate(struct vm *v, uint64_t first, size_t n, bool hash,
		     struct pageshare_nominate *e)
{
	uint32_t done;
	size_t i;
	long ok = 0;

	memset(e, 0, n * sizeof(*e));
	for (i = 0; i < n; i++) {
		e[i].vm = v->fd;
		e[i].gfn = first + i;
		e[i].flags = hash ? PAGESHARE_NOMINATE_HASH : 0;
	}
	if (ps_batch(v->fd, PAGESHARE_NOMINATE_BATCH, e, n, &done) || done != n)
		return -1;
	for (i = 0; i < n; i++)
		ok += !e[i].result;
	return ok;
}

static long run_batch(int fd, unsigned long cmd, void *e, size_t size, size_t n,
		      size_t result_off)
{
	uint32_t done;
	long ok = 0;
	size_t i;
	int32_t r;

	if (ps_batch(fd, cmd, e, n, &done) || done != n)
		return -1;
	for (i = 0; i < n; i++) {
		memcpy(&r, (char *)e + i * size + result_off, sizeof(r));
		ok += !r;
	}
	return ok;
}

#define RUN_BATCH(fd, cmd, e, n) \
	run_batch(fd, cmd, e, sizeof(*(e)), n, (char *)&(e)->result - (char *)(e))

/* ---- KVM guests in 32-bit protected mode, flat, no paging --------------- */

extern const uint8_t g32_touch[], g32_touch_end[], g32_read[], g32_read_end[];

/*
 * g32_touch: EDI = first address, ECX = pages, EAX = value: one store per
 *            page (a first touch is a fault per page).
 * g32_read:  ESI = first address, ECX = 64-byte lines, EBX = passes:
 *            EDX := the sum of the first dword of every line.
 */
asm(".pushsection .rodata\n"
	".code32\n"
	"g32_touch:\n"
	"1:	movl %eax, (%edi)\n"
	"	addl $4096, %edi\n"
	"	decl %ecx\n"
	"	jnz 1b\n"
	"	hlt\n"
	"g32_touch_end:\n"
	"g32_read:\n"
	"	xorl %edx, %edx\n"
	"2:	pushl %esi\n"
	"	pushl %ecx\n"
	"3:	addl (%esi), %edx\n"
	"	addl $64, %esi\n"
	"	decl %ecx\n"
	"	jnz 3b\n"
	"	popl %ecx\n"
	"	popl %esi\n"
	"	decl %ebx\n"
	"	jnz 2b\n"
	"	hlt\n"
	"g32_read_end:\n"
	".code64\n"
	".popsection\n");

#define CODE_GPA	0x0		/* code in gfn 0 */
#define TOUCH_GPA	0x0
#define READ_GPA	0x800
#define STACK_GPA	0x1000		/* the stack grows down into gfn 0 */
#define DATA_GPA	0x1000		/* data from gfn 1 */

struct guest {
	struct ps_kvm k;
	unsigned char *mem;
	size_t size;
};

static int guest_create(struct guest *g, unsigned char *mem, size_t size)
{
	g->mem = mem;
	g->size = size;
	memcpy(mem + TOUCH_GPA, g32_touch, g32_touch_end - g32_touch);
	memcpy(mem + READ_GPA, g32_read, g32_read_end - g32_read);
	if (ps_kvm_create(&g->k) || ps_kvm_add_slot(&g->k, 0, size, mem) ||
	    ps_kvm_create_vcpu(&g->k))
		return -1;
	return 0;
}

static void guest_destroy(struct guest *g)
{
	ps_kvm_destroy(&g->k);
}

/* Runs the guest from @rip until HLT; returns seconds, or -1. */
static double guest_run(struct guest *g, uint64_t rip, uint64_t rax, uint64_t rbx,
			uint64_t rcx, uint64_t rsi, uint64_t rdi, uint64_t *rdx)
{
	struct kvm_segment cs = {
		.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11,
		.present = 1, .db = 1, .s = 1, .g = 1,
	};
	struct kvm_segment ds = cs;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	double t0, t;

	ds.selector = 16;
	ds.type = 3;
	if (ioctl(g->k.vcpu, KVM_GET_SREGS, &sregs))
		return -1;
	sregs.cr0 |= 1;		/* protected mode, no paging */
	sregs.cs = cs;
	sregs.ds = ds;
	sregs.es = ds;
	sregs.fs = ds;
	sregs.gs = ds;
	sregs.ss = ds;
	if (ioctl(g->k.vcpu, KVM_SET_SREGS, &sregs))
		return -1;
	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rflags = 2;
	regs.rsp = STACK_GPA;
	regs.rax = rax;
	regs.rbx = rbx;
	regs.rcx = rcx;
	regs.rsi = rsi;
	regs.rdi = rdi;
	if (ioctl(g->k.vcpu, KVM_SET_REGS, &regs))
		return -1;
	t0 = now();
	if (ioctl(g->k.vcpu, KVM_RUN, 0))
		return -1;
	t = now() - t0;
	if (g->k.run->exit_reason != KVM_EXIT_HLT) {
		ksft_print_msg("guest exit %u\n", g->k.run->exit_reason);
		return -1;
	}
	if (rdx) {
		if (ioctl(g->k.vcpu, KVM_GET_REGS, &regs))
			return -1;
		*rdx = (uint32_t)regs.rdx;
	}
	return t;
}

/* A counter of the guest's KVM VM, from debugfs; -1 if there is none. */
static long kvm_stat(struct guest *g, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/%s", getpid(),
		 g->k.vm, name);
	return read_long(path);
}

static double guest_touch(struct guest *g, size_t pages, uint32_t value)
{
	return guest_run(g, TOUCH_GPA, value, 0, pages, 0, DATA_GPA, NULL);
}

static double guest_read(struct guest *g, size_t pages, int passes, uint64_t *sum)
{
	return guest_run(g, READ_GPA, 0, passes, pages * (PAGE / 64), DATA_GPA, 0, sum);
}

/* Anonymous memory as QEMU's default RAM is: private, 4 KiB pages. */
static unsigned char *anon(size_t size)
{
	unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p != MAP_FAILED)
		madvise(p, size, MADV_NOHUGEPAGE);
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- dedup_vs_ksm, dedup_cpu_vs_ksm, cow_vs_ksm --------------------------- */

struct cand {
	uint64_t hash;
	int vm;
	uint64_t gfn, handle;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	if (x->vm != y->vm)
		return x->vm - y->vm;
	return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

/*
 * What an agent does: nominate every gfn of both VMs with the kernel's
 * hash, group equal hashes, share each group onto its first page with the
 * byte compare. Returns the shares made, or -1.
 */
static double t_nominate, t_group, t_share;

static long dedup_pageshare(struct vm *v, size_t pages)
{
	double t0 = now();
	struct pageshare_nominate *e = calloc(pages, sizeof(*e));
	struct pageshare_share *s = calloc(pages, sizeof(*s));
	struct cand *c = calloc(2 * pages, sizeof(*c));
	size_t i, j, n = 0, ns = 0;
	long ok = -1;
	int k;

	if (!e || !s || !c)
		goto out;
	for (k = 0; k < 2; k++) {
		if (nominate(&v[k], 1, pages, true, e) != (long)pages)
			goto out;
		for (i = 0; i < pages; i++)
			c[n++] = (struct cand){ e[i].hash, k, e[i].gfn, e[i].handle };
	}
	t_nominate = now() - t0;
	t0 = now();
	qsort(c, n, sizeof(*c), cmp_cand);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && c[j].hash == c[i].hash; j++) {
			s[ns++] = (struct pageshare_share) {
				.src_vm = v[c[i].vm].fd, .client_vm = v[c[j].vm].fd,
				.src_gfn = c[i].gfn, .src_handle = c[i].handle,
				.client_gfn = c[j].gfn, .client_handle = c[j].handle,
				.flags = PAGESHARE_SHARE_COMPARE,
			};
			if (ns == pages)
				break;
		}
	}
	t_group = now() - t0;
	t0 = now();
	ok = RUN_BATCH(v[0].fd, PAGESHARE_SHARE_BATCH, s, ns);
	t_share = now() - t0;
out:
	free(e);
	free(s);
	free(c);
	return ok;
}

/* First writes to every page of @mem, one byte each: seconds per page. */
static double first_writes(unsigned char *mem, size_t pages)
{
	double t0 = now();
	size_t i;

	for (i = 0; i < pages; i++)
		mem[i * PAGE + 17] ^= 1;
	return (now() - t0) / pages;
}

static int bench_dedup(void)
{
	size_t pages = full ? 64 * MIB / PAGE : 512, i, size = (pages + 1) * PAGE;
	struct result *rd = result("dedup_vs_ksm", "x", "higher", 10);
	struct result *rc = result("dedup_cpu_vs_ksm", "x", "higher", 10);
	struct result *rw = result("cow_vs_ksm", "x", "lower", 1.0);
	double t_ps, c_ps, t_ksm, c_ksm, t0, c0, cow_ps, cow_ksm, deadline;
	long saved0, shares, sharing = 0, scans0;
	unsigned char *a, *b;
	struct vm v[2];
	clockid_t ksmd_clk;
	pid_t ksmd;
	int k;

	/* pageshare: two VMs whose gfns 1..pages hold the same bytes. */
	for (k = 0; k < 2; k++) {
		CHECK(!vm_open(&v[k], size) && !vm_map(&v[k], false), "VM: %m");
		for (i = 0; i < pages; i++)
			fill_page(v[k].mem + (i + 1) * PAGE, i);
	}
	saved0 = ps_sysfs_read("saved_frames");
	t0 = now();
	c0 = self_cpu();
	shares = dedup_pageshare(v, pages);
	c_ps = self_cpu() - c0;
	t_ps = now() - t0;
	CHECK(shares == (long)pages, "%ld of %zu shares", shares, pages);
	CHECK(ps_sysfs_read("saved_frames") - saved0 == (long)pages, "saved %ld",
	      ps_sysfs_read("saved_frames") - saved0);

	/* KSM: the same bytes in MADV_MERGEABLE anonymous memory. */
	a = anon(pages * PAGE);
	b = anon(pages * PAGE);
	CHECK(a != MAP_FAILED && b != MAP_FAILED, "mmap: %m");
	for (i = 0; i < pages; i++) {
		fill_page(a + i * PAGE, i);
		fill_page(b + i * PAGE, i);
	}
	CHECK(!madvise(a, pages * PAGE, MADV_MERGEABLE) &&
	      !madvise(b, pages * PAGE, MADV_MERGEABLE), "MADV_MERGEABLE: %m");
	ksmd = find_ksmd();
	CHECK(ksmd > 0 && !clock_getcpuclockid(ksmd, &ksmd_clk), "no ksmd");
	CHECK(!ksm_write("run", 2) && !ksm_write("pages_to_scan", 100000) &&
	      !ksm_write("sleep_millisecs", 0), "KSM knobs: %m");
	scans0 = ksm_read("full_scans");
	c0 = cpu_of(ksmd_clk);
	t0 = now();
	CHECK(!ksm_write("run", 1), "KSM run: %m");
	deadline = t0 + (full ? 600 : 120);
	while (now() < deadline) {
		sharing = ksm_read("pages_sharing");
		if (sharing >= (long)pages)
			break;
		usleep(1000);
	}
	t_ksm = now() - t0;
	c_ksm = cpu_of(ksmd_clk) - c0;
	CHECK(sharing >= (long)pages, "KSM merged %ld of %zu", sharing, pages);
	ksm_write("sleep_millisecs", 1000);	/* let the pages be while we write */

	rd->value = t_ksm / t_ps;
	detail(rd, "pages", pages);
	detail(rd, "pageshare_s", t_ps);
	detail(rd, "ksm_s", t_ksm);
	detail(rd, "ksm_full_scans", ksm_read("full_scans") - scans0);
	detail(rd, "pageshare_nominate_s", t_nominate);
	detail(rd, "pageshare_group_s", t_group);
	detail(rd, "pageshare_share_s", t_share);
	rc->value = c_ksm / c_ps;
	detail(rc, "pageshare_cpu_s", c_ps);
	detail(rc, "ksmd_cpu_s", c_ksm);

	/* First writes to the shared pages, from the host mapping. */
	cow_ps = first_writes(v[1].mem + PAGE, pages);
	CHECK(ps_sysfs_read("saved_frames") == saved0, "pageshare pages were not unshared");
	/* ksmd sleeps: its counters still say what was merged before the writes. */
	CHECK(ksm_read("pages_sharing") >= (long)pages, "KSM unmerged on its own");
	cow_ksm = first_writes(b, pages);
	rw->value = cow_ps / cow_ksm;
	detail(rw, "pageshare_ns_per_write", cow_ps * 1e9);
	detail(rw, "ksm_ns_per_write", cow_ksm * 1e9);

	ksm_write("run", 2);
	munmap(a, pages * PAGE);
	munmap(b, pages * PAGE);
	for (k = 0; k < 2; k++)
		vm_close(&v[k]);
	return 0;
}

/*
 * The same first writes from a KVM guest: pageshare frames against KSM
 * pages, both unshared by the guest's stores through KVM. Reported in
 * cow_vs_ksm's detail.
 */
static int bench_guest_cow(void)
{
	size_t pages = full ? 16 * MIB / PAGE : 256, i, size = (pages + 1) * PAGE;
	struct result *rw = NULL;
	unsigned char ref[PAGE];
	double t_ps, t_ksm, deadline;
	struct vm v[2];
	struct guest g;
	unsigned char *a, *b;
	int k;

	for (k = 0; k < nresults; k++)
		if (!strcmp(results[k].name, "cow_vs_ksm"))
			rw = &results[k];
	if (!rw)
		return 0;
	/* pageshare: VM 1 runs the guest, its pages shared with VM 0's. */
	for (k = 0; k < 2; k++) {
		CHECK(!vm_open(&v[k], size) && !vm_map(&v[k], false), "VM: %m");
		for (i = 0; i < pages; i++)
			fill_page(v[k].mem + (i + 1) * PAGE, i);
	}
	CHECK(!guest_create(&g, v[1].mem, size), "guest: %m");
	CHECK(guest_touch(&g, 1, 0) >= 0, "guest run");	/* vCPU warm */
	fill_page(v[1].mem + PAGE, 0);
	CHECK(dedup_pageshare(v, pages) == (long)pages, "dedup");
	t_ps = guest_touch(&g, pages, 0x5a5a5a5a);
	CHECK(t_ps > 0, "guest run");
	fill_page(ref, pages - 1);
	CHECK(!memcmp(v[0].mem + pages * PAGE, ref, PAGE) &&
	      *(uint32_t *)(v[1].mem + pages * PAGE) == 0x5a5a5a5a,
	      "the guest's write did not unshare its page alone");
	guest_destroy(&g);
	for (k = 0; k < 2; k++)
		vm_close(&v[k]);

	/* KSM: the guest's anonymous memory merged with another region's. */
	a = anon(size);
	b = anon(size);
	CHECK(a != MAP_FAILED && b != MAP_FAILED, "mmap: %m");
	for (i = 0; i < pages; i++) {
		fill_page(a + (i + 1) * PAGE, i);
		fill_page(b + (i + 1) * PAGE, i);
	}
	CHECK(!guest_create(&g, b, size), "guest: %m");
	CHECK(guest_touch(&g, 1, 0) >= 0, "guest run");
	fill_page(b + PAGE, 0);
	madvise(a + PAGE, pages * PAGE, MADV_MERGEABLE);
	madvise(b + PAGE, pages * PAGE, MADV_MERGEABLE);
	ksm_write("sleep_millisecs", 0);
	ksm_write("run", 1);
	deadline = now() + (full ? 300 : 60);
	while (ksm_read("pages_sharing") < (long)pages && now() < deadline)
		usleep(1000);
	CHECK(ksm_read("pages_sharing") >= (long)pages, "KSM merged %ld",
	      ksm_read("pages_sharing"));
	ksm_write("sleep_millisecs", 1000);
	t_ksm = guest_touch(&g, pages, 0x5a5a5a5a);
	CHECK(t_ksm > 0, "guest run");
	CHECK(!memcmp(a + pages * PAGE, ref, PAGE) &&
	      *(uint32_t *)(b + pages * PAGE) == 0x5a5a5a5a,
	      "the guest's write did not unshare its KSM page alone");
	ksm_write("run", 2);
	guest_destroy(&g);
	munmap(a, size);
	munmap(b, size);

	detail(rw, "guest_pages", pages);
	detail(rw, "guest_pageshare_ns_per_write", t_ps / pages * 1e9);
	detail(rw, "guest_ksm_ns_per_write", t_ksm / pages * 1e9);
	detail(rw, "guest_ratio", t_ps / t_ksm);
	return 0;
}

/* ---- fault_in_vs_anon, steady_vs_anon ------------------------------------ */

/*
 * The baselines a user really runs: QEMU's default RAM is anonymous memory
 * with THP (2 MiB pages where the mapping is aligned), and shmem is what
 * memory-backend-memfd gives. 2 MiB aligned, so that THP can apply.
 */
enum { K_PS, K_ANON, K_THP, K_SHMEM, NKINDS };

static unsigned char *baseline(int kind, size_t size, unsigned char **base,
			       size_t *len)
{
	unsigned char *p;
	int fd;

	*len = size + 2 * MIB;
	if (kind == K_SHMEM) {
		fd = memfd_create("bench", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, size))
			return MAP_FAILED;
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		*base = p;
		*len = size;
		return p;
	}
	*base = mmap(NULL, *len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (*base == MAP_FAILED)
		return MAP_FAILED;
	p = (unsigned char *)(((uintptr_t)*base + 2 * MIB - 1) & ~(2 * MIB - 1));
	madvise(p, size, kind == K_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

static int bench_guest_memory(void)
{
	size_t pages = full ? 64 * MIB / PAGE : 512, size = (pages + 1) * PAGE, len;
	struct result *rf = result("fault_in_vs_anon", "x", "lower", 1.1);
	struct result *rt = result("fault_in_vs_anon_thp", "x", "lower", 1.1);
	struct result *rm = result("fault_in_vs_shmem", "x", "lower", 1.1);
	struct result *rs = result("steady_vs_anon", "x", "lower", 1.02);
	int reps = full ? 5 : 1, passes = full ? 4 : 1, r, kind;
	double fault[NKINDS][8], steady[NKINDS][8];
	long exits[NKINDS][2], pfs[NKINDS][2], ex0, ex1, pf0, pf1;
	unsigned char *base;
	uint64_t s;

	/*
	 * Alternate the kinds so that drift on the host hits all alike.
	 * Round -1 is a warm-up, not counted: under TCG the first run of any
	 * code path in the test VM's kernel pays for its translation.
	 */
	for (r = -1; r < reps; r++) {
		for (kind = 0; kind < NKINDS; kind++) {
			double tf, ts;
			unsigned char *mem;
			struct guest g;
			struct vm v;

			if (kind == K_PS) {
				CHECK(!vm_open(&v, size) && !vm_map(&v, false), "VM: %m");
				mem = v.mem;
			} else {
				mem = baseline(kind, size, &base, &len);
				CHECK(mem != MAP_FAILED, "mmap: %m");
			}
			CHECK(!guest_create(&g, mem, size), "guest: %m");
			ex0 = kvm_stat(&g, "exits");
			pf0 = kvm_stat(&g, "pf_fixed");
			tf = guest_touch(&g, pages, 0x01020304 + r);
			CHECK(tf > 0, "guest run");
			ex1 = kvm_stat(&g, "exits");
			pf1 = kvm_stat(&g, "pf_fixed");
			ts = guest_read(&g, pages, passes, &s);
			CHECK(ts > 0, "guest run");
			exits[kind][0] = ex1 - ex0;
			exits[kind][1] = kvm_stat(&g, "exits") - ex1;
			pfs[kind][0] = pf1 - pf0;
			pfs[kind][1] = kvm_stat(&g, "pf_fixed") - pf1;
			if (r >= 0) {
				fault[kind][r] = tf;
				steady[kind][r] = ts;
			}
			/* Every page's first dword was written: the sum says so. */
			CHECK((uint32_t)s == (uint32_t)(pages * passes * (0x01020304ULL + r)),
			      "guest read sum %#lx", (unsigned long)s);
			CHECK(*(uint32_t *)(mem + (pages / 2 + 1) * PAGE) == 0x01020304u + r,
			      "guest write not seen by the host");
			guest_destroy(&g);
			if (kind == K_PS)
				vm_close(&v);
			else
				munmap(base, len);
		}
	}
	rf->value = median(fault[K_PS], reps) / median(fault[K_ANON], reps);
	rt->value = median(fault[K_PS], reps) / median(fault[K_THP], reps);
	rm->value = median(fault[K_PS], reps) / median(fault[K_SHMEM], reps);
	rs->value = median(steady[K_PS], reps) / median(steady[K_ANON], reps);
	detail(rt, "pageshare_s", median(fault[K_PS], reps));
	detail(rt, "anon_thp_s", median(fault[K_THP], reps));
	detail(rt, "anon_thp_kvm_pf_fixed", pfs[K_THP][0]);
	detail(rm, "pageshare_s", median(fault[K_PS], reps));
	detail(rm, "shmem_s", median(fault[K_SHMEM], reps));
	detail(rm, "shmem_kvm_pf_fixed", pfs[K_SHMEM][0]);
	detail(rf, "pages", pages);
	detail(rf, "pageshare_s", median(fault[0], reps));
	detail(rf, "anon_s", median(fault[1], reps));
	detail(rf, "runs", reps);
	detail(rf, "pageshare_kvm_exits", exits[0][0]);
	detail(rf, "anon_kvm_exits", exits[1][0]);
	detail(rf, "pageshare_kvm_pf_fixed", pfs[0][0]);
	detail(rf, "anon_kvm_pf_fixed", pfs[1][0]);
	detail(rs, "pageshare_kvm_exits", exits[0][1]);
	detail(rs, "anon_kvm_exits", exits[1][1]);
	detail(rs, "pageshare_kvm_pf_fixed", pfs[0][1]);
	detail(rs, "anon_kvm_pf_fixed", pfs[1][1]);
	detail(rs, "bytes_read_per_pass", pages * (PAGE / 64) * 4);
	detail(rs, "passes", passes);
	detail(rs, "pageshare_s", median(steady[0], reps));
	detail(rs, "anon_s", median(steady[1], reps));
	return 0;
}

/* ---- discard_mib_per_s ----------------------------------------------------- */

/*
 * What a balloon's discard costs: every page of a region written, then
 * the whole region punched out with fallocate(PUNCH_HOLE), on a pageshare
 * VM file and on shmem (memfd). The value is pageshare's MiB/s, the target shmem's,
 * measured in the same run.
 */
static double punch_mib_per_s(int fd, unsigned char *mem, size_t size)
{
	double t0;
	size_t i;

	for (i = 0; i < size; i += PAGE)
		mem[i] = 1;
	t0 = now();
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size))
		return -1;
	return size / MIB / (now() - t0);
}

static int bench_discard(void)
{
	size_t size = full ? 256 * MIB : 8 * MIB;
	struct result *rd = result("discard_mib_per_s", "MiB/s", "higher", 0);
	int reps = full ? 5 : 1, r, fd;
	double ps[8], sh[8];
	struct pageshare_vm_info info;
	unsigned char *mem;
	struct vm v;

	for (r = -1; r < reps; r++) {
		CHECK(!vm_open(&v, size) && !vm_map(&v, false), "VM: %m");
		if (r >= 0)
			ps[r] = punch_mib_per_s(v.fd, v.mem, size);
		CHECK(!ps_info(v.fd, &info) && !info.private_pages,
		      "%llu pages left after the punch", (unsigned long long)info.private_pages);
		vm_close(&v);

		fd = memfd_create("bench", MFD_CLOEXEC);
		CHECK(fd >= 0 && !ftruncate(fd, size), "memfd: %m");
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(mem != MAP_FAILED, "mmap: %m");
		if (r >= 0)
			sh[r] = punch_mib_per_s(fd, mem, size);
		munmap(mem, size);
		close(fd);
		CHECK(r < 0 || (ps[r] > 0 && sh[r] > 0), "fallocate: %m");
	}
	/* median() sorts: the spread is the ends. */
	rd->value = median(ps, reps);
	rd->target = median(sh, reps);
	detail(rd, "mib", size / MIB);
	detail(rd, "runs", reps);
	detail(rd, "pageshare_min", ps[0]);
	detail(rd, "pageshare_max", ps[reps - 1]);
	detail(rd, "shmem_mib_per_s", rd->target);
	detail(rd, "shmem_min", sh[0]);
	detail(rd, "shmem_max", sh[reps - 1]);
	return 0;
}

/* ---- share_scaling and bytes_per_frame ----------------------------------- */

/*
 * @frames frames in shared state (each nominated in VM a and mapped into a
 * hole of VM b by add_to_physmap), then the cost of @m more shares. The
 * pages are populated by a mapping that is gone before the sharing, so
 * that the zap of each nominate finds nothing: what is timed is the
 * engine, not the page tables.
 */
static int share_cost(size_t frames, size_t m, double *per_share, double *meta_per_frame,
		      double *slab_per_frame)
{
	size_t chunk = 65536, i, done, total = frames + 2 * m;
	struct pageshare_nominate *e = calloc(chunk, sizeof(*e));
	struct pageshare_add_to_physmap *p = calloc(chunk, sizeof(*p));
	struct pageshare_share *s = calloc(m, sizeof(*s));
	long meta0, slab0;
	struct vm a, b;
	double t0;

	CHECK(e && p && s, "calloc");
	CHECK(!vm_open(&a, (total + 1) * PAGE) && !vm_map(&a, true), "VM: %m");
	vm_unmap(&a);
	CHECK(!vm_open(&b, (frames + 1) * PAGE), "VM: %m");
	meta0 = ps_sysfs_read("meta_bytes");
	slab0 = meminfo("Slab");
	for (done = 0; done < frames; done += chunk) {
		size_t n = frames - done < chunk ? frames - done : chunk;

		CHECK(nominate(&a, done, n, false, e) == (long)n, "nominate");
		for (i = 0; i < n; i++)
			p[i] = (struct pageshare_add_to_physmap) {
				.src_vm = a.fd, .client_vm = b.fd, .src_gfn = done + i,
				.src_handle = e[i].handle, .client_gfn = done + i,
			};
		CHECK(RUN_BATCH(a.fd, PAGESHARE_ADD_TO_PHYSMAP_BATCH, p, n) == (long)n,
		      "add_to_physmap");
	}
	if (meta_per_frame)
		*meta_per_frame = (double)(ps_sysfs_read("meta_bytes") - meta0) / frames;
	if (slab_per_frame)
		*slab_per_frame = (double)(meminfo("Slab") - slab0) / frames;

	/* The m shares timed: pairs of fresh gfns of a, nominated first. */
	CHECK(nominate(&a, frames, 2 * m, false, e) == (long)(2 * m), "nominate");
	for (i = 0; i < m; i++)
		s[i] = (struct pageshare_share) {
			.src_vm = a.fd, .client_vm = a.fd,
			.src_gfn = e[2 * i].gfn, .src_handle = e[2 * i].handle,
			.client_gfn = e[2 * i + 1].gfn, .client_handle = e[2 * i + 1].handle,
		};
	t0 = now();
	CHECK(RUN_BATCH(a.fd, PAGESHARE_SHARE_BATCH, s, m) == (long)m, "share");
	*per_share = (now() - t0) / m;
	vm_close(&b);
	vm_close(&a);
	free(e);
	free(p);
	free(s);
	return 0;
}

static int bench_share_scaling(void)
{
	size_t big = full ? 1UL << 20 : 8192, small = full ? 1024 : 64;
	size_t m = full ? 16384 : 1024;
	struct result *rs = result("share_scaling", "x", "lower", 1.2);
	struct result *rb = result("bytes_per_frame", "B", "lower", 32);
	double small_cost[3], big_cost, meta, slab;
	int r;

	/* The small case is cheap: take the median of three. */
	for (r = 0; r < 3; r++)
		CHECK(!share_cost(small, m, &small_cost[r], NULL, NULL), "small");
	CHECK(!share_cost(big, m, &big_cost, &meta, &slab), "big");
	rs->value = big_cost / median(small_cost, 3);
	detail(rs, "frames_big", big);
	detail(rs, "frames_small", small);
	detail(rs, "shares_timed", m);
	detail(rs, "big_ns_per_share", big_cost * 1e9);
	detail(rs, "small_ns_per_share", median(small_cost, 3) * 1e9);
	rb->value = meta;
	detail(rb, "frames", big);
	detail(rb, "module_accounting_bytes_per_frame", meta);
	detail(rb, "slab_bytes_per_frame_incl_client_index", slab);
	CHECK(meta > 0, "no memory counted per frame");
	return 0;
}

/* ---- heavy_frame and bytes_per_sharer ------------------------------------ */

/*
 * One frame gets @n more sharers by add_to_physmap into holes of a second
 * VM, which is then torn down. Seconds per sharer, and bytes per sharer.
 */
static int heavy(size_t n, double *per_sharer, double *meta_per, double *free_per,
		 double *slab_per, double *vmalloc_per)
{
	struct pageshare_add_to_physmap *p = calloc(n, sizeof(*p));
	long meta0, free0, slab0, vm0;
	struct pageshare_nominate e;
	struct vm a, b;
	double t0, t1;
	size_t i;

	CHECK(p, "calloc");
	CHECK(!vm_open(&a, 2 * PAGE) && !vm_map(&a, true), "VM: %m");
	vm_unmap(&a);
	CHECK(!vm_open(&b, n * PAGE), "VM: %m");
	CHECK(nominate(&a, 0, 1, false, &e) == 1, "nominate");
	for (i = 0; i < n; i++)
		p[i] = (struct pageshare_add_to_physmap) {
			.src_vm = a.fd, .client_vm = b.fd, .src_gfn = 0,
			.src_handle = e.handle, .client_gfn = i,
		};
	meta0 = ps_sysfs_read("meta_bytes");
	free0 = meminfo("MemFree");
	slab0 = meminfo("Slab");
	vm0 = meminfo("VmallocUsed");
	t0 = now();
	CHECK(RUN_BATCH(a.fd, PAGESHARE_ADD_TO_PHYSMAP_BATCH, p, n) == (long)n,
	      "add_to_physmap");
	t1 = now();
	if (meta_per) {
		*meta_per = (double)(ps_sysfs_read("meta_bytes") - meta0) / n;
		*free_per = (double)(free0 - meminfo("MemFree")) / n;
		*slab_per = (double)(meminfo("Slab") - slab0) / n;
		*vmalloc_per = (double)(meminfo("VmallocUsed") - vm0) / n;
	}
	close(b.fd);		/* the teardown of n sharers, in close() */
	*per_sharer = (now() - t0) / n;
	(void)t1;
	vm_close(&a);
	free(p);
	return 0;
}

static int bench_heavy_frame(void)
{
	size_t n = full ? (1UL << 20) - 1 : 4096, reps = full ? 2000 : 20, r;
	struct result *rh = result("heavy_frame", "x", "lower", 1.5);
	struct result *rb = result("bytes_per_sharer", "B", "lower", 16);
	double big, small = 0, one, meta, freeb, slab, vmal;

	CHECK(!heavy(n, &big, &meta, &freeb, &slab, &vmal), "heavy");
	for (r = 0; r < reps; r++) {
		CHECK(!heavy(10, &one, NULL, NULL, NULL, NULL), "light");
		small += one;
	}
	small /= reps;
	rh->value = big / small;
	detail(rh, "sharers_big", n);
	detail(rh, "sharers_small", 10);
	detail(rh, "big_ns_per_sharer", big * 1e9);
	detail(rh, "small_ns_per_sharer", small * 1e9);
	rb->value = meta;
	detail(rb, "sharers", n);
	detail(rb, "module_accounting_bytes_per_sharer", meta);
	detail(rb, "memfree_bytes_per_sharer", freeb);
	detail(rb, "slab_bytes_per_sharer_client_index", slab);
	detail(rb, "vmalloc_bytes_per_sharer", vmal);
	CHECK(meta > 0, "no memory counted per sharer");
	return 0;
}

/* ---- parallel_2t ---------------------------------------------------------- */

struct worker {
	pthread_t tid;
	struct vm v[2];
	size_t pages;
	double seconds;
	long shares;
	int err;
};

/* The threads start together; read and written with __atomic builtins. */
static int go;

/* Nominate both, share, unshare both, again: disjoint VMs per thread. */
static void *work(void *arg)
{
	struct worker *w = arg;
	size_t n = w->pages, i;
	struct pageshare_nominate *e[2];
	struct pageshare_share *s = calloc(n, sizeof(*s));
	struct pageshare_unshare *u = calloc(n, sizeof(*u));
	double end;
	int k;

	e[0] = calloc(n, sizeof(*e[0]));
	e[1] = calloc(n, sizeof(*e[1]));
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	end = now() + w->seconds;
	while (now() < end) {
		for (k = 0; k < 2; k++)
			if (nominate(&w->v[k], 0, n, false, e[k]) != (long)n)
				w->err = 1;
		for (i = 0; i < n; i++)
			s[i] = (struct pageshare_share) {
				.src_vm = w->v[0].fd, .client_vm = w->v[1].fd,
				.src_gfn = i, .src_handle = e[0][i].handle,
				.client_gfn = i, .client_handle = e[1][i].handle,
			};
		if (RUN_BATCH(w->v[0].fd, PAGESHARE_SHARE_BATCH, s, n) != (long)n)
			w->err = 1;
		w->shares += n;
		for (k = 1; k >= 0; k--) {
			for (i = 0; i < n; i++)
				u[i] = (struct pageshare_unshare) { .vm = w->v[k].fd, .gfn = i };
			if (RUN_BATCH(w->v[k].fd, PAGESHARE_UNSHARE_BATCH, u, n) != (long)n)
				w->err = 1;
		}
	}
	free(e[0]);
	free(e[1]);
	free(s);
	free(u);
	return NULL;
}

static int parallel(int threads, size_t pages, double seconds, double *rate)
{
	struct worker w[2];
	long shares = 0;
	int t, k;

	memset(w, 0, sizeof(w));
	__atomic_store_n(&go, 0, __ATOMIC_RELEASE);
	for (t = 0; t < threads; t++) {
		w[t].pages = pages;
		w[t].seconds = seconds;
		for (k = 0; k < 2; k++) {
			CHECK(!vm_open(&w[t].v[k], pages * PAGE) &&
			      !vm_map(&w[t].v[k], true), "VM: %m");
			vm_unmap(&w[t].v[k]);
		}
		CHECK(!pthread_create(&w[t].tid, NULL, work, &w[t]), "thread");
	}
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (t = 0; t < threads; t++) {
		pthread_join(w[t].tid, NULL);
		CHECK(!w[t].err, "a batch failed in thread %d", t);
		shares += w[t].shares;
		for (k = 0; k < 2; k++)
			vm_close(&w[t].v[k]);
	}
	*rate = shares / seconds;
	return 0;
}

static int bench_parallel(void)
{
	struct result *rp = result("parallel_2t", "x", "higher", 1.7);
	size_t pages = full ? 4096 : 256;
	double secs = full ? 5 : 0.5, one, two;

	CHECK(!parallel(1, pages, secs, &one), "1 thread");
	CHECK(!parallel(2, pages, secs, &two), "2 threads");
	CHECK(one > 0 && two > 0, "no shares");
	rp->value = two / one;
	detail(rp, "pages_per_batch", pages);
	detail(rp, "seconds", secs);
	detail(rp, "shares_per_s_1_thread", one);
	detail(rp, "shares_per_s_2_threads", two);
	detail(rp, "cpus_online", sysconf(_SC_NPROCESSORS_ONLN));
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

/*
 * One line per benchmark for the runner, which assembles the JSON of
 * several VM runs: "@@ RESULT" carries the entry, "@@ ROW" the table row.
 */
static void print_results(void)
{
	struct utsname u;
	int i, k;

	uname(&u);
	printf("@@ KERNEL %s %s (%s)\n", u.sysname, u.release, u.version);
	for (i = 0; i < nresults; i++) {
		struct result *r = &results[i];

		if (isnan(r->value))
			continue;
		printf("@@ ROW %s %.4g %g %s %s\n", r->name, r->value, r->target,
		       r->better, r->unit);
		printf("@@ RESULT \"%s\": {\"value\": %.4g, \"target\": %g, "
		       "\"better\": \"%s\", \"unit\": \"%s\", \"detail\": {",
		       r->name, r->value, r->target, r->better, r->unit);
		for (k = 0; k < r->ndetail; k++)
			printf("%s\"%s\": %.6g", k ? ", " : "", r->dkey[k], r->dval[k]);
		printf("}}\n");
	}
}

struct bench {
	const char *name;	/* what --only selects */
	int (*fn)(void);
	bool kvm;
};

static const struct bench benches[] = {
	{ "dedup_vs_ksm", bench_dedup, false },
	{ "guest_cow", bench_guest_cow, true },
	{ "fault_in_vs_anon", bench_guest_memory, true },
	{ "discard_mib_per_s", bench_discard, false },
	{ "share_scaling", bench_share_scaling, false },
	{ "heavy_frame", bench_heavy_frame, false },
	{ "parallel_2t", bench_parallel, false },
};

int main(int argc, char **argv)
{
	bool have_kvm = !access("/dev/kvm", F_OK);
	unsigned int i;
	int a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--full"))
			full = true;
		else if (!strcmp(argv[a], "--only") && a + 1 < argc)
			only = argv[++a];
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	ksft_set_plan(ARRAY_SIZE(benches));
	if (access(PS_DEV, F_OK))
		ksft_exit_skip(PS_DEV " is missing: load pageshare.ko\n");
	if (access(KSM "run", W_OK))
		ksft_exit_skip("no KSM in this kernel\n");

	for (i = 0; i < ARRAY_SIZE(benches); i++) {
		const struct bench *b = &benches[i];
		double t0 = now();

		if (!selected(b->name) && !(b->fn == bench_guest_cow &&
					    selected("dedup_vs_ksm"))) {
			ksft_test_result_skip("%s: not selected\n", b->name);
			continue;
		}
		if (b->kvm && !have_kvm) {
			ksft_test_result_skip("%s: no /dev/kvm\n", b->name);
			continue;
		}
		if (b->fn()) {
			failures++;
			ksft_test_result_fail("%s\n", b->name);
			continue;
		}
		ksft_test_result_pass("%s (%.1f s)\n", b->name, now() - t0);
	}
	print_results();
	if (ps_audit_all())
		ksft_exit_fail_msg("the audit found problems\n");
	ksft_finished();
}
