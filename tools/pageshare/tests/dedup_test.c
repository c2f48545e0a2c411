// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the dedup agent's core against a simulated kernel
 * (fake_kernel.c): grouping by hash and share scope, the choice of the
 * source, batching, hash collisions, pages written during a pass (EIDRM,
 * ESTALE), zero pages, pages left alone, the rate limit on a fake clock,
 * and random configurations checked against the fake's invariants.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../dedup.h"
#include "fake_kernel.h"
#include "pageshare.h"
#include "tap.h"

static uint64_t fk_now(void *ctx)
{
	return ((struct fk *)ctx)->now;
}

static void fk_sleep(void *ctx, uint64_t ns)
{
	struct fk *fk = ctx;

	fk->now += ns;
	fk->slept += ns;
}

static struct dedup_config fk_config(struct fk *fk)
{
	struct dedup_config cfg = {
		.page_size = FK_PAGE,
		.clock = { .ctx = fk, .now_ns = fk_now, .sleep_ns = fk_sleep },
	};

	return cfg;
}

static int fk_run(struct fk *fk, const struct dedup_config *cfg, struct dedup_result *res)
{
	struct dedup_backend be = fk_backend(fk);
	int ret = dedup_pass(&be, cfg, res);

	if (ret)
		diag("dedup_pass: %d (%s)", ret, res->err_what);
	return ret;
}

static int fk_pass(struct fk *fk, struct dedup_result *res)
{
	struct dedup_config cfg = fk_config(fk);

	return fk_run(fk, &cfg, res);
}

/* gfns of all VMs left nominated alone on a frame: the agent leaves none. */
static int fk_nominated_alone(struct fk *fk)
{
	int i, n = 0;
	uint64_t k;

	for (i = 0; i < fk->nr_vms; i++)
		for (k = 0; k < fk->vms[i].pages; k++) {
			int f = fk->vms[i].g[k].frame;

			n += f != FK_NONE && fk->frames[f].sharers == 1;
		}
	return n;
}

/* The common end of a test: kernel consistent, descriptors closed, nothing left alone. */
static void fk_end(struct fk *fk, const char *name)
{
	ok(fk_check(fk) == 0, "%s: fake kernel invariants hold", name);
	ok(fk->open_fds == 0, "%s: every VM descriptor closed", name);
	ok(fk_nominated_alone(fk) == 0, "%s: no gfn left nominated alone", name);
	fk_free(fk);
}

static void fill(struct fk *fk, uint64_t id, uint64_t gfn, uint64_t content)
{
	fk_write(fk, id, gfn, content);
}

/*
 * The kernel of the incremental tests: first one without
 * PAGESHARE_GET_PRIVATE (a backend without it: every pass queries what the
 * state remembers), then one with it (a VM left exact is scanned from its
 * private gfns, without a query).
 */
static enum fk_private inc_mode = FK_PRIVATE_NONE;

static bool inc_listing(void)
{
	return inc_mode == FK_PRIVATE;
}

static void fk_inc_init(struct fk *fk)
{
	fk_init(fk);
	fk->get_private = inc_mode;
}

/* An incremental pass: with the state. */
static int fk_inc_pass(struct fk *fk, struct dedup_state *st, struct dedup_result *res)
{
	struct dedup_config cfg = fk_config(fk);

	cfg.state = st;
	return fk_run(fk, &cfg, res);
}

/* The fake's call counters, zeroed between passes. */
static void fk_zero_counts(struct fk *fk)
{
	fk->nominate_calls = 0;
	fk->nominated = 0;
	fk->hashed = 0;
	fk->share_calls = 0;
	fk->unshare_calls = 0;
	fk->query_calls = 0;
	fk->queried = 0;
	fk->max_query = 0;
	fk->private_calls = 0;
	fk->private_listed = 0;
}

/* Release what the state keeps nominated, and free it. */
static int fk_release(struct fk *fk, struct dedup_state *st, struct dedup_result *res)
{
	struct dedup_backend be = fk_backend(fk);
	struct dedup_config cfg = fk_config(fk);
	int ret;

	cfg.state = st;
	ret = dedup_state_release(&be, &cfg, res);

	if (ret)
		diag("dedup_state_release: %d (%s)", ret, res->err_what);
	dedup_state_free(st);
	return ret;
}

static void test_xxh64(void)
{
	static const char spam[] = "Nobody inspects the spammish repetition";
	unsigned char buf[4096];
	int i;

	ok(dedup_xxh64("", 0, 0) == 0xEF46DB3751D8E999ULL, "xxh64(\"\") = 0xEF46DB3751D8E999");
	ok(dedup_xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5BULL, "xxh64(\"a\") = 0xD24EC4F1A98C6E5B");
	ok(dedup_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ULL,
	   "xxh64(\"abc\") = 0x44BC2CF5AD770999");
	ok(dedup_xxh64(spam, strlen(spam), 0) == 0xFBCEA83C8A378BF1ULL,
	   "xxh64 of 39 bytes (stripes and tail)");
	memset(buf, 0, sizeof(buf));
	ok(dedup_xxh64(buf, sizeof(buf), 0) == 0xAC869B6F32D8BBDBULL,
	   "xxh64 of a 4096-byte zero page = 0xAC869B6F32D8BBDB");
	for (i = 0; i < 4096; i++)
		buf[i] = i & 0xff;
	ok(dedup_xxh64(buf, sizeof(buf), 0) == 0x0F6E64BE186AF6A4ULL,
	   "xxh64 of a page of 0..255 bytes");
	/* An unaligned start must not change the result. */
	memmove(buf + 1, spam, strlen(spam));
	ok(dedup_xxh64(buf + 1, strlen(spam), 0) == 0xFBCEA83C8A378BF1ULL,
	   "xxh64 of an unaligned buffer");
}

/* Two groups and a VM alone: equal pages share within each scope only. */
static void test_scopes(void)
{
	struct dedup_result res;
	struct fk fk;
	uint64_t id;

	fk_init(&fk);
	for (id = 1; id <= 5; id++) {
		fk_add_vm(&fk, id, 8, id <= 2 ? 0xaaaa : id <= 4 ? 0xbbbb : 0, 0);
		fill(&fk, id, 0, 0x100);		/* in every VM */
		fill(&fk, id, 1, 0x200);		/* in every VM */
		fill(&fk, id, 2, 0x1000 + id);	/* unique */
	}
	fill(&fk, 5, 3, 0x300);			/* twice in VM 5, alone in group 0 */
	fill(&fk, 5, 4, 0x300);
	ok(!fk_pass(&fk, &res), "scopes: pass succeeds");
	ok(fk_frame_of(&fk, 1, 0) != FK_NONE && fk_frame_of(&fk, 1, 0) == fk_frame_of(&fk, 2, 0),
	   "scopes: group A's equal pages on one frame");
	ok(fk_frame_of(&fk, 3, 1) != FK_NONE && fk_frame_of(&fk, 3, 1) == fk_frame_of(&fk, 4, 1),
	   "scopes: group B's equal pages on one frame");
	ok(fk_frame_of(&fk, 1, 0) != fk_frame_of(&fk, 3, 0), "scopes: no frame across groups");
	ok(fk_frame_of(&fk, 5, 0) == FK_NONE && fk_frame_of(&fk, 5, 1) == FK_NONE,
	   "scopes: the VM in no group shares nothing with the groups");
	ok(fk_frame_of(&fk, 5, 3) != FK_NONE && fk_frame_of(&fk, 5, 3) == fk_frame_of(&fk, 5, 4),
	   "scopes: the VM in no group shares within itself");
	ok(fk.share_err[EACCES] == 0, "scopes: no share refused by policy (EACCES)");
	ok(res.shared == 5 && res.frames == 5 && res.freed == 5,
	   "scopes: 5 pages shared onto 5 frames (shared %" PRIu64 ", frames %" PRIu64 ")",
	   res.shared, res.frames);
	ok(res.alone == 7 && res.unshared == 7, "scopes: 7 unique pages unshared (%" PRIu64 ")",
	   res.unshared);
	ok(res.saved_known && res.saved_delta == 5, "scopes: saved_frames grew by 5");
	ok(res.scanned == 40 && res.holes == 40 - 17, "scopes: 40 gfns scanned, 23 holes");
	ok(fk_content(&fk, 1, 2) == 0x1001 && fk_content(&fk, 5, 4) == 0x300,
	   "scopes: contents unchanged");
	fk_end(&fk, "scopes");
}

/* The surviving frame is the one of the lowest VM id, then lowest gfn. */
static void test_source_lowest(void)
{
	struct dedup_result res;
	struct fk fk;
	int f;

	fk_init(&fk);
	/* Listed out of order, so that the order must come from the agent. */
	fk_add_vm(&fk, 7, 16, 0x77, 0);
	fk_add_vm(&fk, 3, 16, 0x77, 0);
	fk_add_vm(&fk, 5, 16, 0x77, 0);
	fill(&fk, 7, 1, 0xabc);
	fill(&fk, 5, 0, 0xabc);
	fill(&fk, 3, 9, 0xabc);
	fill(&fk, 3, 4, 0xabc);
	fill(&fk, 7, 0, 0xabc);
	ok(!fk_pass(&fk, &res), "source: pass succeeds");
	f = fk_frame_of(&fk, 3, 4);
	ok(f != FK_NONE && f == fk_frame_of(&fk, 3, 9) && f == fk_frame_of(&fk, 5, 0) &&
	   f == fk_frame_of(&fk, 7, 0) && f == fk_frame_of(&fk, 7, 1),
	   "source: all five gfns on one frame");
	ok(f != FK_NONE && fk.frames[f].origin_vm == 3 && fk.frames[f].origin_gfn == 4,
	   "source: the frame is VM 3 gfn 4's (lowest VM id, then gfn)");
	ok(fk.frames[f].sharers == 5, "source: 5 sharers");
	fk_end(&fk, "source");
}

/* Batches are no bigger than configured, and there are several. */
static void test_batching(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	bool all = true;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 50, 0x5, 0);
	fk_add_vm(&fk, 2, 50, 0x5, 0);
	for (g = 0; g < 50; g++) {
		fill(&fk, 1, g, 0x5000 + g);
		fill(&fk, 2, g, 0x5000 + g);
	}
	cfg = fk_config(&fk);
	cfg.nominate_batch = 7;
	cfg.share_batch = 5;
	cfg.release_batch = 3;
	ok(!fk_run(&fk, &cfg, &res), "batching: pass succeeds");
	ok(fk.max_nominate <= 7 && fk.max_nominate == 7, "batching: nominate batches of 7 at most");
	ok(fk.nominate_calls == 16 && res.nominate_calls == 16,
	   "batching: 16 nominate calls for 2 x 50 gfns (%zu)", fk.nominate_calls);
	ok(fk.max_share == 5, "batching: share batches of 5 at most");
	ok(fk.share_calls == 10, "batching: 10 share calls for 50 shares (%zu)", fk.share_calls);
	for (g = 0; g < 50; g++)
		all &= fk_frame_of(&fk, 1, g) != FK_NONE &&
		       fk_frame_of(&fk, 1, g) == fk_frame_of(&fk, 2, g);
	ok(all && res.shared == 50, "batching: all 50 pairs shared");
	fk_end(&fk, "batching");
}

/* Equal hashes, different bytes: the kernel's compare refuses, the pages stay apart. */
static void test_collision(void)
{
	struct dedup_result res;
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x42);
	fill(&fk, 2, 0, 0x42 | FK_COLLIDE);
	fill(&fk, 1, 1, 0x43);
	fill(&fk, 2, 1, 0x43);
	ok(fk_hash(0x42) == fk_hash(0x42 | FK_COLLIDE), "collision: the fake hashes collide");
	ok(!fk_pass(&fk, &res), "collision: pass succeeds");
	ok(fk.share_err[EILSEQ] == 1 && res.differ == 1, "collision: refused with EILSEQ, counted");
	ok(fk_frame_of(&fk, 1, 0) == FK_NONE && fk_frame_of(&fk, 2, 0) == FK_NONE,
	   "collision: both pages private again");
	ok(fk_content(&fk, 2, 0) == (0x42 | FK_COLLIDE), "collision: the client keeps its bytes");
	ok(fk_frame_of(&fk, 1, 1) == fk_frame_of(&fk, 2, 1) && res.shared == 1,
	   "collision: the equal pair is shared");
	ok(dedup_skipped(&res) == 1 + res.holes, "collision: counted as skipped");
	fk_end(&fk, "collision");
}

/* A source that collides with the rest: the rest still share among themselves. */
static void test_collision_classes(void)
{
	struct dedup_result res;
	struct fk fk;
	int f;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fk_add_vm(&fk, 3, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x42 | FK_COLLIDE);	/* the lowest page, the first source */
	fill(&fk, 2, 0, 0x42);
	fill(&fk, 3, 0, 0x42);
	ok(!fk_pass(&fk, &res), "collision classes: pass succeeds");
	f = fk_frame_of(&fk, 2, 0);
	ok(f != FK_NONE && f == fk_frame_of(&fk, 3, 0) && fk.frames[f].origin_vm == 2,
	   "collision classes: VMs 2 and 3 share, VM 2 the source");
	ok(fk_frame_of(&fk, 1, 0) == FK_NONE, "collision classes: VM 1 private again");
	ok(res.shared == 1 && res.frames == 1 && res.differ == 0,
	   "collision classes: 1 shared, nothing left differing");
	fk_end(&fk, "collision classes");
}

