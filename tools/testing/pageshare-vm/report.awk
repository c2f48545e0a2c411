# SPDX-License-Identifier: GPL-2.0
#
# Reads the results the test VM wrote to its second serial port (see init)
# and prints a table per suite, the failures, and a closing line
# "N passed, N failed[, N skipped]". Exits 1 on any failure, on a kernel
# splat in the log, or when the VM did not finish.
#
#   gawk -f report.awk -v qemu_rc=RC -v console=CONSOLE_LOG RESULTS_LOG
#
# With -v splats_only=1 it only checks the kernel log and says so in one
# line (for the demo).

# "Call Trace:" catches whatever prints a stack under a heading not named
# here; the report shows each splat with the lines around it.
function splat(line) {
	return line ~ /(BUG:|WARNING:|Oops|general protection fault|Kernel panic|KASAN:|UBSAN:|kernel BUG|invalid opcode|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|DEBUG_LOCKS_WARN_ON|unreferenced object|new suspected memory leaks|INFO: task .* blocked|soft lockup|hard LOCKUP|detected stall|detected expedited stall|unchecked MSR access|page allocation failure|invoked oom-killer|list_add corruption|list_del corruption|Call Trace:)/
}

# A test that makes the OOM killer run on purpose (memcg_test: memory.max)
# says so in the kernel log before and after; in between, the OOM report's
# own lines ("invoked oom-killer" and its stack) are no splat. Anything
# else still is. Called for every line, in order.
function expected(line) {
	if (line ~ /pageshare-test: an OOM kill is expected/)
		oom_ok = 1
	else if (line ~ /pageshare-test: no OOM kill is expected/)
		oom_ok = 0
	return oom_ok && line ~ /(invoked oom-killer|Call Trace:)/
}

# Prints the log lines around each splat, 4 before it to 30 after it,
# windows that overlap merged, at most 300 lines in all.
function show_splats(txt, ntxt, at, n,	i, from, to, last, printed) {
	last = 0
	printed = 0
	for (i = 1; i <= n && printed < 300; i++) {
		from = at[i] - 4
		to = at[i] + 30
		if (from <= last)
			from = last + 1
		else if (last)
			print "  ..."
		if (from < 1)
			from = 1
		for (; from <= to && from <= ntxt && printed < 300; from++) {
			print txt[from]
			printed++
		}
		last = to
	}
}

function add_suite(name, kind) {
	if (!(name in skind)) {
		order[++nsuites] = name
		skind[name] = kind
	}
}

function result(name, ok, skip, what) {
	if (skip)
		sskip[name]++
	else if (ok)
		spass[name]++
	else {
		sfail[name]++
		failures[++nfailures] = name ": " what
		show[name] = 1
	}
}

BEGIN {
	FS = "\n"
}

/^@@ DONE/ {
	done = 1
	next
}

/^@@ BEGIN / {
	split($0, w, " ")
	cur = w[3]
	kind = w[4]
	planned = -1
	seen = 0
	nlines[cur] = 0
	if (kind != "log")
		add_suite(cur, kind)
	next
}

/^@@ END / {
	split($0, w, " ")
	rc = substr(w[4], 4) + 0
	if (kind == "leaks")
		result(cur, leaked == 0, 0, "kmemleak reports suspected leaks")
	else if (kind != "log" && kind != "demo") {
		if (planned >= 0 && seen < planned)
			result(cur, 0, 0, sprintf("stopped after %d of %d tests", seen, planned))
		else if (rc != 0 && rc != 4 && !sfail[cur])
			result(cur, 0, 0, sprintf("exited with status %d", rc))
		else if (rc == 4 && !sskip[cur])
			result(cur, 0, 0, "exited with status 4 but skipped nothing")
	}
	cur = ""
	next
}

cur == "" {
	next
}

{
	sub(/\r$/, "")
	lines[cur, ++nlines[cur]] = $0
}

kind == "log" {
	klog[++nklog] = $0
	if (!expected($0) && splat($0))
		splats[++nsplats] = nklog
	next
}

/^# stress: ops=/ {
	split($0, kv, /[ =]/)
	stress_ops += kv[4]
	if (kv[6] + 0 > 0)
		stress_audit += kv[6]
	stress_seen = 1
}

kind == "leaks" {
	if ($0 ~ /[^ \t]/)
		leaked++
	next
}

# KUnit: the cases are the indented results inside the suite.
kind == "kunit" && match($0, /^[ \t]+(not )?ok [0-9]+ /) {
	line = $0
	sub(/^[ \t]+/, "", line)
	seen++
	result(cur, line !~ /^not ok/, line ~ /# SKIP/, line)
	next
}

kind == "kunit" && /^[ \t]+1\.\.[0-9]+/ {
	planned = substr($0, index($0, "..") + 2) + 0
	next
}

# kselftest TAP: top-level results only.
(kind == "kselftest" || kind == "vm") && /^(not )?ok [0-9]+ / {
	seen++
	result(cur, $0 !~ /^not ok/, $0 ~ /# SKIP/, $0)
	next
}

(kind == "kselftest" || kind == "vm") && /^1\.\.[0-9]+/ {
	planned = substr($0, 4) + 0
	next
}

END {
	# The console has what was printed even if the VM died before dmesg:
	# without splats in dmesg, look there instead.
	if (console != "" && !nsplats) {
		nklog = 0
		while ((getline line < console) > 0) {
			sub(/\r$/, "", line)
			klog[++nklog] = line
			if (!expected(line) && splat(line))
				splats[++nsplats] = nklog
		}
		close(console)
	}

	if (splats_only) {
		if (!nsplats) {
			print "The VM's kernel log is clean: no BUG, WARNING, lockdep, KASAN or kmemleak report."
			exit 0
		}
		print "The VM's kernel log has splats:"
		show_splats(klog, nklog, splats, nsplats)
		exit 1
	}

	add_suite("kernel-log", "check")
	result("kernel-log", nsplats == 0, 0,
	       "BUG/WARNING/oops/lockdep/KASAN/kmemleak report in the kernel log")
	if (!done) {
		add_suite("vm", "check")
		result("vm", 0, 0, qemu_rc == 124 ? "the VM did not finish in time" :
		       sprintf("the VM stopped early (qemu status %s)", qemu_rc))
	}

	printf "\n%-28s %-10s %6s %6s %6s\n", "suite", "kind", "pass", "fail", "skip"
	for (i = 1; i <= nsuites; i++) {
		s = order[i]
		printf "%-28s %-10s %6d %6d %6d\n", s, skind[s], spass[s], sfail[s], sskip[s]
		tp += spass[s]
		tf += sfail[s]
		ts += sskip[s]
	}

	for (s in show) {
		if (!nlines[s])
			continue
		printf "\n--- output of %s ---\n", s
		for (i = 1; i <= nlines[s] && i <= 200; i++)
			print lines[s, i]
	}
	if (nsplats) {
		print "\n--- kernel log: splats, with the lines around them ---"
		show_splats(klog, nklog, splats, nsplats)
	}
	if (nfailures) {
		print "\nFailed:"
		for (i = 1; i <= nfailures; i++)
			print "  " failures[i]
	}
	printf "\n%d passed, %d failed", tp, tf
	if (ts)
		printf ", %d skipped", ts
	if (stress_seen)
		printf "; %d stress operations model-checked, %d audit errors", stress_ops, stress_audit
	printf "\n"
	exit (tf > 0)
}
