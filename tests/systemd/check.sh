#!/usr/bin/env bash
# check.sh - the systemd units in systemd/ as installed by `make install
# PREFIX=/usr`: `systemd-analyze verify` prints nothing for each (it exits 0
# on most mistakes, so any output is a failure), and every service's
# `systemd-analyze security --offline=yes` exposure is at most 2.0; the
# unit provision/cloud-init.yaml writes passes verify too.  Then
# the broken fixtures in tests/systemd/bad/ must each fail, for the reason
# the table below names, so the check is shown able to fail.
#
# verify resolves ExecStart= and default dependencies (sysinit.target ...)
# in the file system, and needs no running systemd: the units are checked
# with --root= in a scratch tree holding this machine's system units plus
# what `make install` puts there (the real binary at /usr/bin) and kill.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXPOSURE=2.0
# fixture | what the failure must mention
bad_cases=(
	"typo-directive@.service|Unknown key 'Restrat'"
	"bad-type.service|Failed to parse service type"
	"missing-binary.service|orchestrator-agent-missing is not executable"
	"bad-calendar.timer|calendar specification"
	"weak-sandbox.service|exposure"
)

command -v systemd-analyze >/dev/null ||
	{ echo "systemd-check: systemd-analyze not found (Debian package systemd; make deps)" >&2; exit 1; }

sysunits=/usr/lib/systemd/system
[ -f "$sysunits/sysinit.target" ] || sysunits=/lib/systemd/system
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd/system"
cp -a "$sysunits/." "$root/usr/lib/systemd/system/"
make --no-print-directory -s install PREFIX=/usr DESTDIR="$root" >/dev/null
# ExecReload= runs procps' /bin/kill, as on the target machines.
install -D -m 0755 /bin/kill "$root/bin/kill"
# provision/cloud-init.yaml writes a unit and the program it runs.
/usr/bin/python3 tests/provision/write-files.py provision/cloud-init.yaml "$root"
unitdir=$root/usr/lib/systemd/system

# check_unit NAME [DIR]: prints why the unit NAME installed in DIR (the
# package's unit directory) fails; status 1 then.
check_unit() {
	local name=$1 dir=${2:-/usr/lib/systemd/system} out level
	out=$(cd / && systemd-analyze verify --man=no --root="$root" \
		"$dir/$name" 2>&1) || true
	if [ -n "$out" ]; then
		printf 'verify: %s\n' "$out"
		return 1
	fi
	case $name:$dir in *.service:/usr/lib/systemd/system) ;; *) return 0 ;; esac
	out=$(systemd-analyze security --offline=yes "$unitdir/$name" 2>&1) || true
	level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	if [ -z "$level" ]; then
		printf 'security: no exposure level in:\n%s\n' "$out"
		return 1
	fi
	if ! awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }'; then
		printf 'security: exposure %s is over %s\n' "$level" "$MAX_EXPOSURE"
		return 1
	fi
	return 0
}

passed=0 failed=0
fail() { echo "systemd-check: FAIL: $*" >&2; failed=$((failed + 1)); }

units=(systemd/*.service systemd/*.timer systemd/*.target)
for f in "${units[@]}"; do
	name=${f##*/}
	[ -f "$unitdir/$name" ] || { fail "$name: not installed by make install"; continue; }
	if why=$(check_unit "$name"); then
		passed=$((passed + 1))
	else
		fail "$name: $why"
	fi
done

# The installer's units run as root by design (they install packages):
# verify only.
for name in orchestrator-agent-install.service orchestrator-agent-install-watch.service; do
	if why=$(check_unit "$name" /etc/systemd/system); then
		passed=$((passed + 1))
	else
		fail "$name (provision/cloud-init.yaml): $why"
	fi
done

for c in "${bad_cases[@]}"; do
	name=${c%%|*} want=${c#*|}
	cp "tests/systemd/bad/$name" "$unitdir/$name"
	if why=$(check_unit "$name"); then
		fail "broken fixture $name passed the check"
	elif [[ $why != *"$want"* ]]; then
		fail "broken fixture $name failed for another reason than \"$want\": $why"
	else
		passed=$((passed + 1))
	fi
done

echo "systemd-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
