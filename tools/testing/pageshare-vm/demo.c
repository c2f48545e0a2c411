// SPDX-License-Identifier: GPL-2.0
/*
 * The demo `make demo` runs inside the test VM: a real KVM guest whose RAM
 * comes from /dev/pageshare, told step by step in plain sentences.
 */

#define _GNU_SOURCE
#include <time.h>

#include "pageshare_util.h"

#define MIB		(1024UL * 1024)
#define PAGES		200

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	printf("FAILED: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(void)
{
	struct pageshare_vm_info info;
	uint16_t seed = 0x5eed, sum_entry;
	unsigned char *mem;
	struct ps_kvm k;
	char err[128];
	uint32_t value, want = 0;
	size_t i, bad = 0;
	int fd, port;
	double t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = ps_open();
	if (fd < 0)
		return fail("open " PS_DEV);
	mem = ps_map(fd, MIB, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	ps_info(fd, &info);
	printf("1. Opened %s: VM %llu. Mapped it as guest RAM: %llu KiB, size taken\n"
	       "   from the mapping, as with QEMU's mem-path=%s; %llu pages allocated.\n",
	       PS_DEV, (unsigned long long)info.id,
	       (unsigned long long)info.size / 1024, PS_DEV,
	       (unsigned long long)info.private_pages);

	if (ps_kvm_create(&k) || ps_kvm_add_slot(&k, 0, MIB, mem) ||
	    ps_kvm_create_vcpu(&k))
		return fail("KVM");
	sum_entry = ps_load_code(mem + PS_CODE_GPA);
	printf("2. Created a KVM guest (real mode, one vCPU) with that memory as\n"
	       "   its RAM, and copied two tiny guest programs into it.\n");

	t = now();
	if (ps_kvm_run(&k, PS_CODE_GPA, PS_DATA_GFN << 8, PAGES, seed, &port, &value,
		       err, sizeof(err)) || port != PS_PORT_FILLED) {
		printf("FAILED: guest run: %s\n", err);
		return 1;
	}
	for (i = 0; i < PAGES * PS_PAGE / 2; i++)
		if (((uint16_t *)(mem + PS_DATA_GFN * PS_PAGE))[i] !=
		    ps_fill_word(PS_DATA_GFN + i / (PS_PAGE / 2), seed))
			bad++;
	ps_info(fd, &info);
	printf("3. The guest wrote a pattern over %d pages (%.2f s, every page a\n"
	       "   fault through KVM into the module). The host read them back\n"
	       "   through its mapping: %zu of %lu words wrong. Pages now: %llu.\n",
	       PAGES, now() - t, bad, PAGES * PS_PAGE / 2,
	       (unsigned long long)info.private_pages);

	srandom(7);
	for (i = 0; i < PAGES * PS_PAGE; i++)
		mem[PS_DATA_GFN * PS_PAGE + i] = random();
	for (i = 0; i < PAGES * PS_PAGE / 2; i++)
		want += ((uint16_t *)(mem + PS_DATA_GFN * PS_PAGE))[i];
	if (ps_kvm_run(&k, sum_entry, PS_DATA_GFN << 8, PAGES, 0, &port, &value,
		       err, sizeof(err)) || port != PS_PORT_SUM) {
		printf("FAILED: guest run: %s\n", err);
		return 1;
	}
	printf("4. The host filled the same pages with random bytes; the guest\n"
	       "   summed them and reported %#x, the host computed %#x: %s.\n",
	       value, want, value == want ? "they agree" : "MISMATCH");

	ps_kvm_destroy(&k);
	munmap(mem, MIB);
	close(fd);
	printf("5. Guest, mapping and file closed: /sys/kernel/pageshare reports\n"
	       "   %ld VMs and %ld pages left.\n",
	       ps_sysfs_read("vms"), ps_sysfs_read("private_pages"));

	if (bad || value != want) {
		printf("The demo FAILED.\n");
		return 1;
	}
	printf("A KVM guest ran on memory served by /dev/pageshare, and guest and\n"
	       "host saw the same bytes both ways.\n");
	return 0;
}
