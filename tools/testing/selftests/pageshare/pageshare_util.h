/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the pageshare kselftests: the device, and a minimal VMM that
 * runs real-mode code in a KVM guest whose memory comes from /dev/pageshare.
 */

#ifndef PAGESHARE_UTIL_H
#define PAGESHARE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/pageshare.h>

#define PS_DEV		"/dev/pageshare"
#define PS_SYSFS	"/sys/kernel/pageshare/"
#define PS_PAGE		4096UL

static inline int ps_open(void)
{
	return open(PS_DEV, O_RDWR | O_CLOEXEC);
}

static inline int ps_set_size(int fd, uint64_t size)
{
	struct pageshare_size arg = { .size = size };

	return ioctl(fd, PAGESHARE_SET_SIZE, &arg);
}

static inline int ps_info(int fd, struct pageshare_vm_info *info)
{
	return ioctl(fd, PAGESHARE_GET_INFO, info);
}

/* A counter from /sys/kernel/pageshare/, or -1. */
static inline long ps_sysfs_read(const char *name)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PS_SYSFS "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* Maps a whole VM file of @size bytes read-write, shared. */
static inline void *ps_map(int fd, size_t size, off_t off)
{
	return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
}

/*
 * The guest programs, 16-bit real mode. They take their arguments in
 * registers: BX = segment of the first page (gfn << 8), DX = number of
 * pages, SI = seed. Each ends with an OUT that reports, then HLT.
 *
 * ps_guest_fill: every 16-bit word of page gfn := gfn ^ seed; OUT 0x10.
 * ps_guest_sum:  EAX := sum of all 16-bit words of the pages; OUT 0x11.
 */
#define PS_PORT_FILLED	0x10
#define PS_PORT_SUM	0x11

extern const uint8_t ps_guest_fill[], ps_guest_fill_end[];
extern const uint8_t ps_guest_sum[], ps_guest_sum_end[];

asm(".pushsection .rodata\n"
    ".code16\n"
    "ps_guest_fill:\n"
    "1:	movw %bx, %es\n"
    "	movw %bx, %ax\n"
    "	shrw $8, %ax\n"
    "	xorw %si, %ax\n"
    "	xorw %di, %di\n"
    "	movw $2048, %cx\n"
    "	cld\n"
    "	rep stosw\n"
    "	addw $0x100, %bx\n"
    "	decw %dx\n"
    "	jnz 1b\n"
    "	outb %al, $0x10\n"
    "	hlt\n"
    "ps_guest_fill_end:\n"
    "ps_guest_sum:\n"
    "	xorl %edi, %edi\n"
    "1:	movw %bx, %es\n"
    "	xorw %si, %si\n"
    "	movw $2048, %cx\n"
    "2:	movzwl %es:(%si), %eax\n"
    "	addl %eax, %edi\n"
    "	addw $2, %si\n"
    "	loop 2b\n"
    "	addw $0x100, %bx\n"
    "	decw %dx\n"
    "	jnz 1b\n"
    "	movl %edi, %eax\n"
    "	outl %eax, $0x11\n"
    "	hlt\n"
    "ps_guest_sum_end:\n"
    ".code64\n"
    ".popsection\n");

/* What ps_guest_fill leaves in a page, as the host computes it. */
static inline uint16_t ps_fill_word(uint64_t gfn, uint16_t seed)
{
	return (uint16_t)gfn ^ seed;
}

struct ps_kvm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	int nslots;
};

/* Returns 0, or -1 with errno set; errno ENOENT means there is no KVM. */
static inline int ps_kvm_create(struct ps_kvm *k)
{
	memset(k, 0, sizeof(*k));
	k->vm = k->vcpu = -1;
	k->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm < 0)
		return -1;
	if (ioctl(k->kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return errno = EPROTO, -1;
	k->vm = ioctl(k->kvm, KVM_CREATE_VM, 0);
	if (k->vm < 0)
		return -1;
	/* Needed for real mode on Intel without unrestricted guest. */
	ioctl(k->vm, KVM_SET_TSS_ADDR, 0xfffbd000);
	return 0;
}

static inline int ps_kvm_add_slot(struct ps_kvm *k, uint64_t gpa, uint64_t size,
				  void *hva)
{
	struct kvm_userspace_memory_region region = {
		.slot = k->nslots,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &region))
		return -1;
	k->nslots++;
	return 0;
}

static inline int ps_kvm_create_vcpu(struct ps_kvm *k)
{
	int size;

	k->vcpu = ioctl(k->vm, KVM_CREATE_VCPU, 0);
	if (k->vcpu < 0)
		return -1;
	size = ioctl(k->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < 0)
		return -1;
	k->run_size = size;
	k->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu, 0);
	if (k->run == MAP_FAILED) {
		k->run = NULL;
		return -1;
	}
	return 0;
}

/*
 * Run real-mode code at guest physical @entry (below 64 KiB, CS = 0) with
 * the given BX, DX, SI until it halts. The last OUT's port and value are
 * stored in @port and @value. Returns 0, or -1 with a message in @err.
 */
static inline int ps_kvm_run(struct ps_kvm *k, uint16_t entry, uint16_t bx,
			     uint16_t dx, uint16_t si, int *port,
			     uint32_t *value, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(k->vcpu, KVM_GET_SREGS, &sregs))
		return snprintf(err, errlen, "KVM_GET_SREGS: %m"), -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(k->vcpu, KVM_SET_SREGS, &sregs))
		return snprintf(err, errlen, "KVM_SET_SREGS: %m"), -1;
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rflags = 2;
	regs.rbx = bx;
	regs.rdx = dx;
	regs.rsi = si;
	if (ioctl(k->vcpu, KVM_SET_REGS, &regs))
		return snprintf(err, errlen, "KVM_SET_REGS: %m"), -1;

	*port = -1;
	for (;;) {
		if (ioctl(k->vcpu, KVM_RUN, 0))
			return snprintf(err, errlen, "KVM_RUN: %m"), -1;
		switch (k->run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)k->run + k->run->io.data_offset;

			if (k->run->io.direction != KVM_EXIT_IO_OUT)
				return snprintf(err, errlen, "unexpected IN"), -1;
			*port = k->run->io.port;
			*value = 0;
			memcpy(value, data, k->run->io.size);
			break;
		}
		case KVM_EXIT_HLT:
			return 0;
		default:
			return snprintf(err, errlen, "unexpected exit %u",
					k->run->exit_reason), -1;
		}
	}
}

static inline void ps_kvm_destroy(struct ps_kvm *k)
{
	if (k->run)
		munmap(k->run, k->run_size);
	if (k->vcpu >= 0)
		close(k->vcpu);
	if (k->vm >= 0)
		close(k->vm);
	if (k->kvm >= 0)
		close(k->kvm);
	k->run = NULL;
	k->kvm = k->vm = k->vcpu = -1;
}

#endif /* PAGESHARE_UTIL_H */
