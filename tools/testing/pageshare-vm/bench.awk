#!/usr/bin/gawk -f
# SPDX-License-Identifier: GPL-2.0
#
# bench.awk: the results of make bench's VM runs (their ttyS1 logs) as a
# table and as build/bench/results.json:
#
#   {"kernel": "...", "benchmarks": {"NAME": {"value": X, "target": T,
#    "better": "higher" | "lower", "unit": "...", "detail": {...}}}}
#
#   gawk -f bench.awk -v json=OUT.json RUN1.LOG [RUN2.LOG]
#
# Exits 1 when a benchmark failed or one of the expected ones is missing;
# a missed target is shown, not a failure: Documentation/virt/pageshare/
# performance.rst explains each.

BEGIN {
	nexp = split("dedup_vs_ksm dedup_cpu_vs_ksm cow_vs_ksm converge_vs_ksm_default " \
		     "converge_vs_ksm_fast cpu_per_hour_vs_ksm_1pct cpu_per_hour_vs_ksm_10pct " \
		     "agent_vs_loop fault_in_vs_anon fault_in_vs_anon_thp fault_in_vs_shmem " \
		     "steady_vs_anon steady_vs_anon_thp discard_mib_per_s share_scaling " \
		     "heavy_frame bytes_per_frame bytes_per_sharer parallel_2t", expected, " ")
}

/^@@ KERNEL / && kernel == "" {
	kernel = substr($0, 11)
	gsub(/["\\]/, "", kernel)
}

# @@ ROW name value target better unit min max samples target_min target_max,
# every number at full precision: the judgement below uses them as they are.
/^@@ ROW / {
	name = $3
	value[name] = $4 + 0
	target[name] = $5 + 0
	better[name] = $6
	unit[name] = $7
	lo[name] = $8 + 0
	hi[name] = $9 + 0
	nsamp[name] = $10 + 0
	tlo[name] = $11 + 0
	thi[name] = $12 + 0
}

/^@@ RESULT / {
	entry = substr($0, 11)
	name = entry
	sub(/^"/, "", name)
	sub(/".*/, "", name)
	json_of[name] = entry
}

/^not ok [0-9]+ / {
	failed[++nfailed] = $0
}

# met: every sample meets the target (and, for a target measured in the
# same run, its whole spread); missed: none does; otherwise the noise is
# larger than the distance to the target: not resolvable here.
function judge(n) {
	if (better[n] == "higher") {
		if (lo[n] >= thi[n])
			return "met"
		if (hi[n] < tlo[n])
			return "MISSED"
	} else {
		if (hi[n] <= tlo[n])
			return "met"
		if (lo[n] > thi[n])
			return "MISSED"
	}
	return "not resolvable"
}

function fmt(v, u) {
	return sprintf("%.4g%s", v, u)
}

END {
	printf "\n%-26s %10s %23s %4s %14s  %s\n", "benchmark", "median", "spread (min..max)", \
	       "runs", "target", "result"
	body = ""
	for (i = 1; i <= nexp; i++) {
		n = expected[i]
		if (!(n in value)) {
			printf "%-26s %10s %23s %4s %14s  MISSING\n", n, "-", "-", "-", "-"
			missing++
			continue
		}
		j = judge(n)
		tgt = (better[n] == "higher" ? ">= " : "<= ") fmt(target[n], unit[n])
		if (tlo[n] != thi[n])
			tgt = tgt " (" fmt(tlo[n], "") ".." fmt(thi[n], "") ")"
		printf "%-26s %10s %23s %4d %14s  %s\n", n, fmt(value[n], unit[n]), \
		       fmt(lo[n], "") ".." fmt(hi[n], ""), nsamp[n], tgt, j
		if (j == "met")
			met++
		else if (j == "MISSED")
			misses++
		else
			unresolved++
		body = body (body == "" ? "" : ",\n") "  " json_of[n]
	}
	if (json != "") {
		printf "{\"kernel\": \"%s\", \"benchmarks\": {\n%s\n}}\n", kernel, body > json
		close(json)
		printf "\nwrote %s\n", json
	}
	for (i = 1; i <= nfailed; i++)
		print "failed: " failed[i]
	printf "%d benchmarks: %d targets met, %d missed, %d not resolvable here, %d missing, %d failed\n", \
	       nexp, met, misses, unresolved, missing, nfailed
	exit (nfailed || missing) ? 1 : 0
}
