#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The pageshare command on the host, without the module: help, usage
# errors and exit codes, the sysfs readers (vms, stat) on a fake sysfs
# tree, and the error messages of the commands that need the device.
# With the second argument, the command built over the fake kernel
# (fake_ioctl.c): dedup, group and audit end to end, with their output.
# Usage: cli_test.sh PATH/TO/pageshare [PATH/TO/pageshare_fake]

PS=${1:?usage: cli_test.sh PATH/TO/pageshare [PATH/TO/pageshare_fake]}
FAKE=$2
TMP=$(mktemp -d /tmp/pageshare-cli-test.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
n=0
failed=0

ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

# run EXPECTED_STATUS DESCRIPTION ARGS...: stdout in $TMP/out, stderr in $TMP/err
run() {
	want=$1
	desc=$2
	shift 2
	"$PS" "$@" >"$TMP/out" 2>"$TMP/err"
	got=$?
	[ "$got" = "$want" ]
	ok $? "$desc (exit $got, want $want)"
}

# has FILE PATTERN DESCRIPTION: a line of FILE matches the grep pattern
has() {
	grep -q -- "$2" "$TMP/$1"
	ok $? "$3"
}

echo "TAP version 13"

# A fake /sys/kernel/pageshare with two VMs.
S=$TMP/sys
mkdir -p "$S/vm/1" "$S/vm/3"
echo 2 >"$S/vms"; echo 300 >"$S/private_pages"; echo 4 >"$S/shared_frames"
echo 256 >"$S/saved_frames"; echo 8192 >"$S/meta_bytes"
for f in size pid uid group policy private_pages shared_gfns nominated_gfns cow_breaks; do
	case $f in
	size) v1=1073741824; v3=2147483648 ;;
	pid) v1=101; v3=303 ;;
	uid) v1=0; v3=1000 ;;
	group) v1=0; v3=0x1a2b3c4d5e6f7081 ;;
	policy) v1=default; v3=no-intra-vm ;;
	*) v1=11; v3=33 ;;
	esac
	echo $v1 >"$S/vm/1/$f"
	echo $v3 >"$S/vm/3/$f"
done

run 0 "--version" --version
has out "^pageshare [0-9]" "--version prints the version"
run 0 "--help" --help
has out "^Usage: pageshare" "--help prints the usage"
for cmd in vms stat dedup group audit; do
	run 0 "$cmd --help" $cmd --help
	has out "^Usage: pageshare $cmd" "$cmd --help prints its usage"
done
run 0 "dedup --help, again" dedup --help
has out "^  --full-passes  " "dedup --help: --full-passes"

run 2 "no command" 
run 2 "unknown command" frobnicate
has err "unknown command 'frobnicate'" "unknown command: says which"
run 2 "unknown global option" --frob vms
run 2 "vms: unexpected argument" --sysfs "$S" vms extra
run 2 "stat: unknown option" stat --frob
has err "unknown option '--frob'" "stat: names the option"
run 2 "stat --watch without seconds" stat --watch
has err "needs an argument" "stat --watch: needs an argument"
run 2 "stat --watch 0" stat --watch 0
run 2 "dedup --interval -1" dedup --interval -1
run 2 "dedup --interval x" dedup --interval x
run 2 "dedup --vm x" dedup --vm x
run 2 "dedup --vm 0" dedup --vm 0
run 2 "dedup --max-pages-per-sec 0" dedup --max-pages-per-sec 0
run 2 "dedup: unexpected argument" dedup 3
run 2 "group with one id" group 1
run 2 "group with a bad id" group 1 x
run 2 "audit: unexpected argument" audit now

run 0 "vms" --sysfs "$S" vms
has out "^ *ID *PID *UID *SIZE_MIB *PRIVATE *SHARED *NOMINATED *GROUP *POLICY" "vms: header"
has out "^ *1 *101 *0 *1024.0 *11 *11 *11 *- *default$" "vms: VM 1, no group"
has out "^ *3 *303 *1000 *2048.0 *33 *33 *33 *0x1a2b3c4d5e6f7081 *no-intra-vm$" "vms: VM 3, group"

run 0 "stat" --sysfs "$S" stat
has out "^vms *2$" "stat: VMs"
has out "^private pages *300 " "stat: private pages"
has out "^shared frames *4 " "stat: shared frames"
has out "^saved frames *256$" "stat: saved frames"
has out "^saved *1.0 MiB$" "stat: saved MiB (256 pages of 4 KiB)"
has out "^metadata *8192 bytes$" "stat: metadata"
has out "^ *3 *33 *33 *33 *33$" "stat: VM 3's counters"