/* Write one page before share call number hook_call. */
static void hook_write(struct fk *fk, size_t call)
{
	if (call == fk->hook_call)
		fk_write(fk, fk->hook_vm, fk->hook_gfn, fk->hook_content);
}

/* A client written between nominate and share: nominated again, retried once. */
static void test_eidrm_retry(void)
{
	struct dedup_result res;
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x77);
	fill(&fk, 2, 0, 0x77);
	fill(&fk, 1, 1, 0x78);
	fill(&fk, 2, 1, 0x78);
	/* Same bytes written again: the handle dies, the hash holds. */
	fk.before_share = hook_write;
	fk.hook_vm = 2;
	fk.hook_gfn = 0;
	fk.hook_content = 0x77;
	ok(!fk_pass(&fk, &res), "eidrm: pass succeeds");
	ok(fk.share_err[EIDRM] == 1, "eidrm: the first share got EIDRM");
	ok(res.retried == 1, "eidrm: retried once (%" PRIu64 ")", res.retried);
	ok(fk_frame_of(&fk, 1, 0) != FK_NONE && fk_frame_of(&fk, 1, 0) == fk_frame_of(&fk, 2, 0),
	   "eidrm: shared after the retry");
	ok(res.shared == 2 && res.stale == 0, "eidrm: 2 shared, none stale");
	fk_end(&fk, "eidrm");

	/* Other bytes written: the new hash differs, the page is left alone. */
	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x77);
	fill(&fk, 2, 0, 0x77);
	fk.before_share = hook_write;
	fk.hook_vm = 2;
	fk.hook_gfn = 0;
	fk.hook_content = 0x99;
	ok(!fk_pass(&fk, &res), "eidrm changed: pass succeeds");
	ok(res.retried == 0 && res.stale == 1 && res.shared == 0,
	   "eidrm changed: not retried, counted stale");
	ok(fk_frame_of(&fk, 1, 0) == FK_NONE && fk_content(&fk, 2, 0) == 0x99,
	   "eidrm changed: both private, the write kept");
	fk_end(&fk, "eidrm changed");
}

/* The source written before the shares: the next page becomes the source. */
static void test_estale_promotion(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	int f;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fk_add_vm(&fk, 3, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x55);
	fill(&fk, 2, 0, 0x55);
	fill(&fk, 3, 0, 0x55);
	fk.before_share = hook_write;
	fk.hook_vm = 1;
	fk.hook_gfn = 0;
	fk.hook_content = 0x56;
	ok(!fk_pass(&fk, &res), "estale: pass succeeds");
	ok(fk.share_err[ESTALE] >= 1, "estale: shares into the old source got ESTALE");
	f = fk_frame_of(&fk, 2, 0);
	ok(f != FK_NONE && f == fk_frame_of(&fk, 3, 0), "estale: VMs 2 and 3 share a frame");
	ok(f != FK_NONE && fk.frames[f].origin_vm == 2, "estale: VM 2's page became the source");
	ok(fk_frame_of(&fk, 1, 0) == FK_NONE && fk_content(&fk, 1, 0) == 0x56,
	   "estale: the written source is private with its new bytes");
	ok(res.stale == 1 && res.shared == 1 && res.frames == 1,
	   "estale: 1 stale, 1 shared, 1 frame");
	fk_end(&fk, "estale");

	/*
	 * The source written after a first share (one share a call): the page
	 * already on its frame takes over, and the frame is kept.
	 */
	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fk_add_vm(&fk, 3, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x55);
	fill(&fk, 2, 0, 0x55);
	fill(&fk, 3, 0, 0x55);
	fk.before_share = hook_write;
	fk.hook_call = 1;
	fk.hook_vm = 1;
	fk.hook_gfn = 0;
	fk.hook_content = 0x56;
	cfg = fk_config(&fk);
	cfg.share_batch = 1;
	ok(!fk_run(&fk, &cfg, &res), "estale after share: pass succeeds");
	f = fk_frame_of(&fk, 2, 0);
	ok(f != FK_NONE && f == fk_frame_of(&fk, 3, 0), "estale after share: VMs 2 and 3 share");
	ok(f != FK_NONE && fk.frames[f].origin_vm == 1,
	   "estale after share: VM 1's old frame kept, VM 2 took over as source");
	ok(fk_frame_of(&fk, 1, 0) == FK_NONE && fk_content(&fk, 1, 0) == 0x56,
	   "estale after share: the written source is private");
	ok(res.stale == 1 && res.shared == 1 && res.frames == 1 && res.retried == 0,
	   "estale after share: 1 stale, 1 shared, 1 frame");
	fk_end(&fk, "estale after share");
}

/* Every zero page of a scope on one frame. */
static void test_zero_pages(void)
{
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	int f1, f3;
	bool one = true;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 16, 0x2, 0);
	fk_add_vm(&fk, 2, 16, 0x2, 0);
	fk_add_vm(&fk, 3, 16, 0, 0);
	for (g = 0; g < 10; g++) {
		fill(&fk, 1, g, 0);
		fill(&fk, 2, g + 3, 0);
	}
	for (g = 0; g < 5; g++)
		fill(&fk, 3, g * 2, 0);
	fill(&fk, 3, 1, 0x1234);
	ok(!fk_pass(&fk, &res), "zero: pass succeeds");
	f1 = fk_frame_of(&fk, 1, 0);
	f3 = fk_frame_of(&fk, 3, 0);
	for (g = 0; g < 10; g++)
		one &= fk_frame_of(&fk, 1, g) == f1 && fk_frame_of(&fk, 2, g + 3) == f1;
	ok(f1 != FK_NONE && one && fk.frames[f1].sharers == 20,
	   "zero: the group's 20 zero pages on one frame");
	ok(fk.frames[f1].content == 0, "zero: it is a zero page");
	one = true;
	for (g = 0; g < 5; g++)
		one &= fk_frame_of(&fk, 3, g * 2) == f3;
	ok(f3 != FK_NONE && f3 != f1 && one && fk.frames[f3].sharers == 5,
	   "zero: the lone VM's 5 zero pages on a frame of their own");
	ok(res.zero == 25, "zero: 25 zero pages counted (%" PRIu64 ")", res.zero);
	ok(res.freed == 23, "zero: 23 frames freed");
	fk_end(&fk, "zero");
}

/* Pages with no equal are made private again; so are refused ones. */
static void test_singletons(void)
{
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	bool priv = true;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 32, 0x3, 0);
	fk_add_vm(&fk, 2, 32, 0x3, 0);
	for (g = 0; g < 32; g++) {
		fill(&fk, 1, g, 0x10000 + g);
		fill(&fk, 2, g, 0x20000 + g);
	}
	ok(!fk_pass(&fk, &res), "singletons: pass succeeds");
	for (g = 0; g < 32; g++)
		priv &= fk_frame_of(&fk, 1, g) == FK_NONE && fk_frame_of(&fk, 2, g) == FK_NONE;
	ok(priv, "singletons: every page private again");
	ok(res.alone == 64 && res.unshared == 64 && res.shared == 0,
	   "singletons: 64 alone, 64 unshared");
	ok(fk.share_calls == 0, "singletons: no share call");
	ok(fk_saved(&fk) == 0, "singletons: nothing saved");
	fk_end(&fk, "singletons");
}

/* Holes and pinned pages are skipped and counted. */
static void test_holes_busy(void)
{
	struct dedup_result res;
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 8, 0x4, 0);
	fk_add_vm(&fk, 2, 8, 0x4, 0);
	fill(&fk, 1, 0, 0x1);
	fill(&fk, 2, 0, 0x1);
	fill(&fk, 1, 1, 0x2);
	fill(&fk, 2, 1, 0x2);
	fk_g(&fk, 2, 1)->busy = true;		/* pinned at nominate */
	fill(&fk, 1, 2, 0x3);
	fill(&fk, 2, 2, 0x3);
	fk_g(&fk, 2, 2)->pin_on_share = true;	/* pinned after nominate */
	ok(!fk_pass(&fk, &res), "holes/busy: pass succeeds");
	ok(res.holes == 10, "holes/busy: 10 holes (%" PRIu64 ")", res.holes);
	ok(res.busy == 2, "holes/busy: 2 busy (%" PRIu64 ")", res.busy);
	ok(res.shared == 1 && fk_frame_of(&fk, 1, 0) == fk_frame_of(&fk, 2, 0),
	   "holes/busy: the free pair shared");
	ok(fk_frame_of(&fk, 2, 2) == FK_NONE && fk_frame_of(&fk, 1, 2) == FK_NONE,
	   "holes/busy: the pinned pair private again");
	ok(dedup_skipped(&res) == 12, "holes/busy: 12 skipped");
	fk_end(&fk, "holes/busy");
}

/* N nominations at R pages/s take N/R seconds, on the fake clock. */
static void test_rate_limit(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	double secs;
	uint64_t g;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 500, 0x6, 0);
	fk_add_vm(&fk, 2, 500, 0x6, 0);
	for (g = 0; g < 500; g += 2) {
		fill(&fk, 1, g, g);
		fill(&fk, 2, g, g);
	}
	cfg = fk_config(&fk);
	cfg.max_pages_per_sec = 100;
	ok(!fk_run(&fk, &cfg, &res), "rate: pass succeeds");
	secs = fk.slept / 1e9;
	ok(secs >= 9.0 && secs <= 10.5, "rate: 1000 pages at 100/s slept %.2f s (about 10)", secs);
	ok(res.ns >= fk.slept, "rate: the pass took the slept time");
	ok(fk.max_nominate <= 10, "rate: batches of a tenth of a second (%zu)", fk.max_nominate);
	ok(res.shared == 250, "rate: the work was done");
	fk_end(&fk, "rate");

	/* The bucket holds a tenth of a second: 2000 pages at 5000/s sleep 0.3 s. */
	fk_init(&fk);
	fk_add_vm(&fk, 1, 2000, 0x6, 0);
	fill(&fk, 1, 0, 1);
	cfg = fk_config(&fk);
	cfg.max_pages_per_sec = 5000;
	ok(!fk_run(&fk, &cfg, &res), "rate 5000: pass succeeds");
	secs = fk.slept / 1e9;
	ok(secs >= 0.299 && secs <= 0.301, "rate 5000: 2000 pages slept %.3f s (0.4 less a tenth)",
	   secs);
	fk_end(&fk, "rate 5000");

	fk_init(&fk);
	fk_add_vm(&fk, 1, 500, 0x6, 0);
	cfg = fk_config(&fk);
	ok(!fk_run(&fk, &cfg, &res) && fk.slept == 0, "no rate: no sleep");
	fk_end(&fk, "no rate");
}

/* A second pass over unchanged VMs changes nothing. */
static void test_second_pass(void)
{
	struct dedup_result res;
	struct fk fk;
	uint64_t g, saved;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 16, 0x8, 0);
	fk_add_vm(&fk, 2, 16, 0x8, 0);
	fk_add_vm(&fk, 3, 16, 0x8, 0);
	for (g = 0; g < 16; g++) {
		fill(&fk, 1, g, g % 4);
		fill(&fk, 2, g, g % 4);
		fill(&fk, 3, g, 100 + g);
	}
	ok(!fk_pass(&fk, &res), "second pass: first pass succeeds");
	saved = fk_saved(&fk);
	ok(saved == 28, "second pass: 32 gfns on 4 frames (saved %" PRIu64 ")", saved);
	fk.share_calls = 0;
	ok(!fk_pass(&fk, &res), "second pass: second pass succeeds");
	ok(res.shared == 0 && res.freed == 0 && res.already == 28 && res.frames == 4,
	   "second pass: nothing new (already %" PRIu64 ")", res.already);
	ok(res.saved_delta == 0 && fk_saved(&fk) == saved, "second pass: saved unchanged");
	ok(res.unshared == 16 && fk.share_calls == 0, "second pass: no share call");
	fk_end(&fk, "second pass");
}

/* A frame shared by an earlier pass moves in one share, without EIDRM. */
static void test_merge_frames(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	static const uint64_t two[] = { 7, 5 };
	struct fk fk;
	int f;

	fk_init(&fk);
	fk_add_vm(&fk, 3, 4, 0x8, 0);
	fk_add_vm(&fk, 5, 4, 0x8, 0);
	fk_add_vm(&fk, 7, 4, 0x8, 0);
	fill(&fk, 3, 0, 0xfe);
	fill(&fk, 5, 0, 0xfe);
	fill(&fk, 7, 0, 0xfe);
	fill(&fk, 7, 1, 0xfe);
	cfg = fk_config(&fk);
	cfg.vm_ids = two;
	cfg.nr_vm_ids = 2;
	ok(!fk_run(&fk, &cfg, &res), "merge: pass over VMs 5 and 7 succeeds");
	f = fk_frame_of(&fk, 5, 0);
	ok(res.vms == 2 && f != FK_NONE && f == fk_frame_of(&fk, 7, 0) &&
	   f == fk_frame_of(&fk, 7, 1) && fk.frames[f].origin_vm == 5,
	   "merge: VM 5 is the source of the first pass");
	ok(fk_frame_of(&fk, 3, 0) == FK_NONE, "merge: VM 3 untouched");
	ok(!fk_pass(&fk, &res), "merge: pass over all VMs succeeds");
	f = fk_frame_of(&fk, 3, 0);
	ok(f != FK_NONE && f == fk_frame_of(&fk, 5, 0) && f == fk_frame_of(&fk, 7, 0) &&
	   f == fk_frame_of(&fk, 7, 1) && fk.frames[f].origin_vm == 3,
	   "merge: all on VM 3's frame");
	ok(fk.share_calls == 2 && fk.share_err[EIDRM] == 0 && res.retried == 0,
	   "merge: one share moved the old frame, no EIDRM");
	ok(res.shared == 3 && res.freed == 1, "merge: 3 gfns moved, 1 frame freed");
	fk_end(&fk, "merge");
}

