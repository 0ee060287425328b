#!/usr/bin/env bash
# check.sh - `make deb`, then on this machine: dpkg -i installs the files,
# the system user and the directories, and the binary runs; a second
# dpkg -i (an upgrade) keeps a local agent.ini; dpkg -r stops using the
# units and leaves only conffiles, the user and the state; dpkg -P leaves
# the machine as it was.  Needs root; skipped (with a message) otherwise,
# or when the machine has an orchestrator-agent of its own that the purge
# would take away.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkg=orchestrator-agent
user=orchestrator-agent
skip() { echo "deb-check: skipped: $*"; echo "deb-check: 0 passed, 0 failed, 1 skipped"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root to install the package (CI runs as root)"
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files'; then
	skip "package $pkg is on this machine already"
fi
for p in /usr/bin/orchestrator-agent /etc/orchestrator-agent /var/lib/orchestrator-agent; do
	[ ! -e "$p" ] || skip "$p exists already"
done
getent passwd "$user" >/dev/null && skip "user $user exists already"
getent group "$user" >/dev/null && skip "group $user exists already"

# What the package may create and must take away again.
around=(/var/lib/prometheus /var/lib/prometheus/node-exporter)
declare -A before
for p in "${around[@]}"; do before[$p]=$([ -e "$p" ] && echo yes || echo no); done
links_before=$(find /etc/systemd/system -type l 2>/dev/null | sort)

trap 'dpkg -P "$pkg" >/dev/null 2>&1 || true' EXIT

deb=$(make --no-print-directory -s deb | tail -n 1)
[ -f "$deb" ] || { echo "deb-check: make deb printed no package ($deb)" >&2; exit 1; }

passed=0 failed=0
# expect DESCRIPTION COMMAND...: one table row run as a check.
expect() {
	local what=$1; shift
	if "$@" >/dev/null 2>&1; then
		passed=$((passed + 1))
	else
		echo "deb-check: FAIL: $what" >&2
		failed=$((failed + 1))
	fi
}
owner_mode() { [ "$(stat -c '%U:%G %a' "$1")" = "$2" ]; }
status_is() { [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "$1" ]; }
absent() { local p; for p; do [ ! -e "$p" ] && [ ! -L "$p" ] || return 1; done; }

files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')
conffiles=$(dpkg-deb -I "$deb" conffiles)
# The dlopen()ed libraries (agent/dl.c) are invisible to dpkg-shlibdeps.
depends=$(dpkg-deb -f "$deb" Depends)
for so in libcurl.so.4 libmicrohttpd.so.12 libzstd.so.1; do
	owner=$(dpkg-query -S "*/$so" | sed -n "s|^\([^:, ]*\).*/$so\$|\1|p" | head -n 1)
	expect "Depends names $owner ($so)" sh -c "echo ', $depends,' | grep -Eq ', $owner[ ,]'"
done

dpkg -i "$deb" >/dev/null
expect "installed" status_is "install ok installed"
for f in $files; do
	expect "$f installed" test -f "$f"
done
expect "binary runs" sh -c 'cd / && /usr/bin/orchestrator-agent --version | grep -q "^orchestrator-agent "'
# What doctor compares with the installer's record (agent.package).
expect "binary is the package's version" sh -c "[ \"\$(cd / && /usr/bin/orchestrator-agent --version)\" = \"orchestrator-agent \$(dpkg-query -W -f='\${Version}' $pkg)\" ]"
expect "man page" test -f /usr/share/man/man8/orchestrator-agent.8.gz
expect "worker unit" test -f /usr/lib/systemd/system/orchestrator-agent-worker@.service
expect "system user, no login" sh -c "getent passwd $user | grep -q ':/var/lib/orchestrator-agent:/usr/sbin/nologin\$'"
expect "system uid" sh -c "[ \$(id -u $user) -lt 1000 ]"
expect "group" getent group "$user"
expect "state dir 0750" owner_mode /var/lib/orchestrator-agent "$user:$user 750"
expect "config dir 0750" owner_mode /etc/orchestrator-agent "root:$user 750"
expect "sample config valid" sh -c 'cd / && orchestrator-agent -c /etc/orchestrator-agent/agent.ini.example config check'

# What bootstrap does on the VM: a local agent.ini, enabled units.
printf '[worker]\nconcurrency = 2\n' > /etc/orchestrator-agent/agent.ini
systemctl enable orchestrator-agent-worker@1.service orchestrator-agent-backup.timer >/dev/null 2>&1
expect "units enable" test -L /etc/systemd/system/orchestrator-agent.target.wants/orchestrator-agent-worker@1.service

dpkg -i "$deb" >/dev/null
expect "reinstall keeps agent.ini" grep -q 'concurrency = 2' /etc/orchestrator-agent/agent.ini
expect "reinstall keeps the user" getent passwd "$user"

dpkg -r "$pkg" >/dev/null
expect "removed" status_is "deinstall ok config-files"
for f in $files; do
	case " $conffiles " in
	*" $f "*) expect "conffile $f kept" test -f "$f" ;;
	*) expect "$f removed" absent "$f" ;;
	esac
done
expect "no unit enabled" test "$(find /etc/systemd/system -type l 2>/dev/null | sort)" = "$links_before"
expect "agent.ini kept" test -f /etc/orchestrator-agent/agent.ini
expect "user kept" getent passwd "$user"

dpkg -P "$pkg" >/dev/null
expect "purged" sh -c "! dpkg-query -W $pkg"
expect "config dir gone" absent /etc/orchestrator-agent
expect "state dir gone" absent /var/lib/orchestrator-agent
expect "user gone" sh -c "! getent passwd $user"
expect "group gone" sh -c "! getent group $user"
for p in "${around[@]}"; do
	if [ "${before[$p]}" = no ]; then
		expect "$p gone again" absent "$p"
	fi
done

echo "deb-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
