// SPDX-License-Identifier: GPL-2.0
/*
 * Module-wide counters and their view in /sys/kernel/pageshare/.
 */

#include <linux/kobject.h>
#include <linux/sysfs.h>

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

static struct attribute *ps_stat_attrs[] = {
	&ps_stat_vms.attr.attr,
	&ps_stat_private_pages.attr.attr,
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
