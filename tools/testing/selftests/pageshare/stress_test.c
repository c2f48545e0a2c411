// SPDX-License-Identifier: GPL-2.0
/*
 * Model-checked stress: a seeded, reproducible random sequence of
 * operations on three VMs (nominate, share, add_to_physmap, unshare,
 * query, discard by punching holes, writes and reads, of holes too,
 * through the VMM's mapping, writes and reads by KVM guests, VM teardown
 * and re-creation, pages held in pipes across all of these by
 * vmsplice()), each checked against a userspace model of what every gfn
 * holds, which handles are valid and every counter, and followed by the
 * kernel's audit.
 *
 *   stress_test [-s SEED] [-n OPS]     (also $STRESS_SEED, $STRESS_OPS)
 *
 * A failure prints the seed and the step, so `make stress SEED=... OPS=...`
 * replays it. The last line reports the operations run and the audit
 * errors seen, for the VM test runner's summary.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <time.h>
#include <stdarg.h>
#include <sys/uio.h>

#include "kselftest.h"
#include "pageshare_util.h"

#define NVM		3
#define NGFN		16		/* gfns per VM: 64 KiB, so pages collide often */
#define FIRST_GFN	2		/* 0 is unused, 1 holds the guest code */
#define MAXFRAMES	(NVM * NGFN * 4)
#define MAXHANDLES	4096
#define FULL_CHECK	1000		/* steps between checks of every gfn */

/* What a page holds, as the model knows it. */
enum { C_ZERO, C_HOST, C_GUEST, C_CODE };
struct content {
	uint8_t kind;
	uint32_t a, b;	/* host: tag; guest: gfn written at, seed */
};

/*
 * A page, as the model knows it: a private page, a frame, or a page no gfn
 * has any more that a pipe still holds (sharers 0, handle 0).
 */
struct mframe {
	bool used;
	uint64_t handle;	/* 0: a private page */
	int sharers;
	int held;		/* pipes holding the page (vmsplice) */
	struct content c;
};

/* A page held in a pipe: what the VMM's vmsplice() left there. */
#define MAXHOLDS	4
struct hold {
	int pipe[2];
	int f;			/* the page, in frames[] */
};

static struct hold holds[MAXHOLDS];
static int nholds;

struct mvm {
	struct ps_guest g;
	int pfd;		/* from PAGESHARE_OPEN_VM, for fallocate() */
	bool kvm;
	int frame[NGFN];	/* -1: hole */
	long cow_breaks;
	uint64_t group;		/* share group, 0: none */
	bool nointra;		/* PAGESHARE_POLICY_NO_INTRA_VM */
};

static struct mframe frames[MAXFRAMES];
static struct mvm vms[NVM];
static uint64_t handles[MAXHANDLES];	/* every handle seen, for stale ones */
static int nhandles;
static uint64_t rng_state;
static long step;
static unsigned long seed;
static char op[160];
static char history[16][160];	/* the last operations, for a failure report */
static bool have_kvm;
static double t_audit, t_guest, t_check;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static uint32_t rn(uint32_t n)
{
	return rnd() % n;
}

static __printf(1, 2) __noreturn void fail(const char *fmt, ...)
{
	va_list ap;

	long i;

	for (i = step > 15 ? step - 15 : 0; i < step; i++)
		printf("# stress: step %ld: %s\n", i, history[i % 16]);
	printf("# stress: seed %lu failed at step %ld (%s): ", seed, step, op);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n# stress: replay with: make stress SEED=%lu OPS=%ld\n", seed, step + 1);
	printf("# stress: ops=%ld audit_errors=%d\n", step, -1);
	ksft_test_result_fail("stress seed %lu\n", seed);
	ksft_finished();
	exit(KSFT_FAIL);
}

static void gen(const struct content *c, uint8_t *buf)
{
	uint32_t *w = (uint32_t *)buf;
	uint16_t *h = (uint16_t *)buf;
	size_t i;

	switch (c->kind) {
	case C_ZERO:
		memset(buf, 0, PS_PAGE);
		break;
	case C_HOST:
		for (i = 0; i < PS_PAGE / 4; i++)
			w[i] = c->a * 0x9e3779b1u + i * 0x85ebca77u;
		break;
	case C_GUEST:
		for (i = 0; i < PS_PAGE / 2; i++)
			h[i] = ps_fill_word(c->a, c->b);
		break;
	}
}