/* A no-intra-VM VM gets one gfn on a frame; the agent does not try for more. */
static void test_no_intra(void)
{
	struct dedup_result res;
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0xc, PAGESHARE_POLICY_NO_INTRA_VM);
	fk_add_vm(&fk, 2, 4, 0xc, 0);
	fk_add_vm(&fk, 3, 4, 0, PAGESHARE_POLICY_NO_INTRA_VM);
	fill(&fk, 1, 0, 0xa);
	fill(&fk, 1, 1, 0xa);
	fill(&fk, 2, 0, 0xa);
	fill(&fk, 2, 1, 0xa);
	fill(&fk, 3, 0, 0xa);
	fill(&fk, 3, 1, 0xa);
	ok(!fk_pass(&fk, &res), "no-intra: pass succeeds");
	ok(res.vms == 2 && res.vms_skipped == 1, "no-intra: the VM in no group skipped");
	ok(fk_frame_of(&fk, 3, 0) == FK_NONE && fk_frame_of(&fk, 3, 1) == FK_NONE,
	   "no-intra: its pages never nominated");
	ok(fk_frame_of(&fk, 1, 0) != FK_NONE && fk_frame_of(&fk, 1, 0) == fk_frame_of(&fk, 2, 0) &&
	   fk_frame_of(&fk, 2, 0) == fk_frame_of(&fk, 2, 1),
	   "no-intra: one gfn of VM 1 shares with VM 2's two");
	ok(fk_frame_of(&fk, 1, 1) == FK_NONE, "no-intra: VM 1's second gfn private");
	ok(fk.share_err[EACCES] == 0 && res.policy == 1, "no-intra: no EACCES, 1 kept apart");
	fk_end(&fk, "no-intra");
}

/* A VM that exits between the listing and the open is skipped. */
static void test_vanished(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	static const uint64_t ids[] = { 1, 2, 9 };
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0xd, 0);
	fk_add_vm(&fk, 2, 4, 0xd, 0);
	fk_add_vm(&fk, 4, 4, 0xd, 0)->exists = false;
	fk_add_vm(&fk, 6, 0, 0, 0);	/* a file not sized yet */
	fill(&fk, 1, 0, 0xb);
	fill(&fk, 2, 0, 0xb);
	ok(!fk_pass(&fk, &res), "vanished: pass succeeds");
	ok(res.vms == 2 && res.vms_gone == 1 && res.vms_skipped == 1,
	   "vanished: 2 VMs scanned, 1 gone, 1 without memory");
	ok(res.shared == 1, "vanished: the others shared");
	cfg = fk_config(&fk);
	cfg.vm_ids = ids;
	cfg.nr_vm_ids = 3;
	ok(!fk_run(&fk, &cfg, &res) && res.vms_gone == 1, "vanished: a named VM that is gone");
	fk_end(&fk, "vanished");
}

/* --verify runs the audit once per pass. */
static void test_verify(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0xe, 0);
	fk_add_vm(&fk, 2, 4, 0xe, 0);
	fill(&fk, 1, 0, 0xb);
	fill(&fk, 2, 0, 0xb);
	cfg = fk_config(&fk);
	ok(!fk_run(&fk, &cfg, &res) && res.audit == -1 && fk.audits == 0,
	   "verify: no audit without --verify");
	cfg.verify = true;
	ok(!fk_run(&fk, &cfg, &res) && res.audit == 0 && fk.audits == 1,
	   "verify: one audit, no problem");
	fk_end(&fk, "verify");
}

/* A frame full at max_sharers: the next page starts a new one. */
static void test_max_sharers(void)
{
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	int f0, f3;

	fk_init(&fk);
	fk.max_sharers = 3;
	fk_add_vm(&fk, 1, 8, 0, 0);
	for (g = 0; g < 7; g++)
		fill(&fk, 1, g, 0xcafe);
	ok(!fk_pass(&fk, &res), "max_sharers: pass succeeds");
	f0 = fk_frame_of(&fk, 1, 0);
	f3 = fk_frame_of(&fk, 1, 3);
	ok(f0 != FK_NONE && fk.frames[f0].sharers == 3, "max_sharers: first frame full (3)");
	ok(f3 != FK_NONE && f3 != f0 && fk.frames[f3].sharers == 3,
	   "max_sharers: second frame full (3)");
	ok(fk_frame_of(&fk, 1, 6) == FK_NONE, "max_sharers: the last page private");
	ok(res.shared == 4 && res.frames == 2 && res.errors == 0,
	   "max_sharers: 4 shared onto 2 frames");
	fk_end(&fk, "max_sharers");
}

/*
 * Incremental passes over unchanged VMs: the second pass queries what the
 * first left on frames, nominates and hashes nothing, and changes nothing;
 * the pages left alone stay nominated until the state is released.
 */
static void test_inc_unchanged(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	uint64_t g, saved;

	fk_inc_init(&fk);
	fk_add_vm(&fk, 1, 16, 0x8, 0);
	fk_add_vm(&fk, 2, 16, 0x8, 0);
	fk_add_vm(&fk, 3, 16, 0x8, 0);
	for (g = 0; g < 16; g++) {
		fill(&fk, 1, g, g % 4);
		fill(&fk, 2, g, g % 4);
		fill(&fk, 3, g, 100 + g);	/* unique */
	}
	ok(!!st, "inc unchanged: a state");
	ok(!fk_inc_pass(&fk, st, &res), "inc unchanged: first pass succeeds");
	saved = fk_saved(&fk);
	ok(saved == 28 && res.shared == 28 && res.frames == 4,
	   "inc unchanged: first pass shares as a full pass (saved %" PRIu64 ")", saved);
	ok(fk.hashed == 48 && res.reused == 0 && res.queried == 0 && res.query_calls == 0,
	   "inc unchanged: first pass hashes all 48 pages, queries none (%zu)", fk.hashed);
	ok(res.alone == 16 && res.kept_alone == 16 && res.unshared == 0 && fk.unshare_calls == 0,
	   "inc unchanged: the 16 unique pages kept nominated, none unshared");
	ok(fk_nominated_alone(&fk) == 16, "inc unchanged: 16 gfns nominated alone in the kernel");
	if (inc_listing())
		ok(res.private_calls == 3 && fk.private_calls == 3,
		   "inc unchanged: first pass reads each VM's discard count (%zu calls)",
		   fk.private_calls);

	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc unchanged: second pass succeeds");
	ok(fk.hashed == 0 && fk.nominate_calls == 0 && res.nominate_calls == 0,
	   "inc unchanged: second pass nominates nothing (hashed %zu, %zu calls)", fk.hashed,
	   fk.nominate_calls);
	if (!inc_listing()) {
		ok(res.reused == 48 && res.queried == 48 && fk.queried == 48,
		   "inc unchanged: all 48 kept pages reused (%" PRIu64 " of %" PRIu64 " queried)",
		   res.reused, res.queried);
		ok(res.query_calls == 3 && fk.query_calls == 3,
		   "inc unchanged: one query call per VM (%zu)", fk.query_calls);
	} else {
		ok(res.reused == 48 && res.queried == 0 && fk.queried == 0 && res.query_calls == 0,
		   "inc unchanged: all 48 kept pages reused, none queried (%" PRIu64 " queried)",
		   res.queried);
		ok(res.private_calls == 3 && fk.private_calls == 3 && res.private_listed == 0 &&
		   fk.private_listed == 0,
		   "inc unchanged: one GET_PRIVATE call per VM, nothing listed (%zu calls)",
		   fk.private_calls);
	}
	if (!inc_listing()) {
		ok(res.scanned == 48 && res.candidates == 48,
		   "inc unchanged: 48 scanned, 48 candidates");
		ok(res.shared == 0 && res.freed == 0 && res.already == 28 && res.frames == 4 &&
		   res.zero == 8, "inc unchanged: nothing new (already %" PRIu64 ")", res.already);
		ok(res.alone == 16 && res.kept_alone == 16,
		   "inc unchanged: 16 still alone and kept");
	} else {
		/* An index pass: the 48 taken as they are, none of them visited. */
		ok(res.scanned == 48 && res.candidates == 0 && res.index_pass == 1 &&
		   res.indexed == 0 && res.index_reps == 0,
		   "inc unchanged: 48 scanned, an index pass with no candidate (%" PRIu64 ")",
		   res.candidates);
		ok(res.shared == 0 && res.freed == 0 && res.already == 0 && res.frames == 0 &&
		   res.zero == 0, "inc unchanged: nothing new, nothing visited");
		ok(res.alone == 0 && res.kept_alone == 0,
		   "inc unchanged: the 16 alone kept, not visited");
	}
	ok(fk.share_calls == 0 && fk.unshare_calls == 0 && res.unshared == 0,
	   "inc unchanged: no share or unshare call");
	ok(res.saved_delta == 0 && fk_saved(&fk) == saved, "inc unchanged: saved unchanged");
	ok(fk_check(&fk) == 0 && fk.bad_fd == 0,
	   "inc unchanged: invariants hold, no bad descriptor");

	/* Queries in batches of release_batch. */
	fk_zero_counts(&fk);
	cfg = fk_config(&fk);
	cfg.state = st;
	cfg.release_batch = 5;
	ok(!fk_run(&fk, &cfg, &res), "inc unchanged: third pass, queries of 5, succeeds");
	if (!inc_listing())
		ok(fk.max_query == 5 && res.query_calls == 12 && fk.query_calls == 12,
		   "inc unchanged: 16 gfns a VM in 4 queries of 5 at most (%zu calls)",
		   fk.query_calls);
	else
		ok(fk.query_calls == 0 && fk.private_calls == 3,
		   "inc unchanged: no query; one GET_PRIVATE call a VM (%zu)", fk.private_calls);
	ok(res.reused == 48 && fk.hashed == 0, "inc unchanged: all reused again");

	fk_zero_counts(&fk);
	ok(!fk_release(&fk, st, &res), "inc unchanged: release succeeds");
	ok(res.unshared == 16 && res.vms == 3 && fk.hashed == 0,
	   "inc unchanged: release made the 16 kept pages private (%" PRIu64 ")", res.unshared);
	ok(fk_saved(&fk) == saved, "inc unchanged: release kept the shared pages");
	fk_end(&fk, "inc unchanged");
}

/*
 * A page written between passes loses its handle: the next pass nominates
 * and hashes it again, and shares it again if it matches another.
 */
static void test_inc_written(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	struct fk fk;
	uint64_t saved;

	fk_inc_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x9, 0);
	fk_add_vm(&fk, 2, 4, 0x9, 0);
	fill(&fk, 1, 0, 0x10);
	fill(&fk, 2, 0, 0x10);
	fill(&fk, 1, 1, 0x20);
	fill(&fk, 2, 1, 0x30);
	fill(&fk, 1, 2, 0x40);
	fill(&fk, 2, 2, 0x40);
	ok(!fk_inc_pass(&fk, st, &res), "inc written: first pass succeeds");
	ok(res.shared == 2 && res.kept_alone == 2, "inc written: 2 shared, 2 kept alone");
	saved = fk_saved(&fk);

	/* The same bytes again, other bytes that match a kept page, and other bytes. */
	fk_write(&fk, 2, 0, 0x10);
	fk_write(&fk, 2, 1, 0x20);
	fk_write(&fk, 2, 2, 0x41);
	ok(fk_frame_of(&fk, 2, 0) == FK_NONE && fk_frame_of(&fk, 2, 1) == FK_NONE,
	   "inc written: the written gfns are private in the kernel");
	ok(fk_saved(&fk) == saved - 2, "inc written: the writes gave back 2 saved frames");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc written: second pass succeeds");
	ok(fk.hashed == 3 && res.reused == 3 && res.queried == (inc_listing() ? 0 : 6) &&
	   res.private_listed == (inc_listing() ? 3 : 0),
	   "inc written: the 3 written pages hashed, the 3 others reused (hashed %zu, reused %"
	   PRIu64 ")", fk.hashed, res.reused);
	ok(fk_frame_of(&fk, 2, 0) != FK_NONE && fk_frame_of(&fk, 2, 0) == fk_frame_of(&fk, 1, 0),
	   "inc written: rewritten with its bytes, shared again");
	ok(fk_frame_of(&fk, 2, 1) != FK_NONE && fk_frame_of(&fk, 2, 1) == fk_frame_of(&fk, 1, 1),
	   "inc written: now equal to a kept page, shared with it");
	ok(fk_frame_of(&fk, 2, 2) != FK_NONE && fk_frame_of(&fk, 2, 2) != fk_frame_of(&fk, 1, 2),
	   "inc written: changed bytes, on a frame of its own");
	ok(res.shared == 2 && res.already == 0 && res.frames == 2 && res.retried == 0 &&
	   res.stale == 0, "inc written: 2 shared, counted (shared %" PRIu64 ")", res.shared);
	/* An index pass visits only VM 2 gfn 2, not VM 1 gfn 2, alone as before. */
	ok(res.alone == (inc_listing() ? 1 : 2) && res.kept_alone == res.alone,
	   "inc written: VM 1 gfn 2 and VM 2 gfn 2 alone");
	ok(fk_saved(&fk) == saved, "inc written: saved as before the writes");
	ok(fk_content(&fk, 2, 1) == 0x20 && fk_content(&fk, 2, 2) == 0x41 &&
	   fk_content(&fk, 1, 2) == 0x40, "inc written: every gfn reads its last write");

	/* A kept shared page written: its partner is alone on the frame, and stays. */
	fk_write(&fk, 2, 1, 0x50);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc written: third pass succeeds");
	ok(fk.hashed == 1 && res.reused == 5 && res.kept_alone == (inc_listing() ? 1 : 4),
	   "inc written: 1 hashed, 5 reused, 4 alone kept (hashed %zu)", fk.hashed);
	ok(fk_frame_of(&fk, 1, 1) != FK_NONE, "inc written: the partner left alone kept its frame");

	ok(!fk_release(&fk, st, &res) && res.unshared == 4,
	   "inc written: release made 4 private (%" PRIu64 ")", res.unshared);
	fk_end(&fk, "inc written");
}

