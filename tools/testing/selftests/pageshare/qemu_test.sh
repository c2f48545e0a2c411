#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Two unmodified QEMU guests on the pageshare filesystem, deduplicated by
# the agent, and a balloon that gives memory back.
#
# A pageshare filesystem is mounted on PSDIR, and Debian's qemu-system-x86_64
# starts two KVM guests on it, the two ways QEMU is given a file:
#   guest 1: -object memory-backend-file,mem-path=PSDIR,share=on
#            (a directory: QEMU creates a file there and unlinks it);
#   guest 2: the -object that libvirt generates for <memoryBacking>
#            <source type='file'/><access mode='shared'/> with
#            memory_backing_dir = PSDIR/libvirt: mem-path=<dir>/<domain>/pc.ram,
#            in a per-domain directory that libvirt makes and QEMU's file
#            that does not exist yet.
# Both boot the same small Linux guest, whose init (guestmem) fills a
# buffer with a pattern both guests share and answers "sum", "write" and
# "touch" on its console. Once both are up, `pageshare group` puts the two
# VMs in one share group and `pageshare dedup --verify` deduplicates them.
# The guests must read exactly what they wrote before and after, and again
# after they rewrite everything (copy-on-write through KVM); the saved
# memory must pass a threshold and the audit must stay clean. Then guest 1
# fills its free memory once and its virtio-balloon inflates by BALLOON_MIB
# (through QEMU's monitor): QEMU punches the pages out of the file, the
# VM's memory must drop by at least three quarters of that, and the guest
# must still read its buffer. Last, guest 2's virtio-mem device (a file of
# its own in the per-domain directory, empty at boot so that the buffer is
# in guest 2's main VM, prealloc=on as libvirt sets it for <allocation
# mode='immediate'/>) is plugged to VMEM_MIB through QEMU's monitor
# (qom-set requested-size): the guest onlines it movable and QEMU fills
# each block it plugs, so its VM must hold three quarters of VMEM_MIB.
# Then the device is unplugged to 0: the guest unplugs its blocks, QEMU
# punches them out of that file, whose VM must drop to a quarter of what
# it held, and the guest must still read its buffer.
#
#   qemu_test.sh           TAP (ONLY=qemu_test.sh make check)
#   qemu_test.sh --demo    the same story in a few lines a person reads
#
# The guests boot with no-kvmclock. Under nested SVM emulated by TCG (the
# test VM without /dev/kvm), 9 of 32 kvm-clock boots on file-backed RAM hung: a timer
# interrupt arrived inside the guest's IRQ-off timekeeping update, whose
# handler then spun on the odd seqcount for ever. tmpfs-backed RAM hung
# the same way, so the module is not the cause; with the TSC as the
# clocksource 10 of 10 came up. On a real KVM host it makes no difference.
#
# With --demo, the same two guests then boot again on anonymous RAM and
# KSM merges them, measured the same way, for comparison.
#
# Environment: QEMU, GUEST_KERNEL, GUEST_INITRD, GUEST_MIB (RAM, 96),
# BUFFER_MIB (the pattern, 24), MIN_SAVED_MIB (20), BALLOON_MIB (32), PSDIR
# (/run/pageshare), VMEM_MIB (guest 2's virtio-mem device, 128: one guest
# memory block, the least a guest can online), TIMEOUT (seconds per step, 600), BOOT_TIMEOUT (seconds
# per boot, 120), KSM_SECONDS (at most, for --demo's KSM run, 90).

QEMU=${QEMU:-qemu-system-x86_64}
GUEST_KERNEL=${GUEST_KERNEL:-/boot/bzImage}
GUEST_INITRD=${GUEST_INITRD:-/lib/guest.cpio.gz}
GUEST_MIB=${GUEST_MIB:-96}
BUFFER_MIB=${BUFFER_MIB:-24}
MIN_SAVED_MIB=${MIN_SAVED_MIB:-20}
TIMEOUT=${TIMEOUT:-600}
KSM_SECONDS=${KSM_SECONDS:-90}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
BALLOON_MIB=${BALLOON_MIB:-32}
VMEM_MIB=${VMEM_MIB:-128}
PSDIR=${PSDIR:-/run/pageshare}
W=/tmp/qemu_test
KSM=/sys/kernel/mm/ksm
demo=
[ "$1" = --demo ] && demo=1