static bool same_bytes(const struct content *x, const struct content *y)
{
	uint8_t a[PS_PAGE], b[PS_PAGE];

	gen(x, a);
	gen(y, b);
	return !memcmp(a, b, PS_PAGE);
}

static int new_frame(struct content c)
{
	int i;

	for (i = 0; i < MAXFRAMES; i++) {
		if (!frames[i].used) {
			frames[i] = (struct mframe){ .used = true, .sharers = 1, .c = c };
			return i;
		}
	}
	fail("model out of frames");
}

/* Frame @f backs no gfn any more: it goes, unless a pipe holds its page. */
static void frame_gone(int f)
{
	frames[f].sharers = 0;
	frames[f].handle = 0;
	if (!frames[f].held)
		frames[f].used = false;
}

static void drop_sharer(int f)
{
	if (--frames[f].sharers == 0)
		frame_gone(f);
}

/*
 * Every handle ever issued, to check that none comes twice: the uapi
 * promises handles that are never 0 and never reused, not ones that grow
 * (each CPU hands out a block of its own). Open addressing, doubled at
 * half full.
 */
static uint64_t *seen;
static size_t seen_cap, seen_n;

static bool seen_add(uint64_t h)
{
	size_t i;

	if (2 * (seen_n + 1) > seen_cap) {
		uint64_t *old = seen;
		size_t cap = seen_cap, k;

		seen_cap = cap ? 2 * cap : 1 << 16;
		seen = calloc(seen_cap, sizeof(*seen));
		if (!seen)
			fail("calloc");
		seen_n = 0;
		for (k = 0; k < cap; k++)
			if (old[k])
				seen_add(old[k]);
		free(old);
	}
	for (i = (h * 0x9e3779b97f4a7c15ULL) & (seen_cap - 1); seen[i];
	     i = (i + 1) & (seen_cap - 1))
		if (seen[i] == h)
			return false;
	seen[i] = h;
	seen_n++;
	return true;
}

static void note_handle(uint64_t h)
{
	if (!h)
		fail("handle 0");
	if (!seen_add(h))
		fail("handle %llu issued twice", (unsigned long long)h);
	handles[nhandles++ % MAXHANDLES] = h;
}

/* A gfn of the VM gets a write: the model's copy-on-write. */
static void model_write(struct mvm *m, int gfn, struct content c)
{
	int f = m->frame[gfn];

	if (f < 0) {
		m->frame[gfn] = new_frame(c);
	} else if (!frames[f].handle) {
		frames[f].c = c;
	} else if (frames[f].sharers == 1 && !frames[f].held) {
		/*
		 * The last sharer, and nobody else holds the page: the module
		 * copies into a new page and frees the frame, which nothing
		 * can tell from a reuse in place; the model keeps the frame.
		 */
		frames[f].handle = 0;
		frames[f].c = c;
		m->cow_breaks++;
	} else {
		/* Others map it, or a pipe holds it: a copy. */
		drop_sharer(f);
		m->frame[gfn] = new_frame(c);
		m->cow_breaks++;
	}
}

static void check_bytes(struct mvm *m, int gfn)
{
	uint8_t want[PS_PAGE];
	int f = m->frame[gfn];

	/* A hole reads as zeros, and reading it allocates nothing. */
	if (f < 0)
		memset(want, 0, sizeof(want));
	else
		gen(&frames[f].c, want);
	if (memcmp(want, m->g.mem + gfn * PS_PAGE, PS_PAGE))
		fail("vm %ld gfn %d: bytes differ from the model", m - vms, gfn);
}

static void check_query(struct mvm *m, int gfn)
{
	struct pageshare_query q;
	int f = m->frame[gfn];
	uint32_t state;

	if (ps_query(m->g.fd, gfn, &q))
		fail("query: %s", strerror(errno));
	if (f < 0)
		state = PAGESHARE_STATE_HOLE;
	else if (!frames[f].handle)
		state = PAGESHARE_STATE_PRIVATE;
	else
		state = frames[f].sharers == 1 ? PAGESHARE_STATE_NOMINATED :
						 PAGESHARE_STATE_SHARED;
	if (q.state != state || q.sharers != (f < 0 ? 0 : (uint32_t)frames[f].sharers) ||
	    q.handle != (f < 0 ? 0 : frames[f].handle))
		fail("vm %ld gfn %d: kernel says state %u sharers %u handle %llu, model %u %d %llu",
		     m - vms, gfn, q.state, q.sharers, (unsigned long long)q.handle,
		     state, f < 0 ? 0 : frames[f].sharers,
		     (unsigned long long)(f < 0 ? 0 : frames[f].handle));
}