/* A page left alone and written between passes is nominated and hashed again. */
static void test_inc_alone_written(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	struct fk fk;
	int f;

	fk_inc_init(&fk);
	fk_add_vm(&fk, 1, 8, 0, 0);
	fill(&fk, 1, 0, 0x1);
	fill(&fk, 1, 1, 0x2);
	fill(&fk, 1, 2, 0x3);
	fill(&fk, 1, 3, 0x3);
	ok(!fk_inc_pass(&fk, st, &res), "inc alone: first pass succeeds");
	ok(res.alone == 2 && res.kept_alone == 2 && res.shared == 1,
	   "inc alone: 2 alone kept, 1 shared");

	fk_write(&fk, 1, 0, 0x5);
	ok(fk_frame_of(&fk, 1, 0) == FK_NONE, "inc alone: the write made it private");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc alone: second pass succeeds");
	ok(fk.hashed == 1 && res.reused == 3, "inc alone: the written page hashed again (%zu)",
	   fk.hashed);
	ok(fk_frame_of(&fk, 1, 0) != FK_NONE && res.kept_alone == (inc_listing() ? 1 : 2) &&
	   res.unshared == 0, "inc alone: still unique: kept nominated with its new hash");
	ok(fk_content(&fk, 1, 0) == 0x5, "inc alone: it reads its write");

	/* Written with the bytes of the shared pair: it joins their frame. */
	fk_write(&fk, 1, 1, 0x3);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc alone: third pass succeeds");
	/*
	 * The lowest gfn of the group, it is the source: the pair's frame
	 * moves onto its. An index pass moves it onto the pair's frame.
	 */
	f = fk_frame_of(&fk, 1, 1);
	ok(fk.hashed == 1 && res.shared == (inc_listing() ? 1 : 2) && f != FK_NONE &&
	   fk_frame_of(&fk, 1, 2) == f && fk_frame_of(&fk, 1, 3) == f &&
	   fk.frames[f].sharers == 3,
	   "inc alone: hashed again and shared with the pair (%" PRIu64 " moved)", res.shared);
	ok(res.kept_alone == (inc_listing() ? 0 : 1), "inc alone: 1 kept alone");

	/* A fourth pass finds nothing new. */
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && fk.hashed == 0 && res.reused == 4 && res.shared == 0,
	   "inc alone: fourth pass: nothing hashed, 4 reused");

	/*
	 * Written with the trio's bytes and nominated anew by someone else:
	 * nominated again, but under another handle, so its old hash is no
	 * longer its bytes'.
	 */
	fk_write(&fk, 1, 0, 0x3);
	{
		struct dedup_backend be = fk_backend(&fk);
		struct pageshare_nominate n = { .gfn = 0 };

		n.vm = be.open_vm(&fk, 1);
		be.nominate(&fk, &n, 1);
		be.close_vm(&fk, n.vm);
		ok(!n.result && fk_frame_of(&fk, 1, 0) != FK_NONE,
		   "inc alone: nominated anew behind the agent's back");
	}
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc alone: fifth pass succeeds");
	f = fk_frame_of(&fk, 1, 0);
	if (!inc_listing()) {
		/* gfn 0, the lowest, is the source: the trio moves onto its frame. */
		ok(fk.hashed == 1 && res.reused == 3 && res.shared == 3 && f != FK_NONE &&
		   fk_frame_of(&fk, 1, 3) == f && fk.frames[f].sharers == 4,
		   "inc alone: a new handle: hashed again, and shared (%" PRIu64 " moved)",
		   res.shared);
	} else {
		/*
		 * On a frame, so not listed: taken as remembered, with its old
		 * hash, alone. Another agent's nominate of a written gfn is
		 * what the private gfns cannot show; its next write will.
		 */
		ok(fk.hashed == 0 && res.reused == 4 && res.queried == 0 && res.shared == 0 &&
		   f != FK_NONE && fk_frame_of(&fk, 1, 3) != f,
		   "inc alone: nominated by another: not listed, taken as remembered");
	}

	/* Written again: found (queried or listed), hashed and shared either way. */
	fk_write(&fk, 1, 0, 0x3);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc alone: sixth pass succeeds");
	f = fk_frame_of(&fk, 1, 0);
	ok(fk.hashed == 1 && res.reused == 3 && res.shared == (inc_listing() ? 1 : 3) &&
	   f != FK_NONE && fk_frame_of(&fk, 1, 3) == f && fk.frames[f].sharers == 4,
	   "inc alone: written again: hashed, and shared (%" PRIu64 " moved)", res.shared);
	ok(!fk_release(&fk, st, &res) && res.unshared == 0, "inc alone: release: nothing alone");
	fk_end(&fk, "inc alone");
}

/*
 * VMs that come and go between passes: a VM gone (not listed, or gone at
 * the open) and a VM resized are forgotten; no descriptor of an earlier
 * pass is used; a VM not named by a pass keeps its state until released.
 */
static void test_inc_vms(void)
{
	struct dedup_state *st = dedup_state_new();
	static const uint64_t only1[] = { 1 };
	static const uint64_t named[] = { 1, 4 };
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	uint64_t g;

	fk_inc_init(&fk);
	fk.fresh_fds = true;
	for (g = 1; g <= 4; g++)
		fk_add_vm(&fk, g, 8, 0xa, 0);
	for (g = 0; g < 8; g++) {
		fill(&fk, 1, g, g < 4 ? 0x70 + g : 0x100 + g);
		fill(&fk, 2, g, g < 4 ? 0x70 + g : 0x200 + g);
		fill(&fk, 3, g, g < 4 ? 0x70 + g : 0x300 + g);
		fill(&fk, 4, g, g < 4 ? 0x70 + g : 0x400 + g);
	}
	ok(!fk_inc_pass(&fk, st, &res), "inc VMs: first pass succeeds");
	ok(res.vms == 4 && res.shared == 12 && res.kept_alone == 16,
	   "inc VMs: 12 shared, 16 alone kept");

	/* VM 2 exits (listed no more), VM 4 exits after the listing, VM 3 grows. */
	fk_remove_vm(&fk, 2, false);
	fk_remove_vm(&fk, 4, true);
	fk_resize(&fk, 3, 12);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc VMs: second pass succeeds");
	ok(res.vms == 2 && res.vms_gone == 1, "inc VMs: VMs 1 and 3 scanned, VM 4 gone");
	ok(fk.bad_fd == 0, "inc VMs: no call named a stale descriptor");
	ok(res.queried == (inc_listing() ? 0 : 8) && res.reused == 8,
	   "inc VMs: only VM 1's 8 gfns reused (%" PRIu64 " queried)", res.queried);
	ok(fk.hashed == 8, "inc VMs: the resized VM 3 hashed again (%zu)", fk.hashed);
	ok(res.shared == 0 && res.already == 4 && res.frames == 4 && res.kept_alone == 8,
	   "inc VMs: VM 1 and 3 still share, their 8 unique pages kept");
	ok(fk_check(&fk) == 0 && fk.open_fds == 0, "inc VMs: invariants hold, descriptors closed");

	/* A new VM takes VM 2's id, with its size: nothing of the old one is queried. */
	fk_add_vm(&fk, 2, 8, 0xa, 0);
	fill(&fk, 2, 0, 0x70);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc VMs: third pass succeeds");
	ok(res.vms == 3 && res.queried == (inc_listing() ? 0 : 16) && res.reused == 16 &&
	   fk.hashed == 1,
	   "inc VMs: VMs 1 and 3 reused, the new VM 2 hashed (%" PRIu64 " queried)",
	   res.queried);
	ok(fk_frame_of(&fk, 2, 0) != FK_NONE && fk_frame_of(&fk, 2, 0) == fk_frame_of(&fk, 1, 0),
	   "inc VMs: the new VM 2 shares");

	/* A pass over VM 1 only, named, and over VMs 1 and 4 (gone). */
	cfg = fk_config(&fk);
	cfg.state = st;
	cfg.vm_ids = only1;
	cfg.nr_vm_ids = 1;
	fk_zero_counts(&fk);
	ok(!fk_run(&fk, &cfg, &res) && res.vms == 1 && res.reused == 8 &&
	   res.queried == (inc_listing() ? 0 : 8) && fk.hashed == 0,
	   "inc VMs: a pass over VM 1 alone reuses its 8 pages");
	cfg.vm_ids = named;
	cfg.nr_vm_ids = 2;
	ok(!fk_run(&fk, &cfg, &res) && res.vms == 1 && res.vms_gone == 1,
	   "inc VMs: a named VM that is gone is skipped");
	ok(fk_nominated_alone(&fk) == 8, "inc VMs: VM 1's and VM 3's unique pages still nominated");

	/* The release reaches VM 3, which the last passes did not name. */
	fk_zero_counts(&fk);
	ok(!fk_release(&fk, st, &res), "inc VMs: release succeeds");
	ok(res.vms == 3 && res.unshared == 8 && fk.bad_fd == 0,
	   "inc VMs: release visited VMs 1, 2 and 3, 8 made private (%" PRIu64 ")", res.unshared);
	fk_end(&fk, "inc VMs");
}

/* A shrunk VM: forgotten too, and the gfns past the end are gone. */
static void test_inc_shrink(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	struct fk fk;
	uint64_t g;

	fk_inc_init(&fk);
	fk.fresh_fds = true;
	fk_add_vm(&fk, 1, 8, 0, 0);
	for (g = 0; g < 8; g++)
		fill(&fk, 1, g, g < 2 ? 0x5 : 0x10 + g);
	ok(!fk_inc_pass(&fk, st, &res) && res.kept_alone == 6, "inc shrink: first pass keeps 6");
	fk_resize(&fk, 1, 4);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "inc shrink: second pass succeeds");
	ok(res.queried == 0 && fk.hashed == 4 && res.scanned == 4 && res.kept_alone == 2,
	   "inc shrink: nothing queried, the 4 gfns left hashed again");
	ok(fk.bad_fd == 0 && fk_check(&fk) == 0, "inc shrink: no bad descriptor, invariants hold");
	ok(!fk_release(&fk, st, &res) && res.unshared == 2, "inc shrink: release made 2 private");
	fk_end(&fk, "inc shrink");
}

/* Without a state, as --full-passes: every pass hashes everything and releases alone pages. */
static void test_full_passes(void)
{
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	int pass;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 16, 0x8, 0);
	fk_add_vm(&fk, 2, 16, 0x8, 0);
	for (g = 0; g < 16; g++) {
		fill(&fk, 1, g, g % 2);
		fill(&fk, 2, g, 0x100 + g);
	}
	for (pass = 1; pass <= 2; pass++) {
		fk_zero_counts(&fk);
		ok(!fk_pass(&fk, &res), "full passes: pass %d succeeds", pass);
		ok(fk.hashed == 32 && res.reused == 0 && res.kept_alone == 0,
		   "full passes: pass %d hashes all 32 pages (%zu)", pass, fk.hashed);
		ok(res.alone == 16 && res.unshared == 16 && fk_nominated_alone(&fk) == 0,
		   "full passes: pass %d made the 16 alone pages private", pass);
		ok(res.queried == 16 && res.query_calls == 1,
		   "full passes: pass %d queried them before the release", pass);
	}
	fk_end(&fk, "full passes");
}

static int inc_stop_flag;

static void inc_stop_on_nominate(void *ctx, const struct dedup_progress *pr)
{
	(void)ctx;
	if (pr->event == DEDUP_EV_NOMINATE)
		__atomic_store_n(&inc_stop_flag, 1, __ATOMIC_RELAXED);
}

/*
 * A pass that ends early, stopped or failed, releases what it and the
 * state kept nominated, as the agent may be going away, and forgets it.
 */
