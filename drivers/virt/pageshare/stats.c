// SPDX-License-Identifier: GPL-2.0
/*
 * Counters: per VM (struct ps_vm_stats) and module-wide (struct ps_stats,
 * one per CPU), shown by PAGESHARE_GET_STATS, in a VM fd's
 * /proc/<pid>/fdinfo/<fd> and, the module-wide ones, in
 * /sys/kernel/pageshare/.
 */

#include <linux/kobject.h>
#include <linux/seq_file.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>
#include <linux/sysfs.h>

#include <linux/pageshare.h>

#include "pageshare.h"

DEFINE_PER_CPU(struct ps_stats, ps_stats);

static struct kobject *ps_kobj;
static struct kobject *ps_vm_dir;

/**
 * ps_stat_read() - A module-wide counter: the sum of every CPU's part.
 * @item: the counter.
 *
 * Every possible CPU, online or not: a CPU that went offline keeps its
 * part, so nothing needs folding on hotplug. The sum is exact while nothing
 * changes the counter, which is the audit's case (it holds ps_ops_sem for
 * writing, the other writers' lock: see audit.c for the private pages
 * that first touches add meanwhile). Otherwise it may be off by the
 * changes made during the sum, and below 0 around 0: readers that report
 * it use ps_stat_report().
 *
 * Return: the sum.
 */
long ps_stat_read(enum ps_stat_item item)
{
	long sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu(ps_stats.count[item], cpu));
	return sum;
}

/* What sysfs and GET_STATS show: a sum taken during changes is never < 0. */
static long ps_stat_report(enum ps_stat_item item)
{
	return max(ps_stat_read(item), 0L);
}

/* A read-only sysfs file showing one module-wide counter. */
struct ps_stat_attr {
	struct kobj_attribute attr;
	enum ps_stat_item item;
};

static ssize_t ps_stat_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	struct ps_stat_attr *sa = container_of(attr, struct ps_stat_attr, attr);

	return sysfs_emit(buf, "%ld\n", ps_stat_report(sa->item));
}

static struct ps_stat_attr ps_stat_vms = {
	__ATTR(vms, 0400, ps_stat_show, NULL), PS_STAT_VMS
};

static struct ps_stat_attr ps_stat_private_pages = {
	__ATTR(private_pages, 0400, ps_stat_show, NULL), PS_STAT_PRIVATE_PAGES
};

static struct ps_stat_attr ps_stat_shared_frames = {
	__ATTR(shared_frames, 0400, ps_stat_show, NULL), PS_STAT_SHARED_FRAMES
};

static struct ps_stat_attr ps_stat_saved_frames = {
	__ATTR(saved_frames, 0400, ps_stat_show, NULL), PS_STAT_SAVED_FRAMES
};

static struct ps_stat_attr ps_stat_meta_bytes = {
	__ATTR(meta_bytes, 0400, ps_stat_show, NULL), PS_STAT_META_BYTES
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

/*
 * /sys/kernel/pageshare/vm/<id>/: one directory per VM. Root only: how
 * much of a VM is shared says something about its contents.
 */
struct ps_vm_attr {
	struct attribute attr;
	ssize_t (*show)(struct ps_vm *vm, const struct ps_vm_attr *a, char *buf);
	size_t counter;		/* offset of an atomic_long_t in struct ps_vm */
};

static ssize_t ps_vm_show_counter(struct ps_vm *vm, const struct ps_vm_attr *a,
				  char *buf)
{
	atomic_long_t *c = (atomic_long_t *)((char *)vm + a->counter);

	return sysfs_emit(buf, "%ld\n", atomic_long_read(c));
}

static ssize_t ps_vm_show_size(struct ps_vm *vm, const struct ps_vm_attr *a,
			       char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(vm->size));
}

static ssize_t ps_vm_show_pid(struct ps_vm *vm, const struct ps_vm_attr *a,
			      char *buf)
{
	return sysfs_emit(buf, "%d\n", vm->pid);
}

static ssize_t ps_vm_show_uid(struct ps_vm *vm, const struct ps_vm_attr *a,
			      char *buf)
{
	return sysfs_emit(buf, "%u\n", from_kuid_munged(&init_user_ns, vm->uid));
}

static ssize_t ps_vm_show_group(struct ps_vm *vm, const struct ps_vm_attr *a,
				char *buf)
{
	return sysfs_emit(buf, "%#llx\n", READ_ONCE(vm->group));
}

static ssize_t ps_vm_show_policy(struct ps_vm *vm, const struct ps_vm_attr *a,
				 char *buf)
{
	return sysfs_emit(buf, "%s\n", READ_ONCE(vm->policy) &
			  PAGESHARE_POLICY_NO_INTRA_VM ? "no-intra-vm" : "default");
}

