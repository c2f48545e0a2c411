// SPDX-License-Identifier: GPL-2.0
/*
 * The deduplication agent: one pass over a set of VMs.
 *
 * 1. Open each VM by id and read its share group and policy. A VM's share
 *    scope is its group, or, for group 0, the VM alone.
 * 2. Nominate every gfn with PAGESHARE_NOMINATE_HASH, in batches, at most
 *    max_pages_per_sec a second. Holes (ENODATA), pinned pages (EBUSY) and
 *    pages with a memory error (EHWPOISON) are counted and skipped.
 * 3. Sort the nominated gfns by (scope, hash). In each group of equal
 *    hashes the source is the gfn of the lowest VM id, then the lowest
 *    gfn: the frame that survives a share is the source's, and picking it
 *    by a rule no guest controls keeps a guest from steering another VM's
 *    pages onto a frame it has found to be vulnerable to Rowhammer
 *    (Documentation/virt/pageshare/security.rst). Every other gfn of the
 *    group is shared into it with PAGESHARE_SHARE_COMPARE, so a hash
 *    collision is refused by the kernel (EILSEQ) and left alone. Zero pages
 *    need no special case: they all hash alike, so each scope's zero pages
 *    end up on one frame.
 * 4. Pages written between nominate and share: a client (EIDRM) is
 *    nominated again and retried once if its hash is unchanged; a source
 *    (ESTALE) gives way to the next page of its group. Pages refused by
 *    the compare may be equal among themselves: they get a source of their
 *    own. A frame full at max_sharers (EMLINK) is left as it is, and the
 *    next page starts a new one.
 * 5. Every nominated gfn that ends up alone on its frame (no equal, or its
 *    share refused) is unshared, which makes it private again without a
 *    copy and frees the frame's metadata.
 *
 * gfns already on one frame (from an earlier pass) nominate to one handle.
 * They are moved by one share, and gfns already on the source's frame are
 * left as they are, so a second pass over unchanged VMs changes nothing.
 */

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedup.h"
#include "pageshare.h"

#ifndef __printf
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#endif

/* What became of a nominated gfn. */
enum dd_state {
	DD_PENDING,	/* not yet shared or refused */
	DD_RENOM,	/* EIDRM: waiting to be nominated again */
	DD_SOURCE,	/* the source of its group */
	DD_SHARED,	/* moved onto the source's frame */
	DD_ALREADY,	/* on the source's frame before the pass */
	DD_ALONE,	/* nothing else in its scope has its hash */
	DD_UNPAIRED,	/* a source whose every share was refused */
	DD_DIFFER,	/* EILSEQ: same hash, other bytes */
	DD_STALE,	/* written during the pass */
	DD_BUSY,	/* EBUSY: pinned */
	DD_POLICY,	/* EACCES, or kept off the frame for no-intra-VM */
	DD_ERROR,	/* any other error */
};

struct dd_page {
	uint64_t hash;
	uint64_t handle;
	uint64_t gfn;
	uint32_t scope;
	uint32_t vm;		/* index in dd_pass::vms, which is sorted by id */
	uint8_t state;
	uint8_t retried;
};

struct dd_vm {
	uint64_t id;
	int fd;
	uint64_t pages;
	uint64_t group;
	uint32_t flags;
	uint32_t scope;
	uint64_t mark;		/* no-intra-VM bookkeeping of dd_run_setup() */
};

#define DD_NONE ((size_t)-1)

/* A group of two or more nominated gfns with one scope and hash. */
struct dd_run {
	size_t start;
	size_t end;
	size_t src;		/* the source's index, or DD_NONE */
	uint64_t src_handle;	/* the source's handle: its frame's */
	uint64_t dead_handle;	/* a frame found gone by promoting from it */
	bool src_from_frame;	/* the source was promoted from the old frame */
	unsigned int classes;	/* sets of equal bytes tried after EILSEQ */
};

/*
 * Pages of one hash refused by the compare (EILSEQ) get another source
 * among themselves, for a few distinct contents per hash: real collisions
 * of a 64-bit hash are rare, and a guest that makes many on purpose must
 * not make a pass quadratic.
 */
#define DD_MAX_CLASSES	4

struct dd_pass {
	const struct dedup_backend *be;
	const struct dedup_config *cfg;
	struct dedup_result *res;
	struct dedup_clock clock;
	size_t page_size;
	size_t nom_batch;
	size_t share_batch;
	size_t rel_batch;
	uint64_t zero_hash;

	struct dd_vm *vms;
	size_t nr_vms;
	bool any_no_intra;
	uint64_t mark;

	struct dd_page *pages;
	size_t nr_pages;
	size_t cap_pages;
	struct dd_run *runs;
	size_t nr_runs;

	/* The rate limit: a token bucket of nominations. */
	double rate;
	double tokens;
	double burst;
	uint64_t last_ns;

	/* Nominations: the scan's batch, then the retries after EIDRM. */
	struct pageshare_nominate *nom;
	struct pageshare_nominate *renom;
	size_t *renom_page;
	size_t nr_renom;