/* PAGESHARE_GET_PRIVATE lists exactly the gfns the model has private. */
static void check_private(struct mvm *m)
{
	struct pageshare_private p = { .max = 7 };
	uint64_t gfns[NGFN];
	int g, n = 0, i = 0;

	do {
		p.gfns = (uintptr_t)(gfns + n);
		p.start = p.next;
		if (n + p.max > NGFN)
			p.max = NGFN - n;
		if (ioctl(m->g.fd, PAGESHARE_GET_PRIVATE, &p))
			fail("get_private: %s", strerror(errno));
		n += p.count;
	} while (p.count == p.max && p.max && p.next < NGFN);
	for (g = 0; g < NGFN; g++) {
		int f = m->frame[g];
		bool priv = f >= 0 && !frames[f].handle;

		if (priv != (i < n && gfns[i] == (uint64_t)g))
			fail("vm %ld gfn %d: %s by the model, %slisted as private",
			     m - vms, g, priv ? "private" : "not private", priv ? "not " : "");
		i += priv;
	}
	if (i != n)
		fail("vm %ld: %d gfns listed as private, the model has %d", m - vms, n, i);
}

static void check_counters(void)
{
	long shared_frames = 0, shared_gfns = 0;
	struct pageshare_stats st;
	int v, g, i;

	for (i = 0; i < MAXFRAMES; i++)
		shared_frames += frames[i].used && frames[i].handle && frames[i].sharers;
	for (v = 0; v < NVM; v++) {
		long priv = 0, shared = 0, nominated = 0;

		for (g = 0; g < NGFN; g++) {
			int f = vms[v].frame[g];

			if (f < 0)
				continue;
			if (!frames[f].handle) {
				priv++;
				continue;
			}
			shared++;
			nominated += frames[f].sharers == 1;
		}
		shared_gfns += shared;
		check_private(&vms[v]);
		if (ps_stats(vms[v].g.fd, &st))
			fail("stats: %s", strerror(errno));
		if ((long)st.private_pages != priv || (long)st.shared_gfns != shared ||
		    (long)st.nominated_gfns != nominated ||
		    (long)st.cow_breaks != vms[v].cow_breaks)
			fail("vm %d counters: kernel %llu/%llu/%llu/%llu, model %ld/%ld/%ld/%ld", v,
			     (unsigned long long)st.private_pages,
			     (unsigned long long)st.shared_gfns,
			     (unsigned long long)st.nominated_gfns,
			     (unsigned long long)st.cow_breaks,
			     priv, shared, nominated, vms[v].cow_breaks);
	}
	if ((long)st.shared_frames != shared_frames ||
	    (long)st.saved_frames != shared_gfns - shared_frames)
		fail("global counters: kernel %llu shared / %llu saved, model %ld / %ld",
		     (unsigned long long)st.shared_frames,
		     (unsigned long long)st.saved_frames,
		     shared_frames, shared_gfns - shared_frames);
}

static void vm_create(struct mvm *m)
{
	int g;

	if (have_kvm) {
		if (ps_guest_create(&m->g, NGFN * PS_PAGE))
			fail("creating a VM: %s", m->g.err);
	} else {
		memset(&m->g, 0, sizeof(m->g));
		m->g.k.kvm = -1;
		m->g.k.vm = -1;
		m->g.k.vcpu = -1;
		m->g.size = NGFN * PS_PAGE;
		m->g.fd = ps_open();
		m->g.mem = m->g.fd < 0 ? MAP_FAILED : ps_map(m->g.fd, m->g.size, 0);
		if (m->g.mem == MAP_FAILED)
			fail("creating a VM: %s", strerror(errno));
		ps_load_code(m->g.mem + PS_CODE_GPA);
	}
	for (g = 0; g < NGFN; g++)
		m->frame[g] = -1;
	m->frame[1] = new_frame((struct content){ .kind = C_CODE });
	m->cow_breaks = 0;

	/*
	 * Punches go through a second file of the VM, one PAGESHARE_OPEN_VM
	 * made, so that its fallocate() is exercised as much as the owner's.
	 */
	{
		struct pageshare_open_vm o = { 0 };
		struct pageshare_vm_info info;

		if (ps_info(m->g.fd, &info))
			fail("GET_INFO: %s", strerror(errno));
		o.id = info.id;
		m->pfd = ioctl(m->g.fd, PAGESHARE_OPEN_VM, &o);
		if (m->pfd < 0)
			fail("OPEN_VM: %s", strerror(errno));
	}

	/*
	 * ps_open() put the VM in the test's share group. Some VMs leave it,
	 * some refuse sharing inside themselves.
	 */
	m->nointra = !rn(6);
	if (ps_get_group(m->g.fd, &m->group))
		fail("GET_POLICY: %s", strerror(errno));
	if (!rn(6))
		m->group = 0;
	if (ps_set_policy(m->g.fd, m->group,
			  m->nointra ? PAGESHARE_POLICY_NO_INTRA_VM : 0, NULL))
		fail("SET_POLICY: %s", strerror(errno));
}

