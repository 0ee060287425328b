#!/usr/bin/env bash
# check-install.sh - `make install` into a scratch DESTDIR puts the binary,
# man page, sample config, systemd units and tmpfiles.d file in place, and
# the installed binary runs without the source tree.
set -euo pipefail
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make --no-print-directory -s install PREFIX=/usr DESTDIR="$dest" >/dev/null
for f in usr/bin/orchestrator-agent usr/share/man/man8/orchestrator-agent.8 \
	etc/orchestrator-agent/agent.ini.example \
	usr/lib/systemd/system/orchestrator-agent-worker@.service \
	usr/lib/tmpfiles.d/orchestrator-agent.conf; do
	[ -f "$dest/$f" ] || { echo "check-install: $f was not installed" >&2; exit 1; }
done
(cd / && "$dest/usr/bin/orchestrator-agent" --version) | grep -q '^orchestrator-agent ' ||
	{ echo "check-install: installed binary does not run" >&2; exit 1; }
(cd / && "$dest/usr/bin/orchestrator-agent" -c "$dest/etc/orchestrator-agent/agent.ini.example" config check) >/dev/null ||
	{ echo "check-install: installed sample config is not valid" >&2; exit 1; }
# Another prefix: the units run the binary where it went.
make --no-print-directory -s install PREFIX=/opt/oa DESTDIR="$dest" >/dev/null
grep -q '^ExecStart=/opt/oa/bin/orchestrator-agent worker$' \
	"$dest/opt/oa/lib/systemd/system/orchestrator-agent-worker@.service" ||
	{ echo "check-install: units do not name the installed binary" >&2; exit 1; }
echo "check-install: 4 passed, 0 failed"