static void test_inc_early_end(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	int ret;

	fk_inc_init(&fk);
	fk.fresh_fds = true;
	fk_add_vm(&fk, 1, 8, 0xb, 0);
	fk_add_vm(&fk, 2, 8, 0xb, 0);
	for (g = 0; g < 8; g++) {
		fill(&fk, 1, g, g < 4 ? g : 0x100 + g);
		fill(&fk, 2, g, g < 4 ? g : 0x200 + g);
	}
	ok(!fk_inc_pass(&fk, st, &res) && res.kept_alone == 8, "inc early end: first pass keeps 8");
	fk_write(&fk, 1, 5, 0x55);

	/* Stopped after VM 1's first nominate batch: VM 2 is not checked. */
	__atomic_store_n(&inc_stop_flag, 0, __ATOMIC_RELAXED);
	cfg = fk_config(&fk);
	cfg.state = st;
	cfg.stop = &inc_stop_flag;
	cfg.progress = inc_stop_on_nominate;
	ok(!fk_run(&fk, &cfg, &res) && res.interrupted, "inc early end: stopped pass ends cleanly");
	ok(res.kept_alone == 0 && fk_nominated_alone(&fk) == 0,
	   "inc early end: every page kept alone made private (%" PRIu64 " unshared)",
	   res.unshared);
	/*
	 * With the private gfns, VM 1's written gfn 5 was listed but not yet
	 * nominated: it stays private, and 7 are unshared.
	 */
	ok(res.unshared == (inc_listing() ? 7 : 8) && fk.bad_fd == 0,
	   "inc early end: %" PRIu64 " unshared, VM 2's too", res.unshared);
	ok(fk_saved(&fk) == 4, "inc early end: the shared pages stay shared");

	/* The state forgot both VMs: the next pass hashes everything. */
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.queried == 0 && fk.hashed == 16,
	   "inc early end: the next pass queries nothing, hashes all 16");
	ok(res.already == 4 && res.kept_alone == 8, "inc early end: and keeps 8 again");

	/*
	 * A failed query (or GET_PRIVATE, which replaces it): the pass fails,
	 * and still releases what was kept.
	 */
	fk_zero_counts(&fk);
	if (inc_listing())
		fk.fail_private = 1;
	else
		fk.fail_query = 1;
	ret = fk_inc_pass(&fk, st, &res);
	ok(inc_listing() ? ret == -EFAULT && !strncmp(res.err_what, "list private", 12) &&
	   res.err_op == PAGESHARE_OP_GET_PRIVATE :
	   ret == -ENOMEM && !strncmp(res.err_what, "query", 5),
	   "inc early end: a failed query fails the pass (%s)", res.err_what);
	ok(fk_nominated_alone(&fk) == 0 && res.unshared == 8,
	   "inc early end: the failed pass released the 8 kept pages");
	fk.fail_query = 0;
	fk.fail_private = 0;
	fk_zero_counts(&fk);
	ok(!fk_release(&fk, st, &res) && res.vms == 0 && fk.query_calls == 0,
	   "inc early end: nothing left to release");
	fk_end(&fk, "inc early end");
}

/* Pages a policy keeps apart are kept nominated like pages without an equal. */
static void test_inc_no_intra(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	struct fk fk;

	fk_inc_init(&fk);
	fk_add_vm(&fk, 1, 4, 0xc, PAGESHARE_POLICY_NO_INTRA_VM);
	fk_add_vm(&fk, 2, 4, 0xc, 0);
	fill(&fk, 1, 0, 0xa);
	fill(&fk, 1, 1, 0xa);
	fill(&fk, 2, 0, 0xa);
	ok(!fk_inc_pass(&fk, st, &res) && res.policy == 1 && res.kept_alone == 1,
	   "inc no-intra: 1 kept apart, kept nominated");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && fk.hashed == 0 && res.reused == 3 &&
	   res.policy == (inc_listing() ? 0 : 1) && fk.share_calls == 0,
	   "inc no-intra: second pass: nothing hashed or shared");
	ok(!fk_release(&fk, st, &res) && res.unshared == 1,
	   "inc no-intra: release made it private");
	fk_end(&fk, "inc no-intra");
}

static int stop_flag;

static void stop_after_first(void *ctx, const struct dedup_progress *pr)
{
	(void)ctx;
	if (pr->event == DEDUP_EV_NOMINATE)
		__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
}

/* A stop request ends the pass early and leaves no gfn nominated. */
static void test_stop(void)
{
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	uint64_t g;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 64, 0xf, 0);
	fk_add_vm(&fk, 2, 64, 0xf, 0);
	for (g = 0; g < 64; g++) {
		fill(&fk, 1, g, g);
		fill(&fk, 2, g, g);
	}
	__atomic_store_n(&stop_flag, 0, __ATOMIC_RELAXED);
	cfg = fk_config(&fk);
	cfg.nominate_batch = 16;
	cfg.stop = &stop_flag;
	cfg.progress = stop_after_first;
	ok(!fk_run(&fk, &cfg, &res), "stop: pass ends without error");
	ok(res.interrupted && res.scanned == 16, "stop: stopped after one batch (%" PRIu64 ")",
	   res.scanned);
	ok(fk.share_calls == 0 && res.unshared == 16, "stop: nothing shared, all released");
	fk_end(&fk, "stop");
}

static uint64_t rng_state;

static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

/* Write random pages before random share calls. */
static void hook_random_writes(struct fk *fk, size_t call)
{
	int i;

	(void)call;
	for (i = 0; i < 3; i++) {
		struct fk_vm *vm = &fk->vms[rnd(fk->nr_vms)];

		if (vm->pages && rnd(2))
			fk_write(fk, vm->id, rnd(vm->pages), rnd(3) ? rnd(4) : 0x1000 + rnd(1000));
	}
}

/* The scope of a VM: its group, or itself. */
static uint64_t fk_scope(const struct fk_vm *vm)
{
	return vm->group ? vm->group : (1ULL << 62) + vm->id;
}

/*
 * Whether every set of equal pages in a scope is on one frame and every
 * page without an equal is private (or, with @kept, private or nominated
 * alone): what a pass without interference must leave (without pinned
 * pages or no-intra-VM VMs).
 */
static bool fk_optimal(struct fk *fk, bool kept)
{
	int i, j;
	uint64_t k, l;

	for (i = 0; i < fk->nr_vms; i++) {
		for (k = 0; k < fk->vms[i].pages; k++) {
			struct fk_gfn *g = &fk->vms[i].g[k];
			uint64_t c = fk_content(fk, fk->vms[i].id, k);
			bool twin = false;

			if (!g->touched)
				continue;
			for (j = 0; j < fk->nr_vms; j++) {
				if (fk_scope(&fk->vms[j]) != fk_scope(&fk->vms[i]))
					continue;
				for (l = 0; l < fk->vms[j].pages; l++) {
					struct fk_gfn *h = &fk->vms[j].g[l];

					if (!h->touched || (i == j && k == l) ||
					    fk_content(fk, fk->vms[j].id, l) != c)
						continue;
					twin = true;
					if (g->frame == FK_NONE || g->frame != h->frame)
						return false;
				}
			}
			if (!twin && g->frame != FK_NONE &&
			    (!kept || fk->frames[g->frame].sharers != 1))
				return false;
		}
	}
	return true;
}

/*
 * Random VMs, groups, contents, batch sizes and writes during the pass;
 * every other pair of seeds with incremental passes, and the state
 * released at the end.
 */
static void test_random(void)
{
	int seed, bad_check = 0, bad_content = 0, bad_optimal = 0, bad_alone = 0, bad_err = 0;
	int bad_rehash = 0, runs = 300;

	for (seed = 1; seed <= runs; seed++) {
		static const uint64_t groups[] = { 0, 0x1111, 0x2222 };
		struct dedup_state *st = (seed / 2) % 2 ? dedup_state_new() : NULL;
		struct dedup_config cfg;
		struct dedup_result res;
		bool writes = seed % 2;
		uint64_t differ = 0;
		struct fk fk;
		int i, nvms, pass;
		uint64_t k;

		rng_state = 0x9E3779B97F4A7C15ULL * seed;
		fk_init(&fk);
		fk.fresh_fds = true;
		nvms = 2 + rnd(4);
		for (i = 0; i < nvms; i++) {
			struct fk_vm *vm = fk_add_vm(&fk, 1 + rnd(1000), 24, groups[rnd(3)], 0);

			if (fk_vm(&fk, vm->id) != vm)	/* an id drawn twice */
				vm->id += 1000 + i;
			for (k = 0; k < 24; k++) {
				if (rnd(5) == 0)
					continue;	/* a hole */
				fill(&fk, vm->id, k, rnd(4) ? rnd(6) : rnd(3) ? 0x1000 + rnd(50) :
				     (rnd(6) | FK_COLLIDE));
			}
		}
		if (writes) {
			fk.before_share = hook_random_writes;
			fk.max_sharers = 2 + rnd(6);
		}
		for (pass = 0; pass < 2; pass++) {
			cfg = fk_config(&fk);
			cfg.nominate_batch = 1 + rnd(30);
			cfg.share_batch = 1 + rnd(10);
			cfg.release_batch = 1 + rnd(10);
			cfg.state = st;
			fk.hashed = 0;
			if (fk_run(&fk, &cfg, &res))
				bad_err++;
			/*
			 * Unchanged pages are not hashed again: only the 4
			 * written between the passes, and those forgotten for
			 * their bytes (EILSEQ).
			 */
			if (st && !writes && pass && fk.hashed > 4 + differ)
				bad_rehash++;
			differ = res.differ;
			if (fk_check(&fk) || fk.open_fds || fk.bad_fd)
				bad_check++;
			/* Every gfn reads its last write, whatever was shared. */
			for (i = 0; i < nvms; i++)
				for (k = 0; k < 24; k++)
					if (fk.vms[i].g[k].touched &&
					    fk_content(&fk, fk.vms[i].id, k) != fk.vms[i].g[k].want)
						bad_content++;
			if (!writes && !fk_optimal(&fk, st))
				bad_optimal++;
			if (!writes && !st && fk_nominated_alone(&fk))
				bad_alone++;
			/* Between passes: a few writes, so the second pass has work. */
			for (i = 0; i < 4; i++) {
				struct fk_vm *vm = &fk.vms[rnd(nvms)];

				fk_write(&fk, vm->id, rnd(24), rnd(6));
			}
		}
		if (st) {
			fk.before_share = NULL;
			if (fk_release(&fk, st, &res))
				bad_err++;
			if (fk_check(&fk) || fk.open_fds || fk.bad_fd)
				bad_check++;
			/* Whatever was written during the passes, nothing stays behind. */
			if (fk_nominated_alone(&fk))
				bad_alone++;
		}
		fk_free(&fk);
	}
	ok(!bad_err, "random: %d configurations, two passes each, no error", runs);
	ok(!bad_check, "random: fake kernel invariants always hold (%d bad)", bad_check);
	ok(!bad_content, "random: every gfn reads its last write (%d bad)", bad_content);
	ok(!bad_optimal, "random: without writes, every set of equal pages on one frame (%d bad)",
	   bad_optimal);
	ok(!bad_alone,
	   "random: no gfn left nominated alone without writes, or after a release (%d bad)",
	   bad_alone);
	ok(!bad_rehash, "random: incremental, without writes, only changed pages hashed (%d bad)",
	   bad_rehash);
}

/*
 * With PAGESHARE_GET_PRIVATE, a pass over VMs written since the last one
 * nominates the gfns written and the holes filled, no other, and queries
 * nothing; the listing and the nominations come in their batches.
 */
static void test_priv_written(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	uint64_t g;
	int ret;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 64, 0x7, 0);
	fk_add_vm(&fk, 2, 64, 0x7, 0);
	for (g = 0; g < 16; g++) {
		fill(&fk, 1, g, g < 8 ? 0x700 + g : 0x1700 + g);
		fill(&fk, 2, g, g < 8 ? 0x700 + g : 0x2700 + g);
	}
	ok(!fk_inc_pass(&fk, st, &res) && fk.nominated == 128 && res.holes == 96 &&
	   res.shared == 8 && res.kept_alone == 16,
	   "priv written: first pass nominates all 128 gfns, 96 holes, shares 8, keeps 16");
	ok(res.private_calls == 2 && res.queried == 0,
	   "priv written: first pass reads each VM's discard count (%" PRIu64 " calls)",
	   res.private_calls);

	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "priv written: second pass succeeds");
	ok(fk.nominated == 0 && res.nominate_calls == 0 && fk.query_calls == 0 &&
	   res.queried == 0 && res.holes == 0,
	   "priv written: unchanged: no nominate, no query, no hole (%zu nominated, %zu queried)",
	   fk.nominated, fk.queried);
	ok(res.private_calls == 2 && res.private_listed == 0 && res.reused == 32 &&
	   res.scanned == 32 && res.already == 0 && res.frames == 0 && res.kept_alone == 0 &&
	   res.candidates == 0 && res.index_pass == 1,
	   "priv written: a GET_PRIVATE call per VM lists nothing; 32 reused as they were");

	/* 3 gfns written, 2 holes filled. */
	fk_write(&fk, 1, 0, 0x700);		/* its own bytes again */
	fk_write(&fk, 1, 3, 0x2700 + 12);	/* the bytes of VM 2's unique gfn 12 */
	fk_write(&fk, 2, 9, 0x5555);		/* other bytes */
	fk_write(&fk, 1, 20, 0x704);		/* a hole, with the bytes of the pair at gfn 4 */
	fk_write(&fk, 2, 63, 0x9999);		/* a hole, unique bytes */
	fk_zero_counts(&fk);
	fk.max_nominate = 0;
	cfg = fk_config(&fk);
	cfg.state = st;
	cfg.release_batch = 2;
	cfg.nominate_batch = 2;
	ok(!fk_run(&fk, &cfg, &res), "priv written: third pass succeeds");
	ok(fk.nominated == 5 && fk.hashed == 5 && res.private_listed == 5 && res.holes == 0,
	   "priv written: exactly the 5 written gfns nominated (%zu)", fk.nominated);
	ok(res.queried == 0 && fk.query_calls == 0 && res.reused == 29,
	   "priv written: nothing queried, the 29 others reused (%" PRIu64 ")", res.reused);
	ok(res.private_calls == 3 && fk.max_nominate == 2 && res.nominate_calls == 3,
	   "priv written: listed 2 at a time (%" PRIu64 " calls), nominated 2 at a time",
	   res.private_calls);
	ok(fk_frame_of(&fk, 1, 3) != FK_NONE && fk_frame_of(&fk, 1, 3) == fk_frame_of(&fk, 2, 12),
	   "priv written: a written gfn shares with a page kept alone");
	ok(fk_frame_of(&fk, 1, 20) != FK_NONE && fk_frame_of(&fk, 1, 20) == fk_frame_of(&fk, 1, 4),
	   "priv written: a filled hole joins its equals' frame");
	ok(fk_frame_of(&fk, 1, 0) != FK_NONE && fk_frame_of(&fk, 1, 0) == fk_frame_of(&fk, 2, 0),
	   "priv written: rewritten with its bytes, shared again");
	ok(fk_optimal(&fk, true) && fk_check(&fk) == 0, "priv written: every set on one frame");

	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && fk.nominated == 0 && res.queried == 0 &&
	   res.private_listed == 0 && res.shared == 0,
	   "priv written: fourth pass: nothing new, nothing nominated or queried");
	/* VM 2's gfn 3 lost its partner, gfn 12 found one, gfn 63 is new. */
	ret = fk_release(&fk, st, &res);
	ok(!ret && res.unshared == 17, "priv written: release made the 17 alone private (%" PRIu64
	   ")", res.unshared);
	fk_end(&fk, "priv written");
}