static void vm_destroy(struct mvm *m)
{
	int g;

	close(m->pfd);
	ps_guest_destroy(&m->g);
	for (g = 0; g < NGFN; g++)
		if (m->frame[g] >= 0)
			drop_sharer(m->frame[g]);
}

static int pick_gfn(void)
{
	return FIRST_GFN + rn(NGFN - FIRST_GFN);
}

/* A handle for (vm, gfn): usually the current one, sometimes a stale one. */
static uint64_t pick_handle(struct mvm *m, int gfn)
{
	int f = m->frame[gfn];

	if (rn(10) < 8 && f >= 0 && frames[f].handle)
		return frames[f].handle;
	if (nhandles && rn(2))
		return handles[rn(nhandles < MAXHANDLES ? nhandles : MAXHANDLES)];
	return rnd() | 1;
}

/* How often each answer came: a test that never sees one is not testing it. */
static long outcomes[256];

static void expect(int ret, int want, const char *what)
{
	int got = ret ? errno : 0;

	outcomes[want & 255]++;
	if (got != want)
		fail("%s: kernel %s, model %s", what, got ? strerror(got) : "success",
		     want ? strerror(want) : "success");
}

static void op_nominate(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn(), f = m->frame[gfn];
	uint64_t h = 0, hash = 0;
	int ret;

	snprintf(op, sizeof(op), "nominate vm %ld gfn %d", m - vms, gfn);
	ret = ps_nominate(m->g.fd, gfn, &h, &hash);
	if (f < 0) {
		expect(ret, ENODATA, "nominate of a hole");
		return;
	}
	if (!frames[f].handle && frames[f].held) {
		/* A private page someone else holds may change behind a handle. */
		expect(ret, EBUSY, "nominate of a held page");
		return;
	}
	expect(ret, 0, "nominate");
	if (frames[f].handle) {
		if (h != frames[f].handle)
			fail("nominate returned %llu, current handle %llu",
			     (unsigned long long)h, (unsigned long long)frames[f].handle);
		return;
	}
	note_handle(h);
	frames[f].handle = h;
	snprintf(op + strlen(op), sizeof(op) - strlen(op), ": handle %llu",
		 (unsigned long long)h);
}

/* Whether VM @v has a gfn on frame @f. */
static bool has_on(const struct mvm *v, int f)
{
	int g;

	for (g = 0; g < NGFN; g++)
		if (v->frame[g] == f)
			return true;
	return false;
}

/* Whether frame @cf (or, for add_to_physmap, one gfn of @c) may join @sf. */
static bool no_intra_ok(int sf, int cf, const struct mvm *c, bool physmap)
{
	int v;

	for (v = 0; v < NVM; v++) {
		if (!vms[v].nointra)
			continue;
		if (physmap ? &vms[v] == c && has_on(c, sf) :
			      has_on(&vms[v], sf) && has_on(&vms[v], cf))
			return false;
	}
	return true;
}

/* Whether a VM other than @a and @b has a gfn on frame @f. */
static bool third_vm_on(int f, const struct mvm *a, const struct mvm *b)
{
	int v;

	for (v = 0; v < NVM; v++)
		if (&vms[v] != a && &vms[v] != b && has_on(&vms[v], f))
			return true;
	return false;
}

static bool busy(const struct mvm *m)
{
	int g;

	for (g = 0; g < NGFN; g++)
		if (m->frame[g] >= 0 && frames[m->frame[g]].sharers > 1)
			return true;
	return false;
}

