/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A simulated pageshare kernel for the host-side tests: dedup_test drives
 * the agent's core with it, and fake_ioctl.c puts it under the pageshare
 * command's ioctl() calls.
 *
 * The fake kernel keeps, per VM, what backs each gfn: a hole, a private
 * page, or a frame in shared state with a handle, a sharer count and the
 * page's contents. Contents are 64-bit numbers standing for pages: 0 is
 * the zero page, and a content with FK_COLLIDE set hashes like the same
 * content without it, to make hash collisions. It follows the kernel's
 * rules where the agent can see them: handles never reused, a write kills
 * a handle (the last sharer keeps the frame, others get a copy), share
 * checks in the kernel's order (EACCES, ESTALE, EIDRM, already one frame,
 * no-intra-VM, EBUSY, EILSEQ, EMLINK), share groups and policies, and
 * PAGESHARE_GET_PRIVATE with its discard count (fk_discard(), shrinks).
 */

#ifndef PAGESHARE_FAKE_KERNEL_H
#define PAGESHARE_FAKE_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../dedup.h"

#define FK_PAGE		4096ULL
#define FK_MAX_VMS	8
#define FK_FD_BASE	100
#define FK_MAX_FDS	1024
#define FK_COLLIDE	(1ULL << 63)
#define FK_NONE		(-1)

/* fk::get_private: what the fake's kernel knows of PAGESHARE_GET_PRIVATE. */
enum fk_private {
	FK_PRIVATE,		/* API version 5 */
	FK_PRIVATE_ENOTTY,	/* an older module: -ENOTTY */
	FK_PRIVATE_NONE,	/* a backend without get_private (NULL) */
};

struct fk_gfn {
	bool touched;
	bool busy;		/* EBUSY at nominate */
	bool pin_on_share;	/* EBUSY at share */
	bool poison;		/* a memory error: EHWPOISON at nominate and unshare */
	int frame;		/* FK_NONE: private (or a hole) */
	uint64_t content;
	uint64_t want;		/* the last write: what the gfn must read */
};

struct fk_frame {
	uint64_t handle;
	uint64_t content;
	uint32_t sharers;
	bool alive;
	uint64_t origin_vm;	/* the VM id and gfn it was nominated from */
	uint64_t origin_gfn;
};

struct fk_vm {
	uint64_t id;
	uint64_t pages;
	uint64_t group;
	uint32_t flags;
	bool exists;
	bool unlisted;		/* gone from the listing too (fk_remove_vm()) */
	uint64_t discards;	/* discards and shrinks completed */
	struct fk_gfn *g;
};

struct fk {
	struct fk_vm vms[FK_MAX_VMS];
	int nr_vms;
	struct fk_frame *frames;
	int nr_frames;
	int cap_frames;
	uint64_t next_handle;
	uint32_t max_sharers;
	int fd_vm[FK_MAX_FDS];	/* descriptor -> VM index, or -1 */
	int open_fds;
	bool fresh_fds;		/* never reuse a descriptor: a stale one is EBADF */
	int next_fd;

	/* Instrumentation. */
	size_t nominate_calls, max_nominate;
	size_t share_calls, max_share;
	size_t unshare_calls, query_calls, max_query;
	size_t nominated;	/* nominate entries */
	size_t hashed;		/* of those, pages read and hashed (PAGESHARE_NOMINATE_HASH) */
	size_t queried;		/* query entries */
	enum fk_private get_private;
	size_t private_calls;	/* PAGESHARE_GET_PRIVATE calls */
	size_t private_listed;	/* gfns they listed */
	size_t fail_private;	/* fail private call number fail_private (1-based) with EFAULT */
	size_t bad_fd;		/* entries of any call naming no open VM descriptor */
	size_t fail_query;	/* fail query call number fail_query (1-based) with ENOMEM */
	size_t share_err[256];	/* share results by errno */
	int audits;
	int audit_extra;	/* problems the audit adds to those it finds */
	void (*before_share)(struct fk *fk, size_t call);
	size_t hook_call;
	uint64_t hook_vm, hook_gfn, hook_content;

	/* The fake clock. */
	uint64_t now;
	uint64_t slept;
};

uint64_t fk_hash(uint64_t content);
void fk_init(struct fk *fk);
void fk_free(struct fk *fk);
struct fk_vm *fk_add_vm(struct fk *fk, uint64_t id, uint64_t pages, uint64_t group,
			uint32_t flags);
struct fk_vm *fk_vm(struct fk *fk, uint64_t id);
struct fk_gfn *fk_g(struct fk *fk, uint64_t id, uint64_t gfn);
int fk_frame_of(struct fk *fk, uint64_t id, uint64_t gfn);
uint64_t fk_content(struct fk *fk, uint64_t id, uint64_t gfn);
void fk_unshare_gfn(struct fk *fk, struct fk_gfn *g);
void fk_write(struct fk *fk, uint64_t id, uint64_t gfn, uint64_t content);
void fk_discard(struct fk *fk, uint64_t id, uint64_t gfn, uint64_t n);
int fk_private(struct fk *fk, struct fk_vm *vm, uint64_t start, uint64_t *gfns, uint32_t max,
	       uint32_t *count, uint64_t *next, uint64_t *discards);
void fk_remove_vm(struct fk *fk, uint64_t id, bool listed);
void fk_resize(struct fk *fk, uint64_t id, uint64_t pages);
struct fk_vm *fk_vm_of_fd(struct fk *fk, uint32_t fd);
int fk_set_policy(struct fk *fk, int fd, uint64_t group, uint32_t flags, uint64_t *group_out);
int fk_check(struct fk *fk);
uint64_t fk_saved(struct fk *fk);
struct dedup_backend fk_backend(struct fk *fk);

#endif /* PAGESHARE_FAKE_KERNEL_H */