n=0
failed=0
pids=
retries=0
t0=$(date +%s)

say() { [ -n "$demo" ] && echo "$*"; }

# note TEXT: a TAP diagnostic with the seconds since the start, so that a
# run that times out still shows how far it got.
note() {
	[ -z "$demo" ] && echo "# [$(($(date +%s) - t0)) s] $*"
	# Also in the kernel log, which a run that times out still shows.
	echo "qemu_test: [$(($(date +%s) - t0)) s] $*" > /dev/kmsg 2>/dev/null
	return 0
}

ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		[ -z "$demo" ] && echo "ok $n $2"
	else
		failed=$((failed + 1))
		echo "not ok $n $2"
	fi
}

# stop PID...: SIGTERM, then SIGKILL if it is still there after 10 s (a
# QEMU whose vCPU is stuck does not act on SIGTERM).
stop() {
	kill "$@" 2>/dev/null
	t=0
	for p; do
		while kill -0 "$p" 2>/dev/null && [ $t -lt 10 ]; do
			sleep 1
			t=$((t + 1))
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# What libvirt removes when the domain stops: a boot tried again must not
# find the files (and VMs, whose pid is their creator's) of the one before.
rm_domain_files() {
	rm -f "$PSDIR"/libvirt/2-guest2/pc.ram "$PSDIR"/libvirt/2-guest2/virtiomem0 2>/dev/null
}

cleanup() {
	# shellcheck disable=SC2086
	[ -n "$pids" ] && stop $pids
	pids=
	rm_domain_files
}

bail() {
	echo "# $*"
	for g in 1 2; do
		[ -f $W/g$g.log ] && sed "s/^/# guest $g: /" $W/g$g.log | tail -20
	done
	cleanup
	[ -z "$demo" ] && echo "Bail out! $*"
	exit 1
}

skip_all() {
	echo "TAP version 13"
	echo "1..1"
	echo "ok 1 # SKIP $*"
	exit 4
}

# wait_for GUEST REGEX SECONDS: the guest's console has a line matching
# REGEX within SECONDS.
wait_for() {
	t=0
	while ! grep -q "$2" $W/g$1.log 2>/dev/null; do
		sleep 1
		t=$((t + 1))
		[ $t -ge "$3" ] && return 1
	done
	return 0
}

# start GUEST MEMORY-OPTIONS...: boot a guest and wait for its READY line.
# One at a time: two nested guests booting at once under TCG starve. A boot
# that does not come up within BOOT_TIMEOUT is tried again, twice at most:
# under nested TCG a guest kernel can hang while it boots (testing.rst).
start() {
	g=$1
	shift
	for try in 1 2 3; do
		rm -f $W/g$g.in $W/g$g.out $W/g$g.log $W/m$g.in $W/m$g.out
		# QEMU's pipe chardevs: it reads g.in and writes g.out (the
		# console), and the same for its monitor, m.in and m.out.
		mkfifo $W/g$g.in $W/g$g.out $W/m$g.in $W/m$g.out
		cat $W/g$g.out > $W/g$g.log < /dev/null &
		cat_pid=$!
		cat $W/m$g.out > $W/m$g.log < /dev/null &
		mcat_pid=$!
		# Guest 2 has room for its virtio-mem device, as libvirt
		# gives a domain with one (<maxMemory slots=...>).
		mem=${GUEST_MIB}M
		[ "$g" = 2 ] && mem=size=${GUEST_MIB}M,slots=1,maxmem=$((GUEST_MIB + VMEM_MIB))M
		"$QEMU" -machine q35 -accel kvm -cpu host -smp 1 -m "$mem" "$@" \
			-nodefaults -display none -no-reboot \
			-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
			-append "console=ttyS0 quiet panic=-1 no-kvmclock memhp_default_state=online_movable rdinit=/init $BUFFER_MIB" \
			-device virtio-balloon-pci,id=balloon0 \
			-chardev pipe,id=mon,path=$W/m$g -mon chardev=mon,mode=readline \
			-serial pipe:$W/g$g < /dev/null > $W/qemu$g.log 2>&1 &
		qemu_pid=$!
		if wait_for $g '^READY' "$BOOT_TIMEOUT"; then
			pids="$pids $cat_pid $mcat_pid $qemu_pid"
			eval "qemu_pid$g=$qemu_pid"
			note "guest $g is up"
			return
		fi
		stop $qemu_pid $cat_pid $mcat_pid
		[ "$g" = 2 ] && rm_domain_files
		echo "# guest $g: boot $try did not come up in $BOOT_TIMEOUT s (QEMU: $(tail -1 $W/qemu$g.log))"
		retries=$((retries + 1))
	done
	bail "guest $g did not come up in 3 boots"
}

# last_check GUEST: the guest's last "CHECK OK|BAD version sum" line. Only
# whole lines count: the console trickles in, and a line read half-way
# would not match (one run failed so).
CHECK_RE='CHECK (OK|BAD) [0-9]+ [0-9a-f]{16}'
last_check() {
	grep -oE "$CHECK_RE" $W/g$1.log | tail -1
}

# ask GUEST WORD: send WORD and wait for the next CHECK line.
ask() {
	before=$(grep -cE "$CHECK_RE" $W/g$1.log)
	# Opening a FIFO waits for its reader: bounded, in case QEMU is gone.
	timeout 10 sh -c "echo $2 > $W/g$1.in" || return 1
	t=0
	while [ "$(grep -cE "$CHECK_RE" $W/g$1.log)" -le "$before" ]; do
		sleep 1
		t=$((t + 1))
		[ $t -ge "$TIMEOUT" ] && return 1
	done
	return 0
}

counter() { cat /sys/kernel/pageshare/"$1"; }
vm_counter() { cat /sys/kernel/pageshare/vm/"$1"/"$2"; }
# The gfns that host memory backs in VM $1: its own pages and its places on
# shared frames.
backed() { echo $(($(vm_counter "$1" private_pages) + $(vm_counter "$1" shared_gfns))); }
# vm_of PID: the VM whose memory the QEMU with that pid created.
# vm_of PID [MIB]: the VM of that QEMU (of that size, if given).
vm_of() {
	for v in $(grep -lx "$1" /sys/kernel/pageshare/vm/*/pid 2>/dev/null); do
		v=${v%/pid}
		[ -z "$2" ] || [ "$(cat "$v"/size)" = $(($2 * 1048576)) ] && { echo "${v##*/}"; return; }
	done
}
# hmp GUEST COMMAND: one line to the guest's QEMU monitor.
hmp() { timeout 10 sh -c "echo '$2' > $W/m$1.in"; }
mib() { echo $(($1 * 4 / 1024)); }

# CPU seconds (in hundredths) that this shell's finished children used,
# in user space and in the kernel: the agent's, ioctls included.
child_cpu() { awk '{ print $16 + $17 }' /proc/$$/stat; }
# The same for one task, ksmd.
task_cpu() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }
hundredths() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }

[ -c /dev/pageshare ] || skip_all "/dev/pageshare is missing: load pageshare.ko"
grep -qw pageshare /proc/filesystems || skip_all "no pageshare filesystem"
[ -c /dev/kvm ] || skip_all "no /dev/kvm"
command -v "$QEMU" > /dev/null || skip_all "no $QEMU"
command -v pageshare > /dev/null || skip_all "no pageshare agent"
[ -f "$GUEST_KERNEL" ] && [ -f "$GUEST_INITRD" ] || skip_all "no guest kernel or initrd"

[ -z "$demo" ] && { echo "TAP version 13"; echo "1..10"; }
rm -rf $W
mkdir -p $W "$PSDIR"
trap cleanup EXIT
grep -q " $PSDIR pageshare " /proc/mounts || mount -t pageshare -o mode=0755 none "$PSDIR" ||
	bail "mount -t pageshare none $PSDIR failed"

# libvirt: memory_backing_dir/<domain>/<alias>; it makes the directory.
mkdir -p -m 0700 "$PSDIR"/libvirt/2-guest2
PSMEM1="-object memory-backend-file,id=ram0,mem-path=$PSDIR,size=${GUEST_MIB}M,share=on -machine memory-backend=ram0"
PSMEM2="-machine memory-backend=pc.ram -object {\"qom-type\":\"memory-backend-file\",\"id\":\"pc.ram\",\"mem-path\":\"$PSDIR/libvirt/2-guest2/pc.ram\",\"share\":true,\"x-use-canonical-path-for-ramblock-id\":false,\"size\":$((GUEST_MIB * 1048576))}
 -object {\"qom-type\":\"memory-backend-file\",\"id\":\"memvirtiomem0\",\"mem-path\":\"$PSDIR/libvirt/2-guest2/virtiomem0\",\"share\":true,\"size\":$((VMEM_MIB * 1048576))}
 -device {\"driver\":\"virtio-mem-pci\",\"node\":0,\"block-size\":2097152,\"requested-size\":0,\"prealloc\":true,\"memdev\":\"memvirtiomem0\",\"id\":\"virtiomem0\"}"
say "Mounted the pageshare filesystem on $PSDIR; starting two guests on it with"
say "Debian's QEMU, one after the other (under emulation, a boot takes 15 s to 2 minutes, by machine)..."
boot0=$(date +%s)
# shellcheck disable=SC2086
start 1 $PSMEM1
# shellcheck disable=SC2086
start 2 $PSMEM2
booted=$(($(date +%s) - boot0))
say "1. Two guests started by Debian's unmodified QEMU, each with ${GUEST_MIB} MiB of RAM from"
say "   the pageshare filesystem (${booted} s): guest 1 with mem-path=$PSDIR (QEMU makes"
say "   and unlinks a file there), guest 2 with the -object libvirt makes for its"
say "   memory_backing_dir ($PSDIR/libvirt/2-guest2/pc.ram). Both boot the same Linux"
say "   kernel, whose init fills a ${BUFFER_MIB} MiB buffer with a known pattern."

sum1=$(last_check 1)
sum2=$(last_check 2)
[ "${sum1%% *}" = CHECK ] && [ "$sum1" = "$sum2" ] && case "$sum1" in "CHECK OK "*) true ;; *) false ;; esac
ok $? "both guests booted and filled their buffers (${booted} s, $retries boots retried): $sum1"