static void op_share(bool physmap)
{
	struct mvm *s = &vms[rn(NVM)], *c = &vms[rn(NVM)];
	int sg = pick_gfn(), cg = pick_gfn();
	uint64_t sh = pick_handle(s, sg), ch = pick_handle(c, cg);
	int sf = s->frame[sg], cf = c->frame[cg], v, g, want, ret;
	bool compare = rn(2);

	snprintf(op, sizeof(op), "%s vm %ld gfn %d -> vm %ld gfn %d%s",
		 physmap ? "add_to_physmap" : "share", s - vms, sg, c - vms, cg,
		 compare && !physmap ? " (compare)" : "");
	if (!physmap && s == c && sg == cg)
		want = EINVAL;
	else if (s != c && (!s->group || s->group != c->group))
		want = EACCES;
	else if (sf < 0 || !frames[sf].handle || frames[sf].handle != sh)
		want = ESTALE;
	else if (physmap)
		want = cf >= 0 ? EEXIST : !no_intra_ok(sf, cf, c, true) ? EACCES : 0;
	else if (cf < 0 || !frames[cf].handle || frames[cf].handle != ch)
		want = EIDRM;
	else if (sf == cf)
		want = 0;
	else if (!no_intra_ok(sf, cf, c, false))
		want = EACCES;
	else if ((compare || third_vm_on(cf, s, c)) &&
		 !same_bytes(&frames[sf].c, &frames[cf].c))
		want = EILSEQ;	/* the kernel compares for a third VM's gfns */
	else
		want = 0;

	if (physmap)
		ret = ps_add_to_physmap(s->g.fd, sg, sh, c->g.fd, cg);
	else
		ret = ps_share(s->g.fd, sg, sh, c->g.fd, cg, ch,
			       compare ? PAGESHARE_SHARE_COMPARE : 0);
	expect(ret, want, op);
	if (want) {
		snprintf(op + strlen(op), sizeof(op) - strlen(op), ": %s", strerror(want));
		return;
	}
	if (physmap) {
		c->frame[cg] = sf;
		frames[sf].sharers++;
		return;
	}
	if (sf == cf)
		return;
	for (v = 0; v < NVM; v++)
		for (g = 0; g < NGFN; g++)
			if (vms[v].frame[g] == cf)
				vms[v].frame[g] = sf;
	frames[sf].sharers += frames[cf].sharers;
	frame_gone(cf);
}

static void op_unshare(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn(), f = m->frame[gfn];

	snprintf(op, sizeof(op), "unshare vm %ld gfn %d", m - vms, gfn);
	expect(ps_unshare(m->g.fd, gfn), 0, op);
	if (f >= 0 && frames[f].handle)
		model_write(m, gfn, frames[f].c);
}

/*
 * Discard one to three gfns, as a balloon does: each becomes a hole, its
 * private page goes (unless a pipe holds it) or it leaves its frame. Not
 * a copy-on-write break.
 */
static void op_punch(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn(), n = 1 + rn(3), g;

	if (gfn + n > NGFN)
		n = NGFN - gfn;
	snprintf(op, sizeof(op), "punch vm %ld gfns %d..%d", m - vms, gfn, gfn + n - 1);
	expect(fallocate(m->pfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 gfn * PS_PAGE, n * PS_PAGE), 0, op);
	for (g = gfn; g < gfn + n; g++) {
		if (m->frame[g] >= 0)
			drop_sharer(m->frame[g]);
		m->frame[g] = -1;
		check_query(m, g);
	}
}

static void op_host_write(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn();
	struct content c = { .kind = C_HOST, .a = rn(4) };	/* few tags: equal pages */

	snprintf(op, sizeof(op), "host write vm %ld gfn %d tag %u", m - vms, gfn, c.a);
	gen(&c, m->g.mem + gfn * PS_PAGE);
	model_write(m, gfn, c);
	check_bytes(m, gfn);
}

static void op_host_read(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn();

	snprintf(op, sizeof(op), "host read vm %ld gfn %d", m - vms, gfn);
	/* A hole stays one: the read maps a zero page. */
	check_bytes(m, gfn);
	check_query(m, gfn);
}

