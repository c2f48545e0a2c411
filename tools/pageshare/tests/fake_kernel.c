// SPDX-License-Identifier: GPL-2.0
/*
 * A simulated pageshare kernel for the host-side tests (fake_kernel.h).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"

uint64_t fk_hash(uint64_t content)
{
	static uint64_t zero_hash;
	uint64_t c = content & ~FK_COLLIDE;

	if (!content) {
		if (!zero_hash) {
			static const unsigned char zero[FK_PAGE];

			zero_hash = dedup_xxh64(zero, sizeof(zero), 0);
		}
		return zero_hash;
	}
	return dedup_xxh64(&c, sizeof(c), 0);
}

void fk_init(struct fk *fk)
{
	memset(fk, 0, sizeof(*fk));
	memset(fk->fd_vm, -1, sizeof(fk->fd_vm));
	fk->next_handle = 1000;
	fk->max_sharers = 1U << 20;
}

void fk_free(struct fk *fk)
{
	int i;

	for (i = 0; i < fk->nr_vms; i++)
		free(fk->vms[i].g);
	free(fk->frames);
}

struct fk_vm *fk_add_vm(struct fk *fk, uint64_t id, uint64_t pages, uint64_t group,
			uint32_t flags)
{
	struct fk_vm *vm = &fk->vms[fk->nr_vms++];
	uint64_t i;

	vm->id = id;
	vm->pages = pages;
	vm->group = group;
	vm->flags = flags;
	vm->exists = true;
	vm->g = calloc(pages ? pages : 1, sizeof(*vm->g));
	for (i = 0; i < pages; i++)
		vm->g[i].frame = FK_NONE;
	return vm;
}

struct fk_vm *fk_vm(struct fk *fk, uint64_t id)
{
	int i;

	for (i = 0; i < fk->nr_vms; i++)
		if (fk->vms[i].id == id)
			return &fk->vms[i];
	return NULL;
}

struct fk_gfn *fk_g(struct fk *fk, uint64_t id, uint64_t gfn)
{
	return &fk_vm(fk, id)->g[gfn];
}

/* The frame backing a gfn, or FK_NONE. */
int fk_frame_of(struct fk *fk, uint64_t id, uint64_t gfn)
{
	return fk_g(fk, id, gfn)->frame;
}

uint64_t fk_content(struct fk *fk, uint64_t id, uint64_t gfn)
{
	struct fk_gfn *g = fk_g(fk, id, gfn);

	return g->frame == FK_NONE ? g->content : fk->frames[g->frame].content;
}

/* What the guest writes: a private page with @content, as the kernel's write path. */
void fk_unshare_gfn(struct fk *fk, struct fk_gfn *g)
{
	struct fk_frame *fr;

	if (g->frame == FK_NONE)
		return;
	fr = &fk->frames[g->frame];
	g->content = fr->content;
	if (--fr->sharers == 0)
		fr->alive = false;
	g->frame = FK_NONE;
}

void fk_write(struct fk *fk, uint64_t id, uint64_t gfn, uint64_t content)
{
	struct fk_gfn *g = fk_g(fk, id, gfn);

	fk_unshare_gfn(fk, g);
	g->touched = true;
	g->content = content;
	g->want = content;
}

/*
 * fallocate(FALLOC_FL_PUNCH_HOLE) of @n gfns from @gfn: each loses its page
 * or leaves its frame, without a copy, and the VM's discard count goes up
 * once the whole range is gone, as in the kernel.
 */
void fk_discard(struct fk *fk, uint64_t id, uint64_t gfn, uint64_t n)
{
	struct fk_vm *vm = fk_vm(fk, id);
	uint64_t k;

	for (k = gfn; k < gfn + n && k < vm->pages; k++) {
		fk_unshare_gfn(fk, &vm->g[k]);
		vm->g[k].touched = false;
		vm->g[k].content = 0;
		vm->g[k].want = 0;
	}
	vm->discards++;
}

/*
 * PAGESHARE_GET_PRIVATE once its argument is checked: the gfns with a page
 * of their own (touched, on no frame) from @start, @max at most; *@next is
 * one past the last stored when @gfns is full, else the VM's size.
 */