#define PS_VM_COUNTER(_name) {						\
	.attr = { .name = __stringify(_name), .mode = 0400 },		\
	.show = ps_vm_show_counter,					\
	.counter = offsetof(struct ps_vm, stats._name),			\
}

static struct ps_vm_attr ps_vm_attrs[] = {
	{ .attr = { .name = "size", .mode = 0400 }, .show = ps_vm_show_size },
	{ .attr = { .name = "pid", .mode = 0400 }, .show = ps_vm_show_pid },
	{ .attr = { .name = "uid", .mode = 0400 }, .show = ps_vm_show_uid },
	/* The group id is the right to join the group: root only, as all. */
	{ .attr = { .name = "group", .mode = 0400 }, .show = ps_vm_show_group },
	{ .attr = { .name = "policy", .mode = 0400 }, .show = ps_vm_show_policy },
	PS_VM_COUNTER(private_pages),
	PS_VM_COUNTER(shared_gfns),
	PS_VM_COUNTER(nominated_gfns),
	PS_VM_COUNTER(cow_breaks),
};

static struct attribute *ps_vm_default_attrs[ARRAY_SIZE(ps_vm_attrs) + 1];

static const struct attribute_group ps_vm_group = {
	.attrs = ps_vm_default_attrs,
};

static const struct attribute_group *ps_vm_groups[] = {
	&ps_vm_group,
	NULL,
};

static ssize_t ps_vm_attr_show(struct kobject *kobj, struct attribute *attr,
			       char *buf)
{
	struct ps_vm_attr *a = container_of(attr, struct ps_vm_attr, attr);

	return a->show(container_of(kobj, struct ps_vm, kobj), a, buf);
}

static const struct sysfs_ops ps_vm_sysfs_ops = {
	.show = ps_vm_attr_show,
};

static void ps_vm_kobj_release(struct kobject *kobj)
{
	ps_vm_free(container_of(kobj, struct ps_vm, kobj));
}

static const struct kobj_type ps_vm_ktype = {
	.release = ps_vm_kobj_release,
	.sysfs_ops = &ps_vm_sysfs_ops,
	.default_groups = ps_vm_groups,
};

/**
 * ps_vm_kobj_init() - Initialise a new VM's kobject; its release frees the VM.
 * @vm: the VM.
 */
void ps_vm_kobj_init(struct ps_vm *vm)
{
	kobject_init(&vm->kobj, &ps_vm_ktype);
}

/**
 * ps_vm_kobj_add() - Show the VM as /sys/kernel/pageshare/vm/<id>/.
 * @vm: the VM, with its id.
 *
 * Return: 0 or a negative errno.
 */
int ps_vm_kobj_add(struct ps_vm *vm)
{
	return kobject_add(&vm->kobj, ps_vm_dir, "%u", vm->id);
}

/**
 * ps_sysfs_init() - Create /sys/kernel/pageshare/.
 *
 * Return: 0 or a negative errno.
 */
int ps_sysfs_init(void)
{
	int ret, i;

	for (i = 0; i < ARRAY_SIZE(ps_vm_attrs); i++)
		ps_vm_default_attrs[i] = &ps_vm_attrs[i].attr;

	ps_kobj = kobject_create_and_add("pageshare", kernel_kobj);
	if (!ps_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(ps_kobj, &ps_stat_group);
	if (ret)
		goto err;
	ps_vm_dir = kobject_create_and_add("vm", ps_kobj);
	if (!ps_vm_dir) {
		ret = -ENOMEM;
		goto err;
	}
	return 0;
err:
	kobject_put(ps_kobj);
	return ret;
}

/**
 * ps_sysfs_exit() - Remove /sys/kernel/pageshare/.
 */
void ps_sysfs_exit(void)
{
	kobject_put(ps_vm_dir);
	kobject_put(ps_kobj);
}

/**
 * ps_get_stats() - Fill in what PAGESHARE_GET_STATS reports.
 * @vm: the VM whose own counters to report, or NULL (the control node):
 *	the global ones only, the VM's fields left 0.
 * @st: zeroed by the caller.
 */
void ps_get_stats(struct ps_vm *vm, struct pageshare_stats *st)
{
	if (vm) {
		st->private_pages = atomic_long_read(&vm->stats.private_pages);
		st->shared_gfns = atomic_long_read(&vm->stats.shared_gfns);
		st->nominated_gfns = atomic_long_read(&vm->stats.nominated_gfns);
		st->cow_breaks = atomic_long_read(&vm->stats.cow_breaks);
	}
	st->vms = ps_stat_report(PS_STAT_VMS);
	st->total_private_pages = ps_stat_report(PS_STAT_PRIVATE_PAGES);
	st->shared_frames = ps_stat_report(PS_STAT_SHARED_FRAMES);
	st->saved_frames = ps_stat_report(PS_STAT_SAVED_FRAMES);
	st->meta_bytes = ps_stat_report(PS_STAT_META_BYTES);
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
