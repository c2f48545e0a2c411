#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run each test given (a command line each), nest its TAP output as a
# subtest, and print one TAP line per test; exit 1 if any failed.

n=0
failed=0
# fd 5: the real standard output, past the command substitution below.
exec 5>&1
echo "TAP version 13"
echo "1..$#"
for t in "$@"; do
	n=$((n + 1))
	name=$(basename "${t%% *}")
	echo "# Subtest: $name"
	# The test's exit status, through the pipe that indents its output.
	status=$( { { $t 2>&1; echo $? >&3; } | sed 's/^/    /' >&5; } 3>&1)
	if [ "$status" = 0 ]; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name (exit $status)"
		failed=$((failed + 1))
	fi
done
if [ $failed -ne 0 ]; then
	echo "# $failed of $# tests failed"
	exit 1
fi
echo "# all $# tests passed"