# Guest 2's virtio-mem file is a VM too, of another size.
ids=$(timeout "$TIMEOUT" pageshare vms | awk -v m="$GUEST_MIB" 'NR > 1 && $4 == m { print $1 }' | tr '\n' ' ')
set -- $ids
[ $# = 2 ]
ok $? "pageshare vms lists the two QEMU VMs: $ids"
[ $# = 2 ] || bail "expected two VMs, found: $ids"

private0=$(counter private_pages)
saved0=$(counter saved_frames)
say "2. Before: the two guests use $(mib "$private0") MiB of host memory ($private0 pages)."
timeout "$TIMEOUT" pageshare group "$1" "$2" > $W/group.log 2>&1
ok $? "pageshare group $1 $2: the VMs share a group"

cpu0=$(child_cpu)
timeout "$TIMEOUT" pageshare dedup --verify --quiet > $W/dedup.log 2>&1
rc=$?
ps_cpu=$(($(child_cpu) - cpu0))
line=$(grep '^dedup:' $W/dedup.log | tail -1)
ok $rc "pageshare dedup --verify: $line"
[ -n "$line" ] || bail "no summary from the agent: $(cat $W/dedup.log)"
field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
note "dedup done"

private1=$(counter private_pages)
frames1=$(counter shared_frames)
saved1=$(counter saved_frames)
saved_mib=$(mib $((saved1 - saved0)))
[ "$saved_mib" -ge "$MIN_SAVED_MIB" ]
ok $? "saved ${saved_mib} MiB (at least ${MIN_SAVED_MIB} MiB)"
used0=$private0
used1=$((private1 + frames1))
say "3. pageshare dedup: scanned $(field scanned) pages at $(field mib_per_s) MiB/s, shared $(field shared),"
say "   of them $(field zero) zero pages onto one zero frame, in $(field seconds) s"
say "   ($(hundredths $ps_cpu) s of CPU, the agent and the kernel's hashing and compares)."
say "4. After: $(mib $used1) MiB of host memory ($used1 pages): $(mib $((used0 - used1))) MiB saved, $(((used0 - used1) * 100 / used0))% of what they used."

ask 1 sum && ask 2 sum
note "both guests summed"
a1=$(last_check 1)
a2=$(last_check 2)
[ "$a1" = "$sum1" ] && [ "$a2" = "$sum2" ]
ok $? "both guests read exactly what they wrote, after the dedup: $a1"

ask 1 write && ask 2 write
note "both guests rewrote their buffers"
w1=$(last_check 1)
w2=$(last_check 2)
cow=$(cat /sys/kernel/pageshare/vm/"$1"/cow_breaks /sys/kernel/pageshare/vm/"$2"/cow_breaks 2>/dev/null |
	awk '{ s += $1 } END { print s + 0 }')
case "$w1$w2" in
*BAD*) false ;;
*) [ "$w1" = "$w2" ] && [ "$w1" != "$a1" ] && [ "$cow" -gt 0 ] ;;
esac
ok $? "both guests rewrote their buffers and read them back ($cow copy-on-write breaks): $w1"
say "5. Both guests read their buffers back unchanged ($a1), then rewrote them:"
say "   $cow copy-on-write breaks, and each reads its own new bytes ($w1)."

