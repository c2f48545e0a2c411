// SPDX-License-Identifier: GPL-2.0
/*
 * A frame's reverse map: the set of (VM id, gfn) keys of the gfns it backs.
 *
 * Most frames have two sharers, some have a million (a zero page shared by
 * every VM). Up to two keys live inside struct ps_frame; past that, an
 * open-addressing hash set of u64 keys with linear probing, at most 3/4
 * full, so that adding and removing a sharer costs O(1) whatever the
 * count, and a sharer costs 10 to 24 bytes. Deletion shifts the following
 * keys back instead of leaving tombstones, so a table that has seen many
 * removals probes no longer than a fresh one.
 *
 * The caller holds the lock of the frame's page.
 */

#include <linux/log2.h>
#include <linux/slab.h>

#include "pageshare.h"

#define PS_RMAP_INLINE	2
#define PS_RMAP_MIN_CAP	8

static u32 ps_rmap_slot(u64 key, u32 cap)
{
	return (key * 0x9e3779b97f4a7c15ULL) >> (64 - ilog2(cap));
}

static void ps_rmap_table_put(u64 *table, u32 cap, u64 key)
{
	u32 mask = cap - 1, i = ps_rmap_slot(key, cap);

	while (table[i])
		i = (i + 1) & mask;
	table[i] = key;
}

static u64 *ps_rmap_table_alloc(u32 cap)
{
	u64 *table = kvcalloc(cap, sizeof(u64), GFP_KERNEL_ACCOUNT | __GFP_NOWARN);

	if (table)
		ps_stat_add(PS_STAT_META_BYTES, cap * sizeof(u64));
	return table;
}

static void ps_rmap_table_free(u64 *table, u32 cap)
{
	kvfree(table);
	ps_stat_sub(PS_STAT_META_BYTES, cap * sizeof(u64));
}

/* Moves every key into a new table of @cap slots, or back inline. */
static int ps_rmap_resize(struct ps_frame *frame, u32 cap)
{
	u64 keys[PS_RMAP_INLINE] = { 0 }, *table = NULL, key;
	u32 pos = 0, n = 0, moved = 0;

	if (cap) {
		table = ps_rmap_table_alloc(cap);
		if (!table)
			return -ENOMEM;
	}
	while (ps_rmap_next(frame, &pos, &key)) {
		if (table)
			ps_rmap_table_put(table, cap, key);
		else
			keys[n++] = key;
		/* Up to max_sharers keys, under the frame's (sleeping) lock. */
		if (!(++moved % 1024))
			cond_resched();
	}
	if (frame->cap)
		ps_rmap_table_free(frame->table, frame->cap);
	frame->cap = cap;
	if (table)
		frame->table = table;
	else
		memcpy(frame->keys, keys, sizeof(keys));
	return 0;
}

/**
 * ps_rmap_reserve() - Make room for @more keys, so that adding them cannot fail.
 * @frame: the frame.
 * @more: keys about to be added.
 *
 * Return: 0 or -ENOMEM; the map is unchanged on failure.
 */
int ps_rmap_reserve(struct ps_frame *frame, u32 more)
{
	u64 want = (u64)frame->nr_sharers + more;
	u64 cap;

	if (want <= (frame->cap ? frame->cap / 4 * 3 : PS_RMAP_INLINE))
		return 0;
	/*
	 * Just over 1/3 to 2/3 full after growing, at most 3/4 before: 10.7
	 * to 24 bytes a sharer (21.3 at most when sharers come one at a
	 * time, 3/8 full after a growth; a share reserves many at once).
	 */
	cap = max_t(u64, PS_RMAP_MIN_CAP, roundup_pow_of_two(want * 3 / 2));
	if (cap > U32_MAX / 2)
		return -ENOMEM;
	return ps_rmap_resize(frame, cap);
}

/**
 * ps_rmap_add() - Add a key, for which ps_rmap_reserve() made room.
 * @frame: the frame; its nr_sharers is the number of keys and grows by one.
 * @key: a key not yet in the map.
 */