	/* The share batch being filled, and each entry's gfn and group. */
	struct pageshare_share *ops;
	size_t *op_page;
	struct dd_run **op_run;
	size_t nr_ops;
	uint64_t runs_done;
	uint64_t runs_total;
};

/* xxHash64, as lib/xxhash.c in the kernel, which hashes the pages. */
#define XXH_P1 0x9E3779B185EBCA87ULL
#define XXH_P2 0xC2B2AE3D27D4EB4FULL
#define XXH_P3 0x165667B19E3779F9ULL
#define XXH_P4 0x85EBCA77C2B2AE63ULL
#define XXH_P5 0x27D4EB2F165667C5ULL

static uint64_t xxh_rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_read64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t xxh_read32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
	acc += input * XXH_P2;
	acc = xxh_rotl(acc, 31);
	return acc * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
	acc ^= xxh_round(0, val);
	return acc * XXH_P1 + XXH_P4;
}

uint64_t dedup_xxh64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data, *end = p + len;
	uint64_t h;

	if (len >= 32) {
		const unsigned char *limit = end - 32;
		uint64_t v1 = seed + XXH_P1 + XXH_P2;
		uint64_t v2 = seed + XXH_P2;
		uint64_t v3 = seed;
		uint64_t v4 = seed - XXH_P1;

		do {
			v1 = xxh_round(v1, xxh_read64(p));
			v2 = xxh_round(v2, xxh_read64(p + 8));
			v3 = xxh_round(v3, xxh_read64(p + 16));
			v4 = xxh_round(v4, xxh_read64(p + 24));
			p += 32;
		} while (p <= limit);
		h = xxh_rotl(v1, 1) + xxh_rotl(v2, 7) + xxh_rotl(v3, 12) + xxh_rotl(v4, 18);
		h = xxh_merge(h, v1);
		h = xxh_merge(h, v2);
		h = xxh_merge(h, v3);
		h = xxh_merge(h, v4);
	} else {
		h = seed + XXH_P5;
	}
	h += len;
	while (p + 8 <= end) {
		h ^= xxh_round(0, xxh_read64(p));
		h = xxh_rotl(h, 27) * XXH_P1 + XXH_P4;
		p += 8;
	}
	if (p + 4 <= end) {
		h ^= (uint64_t)xxh_read32(p) * XXH_P1;
		h = xxh_rotl(h, 23) * XXH_P2 + XXH_P3;
		p += 4;
	}
	while (p < end) {
		h ^= *p * XXH_P5;
		h = xxh_rotl(h, 11) * XXH_P1;
		p++;
	}
	h ^= h >> 33;
	h *= XXH_P2;
	h ^= h >> 29;
	h *= XXH_P3;
	h ^= h >> 32;
	return h;
}

static uint64_t dd_real_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* One nanosleep(): a signal ends it early, so that a stop request is seen. */
static void dd_real_sleep(void *ctx, uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = ns / 1000000000ULL,
		.tv_nsec = ns % 1000000000ULL,
	};

	(void)ctx;
	nanosleep(&ts, NULL);
}

struct dedup_clock dedup_real_clock(void)
{
	struct dedup_clock c = { .now_ns = dd_real_now, .sleep_ns = dd_real_sleep };

	return c;
}

uint64_t dedup_skipped(const struct dedup_result *res)
{
	return res->holes + res->busy + res->differ + res->stale + res->policy + res->errors;
}

double dedup_saved_mib(const struct dedup_result *res, size_t page_size)
{
	double frames = res->saved_known ? (double)res->saved_delta : (double)res->freed;

	return frames * (double)(page_size ? page_size : 4096) / (1024.0 * 1024.0);
}

static bool dd_stopped(const struct dd_pass *p)
{
	return p->cfg->stop && __atomic_load_n(p->cfg->stop, __ATOMIC_RELAXED);
}

__printf(4, 5)
static int dd_fail(struct dd_pass *p, int err, enum pageshare_op op, const char *fmt, ...)
{
	va_list ap;

	if (p->res->err)
		return p->res->err;
	p->res->err = err;
	p->res->err_op = op;
	va_start(ap, fmt);
	vsnprintf(p->res->err_what, sizeof(p->res->err_what), fmt, ap);
	va_end(ap);
	return err;
}

__printf(2, 3)
static void dd_notice(struct dd_pass *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!p->cfg->notice)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->cfg->notice(p->cfg->cb_ctx, msg);
}

static void dd_progress(struct dd_pass *p, enum dedup_event ev, uint64_t vm_id, uint64_t done,
			uint64_t total)
{
	struct dedup_progress pr = { .event = ev, .vm_id = vm_id, .done = done, .total = total };

	if (p->cfg->progress)
		p->cfg->progress(p->cfg->cb_ctx, &pr);
}

/*
 * Take @n tokens, sleeping for those missing. The bucket holds one batch,
 * so nominations come in batches spread evenly over each second.
 */