# The balloon: guest 1's free memory is backed first, then given back.
vm1=$(vm_of "$qemu_pid1")
note "guest 1 is VM $vm1; it touches $((BALLOON_MIB + 16)) MiB"
ask 1 "touch $((BALLOON_MIB + 16))"
b0=$(backed "$vm1")
note "VM $vm1 has $(mib "$b0") MiB; the balloon inflates"
host0=$(($(counter private_pages) + $(counter shared_frames)))
hmp 1 "balloon $((GUEST_MIB - BALLOON_MIB))"
want=$((BALLOON_MIB * 256 * 3 / 4))
t=0
while [ $((b0 - $(backed "$vm1"))) -lt $want ] && [ $t -lt "$TIMEOUT" ]; do
	sleep 1
	t=$((t + 1))
done
b1=$(backed "$vm1")
note "VM $vm1 has $(mib "$b1") MiB after ${t} s"
host1=$(($(counter private_pages) + $(counter shared_frames)))
ask 1 sum
c1=$(last_check 1)
[ $((b0 - b1)) -ge $want ] && [ "$c1" = "$w1" ]
ok $? "guest 1's balloon took ${BALLOON_MIB} MiB: its VM went from $(mib "$b0") to $(mib "$b1") MiB (host: $(mib $((host0 - host1))) MiB back, in ${t} s); it still reads $c1"
say "6. Guest 1 wrote $((BALLOON_MIB + 16)) MiB of fresh memory and freed it, then its virtio-balloon"
say "   inflated by ${BALLOON_MIB} MiB (QEMU's monitor: balloon $((GUEST_MIB - BALLOON_MIB))). QEMU punched"
say "   the pages out of its file:"
say "   the VM went from $(mib "$b0") to $(mib "$b1") MiB, the host got $(mib $((host0 - host1))) MiB back, and"
say "   the guest still reads its buffer ($c1)."

# virtio-mem: QEMU fills what it plugs (prealloc), and unplugging the
# device gives all of it back.
vmem=$(vm_of "$qemu_pid2" "$VMEM_MIB")
[ -n "$vmem" ] && ! echo " $ids " | grep -q " $vmem " ||
	bail "no VM of guest 2's virtio-mem device (found '$vmem', QEMU's are $ids)"
# plugged: what guest 2's QEMU says its device holds, in bytes.
plugged() {
	hmp 2 "info memory-devices"
	sleep 2
	tr -d '\r' < $W/m2.log | sed -n 's/^ *size: //p' | tail -1
}
hmp 2 "qom-set /machine/peripheral/virtiomem0 requested-size $((VMEM_MIB * 1048576))"
t=0
while [ "$(plugged)" != $((VMEM_MIB * 1048576)) ] && [ $t -lt "$TIMEOUT" ]; do
	t=$((t + 3))
done
v0=$(backed "$vmem")
p=$(plugged)
note "guest 2's virtio-mem device (VM $vmem) has $((${p:-0} / 1048576)) MiB plugged after ${t} s, $(mib "$v0") MiB backed"
# A QEMU that does not fill what it plugs: the guest writes there instead.
want=$((VMEM_MIB * 256 * 3 / 4))
if [ "$v0" -lt $want ]; then
	note "QEMU did not fill the plugged blocks; guest 2 touches 24 MiB, which its kernel takes from them first"
	ask 2 "touch 24"
	v0=$(backed "$vmem")
	want=$((24 * 256 * 3 / 4))
fi
host0=$(($(counter private_pages) + $(counter shared_frames)))
note "VM $vmem has $(mib "$v0") MiB; the device unplugs"
hmp 2 "qom-set /machine/peripheral/virtiomem0 requested-size 0"
t=0
while [ $(($(backed "$vmem") * 4)) -gt "$v0" ] && [ $t -lt "$TIMEOUT" ]; do
	sleep 1
	t=$((t + 1))