/* A VM with few pages and many holes, one of them pinned. */
static void priv_holes_vm(struct fk *fk)
{
	uint64_t g;

	fk_init(fk);
	fk_add_vm(fk, 1, 1000, 0, 0);
	for (g = 0; g < 10; g++)
		fill(fk, 1, g * 100, g < 5 ? 0x11 : 0x100 + g);
	fill(fk, 1, 999, 0x12);
	fk_g(fk, 1, 999)->busy = true;
}

/*
 * Holes cost a pass from the private gfns nothing: never listed, never
 * nominated; a full pass nominates them all. A pinned page (EBUSY) stays
 * private, so it is listed, and tried again, every pass.
 */
static void test_priv_holes(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res, full;
	struct fk fk, ref;

	priv_holes_vm(&fk);
	priv_holes_vm(&ref);
	ok(!fk_inc_pass(&fk, st, &res) && fk.nominated == 1000 && res.holes == 989 &&
	   res.busy == 1 && res.shared == 4 && res.kept_alone == 5,
	   "priv holes: first pass nominates all 1000 gfns, 989 holes, 1 busy");
	ok(!fk_pass(&ref, &full) && ref.nominated == 1000 && full.holes == 989,
	   "priv holes: a full pass nominates the 989 holes too");

	fk_zero_counts(&fk);
	ref.nominated = 0;
	ok(!fk_inc_pass(&fk, st, &res), "priv holes: second pass succeeds");
	ok(fk.nominated == 1 && res.holes == 0 && res.private_listed == 1 && res.busy == 1,
	   "priv holes: second pass nominates only the pinned page, no hole (%zu)", fk.nominated);
	ok(res.scanned == 11 && res.reused == 10 && res.queried == 0,
	   "priv holes: 10 reused, 11 scanned");
	ok(!fk_pass(&ref, &full) && ref.nominated == 1000 && full.holes == 989 &&
	   fk_saved(&ref) == fk_saved(&fk),
	   "priv holes: a second full pass nominates them again, and saves as much");

	fk_g(&fk, 1, 999)->busy = false;
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && fk.nominated == 1 && res.busy == 0 &&
	   res.kept_alone == 1, "priv holes: unpinned, listed and nominated once more, kept");
	ok(!fk_release(&fk, st, &res) && res.unshared == 6, "priv holes: release made 6 private");
	fk_end(&fk, "priv holes");
	fk_end(&ref, "priv holes, full");
}

/*
 * A discard between passes: the next pass over that VM cannot trust what
 * it remembers, queries it as without PAGESHARE_GET_PRIVATE, and forgets
 * the gfn discarded; the other VM is still scanned from its private gfns,
 * and so is this one from the pass after.
 */
static void test_priv_discard(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	struct fk fk;
	uint64_t g;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 8, 0x5, 0);
	fk_add_vm(&fk, 2, 8, 0x5, 0);
	for (g = 0; g < 8; g++) {
		fill(&fk, 1, g, g < 4 ? 0x50 + g : 0x150 + g);
		fill(&fk, 2, g, g < 4 ? 0x50 + g : 0x250 + g);
	}
	ok(!fk_inc_pass(&fk, st, &res) && res.shared == 4 && res.kept_alone == 8,
	   "priv discard: first pass shares 4, keeps 8");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.queried == 0 && res.reused == 16,
	   "priv discard: second pass queries nothing");

	/* A gfn kept alone is punched out: a hole now, its handle dead. */
	fk_discard(&fk, 1, 5, 1);
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "priv discard: third pass succeeds");
	ok(res.queried == 8 && fk.queried == 8 && res.query_calls == 1,
	   "priv discard: VM 1's 8 remembered gfns queried, VM 2's none (%" PRIu64 ")",
	   res.queried);
	ok(res.reused == 15 && fk.nominated == 1 && res.holes == 1 && fk.hashed == 0,
	   "priv discard: 15 reused; the discarded gfn forgotten, nominated: a hole");
	ok(res.kept_alone == 7 && res.shared == 0, "priv discard: 7 kept alone");

	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.queried == 0 && res.reused == 15 &&
	   fk.nominated == 0, "priv discard: fourth pass: from the private gfns again");
	/* The 15 remembered: the 8 shared and 7 alone, not the discarded gfn. */
	fk_zero_counts(&fk);
	ok(!fk_release(&fk, st, &res) && res.unshared == 7 && res.queried == 15,
	   "priv discard: release: 15 queried, 7 made private, not the discarded gfn");
	fk_end(&fk, "priv discard");
}

/*
 * A gfn left out of its group (EILSEQ) and not made private, because its
 * frame has another sharer, in a VM the pass does not scan: it stays on its
 * frame unremembered, so its VM is scanned in full next time, and the gfn
 * is found there again.
 */
static void test_priv_left_shared(void)
{
	struct dedup_state *st = dedup_state_new();
	static const uint64_t two[] = { 1, 2 };
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	int f;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x6, 0);
	fk_add_vm(&fk, 2, 4, 0x6, 0);
	fk_add_vm(&fk, 3, 4, 0x6, 0);
	fill(&fk, 1, 0, 0x42);
	fill(&fk, 2, 0, 0x42 | FK_COLLIDE);
	fill(&fk, 3, 0, 0x42 | FK_COLLIDE);
	fill(&fk, 2, 1, 0x77);
	ok(!fk_inc_pass(&fk, st, &res), "priv left shared: first pass succeeds");
	f = fk_frame_of(&fk, 2, 0);
	ok(f != FK_NONE && f == fk_frame_of(&fk, 3, 0) && fk_frame_of(&fk, 1, 0) != f &&
	   res.kept_alone == 2, "priv left shared: VMs 2 and 3 share, VM 1's page kept alone");

	cfg = fk_config(&fk);
	cfg.state = st;
	cfg.vm_ids = two;
	cfg.nr_vm_ids = 2;
	fk_zero_counts(&fk);
	ok(!fk_run(&fk, &cfg, &res) && res.differ == 1 && res.holes == 0 && fk.hashed == 0,
	   "priv left shared: pass over VMs 1 and 2: VM 2's gfn 0 differs from VM 1's");
	ok(res.queried == 1 && fk_frame_of(&fk, 2, 0) == f && res.unshared == 0,
	   "priv left shared: queried before the release, left on its frame with VM 3's");

	fk_zero_counts(&fk);
	ok(!fk_run(&fk, &cfg, &res), "priv left shared: next pass succeeds");
	ok(res.holes == 2 && res.differ == 1 && fk.hashed == 1,
	   "priv left shared: VM 2 scanned in full: its holes nominated, gfn 0 found again");
	ok(res.queried == 2 && res.reused == 2,
	   "priv left shared: VM 2's remembered gfn queried (%" PRIu64 " queries)", res.queried);
	ok(!fk_release(&fk, st, &res) && res.unshared == 2,
	   "priv left shared: release made 2 private");
	fk_end(&fk, "priv left shared");
}

/*
 * A share moves every gfn of the client's frame, a VM's that the pass does
 * not scan too: that VM's memos may name a dead handle, and its next pass
 * queries them instead of trusting them (and failing its shares, EIDRM).
 */
static void test_priv_moved(void)
{
	struct dedup_state *st = dedup_state_new();
	static const uint64_t one[] = { 1 };
	struct dedup_config cfg;
	struct dedup_result res;
	struct fk fk;
	int f;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 4, 0x8, 0);
	fk_add_vm(&fk, 2, 4, 0x8, 0);
	fill(&fk, 1, 1, 0xa);
	fill(&fk, 2, 0, 0xa);
	ok(!fk_inc_pass(&fk, st, &res) && res.shared == 1,
	   "priv moved: VM 2's gfn 0 shared onto VM 1's gfn 1");

	/* VM 1's gfn 0, lower, gets the bytes: its frame will be the group's. */
	fk_write(&fk, 1, 0, 0xa);
	cfg = fk_config(&fk);
	cfg.state = st;
	cfg.vm_ids = one;
	cfg.nr_vm_ids = 1;
	ok(!fk_run(&fk, &cfg, &res) && res.shared == 1 && res.private_listed == 1 && res.freed == 1,
	   "priv moved: pass over VM 1: its old frame moved onto gfn 0's");
	f = fk_frame_of(&fk, 1, 0);
	ok(f != FK_NONE && fk_frame_of(&fk, 2, 0) == f && fk.frames[f].sharers == 3,
	   "priv moved: three gfns on VM 1's gfn 0's frame");

	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "priv moved: pass over both succeeds");
	ok(res.queried == 1 && res.retried == 0 && fk.share_err[EIDRM] == 0,
	   "priv moved: VM 2's gfn queried, not tried with its dead handle (%" PRIu64 " retried)",
	   res.retried);
	ok(res.already == 2 && res.shared == 0 && res.holes == 3,
	   "priv moved: nothing to move; VM 2 scanned in full");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.queried == 0 && res.holes == 0,
	   "priv moved: and from its private gfns again the pass after");
	ok(!fk_release(&fk, st, &res) && res.unshared == 0, "priv moved: release: nothing alone");
	fk_end(&fk, "priv moved");
}

/* Share two gfns as another agent would: nominate both, share the second into the first. */
static void fk_share_pair(struct fk *fk, uint64_t vm1, uint64_t gfn1, uint64_t vm2, uint64_t gfn2)
{
	struct dedup_backend be = fk_backend(fk);
	struct pageshare_nominate n[2] = {
		{ .gfn = gfn1, .flags = PAGESHARE_NOMINATE_HASH },
		{ .gfn = gfn2, .flags = PAGESHARE_NOMINATE_HASH },
	};
	struct pageshare_share sh = { .src_gfn = gfn1, .client_gfn = gfn2 };

	n[0].vm = be.open_vm(fk, vm1);
	n[1].vm = be.open_vm(fk, vm2);
	be.nominate(fk, n, 2);
	sh.src_vm = n[0].vm;
	sh.client_vm = n[1].vm;
	sh.src_handle = n[0].handle;
	sh.client_handle = n[1].handle;
	be.share(fk, &sh, 1);
	be.close_vm(fk, n[0].vm);
	be.close_vm(fk, n[1].vm);
}

/* Poison one gfn before the first share call. */
static void hook_poison(struct fk *fk, size_t call)
{
	if (call == 0)
		fk_g(fk, fk->hook_vm, fk->hook_gfn)->poison = true;
}

/* Two VMs of a group, one pair of equal gfns; a hash collision if @collide. */
static void priv_doubt_vms(struct fk *fk, bool collide)
{
	fk_init(fk);
	fk_add_vm(fk, 1, 4, 0xd, 0);
	fk_add_vm(fk, 2, 4, 0xd, 0);
	fill(fk, 1, 0, 0x42);
	fill(fk, 2, 0, collide ? 0x42 | FK_COLLIDE : 0x42);
	fill(fk, 2, 1, 0x43);
}

/*
 * A pass that leaves a gfn on a frame without remembering it leaves its VM
 * in doubt, and the next pass scans that VM in full and finds the gfn: a
 * gfn on a frame with a memory error (its nominate fails), a release whose
 * unshare fails, a release whose query fails (the pass fails).
 */