int fk_private(struct fk *fk, struct fk_vm *vm, uint64_t start, uint64_t *gfns, uint32_t max,
	       uint32_t *count, uint64_t *next, uint64_t *discards)
{
	uint64_t g;

	if (max > PAGESHARE_BATCH_MAX)
		return -E2BIG;
	fk->private_calls++;
	if (fk->private_calls == fk->fail_private)
		return -EFAULT;
	*discards = vm->discards;
	*count = 0;
	*next = vm->pages;
	for (g = start; g < vm->pages && *count < max; g++) {
		if (!vm->g[g].touched || vm->g[g].frame != FK_NONE)
			continue;
		gfns[(*count)++] = g;
		if (*count == max)
			*next = g + 1;
	}
	fk->private_listed += *count;
	return 0;
}

/*
 * The VM exits: its gfns leave their frames, as at the kernel's teardown.
 * With @listed, it exited after the agent listed the VMs (open: ESRCH);
 * without, it is listed no more, and its id is moved out of the way so
 * that a new VM may take it, as the kernel allows once the old one is gone.
 */
void fk_remove_vm(struct fk *fk, uint64_t id, bool listed)
{
	struct fk_vm *vm = fk_vm(fk, id);
	uint64_t k;

	for (k = 0; k < vm->pages; k++) {
		fk_unshare_gfn(fk, &vm->g[k]);
		vm->g[k].touched = false;
	}
	vm->exists = false;
	if (listed)
		return;
	vm->unlisted = true;
	vm->id |= 1ULL << 62;
}

/* PAGESHARE_SET_SIZE: a shrink drops the gfns past the end, a growth adds holes. */
void fk_resize(struct fk *fk, uint64_t id, uint64_t pages)
{
	struct fk_vm *vm = fk_vm(fk, id);
	uint64_t k;

	for (k = pages; k < vm->pages; k++)
		fk_unshare_gfn(fk, &vm->g[k]);
	if (pages < vm->pages)
		vm->discards++;
	vm->g = realloc(vm->g, (pages ? pages : 1) * sizeof(*vm->g));
	for (k = vm->pages; k < pages; k++) {
		memset(&vm->g[k], 0, sizeof(vm->g[k]));
		vm->g[k].frame = FK_NONE;
	}
	vm->pages = pages;
}

struct fk_vm *fk_vm_of_fd(struct fk *fk, uint32_t fd)
{
	if (fd >= FK_MAX_FDS || fk->fd_vm[fd] < 0)
		return NULL;
	return &fk->vms[fk->fd_vm[fd]];
}

static int fk_new_frame(struct fk *fk, struct fk_vm *vm, uint64_t gfn)
{
	struct fk_frame *fr;

	if (fk->nr_frames == fk->cap_frames) {
		fk->cap_frames = fk->cap_frames ? 2 * fk->cap_frames : 64;
		fk->frames = realloc(fk->frames, fk->cap_frames * sizeof(*fk->frames));
	}
	fr = &fk->frames[fk->nr_frames];
	fr->handle = ++fk->next_handle;
	fr->content = vm->g[gfn].content;
	fr->sharers = 1;
	fr->alive = true;
	fr->origin_vm = vm->id;
	fr->origin_gfn = gfn;
	return fk->nr_frames++;
}

static int fk_nominate_one(struct fk *fk, struct pageshare_nominate *e)
{
	struct fk_vm *vm = fk_vm_of_fd(fk, e->vm);
	struct fk_gfn *g;

	if (e->flags & ~PAGESHARE_NOMINATE_HASH || e->pad)
		return -EINVAL;
	if (!vm) {
		fk->bad_fd++;
		return -EBADF;
	}
	if (e->gfn >= vm->pages)
		return -ENXIO;
	g = &vm->g[e->gfn];
	if (!g->touched)
		return -ENODATA;
	/* Before the frame: a gfn on a frame with a memory error fails too. */
	if (g->poison)
		return -EHWPOISON;
	if (g->busy)
		return -EBUSY;
	if (g->frame == FK_NONE)
		g->frame = fk_new_frame(fk, vm, e->gfn);
	e->handle = fk->frames[g->frame].handle;
	e->hash = e->flags & PAGESHARE_NOMINATE_HASH ? fk_hash(fk->frames[g->frame].content) : 0;
	fk->hashed += !!(e->flags & PAGESHARE_NOMINATE_HASH);
	return 0;
}