static void op_guest_write(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn();
	struct content c = { .kind = C_GUEST, .a = gfn, .b = rn(3) };

	snprintf(op, sizeof(op), "guest write vm %ld gfn %d seed %u", m - vms, gfn, c.b);
	if (ps_guest_fill(&m->g, gfn, 1, c.b))
		fail("guest: %s", m->g.err);
	model_write(m, gfn, c);
	check_bytes(m, gfn);
}

static void op_guest_read(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn();
	uint8_t want[PS_PAGE];
	uint32_t sum;

	snprintf(op, sizeof(op), "guest read vm %ld gfn %d", m - vms, gfn);
	if (ps_guest_sum(&m->g, gfn, 1, &sum))
		fail("guest: %s", m->g.err);
	if (m->frame[gfn] < 0)
		memset(want, 0, sizeof(want));	/* still a hole */
	else
		gen(&frames[m->frame[gfn]].c, want);
	if (sum != ps_host_sum(want, 1))
		fail("guest read sum %#x, model %#x", sum, ps_host_sum(want, 1));
}

static void op_guest(bool write)
{
	double t0 = now();

	if (write)
		op_guest_write();
	else
		op_guest_read();
	t_guest += now() - t0;
}

static void op_query(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn();

	snprintf(op, sizeof(op), "query vm %ld gfn %d", m - vms, gfn);
	check_query(m, gfn);
}

/* Leave or join a share group, or toggle no-intra-VM sharing. */
static void op_policy(void)
{
	struct mvm *m = &vms[rn(NVM)];
	uint64_t group = m->group;
	bool nointra = m->nointra;
	int v, want, ret;

	if (rn(2)) {
		nointra = !nointra;
	} else if (group) {
		group = 0;
	} else {
		for (v = 0; v < NVM; v++)
			if (vms[v].group)
				group = vms[v].group;
	}
	snprintf(op, sizeof(op), "policy vm %ld: group %#llx%s", m - vms,
		 (unsigned long long)group, nointra ? ", no intra-VM sharing" : "");
	want = (group != m->group || nointra != m->nointra) && busy(m) ? EBUSY : 0;
	if (!group && !m->group && rn(2) && want == 0 && nointra == m->nointra) {
		/* No group anywhere: make one. */
		ret = ps_set_policy(m->g.fd, 0, PAGESHARE_POLICY_NEW_GROUP |
				    (nointra ? PAGESHARE_POLICY_NO_INTRA_VM : 0), &group);
		expect(ret, busy(m) ? EBUSY : 0, op);
		if (!ret)
			m->group = group;
		return;
	}
	ret = ps_set_policy(m->g.fd, group, nointra ? PAGESHARE_POLICY_NO_INTRA_VM : 0,
			    NULL);
	expect(ret, want, op);
	if (!ret) {
		m->group = group;
		m->nointra = nointra;
	}
}

/* The pipe hands back what the page holds now, and lets go of it. */
static void op_release(int i)
{
	struct hold h = holds[i];
	uint8_t want[PS_PAGE], got[PS_PAGE];

	snprintf(op, sizeof(op), "read and close the pipe holding page %d", h.f);
	if (read(h.pipe[0], got, PS_PAGE) != PS_PAGE)
		fail("reading a pipe: %s", strerror(errno));
	if (h.f < 0)
		memset(want, 0, sizeof(want));	/* a hole's zero page */
	else
		gen(&frames[h.f].c, want);
	if (memcmp(want, got, PS_PAGE))
		fail("a pipe read bytes its page never held (page %d)", h.f);
	close(h.pipe[0]);
	close(h.pipe[1]);
	holds[i] = holds[--nholds];
	if (h.f >= 0 && !--frames[h.f].held && !frames[h.f].sharers)
		frames[h.f].used = false;
}

/* The VMM vmsplice()s a gfn's page into a pipe and keeps it there. */
static void op_hold(void)
{
	struct mvm *m = &vms[rn(NVM)];
	int gfn = pick_gfn(), f = m->frame[gfn];
	struct iovec iov = { .iov_base = m->g.mem + gfn * PS_PAGE, .iov_len = PS_PAGE };
	struct hold *h;

	if (nholds == MAXHOLDS)
		op_release(rn(MAXHOLDS));
	snprintf(op, sizeof(op), "vmsplice vm %ld gfn %d into a pipe", m - vms, gfn);
	/* A hole: the read maps the VM's zero page, and the pipe holds that. */
	h = &holds[nholds];
	if (pipe(h->pipe) || vmsplice(h->pipe[1], &iov, 1, 0) != PS_PAGE)
		fail("vmsplice: %s", strerror(errno));
	h->f = f;
	if (f >= 0)
		frames[f].held++;
	nholds++;
}

