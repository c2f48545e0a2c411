// SPDX-License-Identifier: GPL-2.0
/*
 * The pageshare command over the fake kernel, for cli_test.sh: pageshare.c
 * and libpageshare.c are built with -Dioctl=fake_ioctl, and the device is
 * any file that opens (/dev/null). At start, the fake sets up a scenario
 * and writes its sysfs tree; at exit, it prints its state on stderr as
 *
 *   fake: check=N saved=N alone=N groups=ID:GROUP,...
 *
 * (check: broken invariants; saved: frames saved by sharing; alone: gfns
 * left nominated alone on a frame).
 *
 * Environment:
 *   PAGESHARE_FAKE_SYSFS     the directory for the sysfs tree (required)
 *   PAGESHARE_FAKE_SCENARIO  "dedup" (default) or "shared"
 *   PAGESHARE_FAKE_AUDIT     problems the audit reports besides real ones
 *   PAGESHARE_FAKE_API       4: a module without PAGESHARE_GET_PRIVATE (ENOTTY)
 *
 * Scenario "dedup": VMs 1 and 2 in group 0x1111 with 100 pages each (40
 * zero pages, 30 pages both have, 30 of their own), VM 3 in no group with
 * 20 pages (10 zero pages, 5 of its own, 5 holes), and VM 4 without memory.
 * Scenario "shared": the same, with one page of VMs 1 and 2 shared already.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_kernel.h"

int fake_ioctl(int fd, unsigned long req, ...);

static struct fk fk;

static void put(const char *dir, const char *name, const char *fmt, ...)
{
	char path[4096];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(3);
	}
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static void write_sysfs(const char *root)
{
	char dir[4096];
	int i;

	snprintf(dir, sizeof(dir), "%s/vm", root);
	mkdir(root, 0700);
	mkdir(dir, 0700);
	put(root, "vms", "%d\n", fk.nr_vms);
	put(root, "private_pages", "0\n");
	put(root, "shared_frames", "0\n");
	put(root, "saved_frames", "%llu\n", (unsigned long long)fk_saved(&fk));
	put(root, "meta_bytes", "0\n");
	for (i = 0; i < fk.nr_vms; i++) {
		const struct fk_vm *vm = &fk.vms[i];

		snprintf(dir, sizeof(dir), "%s/vm/%llu", root, (unsigned long long)vm->id);
		mkdir(dir, 0700);
		put(dir, "size", "%llu\n", (unsigned long long)(vm->pages * FK_PAGE));
		put(dir, "pid", "%d\n", 1000 + i);
		put(dir, "uid", "0\n");
		put(dir, "group", "%#llx\n", (unsigned long long)vm->group);
		put(dir, "policy", "%s\n",
		    vm->flags & PAGESHARE_POLICY_NO_INTRA_VM ? "no-intra-vm" : "default");
		put(dir, "private_pages", "%llu\n", (unsigned long long)vm->pages);
		put(dir, "shared_gfns", "0\n");
		put(dir, "nominated_gfns", "0\n");
		put(dir, "cow_breaks", "0\n");
	}
}

__attribute__((constructor))
static void fake_setup(void)
{
	const char *root = getenv("PAGESHARE_FAKE_SYSFS");
	const char *scenario = getenv("PAGESHARE_FAKE_SCENARIO");
	const char *audit = getenv("PAGESHARE_FAKE_AUDIT");
	const char *api = getenv("PAGESHARE_FAKE_API");
	uint64_t g;

	fk_init(&fk);
	fk_add_vm(&fk, 1, 100, 0x1111, 0);
	fk_add_vm(&fk, 2, 100, 0x1111, 0);
	fk_add_vm(&fk, 3, 20, 0, 0);
	fk_add_vm(&fk, 4, 0, 0, 0);
	for (g = 0; g < 100; g++) {
		fk_write(&fk, 1, g, g < 40 ? 0 : g < 70 ? 0x100 + g : 0x1000 + g);
		fk_write(&fk, 2, g, g < 40 ? 0 : g < 70 ? 0x100 + g : 0x2000 + g);
	}
	for (g = 0; g < 15; g++)
		fk_write(&fk, 3, g, g < 10 ? 0 : 0x3000 + g);
	if (scenario && !strcmp(scenario, "shared")) {
		struct dedup_backend be = fk_backend(&fk);
		struct pageshare_nominate n[2] = {
			{ .gfn = 50, .flags = PAGESHARE_NOMINATE_HASH },
			{ .gfn = 50, .flags = PAGESHARE_NOMINATE_HASH },
		};
		struct pageshare_share s = { .src_gfn = 50, .client_gfn = 50 };

		n[0].vm = be.open_vm(&fk, 1);
		n[1].vm = be.open_vm(&fk, 2);
		s.src_vm = n[0].vm;
		s.client_vm = n[1].vm;
		be.nominate(&fk, n, 2);
		s.src_handle = n[0].handle;
		s.client_handle = n[1].handle;
		be.share(&fk, &s, 1);
		be.close_vm(&fk, n[0].vm);
		be.close_vm(&fk, n[1].vm);
	}
	if (audit)
		fk.audit_extra = atoi(audit);
	if (api && atoi(api) < 5)
		fk.get_private = FK_PRIVATE_ENOTTY;
	if (!root) {
		fprintf(stderr, "fake: PAGESHARE_FAKE_SYSFS is not set\n");
		exit(3);
	}
	write_sysfs(root);
}

__attribute__((destructor))
static void fake_report(void)
{
	uint64_t k, alone = 0;
	int i;

	for (i = 0; i < fk.nr_vms; i++)
		for (k = 0; k < fk.vms[i].pages; k++)
			alone += fk.vms[i].g[k].frame != FK_NONE &&
				 fk.frames[fk.vms[i].g[k].frame].sharers == 1;
	fprintf(stderr, "fake: check=%d saved=%llu alone=%llu groups=", fk_check(&fk),
		(unsigned long long)fk_saved(&fk), (unsigned long long)alone);
	for (i = 0; i < fk.nr_vms; i++)
		fprintf(stderr, "%s%llu:%#llx", i ? "," : "", (unsigned long long)fk.vms[i].id,
			(unsigned long long)fk.vms[i].group);
	fprintf(stderr, "\n");
	fk_free(&fk);
}

static int fake_fail(int err)
{
	errno = -err;
	return -1;
}

/* A batch ioctl: the fake backend runs every entry, as the kernel would. */
static int fake_batch(unsigned long req, struct pageshare_batch *b)
{
	struct dedup_backend be = fk_backend(&fk);
	void *e = (void *)(uintptr_t)b->entries;

	if (b->count > PAGESHARE_BATCH_MAX)
		return fake_fail(-E2BIG);
	switch (req) {
	case PAGESHARE_NOMINATE_BATCH:
		be.nominate(&fk, e, b->count);
		break;
	case PAGESHARE_SHARE_BATCH:
		be.share(&fk, e, b->count);
		break;
	case PAGESHARE_UNSHARE_BATCH:
		be.unshare(&fk, e, b->count);
		break;
	default:
		be.query(&fk, e, b->count);
		break;
	}
	b->done = b->count;
	return 0;
}