/* Whether a VM has a gfn on frame @f. */
static bool fk_frame_has_vm(int f, const struct fk_vm *vm)
{
	uint64_t i;

	for (i = 0; i < vm->pages; i++)
		if (vm->g[i].frame == f)
			return true;
	return false;
}

static int fk_share_one(struct fk *fk, const struct pageshare_share *e)
{
	struct fk_vm *svm = fk_vm_of_fd(fk, e->src_vm), *cvm = fk_vm_of_fd(fk, e->client_vm);
	struct fk_gfn *sg, *cg;
	struct fk_frame *sf, *cf;
	int i, s, c;
	uint64_t k;

	if (e->flags & ~PAGESHARE_SHARE_COMPARE)
		return -EINVAL;
	if (!svm || !cvm) {
		fk->bad_fd++;
		return -EBADF;
	}
	if (e->src_gfn >= svm->pages || e->client_gfn >= cvm->pages)
		return -ENXIO;
	if (svm == cvm && e->src_gfn == e->client_gfn)
		return -EINVAL;
	if (svm != cvm && !(svm->group && svm->group == cvm->group))
		return -EACCES;
	sg = &svm->g[e->src_gfn];
	cg = &cvm->g[e->client_gfn];
	s = sg->frame;
	c = cg->frame;
	if (s == FK_NONE || fk->frames[s].handle != e->src_handle)
		return -ESTALE;
	if (c == FK_NONE || fk->frames[c].handle != e->client_handle)
		return -EIDRM;
	if (s == c)
		return 0;
	/* No no-intra-VM VM may end up with two gfns on the frame. */
	for (i = 0; i < fk->nr_vms; i++) {
		struct fk_vm *vm = &fk->vms[i];

		if ((vm->flags & PAGESHARE_POLICY_NO_INTRA_VM) && fk_frame_has_vm(c, vm) &&
		    fk_frame_has_vm(s, vm))
			return -EACCES;
	}
	if (sg->pin_on_share || cg->pin_on_share)
		return -EBUSY;
	sf = &fk->frames[s];
	cf = &fk->frames[c];
	if ((e->flags & PAGESHARE_SHARE_COMPARE) && sf->content != cf->content)
		return -EILSEQ;
	if (sf->sharers + cf->sharers > fk->max_sharers)
		return -EMLINK;
	for (i = 0; i < fk->nr_vms; i++)
		for (k = 0; k < fk->vms[i].pages; k++)
			if (fk->vms[i].g[k].frame == c)
				fk->vms[i].g[k].frame = s;
	sf->sharers += cf->sharers;
	cf->sharers = 0;
	cf->alive = false;
	return 0;
}

/* PAGESHARE_SET_POLICY, as policy.c: groups must exist, shared VMs cannot move. */
int fk_set_policy(struct fk *fk, int fd, uint64_t group, uint32_t flags, uint64_t *group_out)
{
	struct fk_vm *vm = fk_vm_of_fd(fk, fd);
	uint64_t k;
	int i;

	if (!vm)
		return -EBADF;
	if (flags & ~(PAGESHARE_POLICY_NO_INTRA_VM | PAGESHARE_POLICY_NEW_GROUP) ||
	    (group && (flags & PAGESHARE_POLICY_NEW_GROUP)))
		return -EINVAL;
	if (flags & PAGESHARE_POLICY_NEW_GROUP) {
		group = 0x5eed0000cafe0000ULL + ++fk->next_handle;
	} else if (group) {
		for (i = 0; i < fk->nr_vms; i++)
			if (fk->vms[i].group == group)
				break;
		if (i == fk->nr_vms)
			return -ENOENT;
	}
	flags &= PAGESHARE_POLICY_NO_INTRA_VM;
	if (group != vm->group || flags != vm->flags) {
		for (k = 0; k < vm->pages; k++)
			if (vm->g[k].frame != FK_NONE && fk->frames[vm->g[k].frame].sharers > 1)
				return -EBUSY;
	}
	vm->group = group;
	vm->flags = flags;
	if (group_out)
		*group_out = group;
	return 0;
}