run 0 "stat --json" --sysfs "$S" stat --json
[ "$(wc -l <"$TMP/out")" = 1 ]
ok $? "stat --json: one line"
has out '"saved_frames":256' "stat --json: saved_frames"
has out '"group":"0x1a2b3c4d5e6f7081"' "stat --json: VM 3's group"
if command -v python3 >/dev/null 2>&1; then
	python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["vms"] == 2 and len(d["vm"]) == 2' \
		<"$TMP/out"
	ok $? "stat --json: valid JSON"
else
	echo "ok $((n += 1)) - stat --json: valid JSON # SKIP no python3"
fi

# --watch until SIGINT: several lines, then a clean exit.
"$PS" --sysfs "$S" stat --json --watch 0.1 >"$TMP/out" 2>"$TMP/err" &
pid=$!
sleep 0.45
kill -INT $pid
wait $pid
st=$?
[ $st = 0 ]
ok $? "stat --watch: SIGINT ends it with status 0 (got $st)"
[ "$(wc -l <"$TMP/out")" -ge 3 ]
ok $? "stat --json --watch: a line per tick ($(wc -l <"$TMP/out") lines)"

run 1 "vms without the module" --sysfs "$TMP/none" vms
has err "^pageshare: $TMP/none: no such file in sysfs: is the pageshare module loaded?$" \
	"vms without the module: the message"
run 1 "stat without the module" --sysfs "$TMP/none" stat
run 1 "dedup without the device" --device "$TMP/none" dedup
has err "^pageshare: $TMP/none: no such device node: is the pageshare module loaded?$" \
	"dedup without the device: the message"
run 1 "audit without the device" --device "$TMP/none" audit
run 1 "group without the device" --device "$TMP/none" group 1 3

# /dev/null opens, but is no /dev/pageshare: every ioctl fails with ENOTTY.
run 1 "dedup on a device that is not pageshare" --device /dev/null --sysfs "$S" dedup --quiet
has err "^pageshare: open VM 1: not a pageshare descriptor" "dedup: open VM 1 fails"
run 1 "dedup --vm on a device that is not pageshare" --device /dev/null dedup --vm 3
has err "^pageshare: open VM 3: " "dedup --vm 3: open VM 3 fails"
run 1 "audit on a device that is not pageshare" --device /dev/null audit
has err "^pageshare: audit: not a pageshare descriptor" "audit: the message"
run 1 "group on a device that is not pageshare" --device /dev/null group 1 3
has err "^pageshare: open VM 1: " "group: open VM 1 fails"

