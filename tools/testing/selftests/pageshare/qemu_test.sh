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
# Work in progress, not yet part of make check: both guests boot (started
# one after the other; started together under TCG they starve), but in the
# last runs the test waited past its step timeout, before printing
# anything, with no task stuck in the kernel. Not yet known which step.

#
# Environment: QEMU, GUEST_KERNEL, GUEST_INITRD, GUEST_MIB (RAM, 96),
# BUFFER_MIB (the pattern, 24), MIN_SAVED_MIB (20), TIMEOUT (seconds per
# step, 600).

QEMU=${QEMU:-qemu-system-x86_64}
GUEST_KERNEL=${GUEST_KERNEL:-/boot/bzImage}
GUEST_INITRD=${GUEST_INITRD:-/lib/guest.cpio.gz}
GUEST_MIB=${GUEST_MIB:-96}
BUFFER_MIB=${BUFFER_MIB:-24}
MIN_SAVED_MIB=${MIN_SAVED_MIB:-20}
TIMEOUT=${TIMEOUT:-600}
W=/tmp/qemu_test
demo=
[ "$1" = --demo ] && demo=1

n=0
failed=0
pids=

say() { [ -n "$demo" ] && echo "$*"; }

ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		[ -z "$demo" ] && echo "ok $n $2"
	else
		failed=$((failed + 1))
		echo "not ok $n $2"
	fi
}

cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null
	done
	for p in $pids; do
		wait "$p" 2>/dev/null
	done
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

# wait_for GUEST REGEX: the guest's console has a line matching REGEX.
wait_for() {
	t=0
	while ! grep -q "$2" $W/g$1.log 2>/dev/null; do
		sleep 1
		t=$((t + 1))
		[ $t -ge "$TIMEOUT" ] && return 1
	done
	return 0
}

# last_check GUEST: the guest's last "CHECK OK|BAD version sum" line.
last_check() {
	grep 'CHECK ' $W/g$1.log | tail -1 | sed 's/.*CHECK /CHECK /'
}

# ask GUEST WORD: send WORD and wait for the next CHECK line.
ask() {
	before=$(grep -c 'CHECK ' $W/g$1.log)
	echo "$2" > $W/g$1.in
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

[ -c /dev/pageshare ] || skip_all "/dev/pageshare is missing: load pageshare.ko"
[ -c /dev/kvm ] || skip_all "no /dev/kvm"
command -v "$QEMU" > /dev/null || skip_all "no $QEMU"
command -v pageshare > /dev/null || skip_all "no pageshare agent"
[ -f "$GUEST_KERNEL" ] && [ -f "$GUEST_INITRD" ] || skip_all "no guest kernel or initrd"

[ -z "$demo" ] && { echo "TAP version 13"; echo "1..8"; }
rm -rf $W
mkdir -p $W
trap cleanup EXIT

start=$(date +%s)
for g in 1 2; do
	# QEMU's pipe chardev: it reads g.in and writes g.out.
	mkfifo $W/g$g.in $W/g$g.out
	cat $W/g$g.out > $W/g$g.log &
	pids="$pids $!"
	"$QEMU" -machine q35 -accel kvm -cpu host -smp 1 -m ${GUEST_MIB}M \
		-object memory-backend-file,id=ram0,mem-path=/dev/pageshare,size=${GUEST_MIB}M,share=on \
		-machine memory-backend=ram0 \
		-nodefaults -display none -no-reboot \
		-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
		-append "console=ttyS0 quiet panic=-1 rdinit=/init $BUFFER_MIB" \
		-serial pipe:$W/g$g > $W/qemu$g.log 2>&1 &
	pids="$pids $!"
	# One at a time: two nested guests booting at once under TCG starve.
	wait_for $g '^READY' || bail "guest $g did not come up (QEMU: $(tail -3 $W/qemu$g.log))"
done
say "1. Two guests started by Debian's unmodified QEMU, each with ${GUEST_MIB} MiB of RAM from"
say "   -object memory-backend-file,mem-path=/dev/pageshare,share=on; both boot the"
say "   same Linux kernel, whose init fills a ${BUFFER_MIB} MiB buffer with a known pattern."

for g in 1 2; do
	wait_for $g '^READY' || bail "guest $g did not come up (QEMU: $(tail -3 $W/qemu$g.log))"
done
booted=$(($(date +%s) - start))
sum1=$(last_check 1)
sum2=$(last_check 2)
[ "${sum1%% *}" = CHECK ] && [ "$sum1" = "$sum2" ] && case "$sum1" in "CHECK OK "*) true ;; *) false ;; esac
ok $? "both guests booted and filled their buffers (${booted} s): $sum1"

ids=$(pageshare vms | awk 'NR > 1 && $4 > 0 { print $1 }' | tr '\n' ' ')
set -- $ids
[ $# = 2 ]
ok $? "pageshare vms lists the two QEMU VMs: $ids"
[ $# = 2 ] || bail "expected two VMs, found: $ids"

private0=$(counter private_pages)
saved0=$(counter saved_frames)
say "2. Before: the two guests use $(mib "$private0") MiB of host memory ($private0 pages)."
pageshare group "$1" "$2" > $W/group.log 2>&1
ok $? "pageshare group $1 $2: the VMs share a group"

pageshare dedup --verify --quiet > $W/dedup.log 2>&1
rc=$?
line=$(grep '^dedup:' $W/dedup.log | tail -1)
ok $rc "pageshare dedup --verify: $line"
[ -n "$line" ] || bail "no summary from the agent: $(cat $W/dedup.log)"
field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

private1=$(counter private_pages)
frames1=$(counter shared_frames)
saved1=$(counter saved_frames)
saved_mib=$(mib $((saved1 - saved0)))
[ "$saved_mib" -ge "$MIN_SAVED_MIB" ]
ok $? "saved ${saved_mib} MiB (at least ${MIN_SAVED_MIB} MiB)"
used0=$private0
used1=$((private1 + frames1))
say "3. pageshare dedup: scanned $(field scanned) pages at $(field mib_per_s) MiB/s, shared $(field shared),"
say "   of them $(field zero) zero pages onto one zero frame, in $(field seconds) s."
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

audit=$(pageshare audit 2>&1)
[ "$audit" = "audit: 0 problems" ]
ok $? "pageshare audit: $audit"
say "6. pageshare audit: $audit"

pages=$((used0))
say "KSM could not have done this: it merges only private anonymous memory, and this"
say "memory is a shared file mapping that the module owns. For KSM the guests would"
say "need anonymous RAM (no mem-path) with -machine mem-merge=on, and ksmd would scan"
say "all $(mib $pages) MiB twice before merging anything: at its default 100 pages every"
say "20 ms, $((pages * 2 / 5000)) s of scanning, against $(field seconds) s here."

cleanup
[ -z "$demo" ] && echo "# $failed of $n failed"
[ $failed = 0 ]