static int fk_list_vms(void *ctx, uint64_t **ids, size_t *count)
{
	struct fk *fk = ctx;
	int i;

	*ids = malloc(FK_MAX_VMS * sizeof(**ids));
	*count = 0;
	for (i = 0; i < fk->nr_vms; i++)
		if (!fk->vms[i].unlisted)
			(*ids)[(*count)++] = fk->vms[i].id;
	return 0;
}

static int fk_open_vm(void *ctx, uint64_t id)
{
	struct fk *fk = ctx;
	struct fk_vm *vm = fk_vm(fk, id);
	int i;

	if (!vm || !vm->exists)
		return -ESRCH;
	for (i = fk->fresh_fds && fk->next_fd > FK_FD_BASE ? fk->next_fd : FK_FD_BASE;
	     i < FK_MAX_FDS; i++) {
		if (fk->fd_vm[i] < 0) {
			fk->fd_vm[i] = vm - fk->vms;
			fk->open_fds++;
			fk->next_fd = i + 1;
			return i;
		}
	}
	return -EMFILE;
}

static void fk_close_vm(void *ctx, int fd)
{
	struct fk *fk = ctx;

	fk->fd_vm[fd] = -1;
	fk->open_fds--;
}

static int fk_get_size(void *ctx, int fd, uint64_t *bytes)
{
	struct fk_vm *vm = fk_vm_of_fd(ctx, fd);

	if (!vm)
		return -EBADF;
	*bytes = vm->pages * FK_PAGE;
	return 0;
}

static int fk_get_policy(void *ctx, int fd, uint64_t *group, uint32_t *flags)
{
	struct fk_vm *vm = fk_vm_of_fd(ctx, fd);

	if (!vm)
		return -EBADF;
	*group = vm->group;
	*flags = vm->flags;
	return 0;
}

static int fk_nominate(void *ctx, struct pageshare_nominate *e, size_t n)
{
	struct fk *fk = ctx;
	size_t i;

	fk->nominate_calls++;
	fk->nominated += n;
	if (n > fk->max_nominate)
		fk->max_nominate = n;
	for (i = 0; i < n; i++)
		e[i].result = fk_nominate_one(fk, &e[i]);
	return 0;
}

static int fk_share(void *ctx, struct pageshare_share *e, size_t n)
{
	struct fk *fk = ctx;
	size_t i;

	if (fk->before_share)
		fk->before_share(fk, fk->share_calls);
	fk->share_calls++;
	if (n > fk->max_share)
		fk->max_share = n;
	for (i = 0; i < n; i++) {
		e[i].result = fk_share_one(fk, &e[i]);
		fk->share_err[-e[i].result]++;
	}
	return 0;
}

static int fk_unshare(void *ctx, struct pageshare_unshare *e, size_t n)
{
	struct fk *fk = ctx;
	size_t i;

	fk->unshare_calls++;
	for (i = 0; i < n; i++) {
		struct fk_vm *vm = fk_vm_of_fd(fk, e[i].vm);

		if (!vm) {
			fk->bad_fd++;
			e[i].result = -EBADF;
		} else if (e[i].gfn >= vm->pages) {
			e[i].result = -ENXIO;
		} else if (vm->g[e[i].gfn].poison && vm->g[e[i].gfn].frame != FK_NONE) {
			e[i].result = -EHWPOISON;	/* its bytes cannot be copied */
		} else {
			fk_unshare_gfn(fk, &vm->g[e[i].gfn]);
			e[i].result = 0;
		}
	}
	return 0;
}

static void fk_query_gfn(struct fk *fk, const struct fk_gfn *g, struct pageshare_query *q)
{
	q->handle = 0;
	if (!g->touched) {
		q->state = PAGESHARE_STATE_HOLE;
		q->sharers = 0;
	} else if (g->frame == FK_NONE) {
		q->state = PAGESHARE_STATE_PRIVATE;
		q->sharers = 1;
	} else {
		q->handle = fk->frames[g->frame].handle;
		q->sharers = fk->frames[g->frame].sharers;
		q->state = q->sharers == 1 ? PAGESHARE_STATE_NOMINATED : PAGESHARE_STATE_SHARED;
	}
}

