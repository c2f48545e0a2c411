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
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
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

#define MAX_DETAIL	24
#define MAX_SAMPLES	16

/*
 * A benchmark's figure is the median of its samples (at least five in a
 * full run, each a ratio measured on its own), and its spread their
 * smallest and largest. A target is met only when every sample meets it,
 * missed only when none does, and otherwise "not resolvable here": the
 * noise is larger than the distance to the target. A target measured in
 * the same run (discard: shmem's speed) has a spread of its own, and the
 * two ranges must not overlap either way.
 */
struct result {
	const char *name, *unit, *better;
	double value, target, tmin, tmax;
	int nsamples;
	double samples[MAX_SAMPLES];
	int ndetail;
	const char *dkey[MAX_DETAIL];
	double dval[MAX_DETAIL];
};

static struct result results[32];
static int nresults;

static struct result *result(const char *name, const char *unit, const char *better,
			     double target)
{
	struct result *r = &results[nresults++];

	r->name = name;
	r->unit = unit;
	r->better = better;
	r->target = target;
	r->tmin = target;
	r->tmax = target;
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

static void sample(struct result *r, double v)
{
	if (r->nsamples < MAX_SAMPLES)
		r->samples[r->nsamples++] = v;
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
	char buf[32];

	if (ps_read_text(path, buf, sizeof(buf)) < 0)
		return -1;
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

/*
 * KSM at full speed, from run = 1 until @want pages share: seconds, and
 * ksmd's CPU seconds in *@cpu. ksmd is stopped again (run = 0, which keeps
 * what it merged) before returning, so that nothing it does afterwards
 * lands in another measurement.
 */
static double ksm_until(long want, long to_scan, long sleep_ms, double limit, double *cpu,
			long *scans)
{
	double t0, t = -1, deadline, c0;
	clockid_t clk;
	long scans0;
	pid_t ksmd = find_ksmd();

	if (ksmd <= 0 || clock_getcpuclockid(ksmd, &clk))
		return -1;
	if (ksm_write("run", 0) || ksm_write("pages_to_scan", to_scan) ||
	    ksm_write("sleep_millisecs", sleep_ms))
		return -1;
	scans0 = ksm_read("full_scans");
	c0 = cpu_of(clk);
	t0 = now();
	if (ksm_write("run", 1))
		return -1;
	deadline = t0 + limit;
	while (now() < deadline) {
		if (ksm_read("pages_sharing") >= want) {
			t = now() - t0;
			break;
		}
		usleep(1000);
	}
	ksm_write("run", 0);
	*cpu = cpu_of(clk) - c0;
	if (scans)
		*scans = ksm_read("full_scans") - scans0;
	return t;
}

/* Two anonymous regions of @pages for KSM, MADV_MERGEABLE; NULL on failure. */
static int ksm_regions(unsigned char **a, unsigned char **b, size_t pages)
{
	*a = anon(pages * PAGE);
	*b = anon(pages * PAGE);
	if (*a == MAP_FAILED || *b == MAP_FAILED)
		return -1;
	return 0;
}

/*
 * One round of dedup_vs_ksm and cow_vs_ksm: 2 x @pages pages, every one
 * with a twin in the other VM. Fills *@o with the round's figures.
 */
struct dedup_round {
	double t_ps, c_ps, t_ksm, c_ksm, cow_ps, cow_ksm;
	double t_nominate, t_group, t_share;
	long ksm_scans;
};

static int dedup_round(size_t pages, struct dedup_round *o)
{
	size_t i, size = (pages + 1) * PAGE;
	unsigned char *a, *b;
	double t0, c0;
	long saved0, shares;
	struct vm v[2];
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
	o->c_ps = self_cpu() - c0;
	o->t_ps = now() - t0;
	o->t_nominate = t_nominate;
	o->t_group = t_group;
	o->t_share = t_share;
	CHECK(shares == (long)pages, "%ld of %zu shares", shares, pages);
	CHECK(ps_sysfs_read("saved_frames") - saved0 == (long)pages, "saved %ld",
	      ps_sysfs_read("saved_frames") - saved0);

	/* KSM: the same bytes in MADV_MERGEABLE anonymous memory. */
	CHECK(!ksm_regions(&a, &b, pages), "mmap: %m");
	for (i = 0; i < pages; i++) {
		fill_page(a + i * PAGE, i);
		fill_page(b + i * PAGE, i);
	}
	CHECK(!madvise(a, pages * PAGE, MADV_MERGEABLE) &&
	      !madvise(b, pages * PAGE, MADV_MERGEABLE), "MADV_MERGEABLE: %m");
	o->t_ksm = ksm_until(pages, 100000, 0, full ? 600 : 120, &o->c_ksm, &o->ksm_scans);
	CHECK(o->t_ksm > 0, "KSM merged %ld of %zu", ksm_read("pages_sharing"), pages);

	/* First writes to the shared pages, from the host mapping; ksmd stopped. */
	o->cow_ps = first_writes(v[1].mem + PAGE, pages);
	CHECK(ps_sysfs_read("saved_frames") == saved0, "pageshare pages were not unshared");
	CHECK(ksm_read("pages_sharing") >= (long)pages, "KSM unmerged on its own");
	o->cow_ksm = first_writes(b, pages);

	ksm_write("run", 2);
	munmap(a, pages * PAGE);
	munmap(b, pages * PAGE);
	for (k = 0; k < 2; k++)
		vm_close(&v[k]);
	return 0;
}

static int bench_dedup(void)
{
	size_t pages = full ? 64 * MIB / PAGE : 512;
	struct result *rd = result("dedup_vs_ksm", "x", "higher", 10);
	struct result *rc = result("dedup_cpu_vs_ksm", "x", "higher", 10);
	struct result *rw = result("cow_vs_ksm", "x", "lower", 1.0);
	int reps = full ? 5 : 1, r;
	struct dedup_round o;

	for (r = 0; r < reps; r++) {
		CHECK(!dedup_round(pages, &o), "round %d", r);
		sample(rd, o.t_ksm / o.t_ps);
		sample(rc, o.c_ksm / o.c_ps);
		sample(rw, o.cow_ps / o.cow_ksm);
	}
	/* The last round's raw figures; the samples carry the rest. */
	detail(rd, "pages", pages);
	detail(rd, "pageshare_s", o.t_ps);
	detail(rd, "ksm_s", o.t_ksm);
	detail(rd, "ksm_full_scans", o.ksm_scans);
	detail(rd, "pageshare_nominate_s", o.t_nominate);
	detail(rd, "pageshare_group_s", o.t_group);
	detail(rd, "pageshare_share_s", o.t_share);
	detail(rc, "pageshare_cpu_s", o.c_ps);
	detail(rc, "ksmd_cpu_s", o.c_ksm);
	detail(rw, "pageshare_ns_per_write", o.cow_ps * 1e9);
	detail(rw, "ksm_ns_per_write", o.cow_ksm * 1e9);
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
	double t_ps, t_ksm, c_ksm;
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
	/* ksmd is stopped once it merged (run = 0 keeps the merged pages). */
	CHECK(ksm_until(pages, 100000, 0, full ? 300 : 60, &c_ksm, NULL) > 0,
	      "KSM merged %ld", ksm_read("pages_sharing"));
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

/* ---- the shipped agent: agent_vs_loop, converge_vs_ksm_*, cpu_per_hour -- */

/* The agent a user runs: $PAGESHARE_AGENT, else the test VM's /bin/pageshare. */
static const char *agent_path(void)
{
	const char *p = getenv("PAGESHARE_AGENT");

	return p && *p ? p : "/bin/pageshare";
}

struct agent {
	pid_t pid;
	double t0, wall, user, sys;
	clockid_t clk;
	char out[64];		/* its stdout, for the summary lines */
};

/* Starts `pageshare dedup --quiet --vm A --vm B [--interval S]`. */
static int agent_start(struct agent *ag, struct vm *v, int nvms, double interval)
{
	char ids[4][24], ivl[32];
	const char *argv[16];
	struct pageshare_vm_info info;
	int n = 0, k, fd;

	snprintf(ag->out, sizeof(ag->out), "/tmp/bench-agent.%d", getpid());
	argv[n++] = agent_path();
	argv[n++] = "dedup";
	argv[n++] = "--quiet";
	for (k = 0; k < nvms && k < 4; k++) {
		if (ps_info(v[k].fd, &info))
			return -1;
		snprintf(ids[k], sizeof(ids[k]), "%llu", (unsigned long long)info.id);
		argv[n++] = "--vm";
		argv[n++] = ids[k];
	}
	if (interval > 0) {
		snprintf(ivl, sizeof(ivl), "%.3f", interval);
		argv[n++] = "--interval";
		argv[n++] = ivl;
	}
	argv[n] = NULL;
	ag->t0 = now();
	ag->pid = fork();
	if (ag->pid < 0)
		return -1;
	if (!ag->pid) {
		fd = open(ag->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 1);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	if (clock_getcpuclockid(ag->pid, &ag->clk))
		ag->clk = -1;
	return 0;
}

/*
 * A process's user and system CPU seconds so far, from /proc/PID/stat
 * (in clock ticks): 0 or -1.
 */
static int proc_cpu(pid_t pid, double *user, double *sys)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long tck = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (ps_read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	/* Fields 14 and 15, counted after the command's closing parenthesis. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2 || tck <= 0)
		return -1;
	*user = (double)ut / tck;
	*sys = (double)st / tck;
	return 0;
}

/* The agent's CPU seconds so far (user and system, its kernel work included). */
static double agent_cpu(struct agent *ag)
{
	return ag->clk == (clockid_t)-1 ? NAN : cpu_of(ag->clk);
}

/* Waits for it (after SIGINT with @stop); 0 if it exited 0. */
static int agent_wait(struct agent *ag, bool stop)
{
	struct rusage ru;
	int status;

	if (stop)
		kill(ag->pid, SIGINT);
	if (wait4(ag->pid, &status, 0, &ru) != ag->pid)
		return -1;
	ag->wall = now() - ag->t0;
	ag->user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	ag->sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		char line[256];
		FILE *f = fopen(ag->out, "r");

		ksft_print_msg("%s dedup: status %#x\n", agent_path(), status);
		while (f && fgets(line, sizeof(line), f))
			ksft_print_msg("agent: %s", line);
		if (f)
			fclose(f);
		return -1;
	}
	return 0;
}

/* A number from the agent's last "dedup: ... KEY=N" line; NAN if none. */
static double agent_field(struct agent *ag, const char *key)
{
	char line[512], pat[40], *p;
	double v = NAN;
	FILE *f = fopen(ag->out, "r");

	snprintf(pat, sizeof(pat), " %s=", key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "dedup: ", 7) && (p = strstr(line, pat)))
			v = strtod(p + strlen(pat), NULL);
	if (f)
		fclose(f);
	return v;
}

static int agent_vs_loop_round(size_t pages, double *t_loop, double *t_agent, double *agent_pass)
{
	size_t i, size = (pages + 1) * PAGE;
	struct agent ag;
	struct vm v[2];
	long saved0;
	double t0;
	int k, pass;

	for (pass = 0; pass < 2; pass++) {
		for (k = 0; k < 2; k++) {
			CHECK(!vm_open(&v[k], size) && !vm_map(&v[k], false), "VM: %m");
			for (i = 0; i < pages; i++)
				fill_page(v[k].mem + (i + 1) * PAGE, i);
		}
		saved0 = ps_sysfs_read("saved_frames");
		if (!pass) {
			t0 = now();
			CHECK(dedup_pageshare(v, pages) == (long)pages, "the loop's shares");
			*t_loop = now() - t0;
		} else {
			CHECK(!agent_start(&ag, v, 2, 0), "agent: %m");
			CHECK(!agent_wait(&ag, false), "the agent failed");
			*t_agent = ag.wall;
			*agent_pass = agent_field(&ag, "seconds");
		}
		/* Both reach the same savings: every page has its twin. */
		CHECK(ps_sysfs_read("saved_frames") - saved0 == (long)pages, "%s saved %ld of %zu",
		      pass ? "the agent" : "the loop", ps_sysfs_read("saved_frames") - saved0,
		      pages);
		for (k = 0; k < 2; k++)
			vm_close(&v[k]);
	}
	unlink(ag.out);
	return 0;
}

/*
 * agent_vs_loop: the shipped agent's pages per second (the process, from
 * its start to its exit) over the in-test loop's (dedup_pageshare(), an
 * agent without the rest) on the same content: what the agent's
 * generality costs.
 */
static int bench_agent_vs_loop(void)
{
	size_t pages = full ? 64 * MIB / PAGE : 512;
	struct result *ra = result("agent_vs_loop", "x", "higher", 0.67);
	double tl[MAX_SAMPLES], ta[MAX_SAMPLES], tp[MAX_SAMPLES];
	int rounds = full ? 5 : 1, r;

	for (r = 0; r < rounds; r++) {
		CHECK(!agent_vs_loop_round(pages, &tl[r], &ta[r], &tp[r]), "round %d", r);
		sample(ra, tl[r] / ta[r]);
	}
	detail(ra, "pages_per_vm", pages);
	detail(ra, "loop_s", median(tl, rounds));
	detail(ra, "agent_process_s", median(ta, rounds));
	detail(ra, "agent_pass_s", median(tp, rounds));
	return 0;
}

/*
 * Content as guests have it: a fifth of each VM zero pages, two fifths
 * the same in both VMs (one OS image), a tenth repeated within each VM
 * (16 contents), the rest its own. Content 0 is the zero page.
 */
static uint64_t content_of(int vm, size_t i, size_t n)
{
	if (i < n / 5)
		return 0;
	if (i < 3 * n / 5)
		return 1 + i;
	if (i < 7 * n / 10)
		return 1 + n + vm * 16 + i % 16;
	return 1 + 2 * n + 32 + vm * n + i;
}

static void fill_content(unsigned char *p, int vm, size_t i, size_t n)
{
	uint64_t c = content_of(vm, i, n);

	if (c)
		fill_page(p, c);
	else
		memset(p, 0, PAGE);
}

/* Pages two VMs of @n pages each save once every duplicate shares. */
static long savings_of(size_t n)
{
	size_t zero = n / 5, common = 3 * n / 5 - n / 5, within = 7 * n / 10 - 3 * n / 5;

	/* All zero pages on one page; each common pair on one; 16 per VM. */
	return (2 * zero - 1) + common + 2 * (within - (within < 16 ? within : 16));
}

static int realistic_vms(struct vm *v, size_t n)
{
	size_t i;
	int k;

	for (k = 0; k < 2; k++) {
		if (vm_open(&v[k], n * PAGE) || vm_map(&v[k], false))
			return -1;
		for (i = 0; i < n; i++)
			fill_content(v[k].mem + i * PAGE, k, i, n);
	}
	return 0;
}

static int realistic_ksm(unsigned char **a, unsigned char **b, size_t n)
{
	size_t i;

	if (ksm_regions(a, b, n))
		return -1;
	for (i = 0; i < n; i++) {
		fill_content(*a + i * PAGE, 0, i, n);
		fill_content(*b + i * PAGE, 1, i, n);
	}
	return madvise(*a, n * PAGE, MADV_MERGEABLE) || madvise(*b, n * PAGE, MADV_MERGEABLE);
}

/*
 * converge_vs_ksm_default and _fast: the time for the shipped agent (one
 * pass) to reach the savings that every duplicate gives, against KSM at
 * its defaults (100 pages every 20 ms) and at full speed, on the same
 * content. The goal is 99% of the savings for both (KSM keeps at most 256
 * sharers per KSM page, which costs it a few pages of the zero pages').
 */
static int bench_converge(void)
{
	size_t n = full ? 64 * MIB / PAGE : 512;
	struct result *rd = result("converge_vs_ksm_default", "x", "higher", 30);
	struct result *rf = result("converge_vs_ksm_fast", "x", "higher", 5);
	double tag[MAX_SAMPLES], tkd[MAX_SAMPLES], tkf[MAX_SAMPLES], cpu;
	long want = savings_of(n) * 99 / 100, saved0, saved;
	int rounds = full ? 5 : 1, r, k, fast;
	unsigned char *a, *b;
	struct agent ag;
	struct vm v[2];

	for (r = 0; r < rounds; r++) {
		CHECK(!realistic_vms(v, n), "VM: %m");
		saved0 = ps_sysfs_read("saved_frames");
		CHECK(!agent_start(&ag, v, 2, 0), "agent: %m");
		CHECK(!agent_wait(&ag, false), "the agent failed");
		tag[r] = ag.wall;
		saved = ps_sysfs_read("saved_frames") - saved0;
		CHECK(saved >= want, "the agent saved %ld pages of %ld", saved, savings_of(n));
		unlink(ag.out);
		for (k = 0; k < 2; k++)
			vm_close(&v[k]);

		for (fast = 0; fast < 2; fast++) {
			double t;

			CHECK(!realistic_ksm(&a, &b, n), "KSM regions: %m");
			t = fast ? ksm_until(want, 100000, 0, full ? 600 : 120, &cpu, NULL) :
				   ksm_until(want, 100, 20, full ? 1200 : 120, &cpu, NULL);
			CHECK(t > 0, "KSM (%s) saved %ld of %ld", fast ? "fast" : "defaults",
			      ksm_read("pages_sharing"), want);
			(fast ? tkf : tkd)[r] = t;
			ksm_write("run", 2);
			munmap(a, n * PAGE);
			munmap(b, n * PAGE);
		}
		sample(rd, tkd[r] / tag[r]);
		sample(rf, tkf[r] / tag[r]);
	}
	detail(rd, "pages_per_vm", n);
	detail(rd, "savings_goal_pages", want);
	detail(rd, "agent_s", median(tag, rounds));
	detail(rd, "ksm_default_s", median(tkd, rounds));
	detail(rf, "agent_s", median(tag, rounds));
	detail(rf, "ksm_fast_s", median(tkf, rounds));
	return 0;
}

/*
 * The steady state: a writer rewrites @per_min of the duplicate pages a
 * minute (each with the bytes it had, so that they are duplicates still
 * and must be shared again), and ksmd or the agent's periodic passes keep
 * the savings. What each spends in CPU is taken over windows of @window
 * seconds, once the savings were reached.
 */
struct writer {
	pthread_t tid;
	unsigned char *mem[2];
	size_t n;
	double per_s;		/* pages a second */
	int stop;
	long writes;
	double seconds;		/* spent writing */
};

static void *writer_work(void *arg)
{
	struct writer *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	double start = now(), t;
	long due;

	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		usleep(20000);
		due = (long)((now() - start) * w->per_s);
		t = now();
		while (w->writes < due) {
			size_t i;
			int k;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			k = x & 1;
			i = (x >> 1) % (7 * w->n / 10);
			fill_content(w->mem[k] + i * PAGE, k, i, w->n);
			w->writes++;
		}
		w->seconds += now() - t;
	}
	return NULL;
}

static int writer_start(struct writer *w, unsigned char *a, unsigned char *b, size_t n,
			double per_min)
{
	memset(w, 0, sizeof(*w));
	w->mem[0] = a;
	w->mem[1] = b;
	w->n = n;
	w->per_s = per_min * 2 * n / 60;
	return pthread_create(&w->tid, NULL, writer_work, w);
}

static void writer_stop(struct writer *w)
{
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	pthread_join(w->tid, NULL);
}

/* First writes to pages that are no one's duplicate, after sharing: seconds per page. */
static double unique_writes(unsigned char *mem, size_t n)
{
	return first_writes(mem + 7 * n / 10 * PAGE, n - 7 * n / 10);
}

static int bench_cpu_per_hour(void)
{
	static const double rates[] = { 0.01, 0.10 };
	static const char * const names[] = { "cpu_per_hour_vs_ksm_1pct", "cpu_per_hour_vs_ksm_10pct" };
	size_t n = full ? 64 * MIB / PAGE : 512;
	int windows = full ? 5 : 1, ri, w, k;
	double window = full ? 20 : 2, period, c0, c1, cpu;
	long want = savings_of(n) * 99 / 100, floor = savings_of(n) * 9 / 10, saved0;
	unsigned char *a, *b;
	struct writer wr;
	struct agent ag;
	struct vm v[2];
	pid_t ksmd = find_ksmd();
	clockid_t kclk;

	CHECK(ksmd > 0 && !clock_getcpuclockid(ksmd, &kclk), "no ksmd");
	for (ri = 0; ri < 2; ri++) {
		struct result *rc = result(names[ri], "x", "higher", 10);
		double kc[MAX_SAMPLES], pc[MAX_SAMPLES], ksm_wr, ps_wr, ksm_uniq, ps_uniq;
		double u0, s0, u1, s1;
		long ksm_saved, ps_saved, scans0;

		/* KSM at its defaults: it converges, then keeps scanning. */
		CHECK(!realistic_ksm(&a, &b, n), "KSM regions: %m");
		CHECK(ksm_until(want, 100, 20, full ? 1200 : 120, &cpu, NULL) > 0,
		      "KSM saved %ld of %ld", ksm_read("pages_sharing"), want);
		scans0 = ksm_read("full_scans");
		c0 = now();
		CHECK(!ksm_write("run", 1), "KSM run");
		CHECK(!writer_start(&wr, a, b, n, rates[ri]), "writer");
		for (w = 0; w < windows; w++) {
			c1 = cpu_of(kclk);
			usleep(window * 1e6);
			kc[w] = cpu_of(kclk) - c1;
		}
		writer_stop(&wr);
		/* The agent's passes come as often as KSM's full scans. */
		period = (now() - c0) / (ksm_read("full_scans") - scans0 > 0 ?
					 ksm_read("full_scans") - scans0 : 1);
		ksm_saved = ksm_read("pages_sharing");
		ksm_wr = wr.seconds / (wr.writes ? wr.writes : 1);
		ksm_write("run", 0);
		ksm_uniq = unique_writes(b, n);
		ksm_write("run", 2);
		munmap(a, n * PAGE);
		munmap(b, n * PAGE);
		CHECK(ksm_saved >= floor, "KSM kept %ld of %ld pages saved", ksm_saved,
		      savings_of(n));

		/* pageshare: a first pass, then the agent's periodic passes. */
		CHECK(!realistic_vms(v, n), "VM: %m");
		saved0 = ps_sysfs_read("saved_frames");
		CHECK(!agent_start(&ag, v, 2, period), "agent: %m");
		while (ps_sysfs_read("saved_frames") - saved0 < want && now() - ag.t0 < 600)
			usleep(10000);
		CHECK(ps_sysfs_read("saved_frames") - saved0 >= want, "the agent saved %ld",
		      ps_sysfs_read("saved_frames") - saved0);
		CHECK(!writer_start(&wr, v[0].mem, v[1].mem, n, rates[ri]), "writer");
		/* The split over the windows only, not the first pass's. */
		if (proc_cpu(ag.pid, &u0, &s0))
			u0 = NAN;
		for (w = 0; w < windows; w++) {
			c1 = agent_cpu(&ag);
			usleep(window * 1e6);
			pc[w] = agent_cpu(&ag) - c1;
		}
		if (proc_cpu(ag.pid, &u1, &s1))
			u1 = NAN;
		writer_stop(&wr);
		ps_saved = ps_sysfs_read("saved_frames") - saved0;
		ps_wr = wr.seconds / (wr.writes ? wr.writes : 1);
		ps_uniq = unique_writes(v[1].mem, n);
		CHECK(!agent_wait(&ag, true), "the agent failed");
		unlink(ag.out);
		for (k = 0; k < 2; k++)
			vm_close(&v[k]);
		CHECK(ps_saved >= floor, "the agent kept %ld of %ld pages saved", ps_saved,
		      savings_of(n));

		for (w = 0; w < windows; w++) {
			CHECK(pc[w] > 0, "the agent used no CPU in window %d", w);
			sample(rc, kc[w] / pc[w]);
		}
		detail(rc, "writes_per_min_share", rates[ri]);
		detail(rc, "window_s", window);
		detail(rc, "pass_interval_s", period);
		detail(rc, "ksmd_cpu_s_per_hour", median(kc, windows) / window * 3600);
		detail(rc, "agent_cpu_s_per_hour", median(pc, windows) / window * 3600);
		detail(rc, "agent_user_share", (u1 - u0) / (u1 - u0 + s1 - s0));
		detail(rc, "agent_kernel_share", (s1 - s0) / (u1 - u0 + s1 - s0));
		detail(rc, "agent_kernel_share_whole_run", ag.sys / (ag.user + ag.sys));
		detail(rc, "ksm_saved_pages", ksm_saved);
		detail(rc, "pageshare_saved_pages", ps_saved);
		detail(rc, "ksm_rewrite_us", ksm_wr * 1e6);
		detail(rc, "pageshare_rewrite_us", ps_wr * 1e6);
		detail(rc, "ksm_unique_first_write_us", ksm_uniq * 1e6);
		detail(rc, "pageshare_unique_first_write_us", ps_uniq * 1e6);
	}
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
	struct result *rst = result("steady_vs_anon_thp", "x", "lower", 1.02);
	/*
	 * Three rounds even in the small run, whose check takes the median:
	 * 512 pages fault in within milliseconds, and one stalled timer
	 * interrupt in one round once made anonymous memory 4x slower (0.246).
	 */
	int reps = full ? 5 : 3, passes = full ? 4 : 1, r, kind;
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
	/* A ratio per round: the kinds of one round ran seconds apart. */
	for (r = 0; r < reps; r++) {
		sample(rf, fault[K_PS][r] / fault[K_ANON][r]);
		sample(rt, fault[K_PS][r] / fault[K_THP][r]);
		sample(rm, fault[K_PS][r] / fault[K_SHMEM][r]);
		sample(rs, steady[K_PS][r] / steady[K_ANON][r]);
		sample(rst, steady[K_PS][r] / steady[K_THP][r]);
	}
	detail(rst, "pageshare_s", median(steady[K_PS], reps));
	detail(rst, "anon_thp_s", median(steady[K_THP], reps));
	detail(rst, "anon_thp_kvm_exits", exits[K_THP][1]);
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
	for (r = 0; r < reps; r++)
		sample(rd, ps[r]);
	/* The target is shmem's speed, with its own spread; median() sorts. */
	rd->target = median(sh, reps);
	rd->tmin = sh[0];
	rd->tmax = sh[reps - 1];
	detail(rd, "mib", size / MIB);
	detail(rd, "runs", reps);
	return 0;
}

/* ---- share_scaling and bytes_per_frame ----------------------------------- */

/*
 * Kernel memory as the kernel counts it, not as the module says: slab
 * and vmalloc from /proc/meminfo, free pages, and the slab pages of the
 * xarray nodes (radix_tree_node), which hold every VM's index of its gfns
 * and so are a VM's cost, not a frame's.
 */
struct kmem {
	long slab, vmalloc, memfree, pcp, xa_nodes, meta;
};

/*
 * Free pages that sit on the per-CPU lists, which MemFree leaves out: a
 * page freed goes there first, and the lists grow to several MiB while
 * pages are freed in bulk (the "count:" of each CPU's pageset in
 * /proc/zoneinfo).
 */
static long pcp_bytes(void)
{
	char line[256];
	long count, sum = 0;
	FILE *f = fopen("/proc/zoneinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " count: %ld", &count) == 1)
			sum += count;
	fclose(f);
	return sum * (long)PAGE;
}

static long slab_cache_bytes(const char *cache)
{
	char line[512], name[64];
	long pages_per_slab, slabs, v[5];
	FILE *f = fopen("/proc/slabinfo", "r");
	long bytes = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *sd = strstr(line, "slabdata");

		if (sscanf(line, "%63s %ld %ld %ld %ld %ld", name, &v[0], &v[1], &v[2], &v[3],
			   &pages_per_slab) != 6 || strcmp(name, cache) || !sd)
			continue;
		if (sscanf(sd, "slabdata %ld %ld", &v[4], &slabs) == 2)
			bytes = slabs * pages_per_slab * (long)PAGE;
	}
	fclose(f);
	return bytes;
}

static void kmem_read(struct kmem *m)
{
	m->slab = meminfo("Slab");
	m->vmalloc = meminfo("VmallocUsed");
	m->memfree = meminfo("MemFree");
	m->pcp = pcp_bytes();
	m->xa_nodes = slab_cache_bytes("radix_tree_node");
	m->meta = ps_sysfs_read("meta_bytes");
}

/* Bytes per @n objects between @a and @b: slab and vmalloc, less xarray nodes. */
static double kmem_module(const struct kmem *a, const struct kmem *b, size_t n)
{
	return (double)(b->slab - a->slab + b->vmalloc - a->vmalloc -
			(b->xa_nodes - a->xa_nodes)) / n;
}

/*
 * @frames frames in shared state (each nominated in VM a, then mapped into
 * a hole of VM b by add_to_physmap), then @rounds rounds of @m shares of
 * fresh pairs, each round's seconds per share in @per_share. The pages
 * are populated by a mapping that is gone before the sharing, so that the
 * zap of each nominate finds nothing: what is timed is the engine, not
 * the page tables. With @mem, the memory of the frames (after the
 * nominates) and of their second sharers (after add_to_physmap).
 */
struct frame_mem {
	double module_per_frame, meta_per_frame, memfree_per_frame, free_per_frame;
	double xa_per_second_gfn, module_per_second_gfn;
};

static int share_cost(size_t frames, size_t m, int rounds, double *per_share,
		      struct frame_mem *mem)
{
	size_t chunk = 65536, i, done, total = frames + 2 * m * rounds;
	struct pageshare_nominate *e = calloc(chunk > 2 * m ? chunk : 2 * m, sizeof(*e));
	struct pageshare_add_to_physmap *p = calloc(chunk, sizeof(*p));
	struct pageshare_share *s = calloc(m, sizeof(*s));
	uint64_t *handles = calloc(frames, sizeof(*handles));
	struct kmem k0, k1, k2;
	struct vm a, b;
	double t0;
	int r;

	CHECK(e && p && s && handles, "calloc");
	CHECK(!vm_open(&a, (total + 1) * PAGE) && !vm_map(&a, true), "VM: %m");
	vm_unmap(&a);
	CHECK(!vm_open(&b, (frames + 1) * PAGE), "VM: %m");
	kmem_read(&k0);
	for (done = 0; done < frames; done += chunk) {
		size_t n = frames - done < chunk ? frames - done : chunk;

		CHECK(nominate(&a, done, n, false, e) == (long)n, "nominate");
		for (i = 0; i < n; i++)
			handles[done + i] = e[i].handle;
	}
	kmem_read(&k1);
	for (done = 0; done < frames; done += chunk) {
		size_t n = frames - done < chunk ? frames - done : chunk;

		for (i = 0; i < n; i++)
			p[i] = (struct pageshare_add_to_physmap) {
				.src_vm = a.fd, .client_vm = b.fd, .src_gfn = done + i,
				.src_handle = handles[done + i], .client_gfn = done + i,
			};
		CHECK(RUN_BATCH(a.fd, PAGESHARE_ADD_TO_PHYSMAP_BATCH, p, n) == (long)n,
		      "add_to_physmap");
	}
	kmem_read(&k2);
	if (mem) {
		mem->module_per_frame = kmem_module(&k0, &k1, frames);
		mem->meta_per_frame = (double)(k1.meta - k0.meta) / frames;
		mem->memfree_per_frame = (double)(k0.memfree - k1.memfree) / frames;
		mem->free_per_frame = (double)(k0.memfree + k0.pcp - k1.memfree - k1.pcp) / frames;
		mem->xa_per_second_gfn = (double)(k2.xa_nodes - k1.xa_nodes) / frames;
		mem->module_per_second_gfn = kmem_module(&k1, &k2, frames);
	}

	/* Each round: m shares of pairs of fresh gfns of a, nominated first. */
	for (r = 0; r < rounds; r++) {
		uint64_t first = frames + 2 * m * r;

		CHECK(nominate(&a, first, 2 * m, false, e) == (long)(2 * m), "nominate");
		for (i = 0; i < m; i++)
			s[i] = (struct pageshare_share) {
				.src_vm = a.fd, .client_vm = a.fd,
				.src_gfn = e[2 * i].gfn, .src_handle = e[2 * i].handle,
				.client_gfn = e[2 * i + 1].gfn,
				.client_handle = e[2 * i + 1].handle,
			};
		t0 = now();
		CHECK(RUN_BATCH(a.fd, PAGESHARE_SHARE_BATCH, s, m) == (long)m, "share");
		per_share[r] = (now() - t0) / m;
	}
	vm_close(&b);
	vm_close(&a);
	free(e);
	free(p);
	free(s);
	free(handles);
	return 0;
}

static int bench_share_scaling(void)
{
	size_t big = full ? 1UL << 20 : 8192, small = full ? 1024 : 64;
	size_t m = full ? 16384 : 1024;
	struct result *rs = result("share_scaling", "x", "lower", 1.2);
	struct result *rb = result("bytes_per_frame", "B", "lower", 32);
	int rounds = full ? 5 : 1, r;
	double small_cost[MAX_SAMPLES], big_cost[MAX_SAMPLES], one;
	struct frame_mem fm;

	/*
	 * The small case is cheap: a setup of its own for each round, after
	 * one not counted, which pays for TCG's first translation of these
	 * paths (make check's small run measured 0.18x without it).
	 */
	CHECK(!share_cost(small, m, 1, &one, NULL), "warm-up");
	for (r = 0; r < rounds; r++) {
		CHECK(!share_cost(small, m, 1, &one, NULL), "small");
		small_cost[r] = one;
	}
	CHECK(!share_cost(big, m, rounds, big_cost, &fm), "big");
	for (r = 0; r < rounds; r++)
		sample(rs, big_cost[r] / small_cost[r]);
	detail(rs, "frames_big", big);
	detail(rs, "frames_small", small);
	detail(rs, "shares_timed_per_round", m);
	detail(rs, "big_ns_per_share", median(big_cost, rounds) * 1e9);
	detail(rs, "small_ns_per_share", median(small_cost, rounds) * 1e9);
	/* What the kernel counts, not what the module says it holds. */
	rb->value = fm.module_per_frame;
	detail(rb, "frames", big);
	detail(rb, "module_accounting_bytes_per_frame", fm.meta_per_frame);
	detail(rb, "memfree_bytes_per_frame", fm.memfree_per_frame);
	detail(rb, "free_with_pcp_bytes_per_frame", fm.free_per_frame);
	detail(rb, "second_sharer_module_bytes", fm.module_per_second_gfn);
	detail(rb, "second_sharer_vm_index_bytes", fm.xa_per_second_gfn);
	CHECK(fm.meta_per_frame > 0 && fm.module_per_frame > 0,
	      "no memory counted per frame (kernel %g, module %g)", fm.module_per_frame,
	      fm.meta_per_frame);
	return 0;
}

/* ---- heavy_frame and bytes_per_sharer ------------------------------------ */

/*
 * One frame gets @n more sharers by add_to_physmap into holes of a second
 * VM, which is then torn down (closed). The seconds of each, and with
 * @mem, the memory per sharer.
 */
struct sharer_mem {
	double module, meta, memfree, xa;
};

static int heavy(size_t n, double *t_add, double *t_down, struct sharer_mem *mem)
{
	struct pageshare_add_to_physmap *p = calloc(n, sizeof(*p));
	struct pageshare_nominate e;
	struct kmem k0, k1;
	struct vm a, b;
	double t0;
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
	if (mem)
		kmem_read(&k0);
	t0 = now();
	CHECK(RUN_BATCH(a.fd, PAGESHARE_ADD_TO_PHYSMAP_BATCH, p, n) == (long)n,
	      "add_to_physmap");
	*t_add = now() - t0;
	if (mem) {
		kmem_read(&k1);
		mem->module = kmem_module(&k0, &k1, n);
		mem->meta = (double)(k1.meta - k0.meta) / n;
		mem->memfree = (double)(k0.memfree - k1.memfree) / n;
		mem->xa = (double)(k1.xa_nodes - k0.xa_nodes) / n;
	}
	t0 = now();
	close(b.fd);		/* the teardown of n sharers, in close() */
	*t_down = now() - t0;
	vm_close(&a);
	free(p);
	return 0;
}

/*
 * heavy_frame: the marginal cost of one more sharer, (T(n2) - T(n1)) /
 * (n2 - n1), with many sharers against with few, for adding them and for
 * tearing them down, each; the value is the worse of the two ratios. The
 * fixed cost of a VM's setup and teardown cancels out of each difference.
 * bytes_per_sharer: the kernel's memory per sharer at several counts;
 * the worst counts. The reverse map is a power-of-two table that grows
 * past three quarters full to one of 1.5 times the sharers rounded up,
 * so the bytes per sharer depend on where the count falls: 393,217 and
 * 786,433 are one past 3/4 of 2^19 and 2^20 (a table a bit over a third
 * full, the worst case), 1,048,575 the most sharers a frame may have.
 */
static int bench_heavy_frame(void)
{
	static const size_t full_counts[] = { 393217, 786433, 1048575 };
	static const size_t small_counts[] = { 1500, 4096 };
	const size_t *counts = full ? full_counts : small_counts;
	int ncounts = full ? 3 : 2, rounds = full ? 5 : 1, reps = full ? 50 : 5, r, i, c;
	size_t lo1 = 10, lo2 = full ? 1010 : 110, hi1 = counts[0], hi2 = counts[ncounts - 1];
	struct result *rh = result("heavy_frame", "x", "lower", 1.5);
	struct result *rb = result("bytes_per_sharer", "B", "lower", 16);
	double add_ratio[MAX_SAMPLES], down_ratio[MAX_SAMPLES];
	double add_lo[MAX_SAMPLES], down_lo[MAX_SAMPLES], add_hi[MAX_SAMPLES], down_hi[MAX_SAMPLES];
	static const char * const bkeys[] = {
		"bytes_per_sharer_at_393217", "bytes_per_sharer_at_786433",
		"bytes_per_sharer_at_1048575",
	};
	double worst = 0, ta, td;
	struct sharer_mem sm;

	/* Not counted: the first run of these paths pays for their translation. */
	CHECK(!heavy(lo1, &ta, &td, NULL) && !heavy(lo2, &ta, &td, NULL), "warm-up");
	for (r = 0; r < rounds; r++) {
		double a1 = 0, d1 = 0, a2 = 0, d2 = 0, ta1, td1, ta2, td2;

		for (i = 0; i < reps; i++) {
			CHECK(!heavy(lo1, &ta, &td, NULL), "light");
			a1 += ta / reps;
			d1 += td / reps;
			CHECK(!heavy(lo2, &ta, &td, NULL), "light");
			a2 += ta / reps;
			d2 += td / reps;
		}
		add_lo[r] = (a2 - a1) / (lo2 - lo1);
		down_lo[r] = (d2 - d1) / (lo2 - lo1);
		ta1 = td1 = ta2 = td2 = 0;
		for (c = 0; c < ncounts; c++) {
			bool ends = c == 0 || c == ncounts - 1;

			/* The middle count is for its bytes, measured once. */
			if (!ends && r)
				continue;
			CHECK(!heavy(counts[c], &ta, &td, r ? NULL : &sm), "heavy %zu", counts[c]);
			if (c == 0) {
				ta1 = ta;
				td1 = td;
			} else if (c == ncounts - 1) {
				ta2 = ta;
				td2 = td;
			}
			if (r)
				continue;
			CHECK(sm.meta > 0, "no memory counted per sharer");
			if (full)
				detail(rb, bkeys[c], sm.module);
			if (sm.module > worst)
				worst = sm.module;
			if (c == ncounts - 1) {
				detail(rb, "module_accounting_bytes_per_sharer", sm.meta);
				detail(rb, "memfree_bytes_per_sharer", sm.memfree);
				detail(rb, "vm_index_bytes_per_sharer", sm.xa);
			}
		}
		add_hi[r] = (ta2 - ta1) / (hi2 - hi1);
		down_hi[r] = (td2 - td1) / (hi2 - hi1);
		CHECK(add_lo[r] > 0 && down_lo[r] > 0 && add_hi[r] > 0 && down_hi[r] > 0,
		      "a marginal cost <= 0: add %g/%g, teardown %g/%g", add_hi[r], add_lo[r],
		      down_hi[r], down_lo[r]);
		add_ratio[r] = add_hi[r] / add_lo[r];
		down_ratio[r] = down_hi[r] / down_lo[r];
		sample(rh, add_ratio[r] > down_ratio[r] ? add_ratio[r] : down_ratio[r]);
	}
	rb->value = worst;
	detail(rh, "sharers_low", lo1);
	detail(rh, "sharers_low2", lo2);
	detail(rh, "sharers_high", hi1);
	detail(rh, "sharers_high2", hi2);
	detail(rh, "add_ratio", median(add_ratio, rounds));
	detail(rh, "teardown_ratio", median(down_ratio, rounds));
	detail(rh, "add_ns_per_sharer_low", median(add_lo, rounds) * 1e9);
	detail(rh, "add_ns_per_sharer_high", median(add_hi, rounds) * 1e9);
	detail(rh, "teardown_ns_per_sharer_low", median(down_lo, rounds) * 1e9);
	detail(rh, "teardown_ns_per_sharer_high", median(down_hi, rounds) * 1e9);
	return 0;
}

/* ---- parallel_2t ---------------------------------------------------------- */

struct worker {
	pthread_t tid;
	struct vm v[2];
	int memfd;		/* the control's */
	size_t pages;
	double seconds, start, stop;
	long ops;
	int err;
};

/* The threads start together; read and written with __atomic builtins. */
static int go;

static void worker_wait(struct worker *w)
{
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	w->start = now();
}

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
	worker_wait(w);
	end = w->start + w->seconds;
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
		w->ops += n;
		for (k = 1; k >= 0; k--) {
			for (i = 0; i < n; i++)
				u[i] = (struct pageshare_unshare) { .vm = w->v[k].fd, .gfn = i };
			if (RUN_BATCH(w->v[k].fd, PAGESHARE_UNSHARE_BATCH, u, n) != (long)n)
				w->err = 1;
		}
	}
	w->stop = now();
	free(e[0]);
	free(e[1]);
	free(s);
	free(u);
	return NULL;
}

