/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The deduplication agent's core: one pass over a set of VMs. It reaches
 * the kernel only through struct dedup_backend, so that the unit tests can
 * run it against a simulated kernel.
 */

#ifndef PAGESHARE_DEDUP_H
#define PAGESHARE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/pageshare.h>

/* Default batch sizes: big enough to amortise a call, small enough to stay in cache. */
#define DEDUP_NOMINATE_BATCH	4096
#define DEDUP_SHARE_BATCH	4096
#define DEDUP_RELEASE_BATCH	4096

/**
 * struct dedup_backend - How the agent reaches the kernel.
 * @ctx:		Passed to every operation.
 * @list_vms:		Set *@ids to a malloc()ed array of the ids of every VM
 *			that exists (the caller frees it) and *@count to its
 *			length. Return 0 or a negative errno.
 * @open_vm:		A descriptor of the VM with this id, or a negative
 *			errno (-ESRCH: the VM is gone).
 * @close_vm:		Close a descriptor from @open_vm.
 * @get_size:		The VM's size in bytes. Return 0 or a negative errno.
 * @get_policy:		The VM's share group and PAGESHARE_POLICY_* flags.
 * @nominate:		PAGESHARE_NOMINATE_BATCH over any number of entries,
 *			with the per-entry results filled in. Return 0 or the
 *			negative errno of a failure of the call as a whole.
 * @share:		PAGESHARE_SHARE_BATCH, likewise.
 * @unshare:		PAGESHARE_UNSHARE_BATCH, likewise.
 * @query:		PAGESHARE_QUERY_BATCH, likewise.
 * @get_private:	PAGESHARE_GET_PRIVATE on a VM's descriptor: the VM's
 *			private gfns from @start on, @max at most, into @gfns,
 *			with *@count, *@next and *@discards set as the kernel
 *			sets them. Return 0 or a negative errno. Optional
 *			(NULL): incremental passes then query every gfn they
 *			remember, as with a module older than API version 5
 *			(-ENOTTY or -EINVAL).
 * @saved_frames:	The module-wide saved_frames counter. Optional (NULL).
 * @audit:		PAGESHARE_AUDIT: problems found, or a negative errno.
 */
struct dedup_backend {
	void *ctx;
	int (*list_vms)(void *ctx, uint64_t **ids, size_t *count);
	int (*open_vm)(void *ctx, uint64_t id);
	void (*close_vm)(void *ctx, int vm);
	int (*get_size)(void *ctx, int vm, uint64_t *bytes);
	int (*get_policy)(void *ctx, int vm, uint64_t *group, uint32_t *flags);
	int (*nominate)(void *ctx, struct pageshare_nominate *e, size_t count);
	int (*share)(void *ctx, struct pageshare_share *e, size_t count);
	int (*unshare)(void *ctx, struct pageshare_unshare *e, size_t count);
	int (*query)(void *ctx, struct pageshare_query *e, size_t count);
	int (*get_private)(void *ctx, int vm, uint64_t start, uint64_t *gfns, uint32_t max,
			   uint32_t *count, uint64_t *next, uint64_t *discards);
	int (*saved_frames)(void *ctx, uint64_t *frames);
	int (*audit)(void *ctx);
};

/**
 * struct dedup_clock - Time, for the rate limit and the report.
 * @ctx:	Passed to both functions.
 * @now_ns:	A monotonic clock, in nanoseconds.
 * @sleep_ns:	Sleep; may return early (a signal), the caller checks.
 *
 * dedup_real_clock() gives CLOCK_MONOTONIC and nanosleep(); the tests give
 * a fake clock whose sleep only advances it.
 */
struct dedup_clock {
	void *ctx;
	uint64_t (*now_ns)(void *ctx);
	void (*sleep_ns)(void *ctx, uint64_t ns);
};

/* The phases of a pass, as reported to the progress callback. */
enum dedup_event {
	DEDUP_EV_VM,		/* a VM's nomination starts: @vm_id, @total pages */
	DEDUP_EV_NOMINATE,	/* nominated (or found unchanged) @done of all VMs' @total pages */
	DEDUP_EV_SHARE,		/* @done of @total groups of equal pages resolved */
	DEDUP_EV_RELEASE,	/* checked @done of @total pages left alone */
};

