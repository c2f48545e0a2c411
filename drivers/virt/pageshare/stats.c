// SPDX-License-Identifier: GPL-2.0
/*
 * Counters: per VM (struct ps_vm_stats) and module-wide (struct ps_stats),
 * shown by PAGESHARE_GET_STATS, in a VM fd's /proc/<pid>/fdinfo/<fd> and,
 * the module-wide ones, in /sys/kernel/pageshare/.
 */

#include <linux/kobject.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>

#include <linux/pageshare.h>

#include "pageshare.h"

struct ps_stats ps_stats;

static struct kobject *ps_kobj;

/* A read-only sysfs file showing one counter of ps_stats. */
struct ps_stat_attr {
	struct kobj_attribute attr;
	atomic_long_t *counter;
};

static ssize_t ps_stat_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	struct ps_stat_attr *sa = container_of(attr, struct ps_stat_attr, attr);

	return sysfs_emit(buf, "%ld\n", atomic_long_read(sa->counter));
}

static struct ps_stat_attr ps_stat_vms = {
	__ATTR(vms, 0444, ps_stat_show, NULL), &ps_stats.vms
};

static struct ps_stat_attr ps_stat_private_pages = {
	__ATTR(private_pages, 0444, ps_stat_show, NULL), &ps_stats.private_pages
};

static struct ps_stat_attr ps_stat_shared_frames = {
	__ATTR(shared_frames, 0444, ps_stat_show, NULL), &ps_stats.shared_frames
};

static struct ps_stat_attr ps_stat_saved_frames = {
	__ATTR(saved_frames, 0444, ps_stat_show, NULL), &ps_stats.saved_frames
};

static struct ps_stat_attr ps_stat_meta_bytes = {
	__ATTR(meta_bytes, 0444, ps_stat_show, NULL), &ps_stats.meta_bytes
};

static struct attribute *ps_stat_attrs[] = {
	&ps_stat_vms.attr.attr,
	&ps_stat_private_pages.attr.attr,
	&ps_stat_shared_frames.attr.attr,
	&ps_stat_saved_frames.attr.attr,
	&ps_stat_meta_bytes.attr.attr,
	NULL,
};

static const struct attribute_group ps_stat_group = {
	.attrs = ps_stat_attrs,
};

/**
 * ps_sysfs_init() - Create /sys/kernel/pageshare/.
 *
 * Return: 0 or a negative errno.
 */
int ps_sysfs_init(void)
{
	int ret;

	ps_kobj = kobject_create_and_add("pageshare", kernel_kobj);
	if (!ps_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(ps_kobj, &ps_stat_group);
	if (ret)
		kobject_put(ps_kobj);
	return ret;
}

/**
 * ps_sysfs_exit() - Remove /sys/kernel/pageshare/.
 */
void ps_sysfs_exit(void)
{
	kobject_put(ps_kobj);
}

/**
 * ps_get_stats() - Fill in what PAGESHARE_GET_STATS reports.
 * @vm: the VM whose own counters to report.
 * @st: zeroed by the caller.
 */
void ps_get_stats(struct ps_vm *vm, struct pageshare_stats *st)
{
	st->private_pages = atomic_long_read(&vm->stats.private_pages);
	st->shared_gfns = atomic_long_read(&vm->stats.shared_gfns);
	st->nominated_gfns = atomic_long_read(&vm->stats.nominated_gfns);
	st->cow_breaks = atomic_long_read(&vm->stats.cow_breaks);
	st->vms = atomic_long_read(&ps_stats.vms);
	st->total_private_pages = atomic_long_read(&ps_stats.private_pages);
	st->shared_frames = atomic_long_read(&ps_stats.shared_frames);
	st->saved_frames = atomic_long_read(&ps_stats.saved_frames);
	st->meta_bytes = atomic_long_read(&ps_stats.meta_bytes);
}

/**
 * ps_show_fdinfo() - A VM's counters in /proc/<pid>/fdinfo/<fd>.
 * @vm: the VM.
 * @m: the seq_file.
 */
void ps_show_fdinfo(struct ps_vm *vm, struct seq_file *m)
{
	seq_printf(m, "pageshare-vm:\t%u\n", vm->id);
	seq_printf(m, "pageshare-size:\t%llu\n", READ_ONCE(vm->size));
	seq_printf(m, "pageshare-private-pages:\t%ld\n",
		   atomic_long_read(&vm->stats.private_pages));
	seq_printf(m, "pageshare-shared-gfns:\t%ld\n",
		   atomic_long_read(&vm->stats.shared_gfns));
	seq_printf(m, "pageshare-nominated-gfns:\t%ld\n",
		   atomic_long_read(&vm->stats.nominated_gfns));
	seq_printf(m, "pageshare-cow-breaks:\t%ld\n",
		   atomic_long_read(&vm->stats.cow_breaks));
}