static void dd_throttle(struct dd_pass *p, size_t n)
{
	uint64_t now;

	if (p->rate <= 0)
		return;
	now = p->clock.now_ns(p->clock.ctx);
	p->tokens += (double)(now - p->last_ns) * p->rate / 1e9;
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	p->last_ns = now;
	p->tokens -= (double)n;
	if (p->tokens >= 0)
		return;
	p->clock.sleep_ns(p->clock.ctx, (uint64_t)(-p->tokens / p->rate * 1e9 + 0.5));
	now = p->clock.now_ns(p->clock.ctx);
	p->tokens += (double)(now - p->last_ns) * p->rate / 1e9;
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	p->last_ns = now;
}

static int dd_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Open the VMs, lowest id first, and work out their share scopes. */
static int dd_open_vms(struct dd_pass *p)
{
	const struct dedup_backend *be = p->be;
	uint64_t *ids = NULL;
	size_t n, i, j, nr_scopes = 0;
	int ret;

	if (p->cfg->nr_vm_ids) {
		n = p->cfg->nr_vm_ids;
		ids = malloc(n * sizeof(*ids));
		if (!ids)
			return dd_fail(p, -ENOMEM, PAGESHARE_OP_OPEN_VM, "VM list");
		memcpy(ids, p->cfg->vm_ids, n * sizeof(*ids));
	} else {
		ret = be->list_vms(be->ctx, &ids, &n);
		if (ret)
			return dd_fail(p, ret, PAGESHARE_OP_SYSFS, "list VMs");
	}
	if (n)
		qsort(ids, n, sizeof(*ids), dd_cmp_u64);
	p->vms = calloc(n ? n : 1, sizeof(*p->vms));
	if (!p->vms) {
		free(ids);
		return dd_fail(p, -ENOMEM, PAGESHARE_OP_OPEN_VM, "VM list");
	}
	for (i = 0; i < n; i++) {
		struct dd_vm *vm = &p->vms[p->nr_vms];
		uint64_t size;
		int fd;

		if (i && ids[i] == ids[i - 1])
			continue;
		fd = be->open_vm(be->ctx, ids[i]);
		if (fd == -ESRCH) {
			/* The VM exited since it was listed. */
			p->res->vms_gone++;
			dd_notice(p, "VM %llu is gone, skipped", (unsigned long long)ids[i]);
			continue;
		}
		if (fd < 0) {
			ret = dd_fail(p, fd, PAGESHARE_OP_OPEN_VM, "open VM %llu",
				      (unsigned long long)ids[i]);
			goto out;
		}
		vm->id = ids[i];
		vm->fd = fd;
		p->nr_vms++;
		ret = be->get_size(be->ctx, fd, &size);
		if (ret) {
			dd_fail(p, ret, PAGESHARE_OP_GET_INFO, "VM %llu",
				(unsigned long long)vm->id);
			goto out;
		}
		ret = be->get_policy(be->ctx, fd, &vm->group, &vm->flags);
		if (ret) {
			dd_fail(p, ret, PAGESHARE_OP_GET_POLICY, "VM %llu",
				(unsigned long long)vm->id);
			goto out;
		}
		vm->pages = size / p->page_size;
		/*
		 * A VM without memory (a control descriptor, a VMM that has
		 * not sized it yet) has nothing to scan, and one that shares
		 * with no VM and not within itself has nothing to share.
		 */
		if (!vm->pages || (!vm->group && (vm->flags & PAGESHARE_POLICY_NO_INTRA_VM))) {
			if (vm->pages)
				dd_notice(p, "VM %llu shares with no VM and not within itself, skipped",
					  (unsigned long long)vm->id);
			be->close_vm(be->ctx, fd);
			p->nr_vms--;
			p->res->vms_skipped++;
			continue;
		}
		if (vm->flags & PAGESHARE_POLICY_NO_INTRA_VM)
			p->any_no_intra = true;
		vm->scope = nr_scopes;
		for (j = 0; vm->group && j < p->nr_vms - 1; j++) {
			if (p->vms[j].group == vm->group) {
				vm->scope = p->vms[j].scope;
				break;
			}
		}
		if (vm->scope == nr_scopes)
			nr_scopes++;
	}
	ret = 0;
out:
	free(ids);
	p->res->vms = p->nr_vms;
	return ret;
}

static void dd_close_vms(struct dd_pass *p)
{
	size_t i;

	for (i = 0; i < p->nr_vms; i++)
		p->be->close_vm(p->be->ctx, p->vms[i].fd);
}