static void op_recreate(void)
{
	struct mvm *m = &vms[rn(NVM)];

	snprintf(op, sizeof(op), "tear down and re-create vm %ld", m - vms);
	vm_destroy(m);
	vm_create(m);
}

static void full_check(void)
{
	int v, g;

	for (v = 0; v < NVM; v++) {
		for (g = FIRST_GFN; g < NGFN; g++) {
			check_query(&vms[v], g);
			check_bytes(&vms[v], g);
		}
	}
}

int main(int argc, char **argv)
{
	long ops = getenv("STRESS_OPS") ? atol(getenv("STRESS_OPS")) : 100000;
	int opt, audit_errors = 0, r, v;
	double t0, start = now();

	seed = getenv("STRESS_SEED") ? strtoul(getenv("STRESS_SEED"), NULL, 0) : 1;
	while ((opt = getopt(argc, argv, "s:n:")) != -1) {
		if (opt == 's')
			seed = strtoul(optarg, NULL, 0);
		else if (opt == 'n')
			ops = atol(optarg);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	ksft_set_plan(1);
	if (access(PS_DEV, F_OK))
		ksft_exit_skip(PS_DEV " is missing: load pageshare.ko\n");
	have_kvm = !access("/dev/kvm", F_OK) && !getenv("STRESS_NO_KVM");
	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	ksft_print_msg("stress: seed %lu, %ld operations, %d VMs, %s\n", seed, ops,
		       NVM, have_kvm ? "KVM guests" : "no KVM: host writes only");

	for (v = 0; v < NVM; v++)
		vm_create(&vms[v]);

	for (step = 0; step < ops; step++) {
		r = rn(1000);
		if (r < 220)
			op_nominate();
		else if (r < 420)
			op_share(false);
		else if (r < 480)
			op_share(true);
		else if (r < 560)
			op_unshare();
		else if (r < 800)
			op_host_write();
		else if (r < 870)
			op_host_read();
		else if (r < 925)
			op_query();
		else if (r < 950)
			op_punch();
		else if (r < 990 && have_kvm)
			op_guest(r < 970);
		else if (r >= 997)
			op_recreate();
		else if (r >= 994)
			op_policy();
		else if (r >= 992)
			op_hold();
		else if (r >= 990 && nholds)
			op_release(rn(nholds));
		else
			op_query();

		memcpy(history[step % 16], op, sizeof(op));
		t0 = now();
		check_counters();
		t_check += now() - t0;
		t0 = now();
		r = ps_audit(vms[0].g.fd);
		t_audit += now() - t0;
		if (r) {
			audit_errors += r > 0 ? r : 1;
			fail("audit: %d", r);
		}
		if (step % FULL_CHECK == FULL_CHECK - 1)
			full_check();
	}
	snprintf(op, sizeof(op), "final check");
	full_check();
	for (v = 0; v < NVM; v++)
		vm_destroy(&vms[v]);
	while (nholds)
		op_release(nholds - 1);
	if (ps_sysfs_read("shared_frames") != 0 || ps_sysfs_read("saved_frames") != 0)
		fail("frames left after every VM went: %ld shared, %ld saved",
		     ps_sysfs_read("shared_frames"), ps_sysfs_read("saved_frames"));

	ksft_print_msg("stress: %.1f s: %.1f in audits, %.1f in guests, %.1f in counter checks\n",
		       now() - start, t_audit, t_guest, t_check);
	ksft_print_msg("stress: answers: %ld success, %ld ESTALE, %ld EIDRM, %ld EILSEQ, %ld EEXIST, %ld ENODATA, %ld EINVAL, %ld EACCES, %ld EBUSY\n",
		       outcomes[0], outcomes[ESTALE], outcomes[EIDRM], outcomes[EILSEQ],
		       outcomes[EEXIST], outcomes[ENODATA], outcomes[EINVAL],
		       outcomes[EACCES], outcomes[EBUSY]);
	printf("# stress: ops=%ld audit_errors=%d\n", step, audit_errors);
	ksft_test_result_pass("stress seed %lu: %ld operations, model and audit agree\n",
			      seed, step);
	ksft_finished();
}
