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
	nexp = split("dedup_vs_ksm dedup_cpu_vs_ksm cow_vs_ksm fault_in_vs_anon " \
		     "fault_in_vs_anon_thp fault_in_vs_shmem steady_vs_anon " \
		     "discard_mib_per_s share_scaling heavy_frame bytes_per_frame " \
		     "bytes_per_sharer parallel_2t", expected, " ")
}

/^@@ KERNEL / && kernel == "" {
	kernel = substr($0, 11)
	gsub(/["\\]/, "", kernel)
}

/^@@ ROW / {
	name = $3
	value[name] = $4
	target[name] = $5
	better[name] = $6
	unit[name] = $7
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

END {
	printf "\n%-18s %10s %8s  %-6s  %s\n", "benchmark", "value", "target", "better", ""
	body = ""
	for (i = 1; i <= nexp; i++) {
		n = expected[i]
		if (!(n in value)) {
			printf "%-18s %10s %8s  %-6s  MISSING\n", n, "-", "-", "-"
			missing++
			continue
		}
		met = better[n] == "higher" ? value[n] >= target[n] : value[n] <= target[n]
		printf "%-18s %10s %8s  %-6s  %s\n", n, value[n] unit[n], \
		       (better[n] == "higher" ? ">= " : "<= ") target[n] unit[n], \
		       better[n], met ? "met" : "MISSED"
		misses += !met
		body = body (body == "" ? "" : ",\n") "  " json_of[n]
	}
	if (json != "") {
		printf "{\"kernel\": \"%s\", \"benchmarks\": {\n%s\n}}\n", kernel, body > json
		close(json)
		printf "\nwrote %s\n", json
	}
	for (i = 1; i <= nfailed; i++)
		print "failed: " failed[i]
	printf "%d benchmarks, %d targets met, %d missed, %d missing, %d failed\n", \
	       nexp, nexp - misses - missing, misses, missing, nfailed
	exit (nfailed || missing) ? 1 : 0
}