static int dd_add_page(struct dd_pass *p, uint32_t vi, const struct pageshare_nominate *e)
{
	struct dd_page *pg;

	if (p->nr_pages == p->cap_pages) {
		size_t cap = p->cap_pages ? 2 * p->cap_pages : 4096;

		pg = realloc(p->pages, cap * sizeof(*pg));
		if (!pg)
			return -ENOMEM;
		p->pages = pg;
		p->cap_pages = cap;
	}
	pg = &p->pages[p->nr_pages++];
	memset(pg, 0, sizeof(*pg));
	pg->hash = e->hash;
	pg->handle = e->handle;
	pg->gfn = e->gfn;
	pg->vm = vi;
	pg->scope = p->vms[vi].scope;
	pg->state = DD_PENDING;
	return 0;
}

static int dd_nominate_vm(struct dd_pass *p, uint32_t vi, uint64_t *done, uint64_t total)
{
	struct dd_vm *vm = &p->vms[vi];
	struct dedup_result *res = p->res;
	uint64_t gfn = 0;
	size_t i, n;
	int ret;

	dd_progress(p, DEDUP_EV_VM, vm->id, 0, vm->pages);
	while (gfn < vm->pages && !dd_stopped(p)) {
		bool past_end = false;

		n = vm->pages - gfn < p->nom_batch ? vm->pages - gfn : p->nom_batch;
		dd_throttle(p, n);
		if (dd_stopped(p))
			break;
		memset(p->nom, 0, n * sizeof(*p->nom));
		for (i = 0; i < n; i++) {
			p->nom[i].vm = vm->fd;
			p->nom[i].flags = PAGESHARE_NOMINATE_HASH;
			p->nom[i].gfn = gfn + i;
		}
		res->nominate_calls++;
		ret = p->be->nominate(p->be->ctx, p->nom, n);
		if (ret)
			return dd_fail(p, ret, PAGESHARE_OP_BATCH, "nominate VM %llu",
				       (unsigned long long)vm->id);
		res->scanned += n;
		for (i = 0; i < n; i++) {
			switch (p->nom[i].result) {
			case 0:
				if (dd_add_page(p, vi, &p->nom[i]))
					return dd_fail(p, -ENOMEM, PAGESHARE_OP_NOMINATE,
						       "VM %llu", (unsigned long long)vm->id);
				res->candidates++;
				break;
			case -ENODATA:
				res->holes++;
				break;
			case -EBUSY:
			case -EHWPOISON:	/* a memory error: never shared */
				res->busy++;
				break;
			case -ENXIO:
				/* The VM shrank under us: no gfns past here. */
				res->holes++;
				past_end = true;
				break;
			default:
				res->errors++;
				break;
			}
		}
		gfn += n;
		*done += n;
		dd_progress(p, DEDUP_EV_NOMINATE, vm->id, *done, total);
		if (past_end)
			break;
	}
	return 0;
}

