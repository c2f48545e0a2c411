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
 *    share refused) is unshared, which makes it private again (a copy in
 *    its VM's page cache) and frees the frame and its metadata.
 *
 * gfns already on one frame (from an earlier pass) nominate to one handle.
 * They are moved by one share, and gfns already on the source's frame are
 * left as they are, so a second pass over unchanged VMs changes nothing.
 *
 * Incremental passes (dedup_config::state). A handle names one version of
 * a frame's bytes: any write to a gfn takes it off the frame, so a gfn that
 * still reports the handle a pass left it with still has the hash that pass
 * knew. The state remembers, per VM id, the handle and hash of each gfn a
 * pass left on a frame; the next pass queries those gfns (cheap: no page
 * is read) and takes the unchanged ones as they are, and nominates, with
 * the hash, only the others. For that, step 5 keeps the gfns left alone
 * nominated instead of unsharing them: the next pass need not copy them
 * into a frame and hash them again, and this pass need not copy them back.
 * A pass that ends early gives them back as step 5 does, for an agent that
 * stops: nothing it leaves behind stays nominated without being remembered.
 *
 * Those queries still cost a call per gfn remembered, every pass. The
 * kernel's PAGESHARE_GET_PRIVATE lists the private gfns instead: those
 * written since they were last nominated. A gfn on a frame leaves it only
 * by a write (it turns private), a share that moves its frame (the agent's,
 * or another user's: then the share with the old handle fails with ESTALE
 * or EIDRM), or a discard (counted by the VM's discard count). So when the
 * last pass left every gfn of a VM that is on a frame remembered or
 * private ("exact", see dd_state_store()), and the discard count read at
 * the start of this pass is the one read at the start of that one, every
 * remembered gfn not listed has its handle still: it joins the pass
 * without a query, and only the listed gfns are nominated (dd_list_vm()).
 * Holes are never listed, so they cost nothing either. Any doubt about a
 * VM (a gfn left on a frame without a memo, a failure, a discard) makes
 * the next pass over it query, as above, and nominate every other gfn.
 *
 * Index passes. Taking the remembered gfns into the pass still costs in
 * the VMs' size: each is sorted with the pages nominated. So the state
 * also keeps a content index: per (share scope, hash), a frame the state
 * remembers gfns on, two of those gfns (the representative, and a spare
 * should it be written) and their number (refs), made anew at the end of
 * every pass that took the path above (dd_index_build()). A pass whose
 * VMs are all scanned from their private gfns, and are the VMs, groups
 * and policies the index was built for, is an index pass: the remembered
 * gfns do not join it; the listed gfns are forgotten (refs counted down),
 * nominated, and sorted among themselves, and each group of equal hashes
 * gets its representative as a page of the pass (dd_index_join()), which
 * is its source: the written pages move onto the frame the remembered
 * gfns are on, by the same code as above, and the index notes the result
 * (dd_index_note()). A pass with nothing written lists, and ends. Where
 * the index cannot tell (both its gfns of a frame with others on it
 * written, a hash with pages of other bytes), the pass takes the path
 * above, which rebuilds the index; where it finds out only while sharing
 * (a representative written during the pass), the next pass does.
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
	uint8_t rep;		/* a representative from the index: DD_REP, DD_REP_SHARED */
};

/* dd_page::rep: a page an index pass took from the index, on a frame alone or not. */
#define DD_REP		1
#define DD_REP_SHARED	2

/*
 * What the state remembers of a gfn: the handle of the frame a pass left it
 * on (0, never a handle: nothing) and the hash of that frame's bytes.
 */
struct dd_memo {
	uint64_t handle;
	uint64_t hash;
};

/*
 * A VM in the state: 16 bytes per gfn (struct dd_memo), 1/256 of the
 * guest's memory with 4 KiB pages, allocated once a pass has something to
 * remember of the VM. The pass's own list of gfns (struct dd_page, 40
 * bytes per gfn with a page) is bigger and lives only during the pass.
 */
struct dd_vm_state {
	uint64_t id;
	uint64_t pages;
	struct dd_memo *memo;	/* @pages entries, or NULL */
	uint64_t kept;		/* entries with a handle */
	uint64_t checked;	/* in a pass: memos below this gfn were taken */
	uint64_t discards;	/* the VM's discard count at the start of the last pass */
	bool exact;		/* the last pass left every gfn on a frame in @memo */
};

/*
 * The content index (see "Index passes" above): per (share scope, hash),
 * a frame the state remembers gfns on, and two of them. 64 bytes.
 */
struct dd_index_entry {
	uint64_t hash;
	uint64_t scope;		/* the share group, or with @own the VM's id */
	uint64_t handle;	/* the frame's handle; 0: a free slot */
	uint64_t vm[2];		/* the representative and a spare: VM id (0: none) */
	uint64_t gfn[2];	/* and gfn */
	uint32_t refs;		/* gfns the state remembers on the frame; 0: dead */
	uint32_t flags;		/* DD_IX_* */
};

#define DD_IX_OWN	1	/* dd_index_entry::scope is a VM id: the VM has no share group */
#define DD_IX_COLLIDED	2	/* pages of other bytes have the hash: the full path sorts them */

/* A VM as it was when the index was built: another set of VMs or scopes, another index. */
struct dd_index_vm {
	uint64_t id;
	uint64_t group;
	uint32_t flags;
};

struct dedup_state {
	struct dd_vm_state **vms;	/* sorted by id */
	size_t nr_vms;
	bool no_private;	/* the kernel has no PAGESHARE_GET_PRIVATE */
	struct dd_index_entry *index;	/* open addressing, linear probing; NULL: none */
	size_t index_cap;		/* a power of two */
	size_t index_used;		/* slots taken, dead entries included */
	struct dd_index_vm *index_vms;	/* sorted by id */
	size_t nr_index_vms;
};

struct dd_vm {
	uint64_t id;
	int fd;
	uint64_t pages;
	uint64_t group;
	uint32_t flags;
	uint32_t scope;
	uint64_t mark;		/* no-intra-VM bookkeeping of dd_run_setup() */
	struct dd_vm_state *st;	/* the VM in the state, or NULL */
	uint64_t candidates;	/* its gfns in the pass */
	bool discards_known;	/* st->discards was read at the start of this pass */
	bool incremental;	/* scanned from its private gfns (dd_list_vm()) */
	bool inexact;		/* a gfn may be left on a frame without its memo */
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

	/* The VMs listed or named (sorted), and those of them found gone. */
	uint64_t *ids;
	size_t nr_ids;
	uint64_t *gone;
	size_t nr_gone;

	/* Incremental passes: the state, and whether the gfns left alone stay nominated. */
	struct dedup_state *state;
	bool release_only;	/* dedup_state_release(): no scan, release what is kept */
	bool keep_alone;
	bool index;		/* an index pass (dd_index_usable()), so far */
	bool index_lost;	/* the index lost a frame with gfns on it: rebuild it */

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

	/* Queries (of the state's gfns, and before a release) and unshares. */
	struct pageshare_query *query;
	uint64_t *query_want;	/* the handle a released gfn must still have, or 0 */
	struct pageshare_unshare *unshare;
	size_t nr_query;
	uint64_t rel_done;
	uint64_t rel_total;

	/* A VM's private gfns, a call's worth (PAGESHARE_GET_PRIVATE). */
	uint64_t *priv;
	uint32_t priv_batch;

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
	/* Without duplicates, for the state's look-ups (dd_state_sync()). */
	for (i = 0, j = 0; i < n; i++)
		if (!j || ids[i] != ids[j - 1])
			ids[j++] = ids[i];
	n = j;
	p->ids = ids;
	p->nr_ids = n;
	p->vms = calloc(n ? n : 1, sizeof(*p->vms));
	p->gone = calloc(n ? n : 1, sizeof(*p->gone));
	if (!p->vms || !p->gone)
		return dd_fail(p, -ENOMEM, PAGESHARE_OP_OPEN_VM, "VM list");
	for (i = 0; i < n; i++) {
		struct dd_vm *vm = &p->vms[p->nr_vms];
		uint64_t size;
		int fd;

		fd = be->open_vm(be->ctx, ids[i]);
		if (fd == -ESRCH) {
			/* The VM exited since it was listed. */
			p->res->vms_gone++;
			p->gone[p->nr_gone++] = ids[i];
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
		 * with no VM and not within itself has nothing to share (but
		 * may have pages an earlier pass kept nominated to release).
		 */
		if (!vm->pages || (!vm->group && (vm->flags & PAGESHARE_POLICY_NO_INTRA_VM) &&
				   !p->release_only)) {
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
	p->res->vms = p->nr_vms;
	return ret;
}

static void dd_close_vms(struct dd_pass *p)
{
	size_t i;

	for (i = 0; i < p->nr_vms; i++)
		p->be->close_vm(p->be->ctx, p->vms[i].fd);
}

static int dd_cmp_vm_state(const void *a, const void *b)
{
	const struct dd_vm_state *x = *(struct dd_vm_state * const *)a;
	const struct dd_vm_state *y = *(struct dd_vm_state * const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static bool dd_has_id(const uint64_t *ids, size_t n, uint64_t id)
{
	return n && bsearch(&id, ids, n, sizeof(*ids), dd_cmp_u64);
}

/* The pass's VM with this id (p->vms is sorted by id), or NULL. */
static struct dd_vm *dd_find_vm(struct dd_pass *p, uint64_t id)
{
	size_t lo = 0, hi = p->nr_vms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->vms[mid].id == id)
			return &p->vms[mid];
		if (p->vms[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void dd_vm_state_free(struct dd_vm_state *st)
{
	if (!st)
		return;
	free(st->memo);
	free(st);
}

/* Take a VM out of the state and free it. */
static void dd_state_forget(struct dedup_state *s, struct dd_vm_state *st)
{
	size_t i;

	for (i = 0; i < s->nr_vms; i++) {
		if (s->vms[i] != st)
			continue;
		memmove(&s->vms[i], &s->vms[i + 1], (s->nr_vms - i - 1) * sizeof(*s->vms));
		s->nr_vms--;
		break;
	}
	dd_vm_state_free(st);
}

struct dedup_state *dedup_state_new(void)
{
	return calloc(1, sizeof(struct dedup_state));
}

static void dd_index_drop(struct dedup_state *s)
{
	free(s->index);
	free(s->index_vms);
	s->index = NULL;
	s->index_vms = NULL;
	s->index_cap = 0;
	s->index_used = 0;
	s->nr_index_vms = 0;
}

void dedup_state_free(struct dedup_state *state)
{
	size_t i;

	if (!state)
		return;
	dd_index_drop(state);
	for (i = 0; i < state->nr_vms; i++)
		dd_vm_state_free(state->vms[i]);
	free(state->vms);
	free(state);
}

/*
 * Match the state's VMs with the pass's, before the scan. A VM found gone
 * (ESRCH, or not listed) is forgotten: its pages went with it, and a new
 * VM may get its id. So is a VM whose size changed: all its gfns are
 * nominated again, which also finds the pages it had kept nominated. A VM
 * neither scanned nor gone (not named this time, or skipped for its
 * policy) stays, so that dedup_state_release() still releases its pages.
 * Every VM scanned gets an entry; one that cannot is scanned as without a
 * state.
 */
static int dd_state_sync(struct dd_pass *p)
{
	struct dedup_state *s = p->state;
	struct dd_vm_state **vms;
	size_t i, n = 0;

	vms = calloc(s->nr_vms + p->nr_vms + 1, sizeof(*vms));
	if (!vms)
		return dd_fail(p, -ENOMEM, PAGESHARE_OP_NOMINATE, "dedup state");
	for (i = 0; i < s->nr_vms; i++) {
		struct dd_vm_state *st = s->vms[i];
		struct dd_vm *vm = dd_find_vm(p, st->id);
		bool drop;

		if (vm)
			/* A release queries what it can: past the end is ENXIO. */
			drop = vm->pages != st->pages && !p->release_only;
		else
			drop = dd_has_id(p->gone, p->nr_gone, st->id) ||
			       (!p->cfg->nr_vm_ids && !dd_has_id(p->ids, p->nr_ids, st->id));
		if (drop) {
			dd_vm_state_free(st);
			continue;
		}
		st->checked = 0;
		if (vm)
			vm->st = st;
		vms[n++] = st;
	}
	for (i = 0; i < p->nr_vms && !p->release_only; i++) {
		struct dd_vm *vm = &p->vms[i];
		struct dd_vm_state *st;

		if (vm->st)
			continue;
		st = calloc(1, sizeof(*st));
		if (!st)
			continue;
		st->id = vm->id;
		st->pages = vm->pages;
		vm->st = st;
		vms[n++] = st;
	}
	if (n)
		qsort(vms, n, sizeof(*vms), dd_cmp_vm_state);
	free(s->vms);
	s->vms = vms;
	s->nr_vms = n;
	return 0;
}

static int dd_add_page(struct dd_pass *p, uint32_t vi, uint64_t gfn, uint64_t handle,
		       uint64_t hash)
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
	pg->hash = hash;
	pg->handle = handle;
	pg->gfn = gfn;
	pg->vm = vi;
	pg->scope = p->vms[vi].scope;
	pg->state = DD_PENDING;
	p->vms[vi].candidates++;
	p->res->candidates++;
	return 0;
}

/* The index's key of a VM's scope: its share group, or the VM itself. */
static void dd_scope_key(const struct dd_vm *vm, uint64_t *scope, uint32_t *own)
{
	*own = vm->group ? 0 : DD_IX_OWN;
	*scope = vm->group ? vm->group : vm->id;
}

static size_t dd_index_slot(const struct dedup_state *s, uint64_t scope, uint32_t own,
			    uint64_t hash)
{
	uint64_t x = hash ^ ((scope + own) * XXH_P1);

	x ^= x >> 29;
	x *= XXH_P2;
	x ^= x >> 32;
	return x & (s->index_cap - 1);
}

/* The entry of (@scope, @own, @hash), dead or alive, or NULL. */
static struct dd_index_entry *dd_index_find(struct dedup_state *s, uint64_t scope,
					    uint32_t own, uint64_t hash)
{
	size_t i;

	if (!s->index)
		return NULL;
	for (i = dd_index_slot(s, scope, own, hash); s->index[i].handle;
	     i = (i + 1) & (s->index_cap - 1)) {
		const struct dd_index_entry *e = &s->index[i];

		if (e->hash == hash && e->scope == scope && (e->flags & DD_IX_OWN) == own)
			return &s->index[i];
	}
	return NULL;
}

/* An empty table of @cap slots (a power of two); the entries of the old one move over. */
static int dd_index_resize(struct dedup_state *s, size_t cap)
{
	struct dd_index_entry *old = s->index;
	size_t i, old_cap = s->index_cap;

	s->index = calloc(cap, sizeof(*s->index));
	if (!s->index) {
		s->index = old;
		return -ENOMEM;
	}
	s->index_cap = cap;
	s->index_used = 0;
	for (i = 0; i < old_cap; i++) {
		const struct dd_index_entry *e = &old[i];
		size_t j;

		/* Dead entries go. */
		if (!e->handle || !e->refs)
			continue;
		for (j = dd_index_slot(s, e->scope, e->flags & DD_IX_OWN, e->hash);
		     s->index[j].handle;
		     j = (j + 1) & (cap - 1))
			;
		s->index[j] = *e;
		s->index_used++;
	}
	free(old);
	return 0;
}

/*
 * The entry of (@scope, @own, @hash), made if need be (its @handle still 0
 * then, for the caller to set); NULL if out of memory. At most 3/4 full.
 */
static struct dd_index_entry *dd_index_get(struct dedup_state *s, uint64_t scope, uint32_t own,
					   uint64_t hash)
{
	struct dd_index_entry *e = dd_index_find(s, scope, own, hash);
	size_t i;

	if (e)
		return e;
	if ((s->index_used + 1) * 4 > s->index_cap * 3) {
		size_t live = 0, cap = 64;

		/*
		 * Sized from the live entries, not the used slots: dead ones
		 * go at the resize, and a run of index passes that keeps
		 * meeting new bytes must not double the table for each batch
		 * of entries that died meanwhile.
		 */
		for (i = 0; i < s->index_cap; i++)
			live += s->index[i].handle && s->index[i].refs;
		while ((live + 1) * 2 > cap)
			cap *= 2;
		if (dd_index_resize(s, cap))
			return NULL;
	}
	for (i = dd_index_slot(s, scope, own, hash); s->index[i].handle;
	     i = (i + 1) & (s->index_cap - 1))
		;
	e = &s->index[i];
	memset(e, 0, sizeof(*e));
	e->hash = hash;
	e->scope = scope;
	e->flags = own;
	s->index_used++;
	return e;
}

/* Whether slot @k of an entry names a gfn the state remembers on the entry's frame. */
static bool dd_index_live(struct dd_pass *p, const struct dd_index_entry *e, int k)
{
	const struct dd_vm *vm = e->vm[k] ? dd_find_vm(p, e->vm[k]) : NULL;
	const struct dd_vm_state *st = vm ? vm->st : NULL;

	return st && st->memo && e->gfn[k] < st->pages && st->memo[e->gfn[k]].handle == e->handle;
}

/*
 * Whether this pass may be an index pass: there is an index, the kernel
 * lists private gfns, and the VMs, their groups and policies are those
 * the index was built for. Each VM must also be scanned from its private
 * gfns (dd_scan_vm() gives up the index pass otherwise).
 */
static bool dd_index_usable(struct dd_pass *p)
{
	const struct dedup_state *s = p->state;
	size_t i;

	if (!s || !s->index || p->release_only || !p->be->get_private || s->no_private ||
	    s->nr_index_vms != p->nr_vms)
		return false;
	for (i = 0; i < p->nr_vms; i++) {
		const struct dd_index_vm *iv = &s->index_vms[i];
		const struct dd_vm *vm = &p->vms[i];

		if (iv->id != vm->id || iv->group != vm->group || iv->flags != vm->flags ||
		    !vm->st)
			return false;
	}
	return true;
}

/* A gfn the state remembers is forgotten (listed private): one gfn less on its frame. */
static void dd_index_unref(struct dd_pass *p, uint32_t vi, uint64_t gfn)
{
	const struct dd_vm *vm = &p->vms[vi];
	const struct dd_memo *m = vm->st->memo ? &vm->st->memo[gfn] : NULL;
	struct dd_index_entry *e;
	uint64_t scope;
	uint32_t own;
	int k;

	if (!m || !m->handle)
		return;
	dd_scope_key(vm, &scope, &own);
	e = dd_index_find(p->state, scope, own, m->hash);
	if (!e || !e->refs || e->handle != m->handle)
		return;
	e->refs--;
	for (k = 0; k < 2; k++)
		if (e->vm[k] == vm->id && e->gfn[k] == gfn)
			e->vm[k] = 0;
}

/*
 * Query the gfns the state remembers of a VM. One still on the frame of
 * its remembered handle has the remembered hash, since a frame's bytes
 * cannot change: it joins the pass without a nominate. The others (written
 * since, made private or dropped) are forgotten, and nominated.
 */
static int dd_check_vm(struct dd_pass *p, uint32_t vi)
{
	struct dd_vm *vm = &p->vms[vi];
	struct dd_vm_state *st = vm->st;
	struct pageshare_query *q = p->query;
	struct dedup_result *res = p->res;
	uint64_t gfn = 0;
	size_t k, n;
	int ret;

	if (!st)
		return 0;
	if (!st->memo || !st->kept) {
		st->checked = st->pages;
		return 0;
	}
	while (gfn < st->pages) {
		for (n = 0; gfn < st->pages && n < p->rel_batch; gfn++) {
			if (!st->memo[gfn].handle)
				continue;
			memset(&q[n], 0, sizeof(q[n]));
			q[n].vm = vm->fd;
			q[n].gfn = gfn;
			n++;
		}
		if (!n)
			break;
		res->query_calls++;
		res->queried += n;
		ret = p->be->query(p->be->ctx, q, n);
		if (ret)
			return dd_fail(p, ret, PAGESHARE_OP_BATCH, "query VM %llu",
				       (unsigned long long)vm->id);
		for (k = 0; k < n; k++) {
			struct dd_memo *m = &st->memo[q[k].gfn];

			if (!q[k].result && q[k].handle == m->handle &&
			    (q[k].state == PAGESHARE_STATE_NOMINATED ||
			     q[k].state == PAGESHARE_STATE_SHARED)) {
				if (dd_add_page(p, vi, q[k].gfn, m->handle, m->hash)) {
					/*
					 * The memos from here on were not taken:
					 * they are released if need be.
					 */
					st->checked = q[k].gfn;
					return dd_fail(p, -ENOMEM, PAGESHARE_OP_NOMINATE, "VM %llu",
						       (unsigned long long)vm->id);
				}
				res->reused++;
				res->scanned++;
			} else {
				m->handle = 0;
				m->hash = 0;
				st->kept--;
			}
		}
		st->checked = gfn;
	}
	st->checked = st->pages;
	return 0;
}

/*
 * Nominate the @n gfns of VM @vi in p->nom and take the results. A gfn the
 * nominate leaves in doubt (it may be on a frame: a memory error, any
 * other failure) makes the VM inexact; a hole or a pinned page (EBUSY, only
 * ever a private page) does not. *@past_end is set if the VM shrank.
 */
static int dd_nominate_flush(struct dd_pass *p, uint32_t vi, size_t n, bool *past_end)
{
	struct dd_vm *vm = &p->vms[vi];
	struct dedup_result *res = p->res;
	size_t i;
	int ret;

	res->nominate_calls++;
	ret = p->be->nominate(p->be->ctx, p->nom, n);
	if (ret)
		return dd_fail(p, ret, PAGESHARE_OP_BATCH, "nominate VM %llu",
			       (unsigned long long)vm->id);
	res->scanned += n;
	for (i = 0; i < n; i++) {
		const struct pageshare_nominate *e = &p->nom[i];

		switch (e->result) {
		case 0:
			if (dd_add_page(p, vi, e->gfn, e->handle, e->hash))
				return dd_fail(p, -ENOMEM, PAGESHARE_OP_NOMINATE, "VM %llu",
					       (unsigned long long)vm->id);
			break;
		case -ENODATA:
			res->holes++;
			break;
		case -EBUSY:
			res->busy++;
			break;
		case -EHWPOISON:
			/* A memory error: never shared; a frame that has one keeps its gfns. */
			res->busy++;
			vm->inexact = true;
			break;
		case -ENXIO:
			/* The VM shrank under us: no gfns past here. */
			res->holes++;
			*past_end = true;
			vm->inexact = true;
			break;
		default:
			res->errors++;
			vm->inexact = true;
			break;
		}
	}
	return 0;
}

/*
 * Nominate a VM's gfns with their hash, in batches, but for those the state
 * found unchanged (dd_check_vm()), which are in the pass already.
 */
static int dd_nominate_vm(struct dd_pass *p, uint32_t vi, uint64_t *done, uint64_t total)
{
	struct dd_vm *vm = &p->vms[vi];
	const struct dd_memo *memo = vm->st ? vm->st->memo : NULL;
	uint64_t gfn = 0;
	size_t n;
	int ret;

	while (gfn < vm->pages && !dd_stopped(p)) {
		uint64_t start = gfn;
		bool past_end = false;

		for (n = 0; gfn < vm->pages && n < p->nom_batch; gfn++) {
			if (memo && memo[gfn].handle)
				continue;
			memset(&p->nom[n], 0, sizeof(p->nom[n]));
			p->nom[n].vm = vm->fd;
			p->nom[n].flags = PAGESHARE_NOMINATE_HASH;
			p->nom[n].gfn = gfn;
			n++;
		}
		if (n) {
			dd_throttle(p, n);
			if (dd_stopped(p))
				break;
			ret = dd_nominate_flush(p, vi, n, &past_end);
			if (ret)
				return ret;
		}
		*done += gfn - start;
		dd_progress(p, DEDUP_EV_NOMINATE, vm->id, *done, total);
		if (past_end)
			break;
	}
	return 0;
}

/* PAGESHARE_GET_PRIVATE into p->priv, counted. */
static int dd_get_private(struct dd_pass *p, uint32_t vi, uint64_t start, uint32_t max,
			  uint32_t *count, uint64_t *next, uint64_t *discards)
{
	int ret;

	p->res->private_calls++;
	ret = p->be->get_private(p->be->ctx, p->vms[vi].fd, start, p->priv, max, count, next,
				 discards);
	if (ret)
		return ret;
	/* More than asked would be a bug of the backend's, and past p->priv. */
	if (*count > max)
		return -EIO;
	p->res->private_listed += *count;
	return 0;
}

/*
 * Read a VM's discard count, before anything else of its scan, and choose
 * how to scan it: from its private gfns (dd_list_vm()) if the last pass
 * left the VM exact and no discard completed since that pass read the
 * count; else as before, the count kept for the next pass. For the
 * former, the first private gfns are in p->priv (*@count, up to *@next).
 */
static int dd_private_start(struct dd_pass *p, uint32_t vi, uint32_t *count, uint64_t *next)
{
	struct dd_vm *vm = &p->vms[vi];
	struct dd_vm_state *st = vm->st;
	uint64_t discards;
	bool exact;
	int ret;

	*count = 0;
	*next = 0;
	if (!st || !p->be->get_private || p->state->no_private)
		return 0;
	exact = st->exact;
	/* Exact again only once this pass has ended well (dd_state_store()). */
	st->exact = false;
	/* For the count alone, one gfn will do. */
	ret = dd_get_private(p, vi, 0, exact ? p->priv_batch : 1, count, next, &discards);
	if (ret == -ENOTTY || ret == -EINVAL) {
		/* A module older than API version 5: every pass queries, as before. */
		p->state->no_private = true;
		*count = 0;
		return 0;
	}
	if (ret)
		return dd_fail(p, ret, PAGESHARE_OP_GET_PRIVATE, "list private gfns of VM %llu",
			       (unsigned long long)vm->id);
	vm->incremental = exact && discards == st->discards;
	vm->discards_known = true;
	st->discards = discards;
	return 0;
}

/* Take the gfns the state remembers in [@from, @to) into the pass, as they are. */
static int dd_join_memos(struct dd_pass *p, uint32_t vi, uint64_t from, uint64_t to)
{
	struct dd_vm_state *st = p->vms[vi].st;
	uint64_t g;

	/* An index pass leaves them where they are. */
	if (p->index)
		return 0;
	for (g = from; st->memo && st->kept && g < to; g++) {
		const struct dd_memo *m = &st->memo[g];

		if (!m->handle)
			continue;
		if (dd_add_page(p, vi, g, m->handle, m->hash)) {
			/* The memos from here on were not taken: released if need be. */
			st->checked = g;
			return dd_fail(p, -ENOMEM, PAGESHARE_OP_NOMINATE, "VM %llu",
				       (unsigned long long)st->id);
		}
		p->res->reused++;
		p->res->scanned++;
	}
	st->checked = to;
	return 0;
}

static void dd_forget_memo(struct dd_vm_state *st, uint64_t gfn)
{
	struct dd_memo *m = st->memo ? &st->memo[gfn] : NULL;

	if (!m || !m->handle)
		return;
	m->handle = 0;
	m->hash = 0;
	st->kept--;
}

/*
 * Scan an exact VM that had no discard since the last pass, from its
 * private gfns (the first @count of them in p->priv, listed up to @next):
 * each is forgotten and nominated, and every remembered gfn that is not
 * listed joins the pass as it is, without a query, since it is still on
 * the frame of its remembered handle (unless another agent moved it; its
 * share then fails with ESTALE or EIDRM, as after a write). A gfn written
 * behind the walk is remembered here, found stale if shared, and listed by
 * the next pass. Holes are not visited.
 */
static int dd_list_vm(struct dd_pass *p, uint32_t vi, uint32_t count, uint64_t next,
		      uint64_t *done, uint64_t total)
{
	struct dd_vm *vm = &p->vms[vi];
	struct dd_vm_state *st = vm->st;
	uint64_t gfn = 0, start = 0, discards;
	bool past_end = false;
	size_t n = 0;
	uint32_t k;
	int ret;

	for (;;) {
		/* A full array reaches @next; a call that found fewer, the VM's end. */
		bool more = count == p->priv_batch && next < vm->pages;
		uint64_t end = more ? next : vm->pages;

		for (k = 0; k < count && p->priv[k] < end; k++) {
			uint64_t g = p->priv[k];

			if (g < gfn)
				continue;
			ret = dd_join_memos(p, vi, gfn, g);
			if (ret)
				return ret;
			if (p->index)
				dd_index_unref(p, vi, g);
			dd_forget_memo(st, g);
			gfn = g + 1;
			if (!p->index)
				st->checked = gfn;
			memset(&p->nom[n], 0, sizeof(p->nom[n]));
			p->nom[n].vm = vm->fd;
			p->nom[n].flags = PAGESHARE_NOMINATE_HASH;
			p->nom[n].gfn = g;
			if (++n < p->nom_batch)
				continue;
			dd_throttle(p, n);
			if (dd_stopped(p))
				return 0;
			ret = dd_nominate_flush(p, vi, n, &past_end);
			n = 0;
			if (ret)
				return ret;
		}
		ret = dd_join_memos(p, vi, gfn, end);
		if (ret)
			return ret;
		gfn = end;
		*done += end - start;
		dd_progress(p, DEDUP_EV_NOMINATE, vm->id, *done, total);
		if (!more || dd_stopped(p))
			break;
		/*
		 * A discard count changed since the first call is not looked
		 * at: the state keeps the first, and the next pass sees it.
		 */
		start = next;
		ret = dd_get_private(p, vi, start, p->priv_batch, &count, &next, &discards);
		if (ret)
			return dd_fail(p, ret, PAGESHARE_OP_GET_PRIVATE,
				       "list private gfns of VM %llu", (unsigned long long)vm->id);
	}
	if (!n)
		return 0;
	dd_throttle(p, n);
	if (dd_stopped(p))
		return 0;
	return dd_nominate_flush(p, vi, n, &past_end);
}

/* A VM's part of the scan: what the state knows, then the rest. */
static int dd_scan_vm(struct dd_pass *p, uint32_t vi, uint64_t *done, uint64_t total)
{
	uint64_t next;
	uint32_t count;
	int ret;

	dd_progress(p, DEDUP_EV_VM, p->vms[vi].id, 0, p->vms[vi].pages);
	if (dd_stopped(p))
		return 0;
	ret = dd_private_start(p, vi, &count, &next);
	if (ret)
		return ret;
	if (p->index && !p->vms[vi].incremental) {
		uint32_t j;

		/*
		 * Not an index pass after all: the full path, with the gfns
		 * the VMs scanned so far remember, as dd_list_vm() takes them.
		 */
		p->index = false;
		for (j = 0; j < vi; j++) {
			ret = dd_join_memos(p, j, 0, p->vms[j].st->pages);
			if (ret)
				return ret;
		}
	}
	if (p->vms[vi].incremental)
		return dd_list_vm(p, vi, count, next, done, total);
	ret = dd_check_vm(p, vi);
	if (!ret)
		ret = dd_nominate_vm(p, vi, done, total);
	return ret;
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

/*
 * A representative from the index first (its frame keeps the gfns the
 * state remembers on it), then lower VM id (the VMs are sorted by id),
 * then lower gfn.
 */
static bool dd_before(const struct dd_page *x, const struct dd_page *y)
{
	if (x->rep != y->rep)
		return x->rep > y->rep;
	return x->vm < y->vm || (x->vm == y->vm && x->gfn < y->gfn);
}

/*
 * The representative of a group of the pages an index pass nominated
 * (from p->pages[@i] on), or NULL: none, a dead entry. An entry whose
 * two gfns are both gone, but not every gfn it counted, has lost its
 * frame: *@lost is set, as for a (scope, hash) that has pages of other
 * bytes (a hash collision).
 */
static struct dd_index_entry *dd_index_rep(struct dd_pass *p, size_t i, bool *lost)
{
	const struct dd_page *pg = &p->pages[i];
	struct dd_index_entry *e;
	uint64_t scope;
	uint32_t own;

	dd_scope_key(&p->vms[pg->vm], &scope, &own);
	e = dd_index_find(p->state, scope, own, pg->hash);
	if (!e || !e->refs)
		return NULL;
	if (e->flags & DD_IX_COLLIDED)
		*lost = true;
	if (!dd_index_live(p, e, 0)) {
		if (dd_index_live(p, e, 1)) {
			e->vm[0] = e->vm[1];
			e->gfn[0] = e->gfn[1];
		} else {
			*lost = true;
		}
		e->vm[1] = 0;
	}
	return *lost ? NULL : e;
}

/*
 * An index pass: add to the pages nominated (the private gfns) the
 * representative of each of their (scope, hash) that the index knows,
 * as a page of the pass, which dd_pick_source() makes the source of its
 * group. If the index cannot tell (a lost frame, a collision), the pass
 * takes the full path instead: every gfn remembered joins it.
 */
static int dd_index_join(struct dd_pass *p)
{
	size_t i, j, n = p->nr_pages;
	bool lost = false;
	int ret;

	if (n)
		qsort(p->pages, n, sizeof(*p->pages), dd_cmp_page);
	for (i = 0; i < n && !lost; i = j) {
		for (j = i + 1; j < n; j++)
			if (p->pages[j].scope != p->pages[i].scope ||
			    p->pages[j].hash != p->pages[i].hash)
				break;
		dd_index_rep(p, i, &lost);
	}
	if (lost) {
		p->index = false;
		for (i = 0; i < p->nr_vms; i++) {
			ret = dd_join_memos(p, i, 0, p->vms[i].st->pages);
			if (ret)
				return ret;
		}
		return 0;
	}
	for (i = 0; i < n; i = j) {
		struct dd_index_entry *e;
		struct dd_vm *rvm;

		for (j = i + 1; j < n; j++)
			if (p->pages[j].scope != p->pages[i].scope ||
			    p->pages[j].hash != p->pages[i].hash)
				break;
		e = dd_index_rep(p, i, &lost);
		if (!e)
			continue;
		rvm = dd_find_vm(p, e->vm[0]);
		if (dd_add_page(p, rvm - p->vms, e->gfn[0], e->handle, e->hash))
			return dd_fail(p, -ENOMEM, PAGESHARE_OP_NOMINATE, "content index");
		p->pages[p->nr_pages - 1].rep = e->refs > 1 ? DD_REP_SHARED : DD_REP;
		p->res->candidates--;
		rvm->candidates--;
		p->res->index_reps++;
	}
	p->res->indexed = n;
	return 0;
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

/*
 * Whether a gfn of the group is on the source's frame besides the source:
 * for a representative from the index, gfns the pass does not see may be.
 */
static bool dd_src_paired(const struct dd_pass *p, const struct dd_run *r)
{
	size_t i;

	if (r->src != DD_NONE && p->pages[r->src].rep == DD_REP_SHARED &&
	    p->pages[r->src].handle == r->src_handle)
		return true;

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

/* A source none of whose shares went through is as alone as a page without an equal. */
static void dd_settle_runs(struct dd_pass *p)
{
	size_t i;

	for (i = 0; i < p->nr_runs; i++) {
		struct dd_run *r = &p->runs[i];

		if (r->src != DD_NONE && !dd_src_paired(p, r))
			p->pages[r->src].state = DD_UNPAIRED;
	}
}

/*
 * Whether a gfn stays on its frame after the pass: a shared one always;
 * one left alone (no equal, every share refused, or kept apart by a
 * policy) only with a state that can remember it, for the next pass. The
 * others are released, and forgotten: written, pinned or refused for their
 * bytes, they are nominated again next time.
 */
static bool dd_kept(const struct dd_pass *p, const struct dd_page *pg)
{
	const struct dd_vm_state *st;

	switch (pg->state) {
	case DD_SOURCE:
	case DD_SHARED:
	case DD_ALREADY:
		return true;
	case DD_ALONE:
	case DD_UNPAIRED:
	case DD_POLICY:
		st = p->vms[pg->vm].st;
		return p->keep_alone && st && st->memo;
	default:
		return false;
	}
}

/*
 * Make room to remember the VMs that have gfns in the pass, before the
 * release decides on their pages: a VM that gets none (no memory) is
 * released as without a state.
 */
static void dd_state_alloc(struct dd_pass *p)
{
	size_t i;

	for (i = 0; i < p->nr_vms; i++) {
		struct dd_vm_state *st = p->vms[i].st;

		if (!st || st->memo || !p->vms[i].candidates ||
		    st->pages > SIZE_MAX / sizeof(*st->memo))
			continue;
		st->memo = calloc(st->pages, sizeof(*st->memo));
	}
}

/*
 * Remember the handle and hash of every gfn the pass left on a frame, and
 * forget the others. After a pass that released what the state kept (it
 * ended early, or dedup_state_release()), forget its VMs.
 *
 * A VM is exact, and its next pass may scan only its private gfns, when
 * this pass read its discard count first, scanned it to the end, and left
 * each of its gfns that is on a frame remembered: every page of the pass
 * either kept (its memo is its handle) or released, found private or a
 * hole (dd_release_flush()); no nominate left a gfn in doubt
 * (dd_nominate_flush()); and a VM with gfns in the pass got its memos.
 */
static void dd_state_store(struct dd_pass *p)
{
	size_t i;

	if (!p->keep_alone) {
		for (i = 0; i < p->nr_vms; i++) {
			if (p->vms[i].st)
				dd_state_forget(p->state, p->vms[i].st);
			p->vms[i].st = NULL;
		}
		return;
	}
	for (i = 0; i < p->nr_pages; i++) {
		const struct dd_page *pg = &p->pages[i];
		struct dd_vm_state *st = p->vms[pg->vm].st;
		struct dd_memo *m;

		if (!st || !st->memo)
			continue;
		m = &st->memo[pg->gfn];
		if (dd_kept(p, pg)) {
			st->kept += !m->handle;
			m->handle = pg->handle;
			m->hash = pg->hash;
		} else if (m->handle) {
			st->kept--;
			m->handle = 0;
			m->hash = 0;
		}
	}
	for (i = 0; i < p->nr_vms; i++) {
		const struct dd_vm *vm = &p->vms[i];

		if (vm->st)
			vm->st->exact = vm->discards_known && !vm->inexact &&
					(vm->st->memo || !vm->candidates);
	}
}

/*
 * Enter in the index what the pass left: for each group that ended with a
 * source, the source's frame, with the gfns the state now remembers on it;
 * then each page kept alone whose (scope, hash) has no frame. An entry
 * that has the group's frame already (its representative was the source)
 * only counts the gfns moved onto it, and takes one as its spare if it has
 * none. Return 0 or -ENOMEM.
 */
static int dd_index_note(struct dd_pass *p)
{
	struct dedup_state *s = p->state;
	struct dd_index_entry *e;
	uint64_t scope;
	uint32_t own;
	size_t i, j;

	for (i = 0; i < p->nr_runs; i++) {
		const struct dd_run *r = &p->runs[i];
		const struct dd_page *src = r->src != DD_NONE ? &p->pages[r->src] : NULL;
		size_t spare = DD_NONE;
		bool collided = r->classes;
		uint32_t n = 0;

		if (!src || src->handle != r->src_handle || !dd_kept(p, src))
			continue;
		for (j = r->start; j < r->end; j++) {
			const struct dd_page *pg = &p->pages[j];

			collided |= pg->state == DD_DIFFER;
			if (pg->handle != r->src_handle || !dd_kept(p, pg))
				continue;
			n += !pg->rep;
			if (j != r->src && spare == DD_NONE)
				spare = j;
		}
		dd_scope_key(dd_page_vm(p, src), &scope, &own);
		e = dd_index_get(s, scope, own, src->hash);
		if (!e)
			return -ENOMEM;
		if (e->handle != r->src_handle || !e->refs) {
			e->handle = r->src_handle;
			e->refs = 0;
			e->vm[0] = dd_page_vm(p, src)->id;
			e->gfn[0] = src->gfn;
			e->vm[1] = 0;
		}
		e->refs += n;
		if (collided)
			e->flags |= DD_IX_COLLIDED;
		if (spare != DD_NONE && !dd_index_live(p, e, 1)) {
			e->vm[1] = dd_page_vm(p, &p->pages[spare])->id;
			e->gfn[1] = p->pages[spare].gfn;
		}
	}
	for (i = 0; i < p->nr_pages; i++) {
		const struct dd_page *pg = &p->pages[i];

		if (pg->rep || !dd_kept(p, pg) ||
		    (pg->state != DD_ALONE && pg->state != DD_UNPAIRED && pg->state != DD_POLICY))
			continue;
		dd_scope_key(dd_page_vm(p, pg), &scope, &own);
		e = dd_index_find(s, scope, own, pg->hash);
		if (e && e->refs)
			continue;
		e = dd_index_get(s, scope, own, pg->hash);
		if (!e)
			return -ENOMEM;
		e->handle = pg->handle;
		e->refs = 1;
		e->vm[0] = dd_page_vm(p, pg)->id;
		e->gfn[0] = pg->gfn;
		e->vm[1] = 0;
	}
	for (i = 0; i < p->nr_pages; i++) {
		const struct dd_page *pg = &p->pages[i];

		if (pg->state != DD_DIFFER)
			continue;
		dd_scope_key(dd_page_vm(p, pg), &scope, &own);
		e = dd_index_find(s, scope, own, pg->hash);
		if (e)
			e->flags |= DD_IX_COLLIDED;
	}
	return 0;
}

/* The index of a pass that took the full path: made anew from its groups and pages. */
static int dd_index_build(struct dd_pass *p)
{
	struct dedup_state *s = p->state;
	size_t i, n = p->nr_runs, cap = 64;

	dd_index_drop(s);
	for (i = 0; i < p->nr_pages; i++)
		n += p->pages[i].state == DD_ALONE || p->pages[i].state == DD_UNPAIRED ||
		     p->pages[i].state == DD_POLICY;
	while (cap * 3 < n * 4 + 4)
		cap *= 2;
	s->index_vms = calloc(p->nr_vms ? p->nr_vms : 1, sizeof(*s->index_vms));
	if (!s->index_vms || dd_index_resize(s, cap))
		return -ENOMEM;
	s->nr_index_vms = p->nr_vms;
	for (i = 0; i < p->nr_vms; i++) {
		s->index_vms[i].id = p->vms[i].id;
		s->index_vms[i].group = p->vms[i].group;
		s->index_vms[i].flags = p->vms[i].flags;
	}
	return dd_index_note(p);
}

/*
 * Keep the index after a pass: rebuilt after one that took the full path,
 * updated after an index pass. Dropped after a pass that ended early, and
 * after an index pass that lost track of a frame with gfns on it (an entry
 * whose two gfns were both written, a representative written during the
 * pass) or met a hash collision, which the full path sorts out: the next
 * pass takes it.
 */
static void dd_index_store(struct dd_pass *p)
{
	size_t i;

	if (!p->keep_alone)
		goto drop;
	if (!p->index) {
		if (dd_index_build(p))
			goto drop;
		return;
	}
	for (i = 0; i < p->nr_pages; i++) {
		const struct dd_page *pg = &p->pages[i];

		if (pg->rep == DD_REP_SHARED && !dd_kept(p, pg))
			p->index_lost = true;
	}
	if (!p->index_lost && !dd_index_note(p))
		return;
drop:
	dd_index_drop(p->state);
}

/*
 * A share moves every gfn on the client's frame, those of VMs this pass
 * did not scan included: after one, such a VM's memos may name a dead
 * handle, and its next pass must query them.
 */
static void dd_state_unsure(struct dd_pass *p)
{
	size_t i;

	for (i = 0; i < p->state->nr_vms; i++) {
		struct dd_vm_state *st = p->state->vms[i];
		const struct dd_vm *vm = dd_find_vm(p, st->id);

		if (!vm || vm->st != st)
			st->exact = false;
	}
}

/* The pass's VM of a descriptor, or NULL. */
static struct dd_vm *dd_vm_of_fd(struct dd_pass *p, uint32_t fd)
{
	size_t i;

	for (i = 0; i < p->nr_vms; i++)
		if ((uint32_t)p->vms[i].fd == fd)
			return &p->vms[i];
	return NULL;
}

/* A gfn the pass leaves on a frame (or cannot tell) without a memo. */
static void dd_unsure(struct dd_pass *p, uint32_t fd)
{
	struct dd_vm *vm = dd_vm_of_fd(p, fd);

	if (vm)
		vm->inexact = true;
}

/*
 * Query the gfns queued for a release and unshare those still alone on
 * their frame (and on the frame of the handle they must have, if given).
 * A gfn that the release leaves on a frame (shared with others, or on
 * another handle's frame), or whose query or unshare fails, stays on it
 * unremembered: its VM is no longer exact.
 */
static int dd_release_flush(struct dd_pass *p)
{
	struct pageshare_query *q = p->query;
	struct pageshare_unshare *u = p->unshare;
	size_t k, nu, n = p->nr_query;
	int ret;

	if (!n)
		return 0;
	p->nr_query = 0;
	p->res->query_calls++;
	p->res->queried += n;
	ret = p->be->query(p->be->ctx, q, n);
	if (ret)
		return dd_fail(p, ret, PAGESHARE_OP_BATCH, "query");
	for (k = 0, nu = 0; k < n; k++) {
		if (q[k].result || q[k].state == PAGESHARE_STATE_SHARED) {
			dd_unsure(p, q[k].vm);
			continue;
		}
		if (q[k].state != PAGESHARE_STATE_NOMINATED)
			continue;
		if (p->query_want[k] && q[k].handle != p->query_want[k]) {
			dd_unsure(p, q[k].vm);
			continue;
		}
		memset(&u[nu], 0, sizeof(u[nu]));
		u[nu].vm = q[k].vm;
		u[nu].gfn = q[k].gfn;
		nu++;
	}
	if (nu) {
		ret = p->be->unshare(p->be->ctx, u, nu);
		if (ret)
			return dd_fail(p, ret, PAGESHARE_OP_BATCH, "unshare");
		for (k = 0; k < nu; k++) {
			if (!u[k].result)
				p->res->unshared++;
			else
				dd_unsure(p, u[k].vm);
		}
	}
	p->rel_done += n;
	dd_progress(p, DEDUP_EV_RELEASE, 0, p->rel_done, p->rel_total);
	return 0;
}

static int dd_release_add(struct dd_pass *p, int fd, uint64_t gfn, uint64_t want)
{
	size_t n = p->nr_query;

	memset(&p->query[n], 0, sizeof(p->query[n]));
	p->query[n].vm = fd;
	p->query[n].gfn = gfn;
	p->query_want[n] = want;
	p->nr_query++;
	return p->nr_query == p->rel_batch ? dd_release_flush(p) : 0;
}

/*
 * Unshare the gfns left alone on their frame, and what the state kept
 * nominated in VMs the pass did not get to check (it ended early, or
 * dedup_state_release()). The query makes sure of "alone": a gfn whose
 * frame has other sharers (from an earlier pass, or in a VM not scanned)
 * keeps it, since unsharing it would cost a copy and save nothing; and a
 * kept gfn must still have the handle the state remembers, or it is no
 * longer the agent's to release.
 */
/*
 * A page of the pass that the release of the state's memos below covers
 * (a representative from the index is both): released once, from its memo,
 * with the handle it must still have.
 */
static bool dd_release_by_memo(const struct dd_pass *p, const struct dd_page *pg)
{
	const struct dd_vm_state *st = p->vms[pg->vm].st;

	return pg->rep && st && st->memo && pg->gfn >= st->checked && st->memo[pg->gfn].handle;
}

static int dd_release(struct dd_pass *p)
{
	uint64_t g, total = 0;
	size_t i;
	int ret = 0;

	for (i = 0; i < p->nr_pages; i++)
		total += !dd_kept(p, &p->pages[i]) && !dd_release_by_memo(p, &p->pages[i]);
	for (i = 0; i < p->nr_vms; i++) {
		const struct dd_vm_state *st = p->vms[i].st;

		if (!st || !st->memo)
			continue;
		for (g = st->checked; g < st->pages; g++)
			total += !!st->memo[g].handle;
	}
	if (!total)
		return 0;
	p->rel_done = 0;
	p->rel_total = total;
	p->nr_query = 0;
	dd_progress(p, DEDUP_EV_RELEASE, 0, 0, total);
	for (i = 0; i < p->nr_pages && !ret; i++) {
		const struct dd_page *pg = &p->pages[i];

		if (!dd_kept(p, pg) && !dd_release_by_memo(p, pg))
			ret = dd_release_add(p, dd_page_vm(p, pg)->fd, pg->gfn, 0);
	}
	for (i = 0; i < p->nr_vms && !ret; i++) {
		const struct dd_vm_state *st = p->vms[i].st;

		if (!st || !st->memo)
			continue;
		for (g = st->checked; g < st->pages && !ret; g++)
			if (st->memo[g].handle)
				ret = dd_release_add(p, p->vms[i].fd, g, st->memo[g].handle);
	}
	if (!ret)
		ret = dd_release_flush(p);
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
		else if (!kept && dd_kept(p, pg))
			res->kept_alone++;
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
	p->query = calloc(p->rel_batch, sizeof(*p->query));
	p->query_want = calloc(p->rel_batch, sizeof(*p->query_want));
	p->unshare = calloc(p->rel_batch, sizeof(*p->unshare));
	p->priv_batch = p->rel_batch < PAGESHARE_BATCH_MAX ? p->rel_batch : PAGESHARE_BATCH_MAX;
	p->priv = calloc(p->priv_batch, sizeof(*p->priv));
	if (!p->nom || !p->renom || !p->renom_page || !p->ops || !p->op_page || !p->op_run ||
	    !p->query || !p->query_want || !p->unshare || !p->priv)
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
	free(p->query);
	free(p->query_want);
	free(p->unshare);
	free(p->priv);
	free(p->pages);
	free(p->runs);
	free(p->vms);
	free(p->ids);
	free(p->gone);
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

/* A pass, or with @release_only the release of what the state keeps. */
static int dd_run(const struct dedup_backend *be, const struct dedup_config *cfg,
		  struct dedup_result *res, bool release_only)
{
	struct dd_pass p = { .be = be, .cfg = cfg, .res = res };
	uint64_t saved0 = 0, saved1, start, done = 0, total = 0;
	size_t i;
	int ret;

	p.state = cfg->state;
	p.release_only = release_only;
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
	if (!ret && p.state)
		ret = dd_state_sync(&p);
	if (ret)
		goto close;
	for (i = 0; i < p.nr_vms; i++)
		total += p.vms[i].pages;
	p.index = dd_index_usable(&p);
	for (i = 0; i < p.nr_vms && !ret && !release_only; i++)
		ret = dd_scan_vm(&p, i, &done, total);
	if (p.index && !ret && !dd_stopped(&p))
		ret = dd_index_join(&p);
	res->index_pass = p.index && !ret && !dd_stopped(&p);
	for (i = 0; res->index_pass && i < p.nr_vms; i++) {
		/* The gfns remembered and not listed are taken as they are, unseen. */
		res->reused += p.vms[i].st->kept;
		res->scanned += p.vms[i].st->kept;
	}
	if (!ret)
		ret = dd_make_runs(&p);
	if (ret)
		dd_fail(&p, ret, PAGESHARE_OP_SHARE, "group pages");
	if (!ret && !release_only)
		ret = dd_share_all(&p);
	dd_settle_runs(&p);
	/*
	 * A pass that ends early gives back what it and the state kept, as
	 * the agent may be going away: nothing stays nominated unremembered.
	 */
	p.keep_alone = p.state && !ret && !dd_stopped(&p) && !release_only;
	if (p.keep_alone)
		dd_state_alloc(&p);
	/*
	 * An index pass took no remembered gfn: none to release, but after
	 * an early end, all of them (as today's path would).
	 */
	for (i = 0; p.index && i < p.nr_vms; i++)
		p.vms[i].st->checked = p.keep_alone ? p.vms[i].st->pages : 0;
	/* Release what was nominated even after a failure, if the kernel lets us. */
	if (dd_release(&p)) {
		/* What it left behind is unknown. */
		for (i = 0; i < p.nr_vms; i++)
			p.vms[i].inexact = true;
		if (!ret)
			ret = res->err;
	}
	dd_count(&p);
	if (p.state) {
		dd_state_store(&p);
		if (res->freed)
			dd_state_unsure(&p);
		dd_index_store(&p);
		res->index_slots = p.state->index ? p.state->index_cap : 0;
	}
close:
	dd_close_vms(&p);
	if (res->saved_known) {
		if (be->saved_frames(be->ctx, &saved1))
			res->saved_known = false;
		else
			res->saved_delta = (int64_t)(saved1 - saved0);
	}
	res->interrupted = dd_stopped(&p) && !release_only;
	res->ns = p.clock.now_ns(p.clock.ctx) - start;
	if (!ret && cfg->verify && !release_only) {
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

int dedup_pass(const struct dedup_backend *be, const struct dedup_config *cfg,
	       struct dedup_result *res)
{
	return dd_run(be, cfg, res, false);
}

int dedup_state_release(const struct dedup_backend *be, const struct dedup_config *cfg,
			struct dedup_result *res)
{
	struct dedup_state *s = cfg->state;
	struct dedup_config c = *cfg;
	uint64_t *ids;
	size_t i, n = 0;
	int ret;

	memset(res, 0, sizeof(*res));
	res->audit = -1;
	if (!s)
		return 0;
	dd_index_drop(s);
	/* VMs with nothing kept need no visit. */
	for (i = 0; i < s->nr_vms; i++) {
		if (s->vms[i]->kept)
			s->vms[n++] = s->vms[i];
		else
			dd_vm_state_free(s->vms[i]);
	}
	s->nr_vms = n;
	if (!n)
		return 0;
	ids = malloc(n * sizeof(*ids));
	if (!ids) {
		res->err = -ENOMEM;
		res->err_op = PAGESHARE_OP_UNSHARE;
		snprintf(res->err_what, sizeof(res->err_what), "release");
		return res->err;
	}
	for (i = 0; i < n; i++)
		ids[i] = s->vms[i]->id;
	c.vm_ids = ids;
	c.nr_vm_ids = n;
	ret = dd_run(be, &c, res, true);
	free(ids);
	/* What is left is not the agent's any more (a VM without memory), unless it failed. */
	if (!ret) {
		for (i = 0; i < s->nr_vms; i++)
			dd_vm_state_free(s->vms[i]);
		s->nr_vms = 0;
	}
	return ret;
}