/**
 * struct dedup_progress - A progress report.
 * @event:	What happened.
 * @vm_id:	DEDUP_EV_VM: the VM.
 * @done:	Units done so far.
 * @total:	Units in the phase.
 */
struct dedup_progress {
	enum dedup_event event;
	uint64_t vm_id;
	uint64_t done;
	uint64_t total;
};

/**
 * DOC: struct dedup_state
 *
 * What the agent remembers between passes, for incremental passes: opaque
 * (a forward declaration, which kernel-doc cannot document as a struct).
 * Made by dedup_state_new(), given to each pass in &dedup_config.state,
 * released by dedup_state_release() and freed by dedup_state_free(). Per
 * VM (by id, never by descriptor: each pass opens the VMs again), the
 * handle and hash of every gfn that a pass left on a frame: shared, or
 * alone but kept nominated; 16 bytes per gfn of each VM. A handle names
 * one version of a frame's bytes and dies with any write, so a gfn that
 * still reports its remembered handle has the remembered hash, and the
 * next pass takes it as it is instead of nominating and hashing it again.
 * Also per VM, its discard count (PAGESHARE_GET_PRIVATE) at the start of
 * the last pass, and whether that pass left every gfn of the VM on a frame
 * remembered: then, if the count did not change, the next pass needs no
 * query, only the VM's private gfns (see dedup_pass()).
 */
struct dedup_state;

/**
 * struct dedup_config - What a pass does.
 * @vm_ids:		The VMs to deduplicate; all VMs when @nr_vm_ids is 0.
 * @nr_vm_ids:		Entries in @vm_ids.
 * @max_pages_per_sec:	Nominations per second at most; 0 for no limit.
 * @nominate_batch:	Entries per nominate call; 0 for the default.
 * @share_batch:	Entries per share call; 0 for the default.
 * @release_batch:	Entries per query, unshare and PAGESHARE_GET_PRIVATE
 *			call; 0 for the default.
 * @page_size:		The kernel's page size; 0 for 4096.
 * @verify:		Run the audit after the pass.
 * @stop:		When non-zero (set by a signal handler, read with
 *			__atomic_load_n()), the pass stops at the next batch,
 *			still releasing what it nominated. May be NULL.
 * @progress:		Called as the pass goes on; may be NULL.
 * @notice:		Called with a line worth telling the operator (a VM
 *			skipped, and why); may be NULL.
 * @cb_ctx:		Passed to @progress and @notice.
 * @clock:		The clock; dedup_real_clock() when @clock.now_ns is NULL.
 * @state:		NULL: every pass nominates and hashes every gfn, and
 *			makes the gfns left alone private again. Else the
 *			state kept across passes (incremental passes): a gfn
 *			it remembers whose handle still holds joins the pass
 *			without a nominate, and the gfns left alone stay
 *			nominated, remembered for the next pass; and a VM
 *			whose remembered gfns are all still in place is
 *			scanned from its private gfns alone (dedup_pass()).
 *			A pass that ends early (@stop, or a failure) makes the pages kept
 *			nominated in its VMs private again, as a pass without
 *			a state would, and forgets those VMs.
 */
struct dedup_config {
	const uint64_t *vm_ids;
	size_t nr_vm_ids;
	double max_pages_per_sec;
	size_t nominate_batch;
	size_t share_batch;
	size_t release_batch;
	size_t page_size;
	bool verify;
	const int *stop;
	void (*progress)(void *ctx, const struct dedup_progress *p);
	void (*notice)(void *ctx, const char *msg);
	void *cb_ctx;
	struct dedup_clock clock;
	struct dedup_state *state;
};