void ps_rmap_add(struct ps_frame *frame, u64 key)
{
	if (frame->cap)
		ps_rmap_table_put(frame->table, frame->cap, key);
	else
		frame->keys[frame->nr_sharers] = key;
	frame->nr_sharers++;
}

/**
 * ps_rmap_del() - Remove a key.
 * @frame: the frame; its nr_sharers shrinks by one.
 * @key: the key.
 *
 * Return: false if the key was not in the map.
 */
bool ps_rmap_del(struct ps_frame *frame, u64 key)
{
	u32 mask, i, j, home;
	u64 *t;

	if (!frame->cap) {
		for (i = 0; i < frame->nr_sharers; i++) {
			if (frame->keys[i] == key) {
				frame->keys[i] = frame->keys[--frame->nr_sharers];
				frame->keys[frame->nr_sharers] = 0;
				return true;
			}
		}
		return false;
	}

	t = frame->table;
	mask = frame->cap - 1;
	for (i = ps_rmap_slot(key, frame->cap); t[i] != key; i = (i + 1) & mask)
		if (!t[i])
			return false;

	/* Backward-shift: pull later keys of the run into the hole. */
	for (j = (i + 1) & mask; t[j]; j = (j + 1) & mask) {
		home = ps_rmap_slot(t[j], frame->cap);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t[i] = t[j];
			i = j;
		}
	}
	t[i] = 0;
	frame->nr_sharers--;

	/* Shrink, best effort: a failed shrink leaves a valid, larger map. */
	if (frame->nr_sharers <= PS_RMAP_INLINE)
		ps_rmap_resize(frame, 0);
	else if (frame->cap > PS_RMAP_MIN_CAP && frame->nr_sharers < frame->cap / 8)
		ps_rmap_resize(frame, frame->cap / 2);
	return true;
}

/**
 * ps_rmap_has() - Tell whether a key is in the map.
 * @frame: the frame.
 * @key: the key.
 *
 * Return: true if it is.
 */
bool ps_rmap_has(const struct ps_frame *frame, u64 key)
{
	u32 mask, i;

	if (!frame->cap) {
		for (i = 0; i < min_t(u32, frame->nr_sharers, PS_RMAP_INLINE); i++)
			if (frame->keys[i] == key)
				return true;
		return false;
	}
	mask = frame->cap - 1;
	for (i = ps_rmap_slot(key, frame->cap); frame->table[i]; i = (i + 1) & mask)
		if (frame->table[i] == key)
			return true;
	return false;
}

/**
 * ps_rmap_next() - Iterate over the keys.
 * @frame: the frame, not changed during the iteration.
 * @pos: cursor, 0 to start.
 * @key: the next key.
 *
 * Return: false when there are no more keys.
 */
bool ps_rmap_next(const struct ps_frame *frame, u32 *pos, u64 *key)
{
	if (!frame->cap) {
		/* Bounded by the array too: the audit walks corrupted frames. */
		if (*pos >= min_t(u32, frame->nr_sharers, PS_RMAP_INLINE))
			return false;
		*key = frame->keys[(*pos)++];
		return true;
	}
	while (*pos < frame->cap) {
		*key = frame->table[(*pos)++];
		if (*key)
			return true;
	}
	return false;
}

/**
 * ps_rmap_free() - Free the map's table, if it has one.
 * @frame: the frame, about to be freed.
 */
void ps_rmap_free(struct ps_frame *frame)
{
	if (frame->cap)
		ps_rmap_table_free(frame->table, frame->cap);
	frame->cap = 0;
}

/**
 * ps_rmap_bytes() - Bytes the map holds outside struct ps_frame.
 * @frame: the frame.
 *
 * Return: the size of the table, 0 inline.
 */
size_t ps_rmap_bytes(const struct ps_frame *frame)
{
	return frame->cap * sizeof(u64);
}
