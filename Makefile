# SPDX-License-Identifier: GPL-2.0
#
# pageshare, out of tree.
#
#   make            build drivers/virt/pageshare/pageshare.ko against KDIR
#   make demo       two QEMU guests on a pageshare mount, deduplicated, in the test VM
#   make check      every test (KUnit, kselftests, real KVM and QEMU guests) in the test VM
#   make lint       checkpatch --strict, sparse and W=1 on the module
#   make shell      the test VM with a shell on its console
#   make stress     the model-checked stress test alone (SEED=, OPS=)
#   make bench      the benchmarks against KSM and anonymous memory (release
#                   kernel): a table and build/bench/results.json
#
# The test VM needs neither /dev/kvm nor module loading on this machine:
# see tools/testing/pageshare-vm/vmtest.

KDIR ?= /lib/modules/$(shell uname -r)/build
MODDIR := $(CURDIR)/drivers/virt/pageshare
VMTEST := $(CURDIR)/tools/testing/pageshare-vm/vmtest
# The KUnit suites run at every load of a module built with them, so they
# are only built when asked for (make KUNIT=y), and only for a kernel with
# CONFIG_KUNIT=y (the test VM's kernels: vmtest asks for them).
KUNIT ?= n
ifeq ($(KUNIT),y)
ifeq ($(shell grep -qs '^CONFIG_KUNIT=y' $(KDIR)/.config && echo y),)
$(error KUNIT=y needs a kernel built with CONFIG_KUNIT=y)
endif
endif

.PHONY: all module modules_install clean check demo lint shell stress bench

all: module

module:
	$(MAKE) -C $(KDIR) M=$(MODDIR) CONFIG_PAGESHARE=m \
		$(if $(filter y,$(KUNIT)),CONFIG_PAGESHARE_KUNIT_TEST=y) modules

modules_install:
	$(MAKE) -C $(KDIR) M=$(MODDIR) CONFIG_PAGESHARE=m modules_install

check:
	$(VMTEST) check

demo:
	$(VMTEST) demo

lint:
	$(VMTEST) lint

shell:
	$(VMTEST) shell

# The model-checked stress test alone: make stress SEED=7 OPS=1000000 [KVM=1]
stress:
	SEED=$(SEED) OPS=$(OPS) KVM=$(KVM) $(VMTEST) stress

# ONLY=dedup_vs_ksm,... runs some of them (names in bench_test.c).
bench:
	FLAVOUR=release BENCH_ONLY=$(ONLY) $(VMTEST) bench

clean:
	rm -rf build
	cd $(MODDIR) && rm -f *.o *.ko *.mod *.mod.c .*.cmd modules.order Module.symvers