/**
 * struct dedup_result - What a pass did.
 * @vms:		VMs scanned.
 * @vms_gone:		VMs that went away before they could be opened.
 * @vms_skipped:	VMs skipped: no size, or nothing they could share.
 * @scanned:		gfns nominated (holes and busy pages included), or
 *			taken unchanged from the state (@reused). A VM
 *			scanned from its private gfns has no hole nominated.
 * @candidates:		gfns nominated successfully, with a handle, or
 *			taken from the state.
 * @shared:		gfns moved onto another gfn's frame by this pass.
 * @already:		gfns found on their group's frame already.
 * @frames:		Frames this pass's groups of equal pages ended on.
 * @zero:		Zero pages among @shared, @already and @frames' sources.
 * @freed:		Frames this pass's shares freed.
 * @holes:		gfns without a page (ENODATA).
 * @busy:		gfns pinned at nominate or share time (EBUSY).
 * @differ:		gfns whose hash matched but bytes did not (EILSEQ).
 * @stale:		gfns written during the pass (ESTALE, EIDRM twice, or a
 *			changed hash at the retry).
 * @policy:		gfns a policy kept apart (EACCES, no-intra-VM).
 * @errors:		gfns that failed otherwise (EMLINK, ENXIO, ...).
 * @retried:		Shares retried after EIDRM and a new nominate.
 * @alone:		gfns with no equal in their share scope.
 * @unshared:		gfns left alone on their frame and made private again.
 * @kept_alone:		gfns left alone but kept nominated and remembered
 *			for the next pass (with &dedup_config.state): @alone,
 *			sources whose every share was refused, and gfns a
 *			policy kept apart.
 * @reused:		gfns taken from the state without a nominate: still
 *			on the frame of their remembered handle.
 * @queried:		gfns queried: those the state remembered (checking
 *			their handle), and those left alone, before a release.
 * @query_calls:	Query calls made.
 * @private_calls:	PAGESHARE_GET_PRIVATE calls made: one per VM with a
 *			state at least, for its discard count; more for a VM
 *			scanned from its private gfns.
 * @private_listed:	gfns those calls listed as private.
 * @indexed:		gfns an index pass nominated and looked up in the
 *			content index (see dedup_pass()); 0 in other passes.
 * @index_reps:		Representatives the index gave those: frames that
 *			gfns remembered are on, which the pass shared into.
 * @index_pass:		1 if the pass was an index pass, else 0.
 * @index_slots:	Slots of the state's index after the pass (64 bytes
 *			each), 0 without one.
 * @saved_known:	@saved_delta is known (the backend has saved_frames).
 * @saved_delta:	Change of the module-wide saved_frames over the pass.
 * @ns:			Duration of the pass.
 * @nominate_calls:	Nominate calls made.
 * @share_calls:	Share calls made.
 * @audit:		Problems the audit found, with @verify; else -1.
 * @interrupted:	The pass was stopped by @stop.
 * @err:		0, or the negative errno that ended the pass.
 * @err_op:		The enum pageshare_op that failed, with @err.
 * @err_what:		What failed, with @err ("open VM 3").
 */
struct dedup_result {
	uint64_t vms;
	uint64_t vms_gone;
	uint64_t vms_skipped;
	uint64_t scanned;
	uint64_t candidates;
	uint64_t shared;
	uint64_t already;
	uint64_t frames;
	uint64_t zero;
	uint64_t freed;
	uint64_t holes;
	uint64_t busy;
	uint64_t differ;
	uint64_t stale;
	uint64_t policy;
	uint64_t errors;
	uint64_t retried;
	uint64_t alone;
	uint64_t unshared;
	uint64_t kept_alone;
	uint64_t reused;
	uint64_t queried;
	uint64_t query_calls;
	uint64_t private_calls;
	uint64_t private_listed;
	uint64_t indexed;
	uint64_t index_reps;
	uint64_t index_pass;
	uint64_t index_slots;
	bool saved_known;
	int64_t saved_delta;
	uint64_t ns;
	uint64_t nominate_calls;
	uint64_t share_calls;
	int audit;
	bool interrupted;
	int err;
	int err_op;
	char err_what[64];
};

