#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Two unmodified QEMU guests on /dev/pageshare, deduplicated by the agent.
#
# Debian's qemu-system-x86_64 starts two KVM guests with
#   -object memory-backend-file,mem-path=/dev/pageshare,share=on
# both booting the same small Linux guest, whose init (guestmem) fills a
# buffer with a pattern both guests share and answers "sum" and "write" on
# its console. Once both are up, `pageshare group` puts the two VMs in one
# share group and `pageshare dedup --verify` deduplicates them. The guests
# must read exactly what they wrote before and after, and again after they
# rewrite everything (copy-on-write through KVM); the saved memory must
# pass a threshold and the audit must stay clean.
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
# BUFFER_MIB (the pattern, 24), MIN_SAVED_MIB (20), TIMEOUT (seconds per
# step, 300), BOOT_TIMEOUT (seconds per boot, 120), KSM_SECONDS (at most,
# for --demo's KSM run, 90).

QEMU=${QEMU:-qemu-system-x86_64}
GUEST_KERNEL=${GUEST_KERNEL:-/boot/bzImage}
GUEST_INITRD=${GUEST_INITRD:-/lib/guest.cpio.gz}
GUEST_MIB=${GUEST_MIB:-96}
BUFFER_MIB=${BUFFER_MIB:-24}
MIN_SAVED_MIB=${MIN_SAVED_MIB:-20}
TIMEOUT=${TIMEOUT:-300}
KSM_SECONDS=${KSM_SECONDS:-90}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
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
note() { [ -z "$demo" ] && echo "# [$(($(date +%s) - t0)) s] $*"; }

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

cleanup() {
	# shellcheck disable=SC2086
	[ -n "$pids" ] && stop $pids
	pids=
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
		rm -f $W/g$g.in $W/g$g.out $W/g$g.log
		# QEMU's pipe chardev: it reads g.in and writes g.out.
		mkfifo $W/g$g.in $W/g$g.out
		cat $W/g$g.out > $W/g$g.log < /dev/null &
		cat_pid=$!
		"$QEMU" -machine q35 -accel kvm -cpu host -smp 1 -m ${GUEST_MIB}M "$@" \
			-nodefaults -display none -no-reboot \
			-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
			-append "console=ttyS0 quiet panic=-1 no-kvmclock rdinit=/init $BUFFER_MIB" \
			-serial pipe:$W/g$g < /dev/null > $W/qemu$g.log 2>&1 &
		qemu_pid=$!
		if wait_for $g '^READY' "$BOOT_TIMEOUT"; then
			pids="$pids $cat_pid $qemu_pid"
			note "guest $g is up"
			return
		fi
		stop $qemu_pid $cat_pid
		echo "# guest $g: boot $try did not come up in $BOOT_TIMEOUT s (QEMU: $(tail -1 $W/qemu$g.log))"
		retries=$((retries + 1))
	done
	bail "guest $g did not come up in 3 boots"
}

# last_check GUEST: the guest's last "CHECK OK|BAD version sum" line.
last_check() {
	grep 'CHECK ' $W/g$1.log | tail -1 | sed 's/.*CHECK /CHECK /'
}

# ask GUEST WORD: send WORD and wait for the next CHECK line.
ask() {
	before=$(grep -c 'CHECK ' $W/g$1.log)
	# Opening a FIFO waits for its reader: bounded, in case QEMU is gone.
	timeout 10 sh -c "echo $2 > $W/g$1.in" || return 1
	t=0
	while [ "$(grep -c 'CHECK ' $W/g$1.log)" -le "$before" ]; do
		sleep 1
		t=$((t + 1))
		[ $t -ge "$TIMEOUT" ] && return 1
	done
	return 0
}

counter() { cat /sys/kernel/pageshare/"$1"; }
mib() { echo $(($1 * 4 / 1024)); }

# CPU seconds (in hundredths) that this shell's finished children used,
# in user space and in the kernel: the agent's, ioctls included.
child_cpu() { awk '{ print $16 + $17 }' /proc/$$/stat; }
# The same for one task, ksmd.
task_cpu() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }
hundredths() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }

[ -c /dev/pageshare ] || skip_all "/dev/pageshare is missing: load pageshare.ko"
[ -c /dev/kvm ] || skip_all "no /dev/kvm"
command -v "$QEMU" > /dev/null || skip_all "no $QEMU"
command -v pageshare > /dev/null || skip_all "no pageshare agent"
[ -f "$GUEST_KERNEL" ] && [ -f "$GUEST_INITRD" ] || skip_all "no guest kernel or initrd"

[ -z "$demo" ] && { echo "TAP version 13"; echo "1..8"; }
rm -rf $W
mkdir -p $W
trap cleanup EXIT

PSMEM="-object memory-backend-file,id=ram0,mem-path=/dev/pageshare,size=${GUEST_MIB}M,share=on -machine memory-backend=ram0"
say "Starting two guests with Debian's QEMU, one after the other (under emulation,"
say "each boot takes 15 to 30 s)..."
boot0=$(date +%s)
# shellcheck disable=SC2086
start 1 $PSMEM
# shellcheck disable=SC2086
start 2 $PSMEM
booted=$(($(date +%s) - boot0))
say "1. Two guests started by Debian's unmodified QEMU, each with ${GUEST_MIB} MiB of RAM from"
say "   -object memory-backend-file,mem-path=/dev/pageshare,share=on (${booted} s); both"
say "   boot the same Linux kernel, whose init fills a ${BUFFER_MIB} MiB buffer with a known pattern."

sum1=$(last_check 1)
sum2=$(last_check 2)
[ "${sum1%% *}" = CHECK ] && [ "$sum1" = "$sum2" ] && case "$sum1" in "CHECK OK "*) true ;; *) false ;; esac
ok $? "both guests booted and filled their buffers (${booted} s, $retries boots retried): $sum1"

ids=$(timeout "$TIMEOUT" pageshare vms | awk 'NR > 1 && $4 > 0 { print $1 }' | tr '\n' ' ')
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
a1=$(last_check 1)
a2=$(last_check 2)
[ "$a1" = "$sum1" ] && [ "$a2" = "$sum2" ]
ok $? "both guests read exactly what they wrote, after the dedup: $a1"

ask 1 write && ask 2 write
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

audit=$(timeout "$TIMEOUT" pageshare audit 2>&1)
[ "$audit" = "audit: 0 problems" ]
ok $? "pageshare audit: $audit"
say "6. pageshare audit: ${audit#audit: }."
cleanup

if [ -n "$demo" ]; then
	say ""
	say "KSM cannot merge this memory: it merges only private anonymous pages that"
	say "madvise(MADV_MERGEABLE) marked, and /dev/pageshare memory is a shared file"
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