static void test_priv_doubt(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	struct fk fk;

	/* Shared before the agent came, and then poisoned: EHWPOISON at nominate. */
	priv_doubt_vms(&fk, false);
	fk_share_pair(&fk, 1, 0, 2, 0);
	fk_g(&fk, 2, 0)->poison = true;
	ok(!fk_inc_pass(&fk, st, &res) && res.busy == 1 && res.holes == 5,
	   "priv doubt: a gfn on a poisoned frame: nominate fails (busy)");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.busy == 1 && res.holes == 2 &&
	   res.private_listed == 0, "priv doubt: its VM scanned in full again, tried again");
	fk_g(&fk, 2, 0)->poison = false;
	ok(!fk_release(&fk, st, &res), "priv doubt: poisoned: release succeeds");
	fk_end(&fk, "priv doubt: poisoned");

	/* Poisoned between nominate and share: the release's unshare fails. */
	st = dedup_state_new();
	priv_doubt_vms(&fk, true);
	fk.before_share = hook_poison;
	fk.hook_vm = 2;
	fk.hook_gfn = 0;
	ok(!fk_inc_pass(&fk, st, &res) && res.differ == 1 && res.unshared == 0,
	   "priv doubt: a failed unshare leaves the gfn on its frame");
	fk.before_share = NULL;
	fk_g(&fk, 2, 0)->poison = false;
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.holes == 2 && res.differ == 1 &&
	   res.unshared == 1, "priv doubt: its VM scanned in full: the gfn found and released");
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.holes == 0 && res.differ == 1 &&
	   res.private_listed == 1, "priv doubt: then from the private gfns again");
	ok(!fk_release(&fk, st, &res), "priv doubt: unshare: release succeeds");
	fk_end(&fk, "priv doubt: unshare");

	/* The release's query fails: the pass fails, its VMs in doubt. */
	st = dedup_state_new();
	priv_doubt_vms(&fk, true);
	ok(!fk_inc_pass(&fk, st, &res) && res.differ == 1 && res.unshared == 1,
	   "priv doubt: first pass releases the gfn that differs");
	fk_zero_counts(&fk);
	fk.fail_query = 1;
	ok(fk_inc_pass(&fk, st, &res) == -ENOMEM && res.differ == 1 && fk_nominated_alone(&fk) == 3,
	   "priv doubt: a failed release query fails the pass, the gfn left nominated");
	fk.fail_query = 0;
	fk_zero_counts(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.holes == 5 && res.differ == 1 && res.unshared == 1,
	   "priv doubt: both VMs scanned in full: the gfn found and released");
	ok(!fk_release(&fk, st, &res), "priv doubt: query: release succeeds");
	fk_end(&fk, "priv doubt: query");
}

/*
 * A module older than PAGESHARE_GET_PRIVATE (ENOTTY): the first pass finds
 * out, silently, and no pass asks again; they query, as before, and share
 * as much as with it.
 */
static void test_priv_enotty(void)
{
	struct dedup_state *st = dedup_state_new(), *st2 = dedup_state_new();
	struct dedup_result res, res2;
	struct fk fk, fk2;
	uint64_t g;
	int pass;
	bool same = true;

	fk_init(&fk);
	fk_init(&fk2);
	fk.get_private = FK_PRIVATE_ENOTTY;
	for (g = 1; g <= 2; g++) {
		fk_add_vm(&fk, g, 16, 0x9, 0);
		fk_add_vm(&fk2, g, 16, 0x9, 0);
	}
	for (g = 0; g < 12; g++) {
		fill(&fk, 1, g, g % 5);
		fill(&fk2, 1, g, g % 5);
		fill(&fk, 2, g, 0x900 + g % 7);
		fill(&fk2, 2, g, 0x900 + g % 7);
	}
	for (pass = 1; pass <= 3; pass++) {
		fk_zero_counts(&fk);
		if (fk_inc_pass(&fk, st, &res) || fk_inc_pass(&fk2, st2, &res2))
			same = false;
		if (pass == 1)
			ok(res.private_calls == 1 && fk.private_calls == 0 && res.err == 0,
			   "priv ENOTTY: the first pass tried once, and went on");
		else
			ok(res.private_calls == 0 && res.queried == 24 && fk.queried == 24 &&
			   res2.queried == 0,
			   "priv ENOTTY: pass %d queries, tries no more (%" PRIu64 ")", pass,
			   res.queried);
		/* An index pass counts only what it visits: compare the kernels. */
		same &= fk_saved(&fk) == fk_saved(&fk2) &&
			fk_nominated_alone(&fk) == fk_nominated_alone(&fk2) &&
			res.reused == res2.reused;
		fk_write(&fk, 2, pass, 0x4);
		fk_write(&fk2, 2, pass, 0x4);
	}
	ok(same, "priv ENOTTY: each pass saves and keeps as much as with GET_PRIVATE");
	ok(!fk_release(&fk, st, &res) && !fk_release(&fk2, st2, &res2) &&
	   res.unshared == res2.unshared, "priv ENOTTY: release alike");
	fk_end(&fk, "priv ENOTTY");
	fk_end(&fk2, "priv ENOTTY, with it");
}

/* The share entries of the fake's calls, all results: fk_zero_counts() keeps them. */
static size_t fk_share_entries(struct fk *fk)
{
	size_t i, n = 0;

	for (i = 0; i < 256; i++)
		n += fk->share_err[i];
	return n;
}

/*
 * Two VMs of a group: 4 zero pages, 4 pairs common to both, a trio
 * repeated within VM 1, 4 unique pages each; 8 holes each.
 */
static void index_vms(struct fk *fk)
{
	uint64_t g;

	fk_init(fk);
	fk_add_vm(fk, 1, 24, 0xe, 0);
	fk_add_vm(fk, 2, 24, 0xe, 0);
	for (g = 0; g < 4; g++) {
		fill(fk, 1, g, 0);
		fill(fk, 2, g, 0);
		fill(fk, 1, 4 + g, 0xc0 + g);
		fill(fk, 2, 4 + g, 0xc0 + g);
		fill(fk, 1, 12 + g, 0x100 + g);
		fill(fk, 2, 12 + g, 0x200 + g);
	}
	for (g = 8; g < 11; g++)
		fill(fk, 1, g, 0xab);
}

/* An index pass, its calls counted from zero. */
static int index_pass(struct fk *fk, struct dedup_state *st, struct dedup_result *res,
		      size_t *shares)
{
	size_t before = fk_share_entries(fk);
	int ret;

	fk_zero_counts(fk);
	ret = fk_inc_pass(fk, st, res);
	*shares = fk_share_entries(fk) - before;
	return ret;
}

/*
 * Index passes: a pass over unchanged VMs only lists; k pages written
 * with remembered bytes cost k nominates and k shares, onto the frames
 * the index names, and the savings come back.
 */
static void test_index_steady(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	uint64_t saved;
	size_t shares;
	struct fk fk;
	int f;

	index_vms(&fk);
	ok(!fk_inc_pass(&fk, st, &res) && res.index_pass == 0 && res.indexed == 0,
	   "index steady: the first pass takes the full path");
	saved = fk_saved(&fk);
	ok(saved == 2 * 4 - 1 + 4 + 2, "index steady: saved %" PRIu64 " frames", saved);

	ok(!index_pass(&fk, st, &res, &shares), "index steady: second pass succeeds");
	ok(res.index_pass == 1 && res.candidates == 0 && res.indexed == 0 && res.index_reps == 0,
	   "index steady: an index pass, no page visited (%" PRIu64 " candidates)",
	   res.candidates);
	ok(fk.nominated == 0 && fk.share_calls == 0 && fk.query_calls == 0 &&
	   fk.unshare_calls == 0 && fk.private_calls == 2 && shares == 0,
	   "index steady: nothing written: one GET_PRIVATE call per VM, no other call");
	ok(res.reused == 27 && res.scanned == 27 && fk_saved(&fk) == saved,
	   "index steady: the 27 remembered taken as they are (%" PRIu64 ")", res.reused);

	/* 3 pages rewritten with their bytes, one a zero page, one of the trio. */
	fk_write(&fk, 2, 1, 0);
	fk_write(&fk, 2, 5, 0xc1);
	fk_write(&fk, 1, 9, 0xab);
	ok(fk_saved(&fk) == saved - 3, "index steady: the writes gave back 3 frames");
	ok(!index_pass(&fk, st, &res, &shares), "index steady: third pass succeeds");
	ok(res.index_pass == 1 && res.indexed == 3 && res.index_reps == 3 &&
	   res.candidates == 3 && fk.nominated == 3 && fk.hashed == 3 && shares == 3,
	   "index steady: 3 written: 3 nominates, 3 representatives, 3 shares (%zu)", shares);
	ok(res.shared == 3 && res.frames == 3 && res.alone == 0 && fk_saved(&fk) == saved,
	   "index steady: shared onto the remembered frames, saved as before (%" PRIu64 ")",
	   fk_saved(&fk));
	f = fk_frame_of(&fk, 1, 1);
	ok(f != FK_NONE && fk_frame_of(&fk, 2, 1) == f && fk.frames[f].sharers == 8,
	   "index steady: the zero page back on the zero frame");
	ok(fk_optimal(&fk, true), "index steady: every set of equal pages on one frame");

	/* A page written with the bytes of a unique page kept alone: shared with it. */
	fk_write(&fk, 1, 20, 0x202);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.index_reps == 1 &&
	   shares == 1 && fk_frame_of(&fk, 1, 20) == fk_frame_of(&fk, 2, 14) &&
	   fk_frame_of(&fk, 1, 20) != FK_NONE && fk_saved(&fk) == saved + 1,
	   "index steady: a filled hole shares with a page kept alone");
	/* New bytes: kept alone, and in the index for the next pass. */
	fk_write(&fk, 1, 21, 0x777);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.index_reps == 0 &&
	   shares == 0 && res.alone == 1 && res.kept_alone == 1,
	   "index steady: new bytes: alone, kept");
	fk_write(&fk, 2, 21, 0x777);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.index_reps == 1 &&
	   shares == 1 && fk_frame_of(&fk, 2, 21) == fk_frame_of(&fk, 1, 21),
	   "index steady: and found there by the next");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && fk.nominated == 0 &&
	   shares == 0, "index steady: then nothing again");
	ok(fk_optimal(&fk, true), "index steady: every set of equal pages on one frame");
	ok(!fk_release(&fk, st, &res) && res.unshared == 7,
	   "index steady: release made the 7 alone private");
	fk_end(&fk, "index steady");
}

/*
 * Index passes that keep meeting new bytes, every frame of the last ones
 * dead since: the table holds the live entries, not every content ever
 * seen. Before the table was sized from its live entries, it doubled for
 * each batch of new entries (a review's probe: 4,096 to 32,768 slots for
 * fewer than 600 live entries in 400 passes).
 */
static void test_index_bounded(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	uint64_t most = 0;
	size_t shares;
	struct fk fk;
	int pass, g;
	bool all = true;

	index_vms(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "index bounded: the first pass");
	for (pass = 0; pass < 300; pass++) {
		/* gfns 16-19 of VM 1 get bytes never seen before, each pass. */
		for (g = 16; g < 20; g++)
			fk_write(&fk, 1, g, 0x10000 + pass * 4 + g);
		if (index_pass(&fk, st, &res, &shares) || res.index_pass != 1)
			all = false;
		if (res.index_slots > most)
			most = res.index_slots;
	}
	ok(all, "index bounded: 300 index passes");
	ok(most && most <= 256, "index bounded: at most %" PRIu64 " slots", most);
	ok(!fk_release(&fk, st, &res), "index bounded: release");
	fk_end(&fk, "index bounded");
}

/*
 * A frame's gfns all written: its entry is dead, the first written page
 * is the new representative. A representative and its spare written, with
 * gfns left on the frame: the full path, which finds them. A representative
 * written during the pass (ESTALE): a new source for the pass, and the
 * next pass takes the full path, which puts all on one frame again.
 */
static void test_index_dead(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	uint64_t saved;
	size_t shares;
	struct fk fk;

	index_vms(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "index dead: first pass succeeds");
	saved = fk_saved(&fk);

	/* Both gfns of the pair at gfn 4 written with their bytes: a dead entry. */
	fk_write(&fk, 1, 4, 0xc0);
	fk_write(&fk, 2, 4, 0xc0);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.indexed == 2 &&
	   res.index_reps == 0 && shares == 1 && res.shared == 1 && fk_saved(&fk) == saved &&
	   fk_frame_of(&fk, 1, 4) == fk_frame_of(&fk, 2, 4),
	   "index dead: a frame whose gfns were all written: a new one, saved as before");
	fk_write(&fk, 2, 4, 0xc0);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.index_reps == 1 &&
	   shares == 1 && fk_saved(&fk) == saved,
	   "index dead: the new frame in the index");

	/* Two of the trio written (the representative and its spare), one left on the frame. */
	fk_write(&fk, 1, 8, 0xab);
	fk_write(&fk, 1, 9, 0xab);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0 && res.indexed == 0 &&
	   fk_saved(&fk) == saved && fk_frame_of(&fk, 1, 8) == fk_frame_of(&fk, 1, 10),
	   "index dead: a frame lost with a gfn on it: the full path, all on one frame");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1,
	   "index dead: and an index pass again");

	/* The zero frame's representative (VM 1 gfn 0) written during the pass. */
	fk_write(&fk, 2, 2, 0);
	fk.before_share = hook_write;
	fk.hook_call = 0;
	fk.hook_vm = 1;
	fk.hook_gfn = 0;
	fk.hook_content = 0;
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 &&
	   fk.share_err[ESTALE] == 1 && res.stale == 1,
	   "index dead: the representative written during the pass: ESTALE");
	fk.before_share = NULL;
	ok(fk_frame_of(&fk, 2, 2) != fk_frame_of(&fk, 2, 0) && fk_saved(&fk) == saved - 2,
	   "index dead: the written page alone on a frame of its own");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0 &&
	   fk_saved(&fk) == saved && fk_optimal(&fk, true),
	   "index dead: the next pass takes the full path: all zero pages on one frame");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && shares == 0,
	   "index dead: then index passes again");
	ok(!fk_release(&fk, st, &res), "index dead: release succeeds");
	fk_end(&fk, "index dead");
}

/*
 * A hash collision met by an index pass: refused (EILSEQ), the page
 * released, the representative kept; the entry marked, so that the
 * passes that find that hash again take the full path.
 */