/**
 * dedup_pass() - Deduplicate the configured VMs once.
 * @be: the kernel.
 * @cfg: what to do.
 * @res: filled in.
 *
 * Nominates every gfn with its hash, groups equal hashes by share scope,
 * shares each group into the page of the lowest VM id (then gfn) with the
 * kernel comparing the bytes, and makes the pages left alone private again.
 * With &dedup_config.state, gfns unchanged since the pass that remembered
 * them are queried instead of nominated, and the pages left alone stay
 * nominated (see &dedup_config.state). Better still, a VM whose last pass
 * ended with every gfn it left on a frame remembered, and which had no
 * discard since that pass began, is scanned from its private gfns
 * (PAGESHARE_GET_PRIVATE): the remembered gfns not listed join the pass
 * without a query, and only the listed ones are nominated, at a cost in
 * the gfns written since, not in the VM's size. Any other VM, or all of
 * them with a kernel without PAGESHARE_GET_PRIVATE, is queried as above.
 * Best of all, when every VM is scanned from its private gfns and the
 * VMs, groups and policies are those of the last pass, the pass is an
 * index pass: only the gfns listed are sorted, and each group of equal
 * ones is shared onto a frame that a content index kept in the state
 * names for its (scope, hash), without the remembered gfns joining the
 * pass: a pass costs in the gfns written since the last one.
 *
 * Return: 0, or the negative errno of a failure that ended the pass (also
 * in @res->err, with @res->err_op and @res->err_what).
 */
int dedup_pass(const struct dedup_backend *be, const struct dedup_config *cfg,
	       struct dedup_result *res);

/**
 * dedup_state_new() - An empty state, for incremental passes.
 *
 * Return: the state, or NULL if out of memory.
 */
struct dedup_state *dedup_state_new(void);

/**
 * dedup_state_free() - Free a state.
 * @state: the state, or NULL.
 *
 * Frees only the agent's memory: the pages the state keeps nominated stay
 * so (dedup_state_release() makes them private first).
 */
void dedup_state_free(struct dedup_state *state);

/**
 * dedup_state_release() - Make the pages a state keeps nominated private again.
 * @be: the kernel.
 * @cfg: the passes' configuration; its @state is the one to release. Its
 *	@vm_ids and @verify are ignored: the VMs are those the state knows.
 * @res: filled in: @vms, @vms_gone, @queried, @query_calls, @unshared, @ns.
 *
 * For an agent that stops keeping the state (it exits): the gfns its
 * passes left alone stay nominated until then. Each gfn still alone on the
 * frame of its remembered handle is unshared; a gfn since written, shared
 * or nominated anew is left as it is, and so is a VM that is gone. The
 * state is empty afterwards, except for the VMs that could not be opened
 * after a failure.
 *
 * Return: 0, or the negative errno of a failure (also in @res->err, with
 * @res->err_op and @res->err_what).
 */
int dedup_state_release(const struct dedup_backend *be, const struct dedup_config *cfg,
			struct dedup_result *res);

/**
 * dedup_skipped() - The gfns a pass skipped, for the summary line.
 * @res: the pass's result.
 *
 * Return: holes, busy, differ, stale, policy and error pages together.
 */
uint64_t dedup_skipped(const struct dedup_result *res);

/**
 * dedup_saved_mib() - MiB a pass saved.
 * @res: the pass's result.
 * @page_size: the page size.
 *
 * Return: from the module's saved_frames counter when known, else from the
 * frames the pass's own shares freed.
 */
double dedup_saved_mib(const struct dedup_result *res, size_t page_size);

/**
 * dedup_real_clock() - CLOCK_MONOTONIC and nanosleep().
 *
 * Return: the clock.
 */
struct dedup_clock dedup_real_clock(void);

/**
 * dedup_xxh64() - xxHash64 of a buffer, as the kernel's xxh64().
 * @data: the bytes.
 * @len: their number.
 * @seed: the seed (the kernel's nominate hash uses 0).
 *
 * Return: the hash.
 */
uint64_t dedup_xxh64(const void *data, size_t len, uint64_t seed);

#endif /* PAGESHARE_DEDUP_H */