/*
 * The control: the same shape of work without pageshare, a thread per
 * file of its own, copying its pages out of and back into the page cache
 * (two kernel copies of every page per round, in large system calls, as
 * the sharing loop's batches are). What two threads of it reach says what
 * this machine's two vCPUs can give kernel-heavy work that shares nothing.
 */
static void *control_work(void *arg)
{
	struct worker *w = arg;
	size_t len = w->pages * PAGE;
	unsigned char *buf = malloc(len);
	double end;

	if (!buf) {
		w->err = 1;
		return NULL;
	}
	memset(buf, 0x5a, len);
	worker_wait(w);
	end = w->start + w->seconds;
	while (now() < end) {
		if (pwrite(w->memfd, buf, len, 0) != (ssize_t)len ||
		    pread(w->memfd, buf, len, 0) != (ssize_t)len)
			w->err = 1;
		w->ops += w->pages;
	}
	w->stop = now();
	free(buf);
	return NULL;
}

/* Operations per second of @threads threads, over the time they really ran. */
static int parallel(int threads, bool control, size_t pages, double seconds, double *rate)
{
	struct worker w[2];
	double start = 0, stop = 0;
	long ops = 0;
	int t, k;

	memset(w, 0, sizeof(w));
	__atomic_store_n(&go, 0, __ATOMIC_RELEASE);
	for (t = 0; t < threads; t++) {
		w[t].pages = pages;
		w[t].seconds = seconds;
		w[t].memfd = -1;
		if (control) {
			w[t].memfd = memfd_create("control", MFD_CLOEXEC);
			CHECK(w[t].memfd >= 0 && !ftruncate(w[t].memfd, pages * PAGE), "memfd: %m");
		} else {
			for (k = 0; k < 2; k++) {
				CHECK(!vm_open(&w[t].v[k], pages * PAGE) &&
				      !vm_map(&w[t].v[k], true), "VM: %m");
				vm_unmap(&w[t].v[k]);
			}
		}
		CHECK(!pthread_create(&w[t].tid, NULL, control ? control_work : work, &w[t]),
		      "thread");
	}
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (t = 0; t < threads; t++) {
		pthread_join(w[t].tid, NULL);
		CHECK(!w[t].err, "a batch failed in thread %d", t);
		ops += w[t].ops;
		if (!t || w[t].start < start)
			start = w[t].start;
		if (w[t].stop > stop)
			stop = w[t].stop;
		if (control)
			close(w[t].memfd);
		else
			for (k = 0; k < 2; k++)
				vm_close(&w[t].v[k]);
	}
	CHECK(stop > start && ops > 0, "nothing ran");
	*rate = ops / (stop - start);
	return 0;
}