static int fk_query(void *ctx, struct pageshare_query *e, size_t n)
{
	struct fk *fk = ctx;
	size_t i;

	if (++fk->query_calls == fk->fail_query)
		return -ENOMEM;
	fk->queried += n;
	if (n > fk->max_query)
		fk->max_query = n;
	for (i = 0; i < n; i++) {
		struct fk_vm *vm = fk_vm_of_fd(fk, e[i].vm);

		if (!vm) {
			fk->bad_fd++;
			e[i].result = -EBADF;
		} else if (e[i].gfn >= vm->pages) {
			e[i].result = -ENXIO;
		} else {
			fk_query_gfn(fk, &vm->g[e[i].gfn], &e[i]);
			e[i].result = 0;
		}
	}
	return 0;
}

static int fk_get_private(void *ctx, int fd, uint64_t start, uint64_t *gfns, uint32_t max,
			  uint32_t *count, uint64_t *next, uint64_t *discards)
{
	struct fk *fk = ctx;
	struct fk_vm *vm = fk_vm_of_fd(fk, fd);

	if (fk->get_private == FK_PRIVATE_ENOTTY)
		return -ENOTTY;
	if (!vm) {
		fk->bad_fd++;
		return -EBADF;
	}
	return fk_private(fk, vm, start, gfns, max, count, next, discards);
}

uint64_t fk_saved(struct fk *fk)
{
	uint64_t gfns = 0, frames = 0, k;
	int i;

	for (i = 0; i < fk->nr_vms; i++)
		for (k = 0; k < fk->vms[i].pages; k++)
			gfns += fk->vms[i].g[k].frame != FK_NONE;
	for (i = 0; i < fk->nr_frames; i++)
		frames += fk->frames[i].alive;
	return gfns - frames;
}

static int fk_saved_frames(void *ctx, uint64_t *frames)
{
	*frames = fk_saved(ctx);
	return 0;
}

/* The kernel's invariants, as far as the fake has them. */
int fk_check(struct fk *fk)
{
	int problems = 0, f, i, j;
	uint64_t k;

	for (f = 0; f < fk->nr_frames; f++) {
		struct fk_frame *fr = &fk->frames[f];
		uint32_t n = 0;
		uint64_t group = 0;
		bool mixed = false, first = true;
		int vm_first = -1;

		for (i = 0; i < fk->nr_vms; i++) {
			int on = 0;

			for (k = 0; k < fk->vms[i].pages; k++)
				on += fk->vms[i].g[k].frame == f;
			if (!on)
				continue;
			n += on;
			if ((fk->vms[i].flags & PAGESHARE_POLICY_NO_INTRA_VM) && on > 1)
				problems++;
			if (first) {
				group = fk->vms[i].group;
				vm_first = i;
				first = false;
			} else if (!group || fk->vms[i].group != group) {
				mixed = true;
			}
		}
		(void)vm_first;
		if (fr->alive != !!n || (fr->alive && fr->sharers != n))
			problems++;
		if (mixed)
			problems++;
	}
	for (i = 0; i < fk->nr_frames; i++)
		for (j = i + 1; j < fk->nr_frames; j++)
			if (fk->frames[i].handle == fk->frames[j].handle)
				problems++;
	return problems;
}

static int fk_audit(void *ctx)
{
	struct fk *fk = ctx;

	fk->audits++;
	return fk_check(fk) + fk->audit_extra;
}

struct dedup_backend fk_backend(struct fk *fk)
{
	struct dedup_backend be = {
		.ctx = fk,
		.list_vms = fk_list_vms,
		.open_vm = fk_open_vm,
		.close_vm = fk_close_vm,
		.get_size = fk_get_size,
		.get_policy = fk_get_policy,
		.nominate = fk_nominate,
		.share = fk_share,
		.unshare = fk_unshare,
		.query = fk_query,
		.get_private = fk->get_private == FK_PRIVATE_NONE ? NULL : fk_get_private,
		.saved_frames = fk_saved_frames,
		.audit = fk_audit,
	};

	return be;
}