if [ -n "$FAKE" ]; then
	F=$TMP/fake
	export PAGESHARE_FAKE_SYSFS=$F
	PS_REAL=$PS
	PS=$FAKE

	run 0 "fake: dedup" --device /dev/null --sysfs "$F" dedup
	has out "^dedup: scanned=220 shared=118 zero=90 skipped=5 retried=0 saved_mib=0.5 seconds=[0-9]*\.[0-9][0-9] mib_per_s=[0-9]*\.[0-9] reused=0 queried=65 query_calls=1 kept_alone=0 private_calls=0 private_listed=0 indexed=0 index_reps=0 index_pass=0$" \
		"fake: dedup: the summary line"
	has out "^3 VMs, 220 pages (0.9 MiB) scanned in " "fake: dedup: report, VMs and pages"
	has out "^  shared   118 pages onto 32 frames (90 zero pages), 0 already shared, 0 retried$" \
		"fake: dedup: report, shared"
	has out "^  skipped  5: 5 holes, 0 busy, 0 differ, 0 stale, 0 policy, 0 errors$" \
		"fake: dedup: report, skipped"
	has out "^  alone    65 pages with no equal; 65 made private again$" "fake: dedup: report, alone"
	has out "^  saved    0.5 MiB (saved_frames +118; this pass freed 118 frames)$" \
		"fake: dedup: report, saved"
	has err "^dedup: VM 1: nominating 100 pages (0.4 MiB)$" "fake: dedup: a log line per VM"
	has err "^dedup: sharing 32 sets of equal pages$" "fake: dedup: a log line for sharing"
	has err "^fake: check=0 saved=118 alone=0 " \
		"fake: dedup: the kernel's invariants hold, 118 saved, no page left nominated"

	run 0 "fake: dedup --quiet" --device /dev/null --sysfs "$F" dedup --quiet
	[ "$(wc -l <"$TMP/out")" = 1 ] && ! grep -q "^dedup: VM" "$TMP/err"
	ok $? "fake: dedup --quiet: the summary line only"

	run 0 "fake: dedup --vm 3" --device /dev/null --sysfs "$F" dedup --vm 3 --quiet
	has out "^dedup: scanned=20 shared=9 zero=10 skipped=5 retried=0 saved_mib=0.0 " \
		"fake: dedup --vm 3: VM 3 only"

	run 0 "fake: dedup --max-pages-per-sec" --device /dev/null --sysfs "$F" dedup \
		--max-pages-per-sec 1000 --quiet
	has out "seconds=0\.[12][0-9] " "fake: 220 pages at 1000/s take about 0.12 s"

	run 0 "fake: dedup --verify" --device /dev/null --sysfs "$F" dedup --verify
	has out "^  audit    0 problems$" "fake: dedup --verify: the audit in the report"
	PAGESHARE_FAKE_AUDIT=2 run 1 "fake: dedup --verify, audit finds problems" \
		--device /dev/null --sysfs "$F" dedup --verify --quiet
	has err "^pageshare: audit: 2 problems after pass 1 (see the kernel log)$" \
		"fake: dedup --verify: the problems reported"

	"$PS" --device /dev/null --sysfs "$F" dedup --interval 0.2 --quiet >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	sleep 0.7
	kill -TERM $pid
	wait $pid
	st=$?
	[ $st = 0 ]
	ok $? "fake: dedup --interval: SIGTERM ends it with status 0 (got $st)"
	[ "$(grep -c "^dedup: scanned=" "$TMP/out")" -ge 3 ]
	ok $? "fake: dedup --interval: a pass every 0.2 s ($(grep -c . "$TMP/out") lines)"
	# The 5 holes of VM 3 are not visited: never listed as private.
	sed -n 2p "$TMP/out" | grep -q "^dedup: scanned=215 shared=0 zero=0 skipped=0 retried=0 saved_mib=0.0 "
	ok $? "fake: dedup --interval: the second pass finds nothing new, and no hole"
	sed -n 1p "$TMP/out" | grep -q " reused=0 queried=0 query_calls=0 kept_alone=65 private_calls=3 private_listed=3 indexed=0 index_reps=0 index_pass=0$"
	ok $? "fake: dedup --interval: the first pass keeps the 65 pages left alone nominated"
	sed -n 2p "$TMP/out" | grep -q " reused=215 queried=0 query_calls=0 kept_alone=0 private_calls=3 private_listed=0 indexed=0 index_reps=0 index_pass=1$"
	ok $? "fake: dedup --interval: the second pass reuses all 215 pages, no query, nothing listed"
	has err "^fake: check=0 saved=118 alone=0 " \
		"fake: dedup --interval: the kept pages made private again at exit"

	# The report of incremental passes, and the release at exit.
	"$PS" --device /dev/null --sysfs "$F" dedup --interval 0.2 >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	sleep 0.5
	kill -INT $pid
	wait $pid
	st=$?
	[ $st = 0 ]
	ok $? "fake: dedup --interval, reported: SIGINT ends it with status 0 (got $st)"
	has out "^  alone    65 pages with no equal; 0 made private again, 65 kept nominated$" \
		"fake: dedup --interval: report, alone pages kept"
	has out "^  reused   215 pages unchanged since the last pass, not hashed again; 0 queried in 0 calls, 0 listed private in 3 calls$" \
		"fake: dedup --interval: report, reused"
	tail -n 1 "$TMP/out" | grep -q "^released 65 pages kept nominated since the last pass (made private again)$"
	ok $? "fake: dedup --interval: the release at exit, reported last"
	has err "^fake: check=0 saved=118 alone=0 " "fake: dedup --interval: nothing left nominated"

	"$PS" --device /dev/null --sysfs "$F" dedup --interval 0.2 --full-passes --quiet \
		>"$TMP/out" 2>"$TMP/err" &
	pid=$!
	sleep 0.5
	kill -TERM $pid
	wait $pid
	st=$?
	[ $st = 0 ]
	ok $? "fake: dedup --interval --full-passes: SIGTERM ends it with status 0 (got $st)"
	sed -n 2p "$TMP/out" | grep -q "^dedup: scanned=220 shared=0 zero=90 skipped=5 retried=0 saved_mib=0.0 .* reused=0 queried=65 query_calls=1 kept_alone=0 private_calls=0 private_listed=0 indexed=0 index_reps=0 index_pass=0$"
	ok $? "fake: dedup --full-passes: the second pass hashes all and releases the 65 alone"
	has err "^fake: check=0 saved=118 alone=0 " "fake: dedup --full-passes: nothing left nominated"

	run 0 "fake: dedup --full-passes, one pass" --device /dev/null --sysfs "$F" dedup \
		--full-passes --quiet
	has out " reused=0 queried=65 query_calls=1 kept_alone=0 private_calls=0 private_listed=0 indexed=0 index_reps=0 index_pass=0$" \
		"fake: dedup --full-passes, one pass: as without it"

	# A module older than PAGESHARE_GET_PRIVATE: tried once, then queries, as before.
	PAGESHARE_FAKE_API=4 "$PS" --device /dev/null --sysfs "$F" dedup --interval 0.2 --quiet \
		>"$TMP/out" 2>"$TMP/err" &
	pid=$!
	sleep 0.5
	kill -TERM $pid
	wait $pid
	st=$?
	[ $st = 0 ] && ! grep -q "^pageshare:" "$TMP/err"
	ok $? "fake: dedup --interval, API 4: SIGTERM ends it with status 0, no message (got $st)"
	sed -n 1p "$TMP/out" | grep -q " kept_alone=65 private_calls=1 private_listed=0 indexed=0 index_reps=0 index_pass=0$"
	ok $? "fake: dedup --interval, API 4: the first pass tries GET_PRIVATE once"
	sed -n 2p "$TMP/out" | grep -q "^dedup: scanned=220 shared=0 zero=90 skipped=5 .* reused=215 queried=215 query_calls=3 kept_alone=65 private_calls=0 private_listed=0 indexed=0 index_reps=0 index_pass=0$"
	ok $? "fake: dedup --interval, API 4: the second pass queries, and tries no more"
	has err "^fake: check=0 saved=118 alone=0 " "fake: dedup --interval, API 4: nothing left nominated"

	run 0 "fake: group" --device /dev/null group 1 3
	has out "^share group 0x[0-9a-f]*: 1 3$" "fake: group: prints the new group"
	g=$(sed -n 's/^share group \(0x[0-9a-f]*\):.*/\1/p' "$TMP/out")
	has err "^fake: check=0 saved=0 alone=0 groups=1:$g,2:0x1111,3:$g,4:0$" \
		"fake: group: VMs 1 and 3 in the new group, VM 2 left"
	run 0 "fake: group --no-intra" --device /dev/null group --no-intra 2 3
	has out "^share group 0x[0-9a-f]*: 2 3 (no-intra-vm)$" "fake: group --no-intra: says so"
	run 0 "fake: group --join" --device /dev/null group --join 1 3
	has err "^fake: check=0 saved=0 alone=0 groups=1:0x1111,2:0x1111,3:0x1111,4:0$" \
		"fake: group --join: VM 3 joins VM 1's group"
	run 1 "fake: group --join a VM in no group" --device /dev/null group --join 3 1
	has err "^pageshare: VM 3 is in no share group to join$" "fake: group --join: the message"
	run 1 "fake: group with a VM that is gone" --device /dev/null group 1 9
	has err "^pageshare: open VM 9: no VM has this id (it exited, or never existed)$" \
		"fake: group: the message for a VM that is gone"
	PAGESHARE_FAKE_SCENARIO=shared run 1 "fake: group a VM that shares" \
		--device /dev/null group 1 3
	has err "^pageshare: VM 1: the VM has pages shared with other sharers; unshare them first$" \
		"fake: group: EBUSY explained"

	run 0 "fake: audit" --device /dev/null audit
	has out "^audit: 0 problems$" "fake: audit: no problem"
	PAGESHARE_FAKE_AUDIT=3 run 1 "fake: audit with problems" --device /dev/null audit
	has out "^audit: 3 problems$" "fake: audit: 3 problems"

	run 0 "fake: vms" --sysfs "$F" vms
	has out "^ *4 *1003 *0 *0.0 *0 *0 *0 *- *default$" "fake: vms: the VM without memory"
	PS=$PS_REAL
fi

echo "1..$n"
[ $failed = 0 ] || { echo "# $failed of $n tests failed"; exit 1; }