done
v1=$(backed "$vmem")
unplug_t=$t
note "VM $vmem has $(mib "$v1") MiB after ${t} s"
host1=$(($(counter private_pages) + $(counter shared_frames)))
ask 2 sum
c2=$(last_check 2)
[ "$v0" -ge "$want" ] && [ $((v1 * 4)) -le "$v0" ] && [ "$c2" = "$w2" ]
ok $? "guest 2's virtio-mem plug and unplug of ${VMEM_MIB} MiB: its VM went from $(mib "$v0") to $(mib "$v1") MiB (host: $(mib $((host0 - host1))) MiB back, in ${unplug_t} s); it still reads $c2"
say "7. Guest 2's virtio-mem device was plugged to ${VMEM_MIB} MiB (QEMU's monitor: qom-set"
say "   requested-size; QEMU fills what it plugs, prealloc=on), then unplugged (requested-size 0):"
say "   the guest gave its blocks up, QEMU punched them out of their file, the device's VM went"
say "   from $(mib "$v0") to $(mib "$v1") MiB, the host got $(mib $((host0 - host1))) MiB back, and the guest still"
say "   reads its buffer ($c2)."

audit=$(timeout "$TIMEOUT" pageshare audit 2>&1)
[ "$audit" = "audit: 0 problems" ]
ok $? "pageshare audit: $audit"
say "8. pageshare audit: ${audit#audit: }."
cleanup

if [ -n "$demo" ]; then
	say ""
	say "KSM cannot merge this memory: it merges only private anonymous pages that"
	say "madvise(MADV_MERGEABLE) marked, and pageshare memory is a shared file"
	say "mapping whose pages the module owns. So the same two guests boot again on"
	say "anonymous RAM (no memory-backend; QEMU's default mem-merge=on marks it"
	say "mergeable), and ksmd, at its default rate, scans them until it stops finding"
	say "more (at most ${KSM_SECONDS} s):"
	if [ -d $KSM ] && ksmd=$(pidof ksmd); then
		start 1
		start 2
		echo 2 > $KSM/run	# unmerge whatever an earlier user left
		echo 1 > $KSM/run
		scans0=$(cat $KSM/full_scans)
		kcpu0=$(task_cpu "$ksmd")
		kstart=$(date +%s)
		ps_secs=$(field seconds)
		ps_secs=${ps_secs%.*}
		at_ps=
		last=-1
		now=0
		seen=
		# Until a full scan adds less than 1% (after two: the first only
		# fills the unstable tree), or KSM_SECONDS.
		while [ $(($(date +%s) - kstart)) -lt "$KSM_SECONDS" ]; do
			[ -z "$at_ps" ] && [ $(($(date +%s) - kstart)) -gt "$ps_secs" ] &&
				at_ps=$(cat $KSM/pages_sharing)
			s=$(cat $KSM/full_scans)
			if [ $s -ge $((scans0 + 2)) ] && [ "$s" != "$seen" ]; then
				now=$(cat $KSM/pages_sharing)
				[ $(((now - last) * 100)) -lt "$now" ] && break
				last=$now
				seen=$s
			fi
			sleep 1
		done
		now=$(cat $KSM/pages_sharing)
		ksecs=$(($(date +%s) - kstart))
		kcpu=$(($(task_cpu "$ksmd") - kcpu0))
		kscans=$(($(cat $KSM/full_scans) - scans0))
		echo 2 > $KSM/run
		cleanup
		say "   in $(field seconds) s, as long as pageshare took, KSM saved $(mib "${at_ps:-$now}") MiB. After ${ksecs} s"
		say "   (full scans: $kscans; ksmd's CPU: $(hundredths "$kcpu") s) it had saved $(mib "$now") MiB; pageshare"
		say "   saved $(mib $((used0 - used1))) MiB with $(hundredths $ps_cpu) s of CPU. And ksmd keeps scanning, while the"
		say "   agent runs when asked (pageshare dedup --interval N to repeat)."
	else
		say "   (this kernel has no KSM: CONFIG_KSM is off)"
	fi
fi

[ -z "$demo" ] && echo "# $failed of $n failed"
[ $failed = 0 ]