static void test_index_collision(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	uint64_t saved;
	size_t shares;
	struct fk fk;
	int f;

	index_vms(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "index collision: first pass succeeds");
	saved = fk_saved(&fk);
	f = fk_frame_of(&fk, 1, 5);
	fk_write(&fk, 2, 20, 0xc1 | FK_COLLIDE);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.index_reps == 1 &&
	   fk.share_err[EILSEQ] == 1 && res.differ == 1 && res.unshared == 1,
	   "index collision: EILSEQ, the page made private again");
	ok(fk_frame_of(&fk, 2, 20) == FK_NONE && fk_frame_of(&fk, 1, 5) == f &&
	   fk_frame_of(&fk, 2, 5) == f && fk_saved(&fk) == saved,
	   "index collision: the representative's frame as it was");
	fk_write(&fk, 1, 20, 0xc1 | FK_COLLIDE);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0 &&
	   fk_frame_of(&fk, 1, 20) == fk_frame_of(&fk, 2, 20) &&
	   fk_frame_of(&fk, 1, 20) != FK_NONE && fk_saved(&fk) == saved + 1 &&
	   fk_optimal(&fk, true),
	   "index collision: that hash again: the full path pairs the colliding pages");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && shares == 0,
	   "index collision: nothing written: an index pass");
	ok(!fk_release(&fk, st, &res), "index collision: release succeeds");
	fk_end(&fk, "index collision");
}

/*
 * A no-intra-VM VM: a page written with the bytes of a frame that has a
 * gfn of its VM stays alone, without a share; another VM's joins it.
 */
static void test_index_no_intra(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	size_t shares;
	struct fk fk;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 8, 0xf, PAGESHARE_POLICY_NO_INTRA_VM);
	fk_add_vm(&fk, 2, 8, 0xf, 0);
	fk_add_vm(&fk, 3, 8, 0xf, PAGESHARE_POLICY_NO_INTRA_VM);
	fill(&fk, 1, 0, 0x5);
	fill(&fk, 2, 0, 0x5);
	fill(&fk, 3, 0, 0x5);
	ok(!fk_inc_pass(&fk, st, &res) && res.shared == 2, "index no-intra: first pass shares 2");
	fk_write(&fk, 1, 1, 0x5);
	fk_write(&fk, 2, 1, 0x5);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.index_reps == 1,
	   "index no-intra: an index pass");
	ok(res.policy == 1 && res.shared == 1 && shares == 1 && fk.share_err[EACCES] == 0,
	   "index no-intra: VM 1's page kept apart without a share, VM 2's shared");
	ok(fk_frame_of(&fk, 1, 1) != FK_NONE && fk_frame_of(&fk, 1, 1) != fk_frame_of(&fk, 1, 0) &&
	   fk_frame_of(&fk, 2, 1) == fk_frame_of(&fk, 1, 0),
	   "index no-intra: VM 1's kept nominated alone");
	/* VM 3 has a gfn on the frame, not the representative: the kernel refuses. */
	fk_write(&fk, 3, 1, 0x5);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && res.policy == 1 &&
	   fk.share_err[EACCES] == 1 && fk_frame_of(&fk, 3, 1) != fk_frame_of(&fk, 3, 0),
	   "index no-intra: VM 3's refused by the kernel (EACCES), kept apart");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && shares == 0 &&
	   fk.nominated == 0, "index no-intra: then nothing, no loop");
	ok(fk_check(&fk) == 0, "index no-intra: invariants hold");
	ok(!fk_release(&fk, st, &res) && res.unshared == 2,
	   "index no-intra: release made the 2 kept apart private");
	fk_end(&fk, "index no-intra");
}

/*
 * Another set of VMs, groups or policies than the index was built for:
 * the full path, which builds it anew. So does a pass that ends early,
 * and a VM scanned otherwise (a discard).
 */
static void test_index_changes(void)
{
	struct dedup_state *st = dedup_state_new();
	struct dedup_result res;
	size_t shares;
	struct fk fk;

	index_vms(&fk);
	ok(!fk_inc_pass(&fk, st, &res), "index changes: first pass succeeds");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1,
	   "index changes: an index pass");
	fk_vm(&fk, 2)->group = 0x99;
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0 && res.reused == 27,
	   "index changes: a new group: the full path (%" PRIu64 " reused)", res.reused);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1,
	   "index changes: then index passes");
	fk_vm(&fk, 2)->flags = PAGESHARE_POLICY_NO_INTRA_VM;
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0,
	   "index changes: a new policy: the full path");
	fk_vm(&fk, 2)->flags = 0;
	fk_vm(&fk, 2)->group = 0xe;
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0,
	   "index changes: back in the group: the full path");
	fk_add_vm(&fk, 3, 8, 0xe, 0);
	fill(&fk, 3, 0, 0xc0);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0 &&
	   fk_frame_of(&fk, 3, 0) == fk_frame_of(&fk, 1, 4),
	   "index changes: a new VM: the full path, which shares its page");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1,
	   "index changes: then index passes");
	fk_discard(&fk, 3, 0, 1);
	fill(&fk, 3, 0, 0xc1);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0 &&
	   fk_frame_of(&fk, 3, 0) == fk_frame_of(&fk, 1, 5),
	   "index changes: a discard: the full path");
	fk_remove_vm(&fk, 3, false);
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 0,
	   "index changes: a VM gone: the full path");
	ok(!index_pass(&fk, st, &res, &shares) && res.index_pass == 1 && fk_optimal(&fk, true),
	   "index changes: then index passes, every set on one frame");
	ok(!fk_release(&fk, st, &res), "index changes: release succeeds");
	fk_end(&fk, "index changes");
}

/* test_priv_equivalence() without hash collisions and discards. */
static bool random_plain;

/* Random VMs for test_priv_equivalence(): the same in each fake for a seed. */
static void priv_random_vms(struct fk *fk, uint64_t seed)
{
	static const uint64_t groups[] = { 0, 0x1111, 0x2222 };
	int i, nvms;
	uint64_t k;

	rng_state = 0x2545F4914F6CDD1DULL * seed;
	fk_init(fk);
	fk->fresh_fds = true;
	nvms = 2 + rnd(4);
	for (i = 0; i < nvms; i++) {
		fk_add_vm(fk, i + 1, 32, groups[rnd(3)], 0);
		for (k = 0; k < 32; k++) {
			if (rnd(3) == 0)
				continue;	/* a hole */
			fill(fk, i + 1, k, rnd(4) ? rnd(8) : rnd(3) ? 0x1000 + rnd(40) :
			     (rnd(8) | (random_plain ? 0 : FK_COLLIDE)));
		}
	}
}

/* Between passes: writes (holes filled too) and discards, alike in each fake. */
static void priv_random_changes(struct fk **fks, int n)
{
	int i, j, nr = rnd(8);

	for (i = 0; i < nr; i++) {
		uint64_t id = 1 + rnd(fks[0]->nr_vms), gfn = rnd(32);
		uint64_t c = rnd(3) ? rnd(8) : 0x3000 + rnd(20), len = 1 + rnd(4);
		bool discard = rnd(6) == 0 && !random_plain;

		for (j = 0; j < n; j++) {
			if (discard)
				fk_discard(fks[j], id, gfn, len);
			else
				fk_write(fks[j], id, gfn, c);
		}
	}
}

/*
 * Random VMs, groups, collisions, and between passes random writes and
 * discards: passes from the private gfns (A) nominate and hash what passes
 * that query (B) do, holes aside, save as much as full passes (C) after
 * every pass, and leave every set of equal pages on one frame. Most of A's
 * passes are index passes (a pass with a discard, a collision or a lost
 * frame is not), which must save what full passes do.
 */
static void test_priv_equivalence(bool plain)
{
	int seed, runs = 150, bad_saved = 0, bad_hashed = 0, bad_optimal = 0, bad_check = 0;
	int bad_err = 0, bad_content = 0, bad_alone = 0;
	uint64_t queried_a = 0, queried_b = 0, nominated_a = 0, nominated_b = 0;
	uint64_t index_a = 0, passes_a = 0;

	for (seed = 1; seed <= runs; seed++) {
		struct dedup_state *sa = dedup_state_new(), *sb = dedup_state_new();
		struct fk a, b, c;
		struct fk *fks[] = { &a, &b, &c };
		struct dedup_result ra, rb, rc;
		int pass, i;
		uint64_t k;

		priv_random_vms(&a, seed);
		priv_random_vms(&b, seed);
		priv_random_vms(&c, seed);
		b.get_private = FK_PRIVATE_NONE;
		for (pass = 0; pass < 6; pass++) {
			struct dedup_config cfg = fk_config(&a);

			cfg.nominate_batch = 1 + rnd(20);
			cfg.share_batch = 1 + rnd(10);
			cfg.release_batch = 1 + rnd(10);
			for (i = 0; i < 3; i++) {
				fk_zero_counts(fks[i]);
				cfg.clock.ctx = fks[i];
				cfg.state = i == 0 ? sa : i == 1 ? sb : NULL;
				if (fk_run(fks[i], &cfg, i == 0 ? &ra : i == 1 ? &rb : &rc))
					bad_err++;
				if (fk_check(fks[i]) || fks[i]->open_fds || fks[i]->bad_fd)
					bad_check++;
				for (k = 0; k < (uint64_t)fks[i]->nr_vms * 32; k++) {
					struct fk_gfn *g = &fks[i]->vms[k / 32].g[k % 32];

					if (g->touched &&
					    fk_content(fks[i], k / 32 + 1, k % 32) != g->want)
						bad_content++;
				}
			}
			if (fk_saved(&a) != fk_saved(&c) || fk_saved(&b) != fk_saved(&c))
				bad_saved++;
			/*
			 * Index passes hash no more; less if a query pass
			 * released a page of a collision (EILSEQ) that an
			 * index pass never visits.
			 */
			if (a.hashed > b.hashed)
				bad_hashed++;
			if (!fk_optimal(&a, true) || !fk_optimal(&b, true) ||
			    !fk_optimal(&c, false))
				bad_optimal++;
			if (pass) {
				index_a += ra.index_pass;
				passes_a++;
				queried_a += ra.queried;
				queried_b += rb.queried;
				nominated_a += a.nominated;
				nominated_b += b.nominated;
			}
			priv_random_changes(fks, 3);
		}
		if (fk_release(&a, sa, &ra) || fk_release(&b, sb, &rb))
			bad_err++;
		/* C keeps nothing: the last changes may leave a gfn alone on its frame. */
		if (fk_nominated_alone(&a) || fk_nominated_alone(&b))
			bad_alone++;
		if (fk_saved(&a) != fk_saved(&c) || fk_saved(&b) != fk_saved(&c))
			bad_saved++;
		for (i = 0; i < 3; i++)
			fk_free(fks[i]);
	}
	ok(!bad_err, "priv random: %d configurations, 6 passes each, no error", runs);
	ok(!bad_check, "priv random: fake kernel invariants hold (%d bad)", bad_check);
	ok(!bad_content, "priv random: every gfn reads its last write (%d bad)", bad_content);
	ok(!bad_saved, "priv random: as much saved as full passes after every pass (%d bad)",
	   bad_saved);
	ok(!bad_optimal, "priv random: every set of equal pages on one frame (%d bad)",
	   bad_optimal);
	ok(!bad_hashed, "priv random: the private gfns hash no more than the queries (%d bad)",
	   bad_hashed);
	ok(!bad_alone, "priv random: nothing left nominated after the release (%d bad)",
	   bad_alone);
	if (plain)
		ok(index_a * 10 >= passes_a * 9,
		   "priv random: most passes after the first are index passes (%" PRIu64 " of %"
		   PRIu64 ")", index_a, passes_a);
	else
		ok(index_a > 0,
		   "priv random: some passes are index passes (%" PRIu64 " of %" PRIu64
		   "; discards and collisions take the full path)", index_a, passes_a);
	ok(queried_a * 4 < queried_b && nominated_a * 2 < nominated_b,
	   "priv random: after the first pass, far fewer queries (%" PRIu64 " vs %" PRIu64
	   ") and nominates (%" PRIu64 " vs %" PRIu64 ")", queried_a, queried_b, nominated_a,
	   nominated_b);
}

/* The incremental tests, against a kernel with or without PAGESHARE_GET_PRIVATE. */
static void test_inc_all(enum fk_private mode)
{
	inc_mode = mode;
	test_inc_unchanged();
	test_inc_written();
	test_inc_alone_written();
	test_inc_vms();
	test_inc_shrink();
	test_inc_early_end();
	test_inc_no_intra();
	inc_mode = FK_PRIVATE_NONE;
}

int main(void)
{
	printf("TAP version 13\n");
	test_xxh64();
	test_scopes();
	test_source_lowest();
	test_batching();
	test_collision();
	test_collision_classes();
	test_eidrm_retry();
	test_estale_promotion();
	test_zero_pages();
	test_singletons();
	test_holes_busy();
	test_rate_limit();
	test_second_pass();
	test_merge_frames();
	test_no_intra();
	test_vanished();
	test_verify();
	test_max_sharers();
	test_stop();
	test_full_passes();
	diag("incremental passes without PAGESHARE_GET_PRIVATE: queries");
	test_inc_all(FK_PRIVATE_NONE);
	diag("incremental passes with PAGESHARE_GET_PRIVATE: the private gfns");
	test_inc_all(FK_PRIVATE);
	test_priv_written();
	test_priv_holes();
	test_priv_discard();
	test_priv_left_shared();
	test_priv_moved();
	test_priv_doubt();
	test_priv_enotty();
	test_index_steady();
	test_index_dead();
	test_index_bounded();
	test_index_collision();
	test_index_no_intra();
	test_index_changes();
	test_random();
	test_priv_equivalence(false);
	diag("the same without collisions and discards: index passes");
	random_plain = true;
	test_priv_equivalence(true);
	return tap_done();
}