/* PAGESHARE_GET_PRIVATE, a VM's own ioctl, checked in the kernel's order. */
static int fake_get_private(int fd, struct pageshare_private *a)
{
	struct fk_vm *vm = fk_vm_of_fd(&fk, fd);
	uint32_t count;
	uint64_t next, discards;
	int ret;

	/* The control node is no VM; an older module knows no such ioctl. */
	if (!vm || fk.get_private == FK_PRIVATE_ENOTTY)
		return fake_fail(-ENOTTY);
	if (a->flags || a->pad || a->reserved[0] || a->reserved[1])
		return fake_fail(-EINVAL);
	ret = fk_private(&fk, vm, a->start, (uint64_t *)(uintptr_t)a->gfns, a->max, &count,
			 &next, &discards);
	if (ret)
		return fake_fail(ret);
	a->count = count;
	a->next = next;
	a->discards = discards;
	return 0;
}

int fake_ioctl(int fd, unsigned long req, ...)
{
	struct dedup_backend be = fk_backend(&fk);
	struct pageshare_policy *pol;
	struct pageshare_open_vm *o;
	struct pageshare_vm_info *info;
	struct fk_vm *vm;
	uint64_t group;
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	switch (req) {
	case PAGESHARE_OPEN_VM:
		o = arg;
		vm = fk_vm(&fk, o->id);
		if (!vm || !vm->exists)
			return fake_fail(-ESRCH);
		/* A real descriptor, so that the command's close() works. */
		ret = dup(fd);
		if (ret < 0)
			return ret;
		if (ret >= FK_MAX_FDS) {
			close(ret);
			return fake_fail(-EMFILE);
		}
		fk.fd_vm[ret] = vm - fk.vms;
		return ret;
	case PAGESHARE_GET_INFO:
		info = arg;
		vm = fk_vm_of_fd(&fk, fd);
		memset(info, 0, sizeof(*info));
		if (vm) {
			info->id = vm->id;
			info->size = vm->pages * FK_PAGE;
		}
		return 0;
	case PAGESHARE_GET_PRIVATE:
		return fake_get_private(fd, arg);
	case PAGESHARE_GET_POLICY:
		pol = arg;
		vm = fk_vm_of_fd(&fk, fd);
		memset(pol, 0, sizeof(*pol));
		if (vm) {
			pol->group = vm->group;
			pol->flags = vm->flags;
		}
		return 0;
	case PAGESHARE_SET_POLICY:
		pol = arg;
		ret = fk_set_policy(&fk, fd, pol->group, pol->flags, &group);
		if (ret)
			return fake_fail(ret);
		pol->group = group;
		return 0;
	case PAGESHARE_NOMINATE_BATCH:
	case PAGESHARE_SHARE_BATCH:
	case PAGESHARE_UNSHARE_BATCH:
	case PAGESHARE_QUERY_BATCH:
		return fake_batch(req, arg);
	case PAGESHARE_GET_STATS:
		memset(arg, 0, sizeof(struct pageshare_stats));
		((struct pageshare_stats *)arg)->saved_frames = fk_saved(&fk);
		return 0;
	case PAGESHARE_AUDIT:
		return be.audit(&fk);
	}
	return fake_fail(-ENOTTY);
}