/*
 * parallel_2t: shares per second of two threads on VMs of their own /
 * one thread's, read against the control's same ratio: a machine whose
 * two vCPUs cannot give kernel work 1.7x cannot show pageshare doing so.
 */
static int bench_parallel(void)
{
	struct result *rp = result("parallel_2t", "x", "higher", 1.7);
	size_t pages = full ? 4096 : 256;
	double secs = full ? 3 : 0.5, one, two, c1, c2;
	double ctl[MAX_SAMPLES], eff[MAX_SAMPLES], ps1[MAX_SAMPLES];
	int rounds = full ? 5 : 1, r;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	CHECK(cpus >= 2, "%ld CPU online: two threads cannot run at once", cpus);
	/*
	 * A round not counted first: the first run of these paths pays for
	 * TCG's translation of them, which made one thread look slow (2
	 * threads 3.4 times as fast as one on 2 vCPUs, in make check).
	 */
	CHECK(!parallel(1, false, pages, secs, &one) && !parallel(2, false, pages, secs, &two) &&
	      !parallel(1, true, pages, secs, &c1) && !parallel(2, true, pages, secs, &c2),
	      "warm-up");
	for (r = 0; r < rounds; r++) {
		CHECK(!parallel(1, false, pages, secs, &one), "1 thread");
		CHECK(!parallel(2, false, pages, secs, &two), "2 threads");
		CHECK(!parallel(1, true, pages, secs, &c1), "control, 1 thread");
		CHECK(!parallel(2, true, pages, secs, &c2), "control, 2 threads");
		sample(rp, two / one);
		ctl[r] = c2 / c1;
		eff[r] = (two / one) / ctl[r];
		ps1[r] = one;
	}
	detail(rp, "pages_per_batch", pages);
	detail(rp, "seconds_per_run", secs);
	detail(rp, "shares_per_s_1_thread", median(ps1, rounds));
	detail(rp, "control_2t_over_1t", median(ctl, rounds));
	detail(rp, "control_min", ctl[0]);
	detail(rp, "control_max", ctl[rounds - 1]);
	detail(rp, "pageshare_over_control", median(eff, rounds));
	detail(rp, "cpus_online", cpus);
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

/*
 * The small run of make check judges no target, but it fails on a figure
 * that cannot be a measurement: not finite, not positive, or a ratio far
 * below 1 where both sides do the same work (pageshare cannot be four
 * times faster than itself with fewer frames; nor ten times faster than
 * anonymous memory at faulting a page in, a figure of a few milliseconds
 * here that one timer stall moves by a factor of three).
 */
struct plausible {
	const char *name;
	double min, max;
};

static const struct plausible plausible[] = {
	/* Three rounds of milliseconds: 0.11..3.4 in one small run. */
	{ "fault_in_vs_anon", 0.1, 1e3 }, { "fault_in_vs_anon_thp", 0.1, 1e4 },
	{ "fault_in_vs_shmem", 0.1, 1e3 }, { "steady_vs_anon", 0.25, 1e3 },
	{ "steady_vs_anon_thp", 0.25, 1e3 }, { "share_scaling", 0.25, 1e3 },
	{ "heavy_frame", 0.05, 1e3 }, { "parallel_2t", 0.3, 2.5 },
	{ "bytes_per_frame", 1, 4096 }, { "bytes_per_sharer", 1, 4096 },
	{ "agent_vs_loop", 0.01, 4 },
};

static int check_plausible(void)
{
	double sorted[MAX_SAMPLES], v;
	int i, k, bad = 0;
	unsigned int j;

	for (i = 0; i < nresults; i++) {
		struct result *r = &results[i];

		if (isnan(r->value) && !r->nsamples)
			continue;
		/* Every sample must be a measurement... */
		for (k = 0; k < r->nsamples; k++) {
			v = r->samples[k];
			if (!isfinite(v) || v <= 0) {
				ksft_print_msg("%s: %g is no measurement\n", r->name, v);
				bad++;
			}
		}
		/*
		 * ...and the median within what the work allows: one sample of
		 * a few milliseconds can meet a stalled timer interrupt.
		 */
		if (r->nsamples) {
			memcpy(sorted, r->samples, r->nsamples * sizeof(*sorted));
			v = median(sorted, r->nsamples);
		} else {
			v = r->value;
		}
		if (!isfinite(v) || v <= 0) {
			if (!r->nsamples) {
				ksft_print_msg("%s: %g is no measurement\n", r->name, v);
				bad++;
			}
			continue;
		}
		for (j = 0; j < ARRAY_SIZE(plausible); j++) {
			if (strcmp(plausible[j].name, r->name))
				continue;
			if (v < plausible[j].min || v > plausible[j].max) {
				ksft_print_msg("%s: %g (median of %d) is outside what the work allows (%g..%g)\n",
					       r->name, v, r->nsamples, plausible[j].min,
					       plausible[j].max);
				bad++;
			}
		}
	}
	return bad;
}

/*
 * One line per benchmark for the runner, which assembles the JSON of
 * several VM runs: "@@ RESULT" carries the entry, "@@ ROW" the table row.
 * Every number at full precision (%.17g): a target is judged on the
 * values, never on their rounded print.
 */
static void print_results(void)
{
	struct utsname u;
	int i, k;

	uname(&u);
	printf("@@ KERNEL %s %s (%s)\n", u.sysname, u.release, u.version);
	for (i = 0; i < nresults; i++) {
		struct result *r = &results[i];
		double sorted[MAX_SAMPLES], lo, hi;

		if (r->nsamples) {
			memcpy(sorted, r->samples, r->nsamples * sizeof(double));
			r->value = median(sorted, r->nsamples);
			lo = sorted[0];
			hi = sorted[r->nsamples - 1];
		} else {
			lo = hi = r->value;
		}
		if (isnan(r->value))
			continue;
		printf("@@ ROW %s %.17g %.17g %s %s %.17g %.17g %d %.17g %.17g\n", r->name,
		       r->value, r->target, r->better, r->unit, lo, hi,
		       r->nsamples ? r->nsamples : 1, r->tmin, r->tmax);
		printf("@@ RESULT \"%s\": {\"value\": %.17g, \"min\": %.17g, \"max\": %.17g, "
		       "\"samples\": [", r->name, r->value, lo, hi);
		for (k = 0; k < r->nsamples; k++)
			printf("%s%.17g", k ? ", " : "", r->samples[k]);
		printf("], \"target\": %.17g, \"target_min\": %.17g, \"target_max\": %.17g, "
		       "\"better\": \"%s\", \"unit\": \"%s\", \"detail\": {",
		       r->target, r->tmin, r->tmax, r->better, r->unit);
		for (k = 0; k < r->ndetail; k++)
			printf("%s\"%s\": %.17g", k ? ", " : "", r->dkey[k], r->dval[k]);
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
	{ "agent_vs_loop", bench_agent_vs_loop, false },
	{ "converge_vs_ksm", bench_converge, false },
	{ "cpu_per_hour_vs_ksm", bench_cpu_per_hour, false },
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
	if (!full && check_plausible())
		ksft_exit_fail_msg("a benchmark measured nothing, or nothing it could have\n");
	if (ps_audit_all())
		ksft_exit_fail_msg("the audit found problems\n");
	ksft_finished();
}
