#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kconfig_test.sh KDIR: drivers/virt/pageshare/Kconfig against the kernel's
# own Kconfig tool (KDIR/scripts/kconfig/conf, built with the test kernel),
# in a tree of its own with stand-ins for the symbols it depends on. TAP.
#
# PAGESHARE_KUNIT_TEST is built into the module and calls its internals,
# so it needs KUNIT=y: with KUNIT=m it would link against a module, which
# fails in a kernel tree (issue 11).
set -u
KDIR=$1
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../../.." && pwd)
CONF=$KDIR/scripts/kconfig/conf
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

mkdir -p "$T/drivers/virt/pageshare"
cp "$TOP/drivers/virt/pageshare/Kconfig" "$T/drivers/virt/pageshare/"
cat > "$T/Kconfig" <<'KC'
config MMU
	def_bool y
config X86_64
	def_bool y
config XXHASH
	tristate
config MODULES
	def_bool y
	modules
config KUNIT
	tristate "KUnit"
config KUNIT_ALL_TESTS
	tristate "All KUnit tests"
	depends on KUNIT
source "drivers/virt/pageshare/Kconfig"
KC

# resolve "CONFIG_A=x CONFIG_B=y ...": the .config olddefconfig makes of it.
resolve() {
	printf '%s\n' "$@" > "$T/.config"
	(cd "$T" && srctree=$T KCONFIG_CONFIG=$T/.config "$CONF" --olddefconfig Kconfig) \
		> "$T/conf.log" 2>&1 || { sed 's/^/# /' "$T/conf.log"; return 1; }
	cat "$T/.config"
}

n=0 fail=0
check() {	# check "name" want-regex-or-!regex config...
	local name=$1 want=$2 out ok=1
	shift 2
	n=$((n + 1))
	out=$(resolve "$@") || ok=0
	if [ "${want#!}" != "$want" ]; then
		printf '%s\n' "$out" | grep -qx "${want#!}" && ok=0
	else
		printf '%s\n' "$out" | grep -qx "$want" || ok=0
	fi
	if [ $ok = 1 ]; then
		echo "ok $n $name"
	else
		echo "not ok $n $name"
		printf '%s\n' "$out" | grep PAGESHARE | sed 's/^/# got: /'
		fail=1
	fi
}

echo "TAP version 13"
[ -x "$CONF" ] || { echo "1..0 # SKIP $CONF is not built"; exit 0; }
echo "1..4"
check "KUnit tests refused with KUNIT=m" '!CONFIG_PAGESHARE_KUNIT_TEST=y' \
	CONFIG_KUNIT=m CONFIG_PAGESHARE=m CONFIG_PAGESHARE_KUNIT_TEST=y
check "KUnit tests kept with KUNIT=y" 'CONFIG_PAGESHARE_KUNIT_TEST=y' \
	CONFIG_KUNIT=y CONFIG_PAGESHARE=m CONFIG_PAGESHARE_KUNIT_TEST=y
check "KUnit tests off by default" '!CONFIG_PAGESHARE_KUNIT_TEST=y' \
	CONFIG_KUNIT=y CONFIG_PAGESHARE=m
check "KUNIT_ALL_TESTS turns them on" 'CONFIG_PAGESHARE_KUNIT_TEST=y' \
	CONFIG_KUNIT=y CONFIG_KUNIT_ALL_TESTS=y CONFIG_PAGESHARE=m
exit $fail