static int dd_cmp_page(const void *a, const void *b)
{
	const struct dd_page *x = a, *y = b;

	if (x->scope != y->scope)
		return x->scope < y->scope ? -1 : 1;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	/* Equal handles, one frame: next to each other, to be moved by one share. */
	if (x->handle != y->handle)
		return x->handle < y->handle ? -1 : 1;
	if (x->vm != y->vm)
		return x->vm < y->vm ? -1 : 1;
	return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

/* Lower VM id (the VMs are sorted by id), then lower gfn. */
static bool dd_before(const struct dd_page *x, const struct dd_page *y)
{
	return x->vm < y->vm || (x->vm == y->vm && x->gfn < y->gfn);
}

static struct dd_vm *dd_page_vm(struct dd_pass *p, const struct dd_page *pg)
{
	return &p->vms[pg->vm];
}

/* Sort the nominated gfns and cut them into groups of two or more. */
static int dd_make_runs(struct dd_pass *p)
{
	size_t i, j, n = 0;

	if (!p->nr_pages)
		return 0;
	qsort(p->pages, p->nr_pages, sizeof(*p->pages), dd_cmp_page);
	for (i = 0; i < p->nr_pages; i = j) {
		for (j = i + 1; j < p->nr_pages; j++)
			if (p->pages[j].scope != p->pages[i].scope ||
			    p->pages[j].hash != p->pages[i].hash)
				break;
		if (j - i >= 2)
			n++;
		else
			p->pages[i].state = DD_ALONE;
	}
	p->runs = calloc(n ? n : 1, sizeof(*p->runs));
	if (!p->runs)
		return -ENOMEM;
	for (i = 0; i < p->nr_pages; i = j) {
		for (j = i + 1; j < p->nr_pages; j++)
			if (p->pages[j].scope != p->pages[i].scope ||
			    p->pages[j].hash != p->pages[i].hash)
				break;
		if (j - i < 2)
			continue;
		p->runs[p->nr_runs].start = i;
		p->runs[p->nr_runs].end = j;
		p->runs[p->nr_runs].src = DD_NONE;
		p->nr_runs++;
	}
	return 0;
}

/*
 * A no-intra-VM VM may have one gfn on a frame: keep the others of the
 * group off it before the kernel refuses them (EACCES). Moving a client
 * moves every gfn of its frame, so the test is per frame (per handle).
 */
static void dd_filter_no_intra(struct dd_pass *p, struct dd_run *r)
{
	size_t i, j;
	uint64_t mark = ++p->mark;

	for (i = r->start; i < r->end; i++) {
		struct dd_page *pg = &p->pages[i];

		if (pg->handle == r->src_handle)
			dd_page_vm(p, pg)->mark = mark;
	}
	for (i = r->start; i < r->end; i = j) {
		bool clash = false;

		for (j = i; j < r->end && p->pages[j].handle == p->pages[i].handle; j++) {
			struct dd_vm *vm = dd_page_vm(p, &p->pages[j]);

			if (p->pages[j].state == DD_PENDING &&
			    (vm->flags & PAGESHARE_POLICY_NO_INTRA_VM) && vm->mark == mark)
				clash = true;
		}
		if (p->pages[i].handle == r->src_handle)
			continue;
		for (j = i; j < r->end && p->pages[j].handle == p->pages[i].handle; j++) {
			if (clash)
				p->pages[j].state = DD_POLICY;
			else
				dd_page_vm(p, &p->pages[j])->mark = mark;
		}
	}
}

/*
 * Choose a group's source. The first is its lowest page. After the source
 * went stale (written), the lowest page already moved onto its frame takes
 * over, which keeps that frame and the gfns on it; when there is none, or
 * that frame turned out gone as well, the lowest page not yet shared.
 */
static bool dd_pick_source(struct dd_pass *p, struct dd_run *r)
{
	uint64_t old = r->src_handle;
	size_t i, best = DD_NONE;
	bool from_frame = false;

	if (old && old != r->dead_handle) {
		for (i = r->start; i < r->end; i++) {
			const struct dd_page *pg = &p->pages[i];

			if (pg->state != DD_SHARED && pg->state != DD_ALREADY)
				continue;
			if (pg->handle != old)
				continue;
			if (best == DD_NONE || dd_before(pg, &p->pages[best]))
				best = i;
		}
		from_frame = best != DD_NONE;
	}
	if (best == DD_NONE) {
		for (i = r->start; i < r->end; i++) {
			const struct dd_page *pg = &p->pages[i];

			if (pg->state == DD_PENDING &&
			    (best == DD_NONE || dd_before(pg, &p->pages[best])))
				best = i;
		}
	}
	if (best == DD_NONE)
		return false;
	p->pages[best].state = DD_SOURCE;
	r->src = best;
	r->src_handle = p->pages[best].handle;
	r->src_from_frame = from_frame;
	if (!old && p->any_no_intra)
		dd_filter_no_intra(p, r);
	return true;
}

/* Give a share's outcome to its client and to the gfns on the client's frame. */
static void dd_mark_frame(struct dd_pass *p, struct dd_run *r, size_t i, uint64_t handle,
			  enum dd_state state, uint64_t new_handle)
{
	size_t j;

	for (j = i; j < r->end; j++) {
		struct dd_page *pg = &p->pages[j];

		if (j > i && (pg->state != DD_PENDING || pg->handle != handle))
			break;
		pg->state = state;
		if (state == DD_SHARED)
			pg->handle = new_handle;
	}
}

/* Whether a gfn of the group is on the source's frame besides the source. */
static bool dd_src_paired(const struct dd_pass *p, const struct dd_run *r)
{
	size_t i;

	for (i = r->start; i < r->end; i++) {
		const struct dd_page *pg = &p->pages[i];

		if ((pg->state == DD_SHARED || pg->state == DD_ALREADY) &&
		    pg->handle == r->src_handle)
			return true;
	}
	return false;
}

static void dd_share_result(struct dd_pass *p, size_t k)
{
	const struct pageshare_share *op = &p->ops[k];
	struct dd_run *r = p->op_run[k];
	size_t i = p->op_page[k];
	struct dd_page *pg = &p->pages[i];
	enum dd_state state;

	switch (op->result) {
	case 0:
		state = DD_SHARED;
		p->res->freed++;
		break;
	case -EILSEQ:
		state = DD_DIFFER;
		break;
	case -EBUSY:
	case -EHWPOISON:
		state = DD_BUSY;
		break;
	case -EACCES:
		state = DD_POLICY;
		break;
	case -EIDRM:
		/*
		 * The client was written since its nominate. If its bytes
		 * are still the group's, a new handle will do: nominate it
		 * again (after this batch) and retry once.
		 */
		if (pg->retried) {
			pg->state = DD_STALE;
		} else {
			pg->state = DD_RENOM;
			memset(&p->renom[p->nr_renom], 0, sizeof(p->renom[0]));
			p->renom[p->nr_renom].vm = dd_page_vm(p, pg)->fd;
			p->renom[p->nr_renom].flags = PAGESHARE_NOMINATE_HASH;
			p->renom[p->nr_renom].gfn = pg->gfn;
			p->renom_page[p->nr_renom++] = i;
		}
		return;
	case -ESTALE:
		/*
		 * The source was written: the next page takes over. Its other
		 * entries in this batch failed alike; the first one counts.
		 */
		if (r->src != DD_NONE && r->src_handle == op->src_handle) {
			p->pages[r->src].state = DD_STALE;
			if (r->src_from_frame)
				r->dead_handle = r->src_handle;
			r->src = DD_NONE;
		}
		return;
	case -EMLINK:
		/*
		 * The source's frame has max_sharers gfns: it stays as it is,
		 * and the next page not yet shared starts a new frame.
		 */
		if (r->src != DD_NONE && r->src_handle == op->src_handle) {
			if (!dd_src_paired(p, r))
				p->pages[r->src].state = DD_UNPAIRED;
			r->dead_handle = r->src_handle;
			r->src = DD_NONE;
		}
		return;
	default:
		state = DD_ERROR;
		break;
	}
	dd_mark_frame(p, r, i, op->client_handle, state, op->src_handle);
}

static int dd_flush_renom(struct dd_pass *p)
{
	size_t k, n = p->nr_renom;
	int ret;

	if (!n)
		return 0;
	p->nr_renom = 0;
	dd_throttle(p, n);
	p->res->nominate_calls++;
	ret = p->be->nominate(p->be->ctx, p->renom, n);
	if (ret)
		return dd_fail(p, ret, PAGESHARE_OP_BATCH, "nominate again");
	for (k = 0; k < n; k++) {
		const struct pageshare_nominate *e = &p->renom[k];
		struct dd_page *pg = &p->pages[p->renom_page[k]];

		pg->retried = 1;
		if (e->result == -EBUSY) {
			pg->state = DD_BUSY;
		} else if (e->result) {
			pg->state = DD_ERROR;
		} else if (e->hash != pg->hash) {
			/* Rewritten with other bytes: not this group's any more. */
			pg->state = DD_STALE;
		} else {
			pg->state = DD_PENDING;
			pg->handle = e->handle;
			p->res->retried++;
		}
	}
	return 0;
}

static int dd_flush_ops(struct dd_pass *p)
{
	size_t k, n = p->nr_ops;
	int ret;

	if (!n)
		return 0;
	p->nr_ops = 0;
	p->res->share_calls++;
	ret = p->be->share(p->be->ctx, p->ops, n);
	if (ret)
		return dd_fail(p, ret, PAGESHARE_OP_BATCH, "share");
	for (k = 0; k < n; k++)
		dd_share_result(p, k);
	ret = dd_flush_renom(p);
	dd_progress(p, DEDUP_EV_SHARE, 0, p->runs_done, p->runs_total);
	return ret;
}

/*
 * Queue a share for every frame of the group not yet on the source's: one
 * per client handle, for the first of its gfns (the others move with it).
 */
static int dd_run_ops(struct dd_pass *p, struct dd_run *r)
{
	size_t i, src = r->src;
	int ret;

	for (i = r->start; i < r->end; i++) {
		struct dd_page *pg = &p->pages[i];
		const struct dd_page *sp;
		struct pageshare_share *op;

		if (pg->state != DD_PENDING)
			continue;
		if (pg->handle == r->src_handle) {
			pg->state = DD_ALREADY;
			continue;
		}
		if (i > r->start && pg[-1].state == DD_PENDING && pg[-1].handle == pg->handle)
			continue;
		if (p->nr_ops == p->share_batch) {
			ret = dd_flush_ops(p);
			if (ret)
				return ret;
			/* Its source went stale: next round. */
			if (r->src != src)
				return 0;
			if (pg->state != DD_PENDING)
				continue;
		}
		sp = &p->pages[src];
		op = &p->ops[p->nr_ops];
		memset(op, 0, sizeof(*op));
		op->src_vm = dd_page_vm(p, sp)->fd;
		op->src_gfn = sp->gfn;
		op->src_handle = r->src_handle;
		op->client_vm = dd_page_vm(p, pg)->fd;
		op->client_gfn = pg->gfn;
		op->client_handle = pg->handle;
		op->flags = PAGESHARE_SHARE_COMPARE;
		p->op_page[p->nr_ops] = i;
		p->op_run[p->nr_ops] = r;
		p->nr_ops++;
	}
	return 0;
}

/*
 * Whether a group has work left. When only pages refused by the compare
 * are left, two or more of them may still be equal to each other: they
 * start over, with their own source.
 */
static bool dd_run_pending(struct dd_pass *p, struct dd_run *r)
{
	size_t i, differ = 0;

	for (i = r->start; i < r->end; i++) {
		if (p->pages[i].state == DD_PENDING)
			return true;
		differ += p->pages[i].state == DD_DIFFER;
	}
	if (differ < 2 || r->classes >= DD_MAX_CLASSES)
		return false;
	if (r->src != DD_NONE && !dd_src_paired(p, r))
		p->pages[r->src].state = DD_UNPAIRED;
	for (i = r->start; i < r->end; i++)
		if (p->pages[i].state == DD_DIFFER)
			p->pages[i].state = DD_PENDING;
	r->src = DD_NONE;
	r->src_handle = 0;
	r->dead_handle = 0;
	r->classes++;
	return true;
}

/*
 * Share every group, in rounds: a round queues the shares of every group
 * that has work, and the next takes what a round left (retries after
 * EIDRM, groups whose source went stale). Each round resolves a page, uses
 * a page's one retry or a source, so the rounds end.
 */
static int dd_share_all(struct dd_pass *p)
{
	struct dd_run **active, **next;
	size_t i, nr_active = p->nr_runs, nr_next;
	int ret = 0;

	active = malloc((nr_active ? nr_active : 1) * sizeof(*active));
	if (!active)
		return dd_fail(p, -ENOMEM, PAGESHARE_OP_SHARE, "share");
	for (i = 0; i < nr_active; i++)
		active[i] = &p->runs[i];
	p->runs_total = p->nr_runs;
	dd_progress(p, DEDUP_EV_SHARE, 0, 0, p->runs_total);
	while (nr_active && !dd_stopped(p)) {
		for (i = 0; i < nr_active && !dd_stopped(p); i++) {
			struct dd_run *r = active[i];

			if (r->src == DD_NONE && !dd_pick_source(p, r))
				continue;
			ret = dd_run_ops(p, r);
			if (ret)
				goto out;
		}
		ret = dd_flush_ops(p);
		if (ret)
			goto out;
		next = active;
		nr_next = 0;
		for (i = 0; i < nr_active; i++) {
			if (dd_run_pending(p, active[i]))
				next[nr_next++] = active[i];
			else
				p->runs_done++;
		}
		nr_active = nr_next;
		dd_progress(p, DEDUP_EV_SHARE, 0, p->runs_done, p->runs_total);
	}
out:
	free(active);
	return ret;
}

/*
 * Unshare the gfns left alone on their frame. The query makes sure of
 * "alone": a gfn whose frame has other sharers (from an earlier pass, or
 * in a VM not scanned) keeps it, since unsharing it would cost a copy.
 */
static int dd_release(struct dd_pass *p)
{
	struct pageshare_query *q = NULL;
	struct pageshare_unshare *u = NULL;
	size_t i, k, n, nu, total = 0, done = 0;
	int ret = 0;

	for (i = 0; i < p->nr_runs; i++) {
		struct dd_run *r = &p->runs[i];

		if (r->src != DD_NONE && !dd_src_paired(p, r))
			p->pages[r->src].state = DD_UNPAIRED;
	}
	for (i = 0; i < p->nr_pages; i++)
		if (p->pages[i].state != DD_SOURCE && p->pages[i].state != DD_SHARED &&
		    p->pages[i].state != DD_ALREADY)
			total++;
	if (!total)
		return 0;
	dd_progress(p, DEDUP_EV_RELEASE, 0, 0, total);
	q = calloc(p->rel_batch, sizeof(*q));
	u = calloc(p->rel_batch, sizeof(*u));
	if (!q || !u) {
		ret = dd_fail(p, -ENOMEM, PAGESHARE_OP_UNSHARE, "unshare");
		goto out;
	}
	for (i = 0; i < p->nr_pages;) {
		for (n = 0; i < p->nr_pages && n < p->rel_batch; i++) {
			const struct dd_page *pg = &p->pages[i];

			if (pg->state == DD_SOURCE || pg->state == DD_SHARED ||
			    pg->state == DD_ALREADY)
				continue;
			memset(&q[n], 0, sizeof(q[n]));
			q[n].vm = dd_page_vm(p, pg)->fd;
			q[n].gfn = pg->gfn;
			n++;
		}
		if (!n)
			break;
		ret = p->be->query(p->be->ctx, q, n);
		if (ret) {
			dd_fail(p, ret, PAGESHARE_OP_BATCH, "query");
			goto out;
		}
		for (k = 0, nu = 0; k < n; k++) {
			if (q[k].result || q[k].state != PAGESHARE_STATE_NOMINATED)
				continue;
			memset(&u[nu], 0, sizeof(u[nu]));
			u[nu].vm = q[k].vm;
			u[nu].gfn = q[k].gfn;
			nu++;
		}
		if (nu) {
			ret = p->be->unshare(p->be->ctx, u, nu);
			if (ret) {
				dd_fail(p, ret, PAGESHARE_OP_BATCH, "unshare");
				goto out;
			}
			for (k = 0; k < nu; k++)
				if (!u[k].result)
					p->res->unshared++;
		}
		done += n;
		dd_progress(p, DEDUP_EV_RELEASE, 0, done, total);
	}
out:
	free(q);
	free(u);
	return ret;
}

/* Count what became of every nominated gfn. */
static void dd_count(struct dd_pass *p)
{
	struct dedup_result *res = p->res;
	size_t i;

	for (i = 0; i < p->nr_pages; i++) {
		const struct dd_page *pg = &p->pages[i];
		bool kept = false;

		switch (pg->state) {
		case DD_SOURCE:
			res->frames++;
			kept = true;
			break;
		case DD_SHARED:
			res->shared++;
			kept = true;
			break;
		case DD_ALREADY:
			res->already++;
			kept = true;
			break;
		case DD_ALONE:
			res->alone++;
			break;
		case DD_DIFFER:
			res->differ++;
			break;
		case DD_STALE:
			res->stale++;
			break;
		case DD_BUSY:
			res->busy++;
			break;
		case DD_POLICY:
			res->policy++;
			break;
		case DD_ERROR:
			res->errors++;
			break;
		default:
			break;
		}
		if (kept && pg->hash == p->zero_hash)
			res->zero++;
	}
}

static int dd_alloc(struct dd_pass *p)
{
	p->nom = calloc(p->nom_batch, sizeof(*p->nom));
	p->renom = calloc(p->share_batch, sizeof(*p->renom));
	p->renom_page = calloc(p->share_batch, sizeof(*p->renom_page));
	p->ops = calloc(p->share_batch, sizeof(*p->ops));
	p->op_page = calloc(p->share_batch, sizeof(*p->op_page));
	p->op_run = calloc(p->share_batch, sizeof(*p->op_run));
	if (!p->nom || !p->renom || !p->renom_page || !p->ops || !p->op_page || !p->op_run)
		return -ENOMEM;
	return 0;
}

static void dd_free(struct dd_pass *p)
{
	free(p->nom);
	free(p->renom);
	free(p->renom_page);
	free(p->ops);
	free(p->op_page);
	free(p->op_run);
	free(p->pages);
	free(p->runs);
	free(p->vms);
}

static uint64_t dd_zero_hash(size_t page_size)
{
	void *zero = calloc(1, page_size);
	uint64_t h;

	if (!zero)
		return 0;
	h = dedup_xxh64(zero, page_size, 0);
	free(zero);
	return h;
}

int dedup_pass(const struct dedup_backend *be, const struct dedup_config *cfg,
	       struct dedup_result *res)
{
	struct dd_pass p = { .be = be, .cfg = cfg, .res = res };
	uint64_t saved0 = 0, saved1, start, done = 0, total = 0;
	size_t i;
	int ret;

	memset(res, 0, sizeof(*res));
	res->audit = -1;
	p.clock = cfg->clock.now_ns ? cfg->clock : dedup_real_clock();
	p.page_size = cfg->page_size ? cfg->page_size : 4096;
	p.nom_batch = cfg->nominate_batch ? cfg->nominate_batch : DEDUP_NOMINATE_BATCH;
	p.share_batch = cfg->share_batch ? cfg->share_batch : DEDUP_SHARE_BATCH;
	p.rel_batch = cfg->release_batch ? cfg->release_batch : DEDUP_RELEASE_BATCH;
	p.zero_hash = dd_zero_hash(p.page_size);
	p.rate = cfg->max_pages_per_sec;
	if (p.rate > 0) {
		/* About ten batches a second, so the rate is smooth, not bursty. */
		double per_tick = p.rate / 10;

		if (per_tick < 1)
			per_tick = 1;
		if ((double)p.nom_batch > per_tick)
			p.nom_batch = (size_t)per_tick;
		p.burst = (double)p.nom_batch;
		p.tokens = p.burst;
	}
	start = p.clock.now_ns(p.clock.ctx);
	p.last_ns = start;
	if (be->saved_frames && !be->saved_frames(be->ctx, &saved0))
		res->saved_known = true;

	ret = dd_alloc(&p);
	if (ret) {
		dd_fail(&p, ret, PAGESHARE_OP_NOMINATE, "dedup");
		goto out;
	}
	ret = dd_open_vms(&p);
	if (ret)
		goto close;
	for (i = 0; i < p.nr_vms; i++)
		total += p.vms[i].pages;
	for (i = 0; i < p.nr_vms && !ret; i++)
		ret = dd_nominate_vm(&p, i, &done, total);
	if (!ret)
		ret = dd_make_runs(&p);
	if (ret)
		dd_fail(&p, ret, PAGESHARE_OP_SHARE, "group pages");
	if (!ret)
		ret = dd_share_all(&p);
	/* Release what was nominated even after a failure, if the kernel lets us. */
	if (dd_release(&p) && !ret)
		ret = res->err;
	dd_count(&p);
close:
	dd_close_vms(&p);
	if (res->saved_known) {
		if (be->saved_frames(be->ctx, &saved1))
			res->saved_known = false;
		else
			res->saved_delta = (int64_t)(saved1 - saved0);
	}
	res->interrupted = dd_stopped(&p);
	res->ns = p.clock.now_ns(p.clock.ctx) - start;
	if (!ret && cfg->verify) {
		int problems = be->audit(be->ctx);

		if (problems < 0)
			ret = dd_fail(&p, problems, PAGESHARE_OP_AUDIT, "audit");
		else
			res->audit = problems;
	}
out:
	dd_free(&p);
	return ret ? res->err : 0;
}
