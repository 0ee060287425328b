#!/usr/bin/env bash
# install.sh - the installer that provision/cloud-init.yaml writes
# (/usr/local/sbin/orchestrator-agent-install), run for real against the
# fake metadata server and Cloud Storage (tests/fakegcs, auth on: every
# Cloud Storage request needs the token the metadata server issued), boot
# after boot, table-driven.  make, apt-get and orchestrator-agent are
# stand-ins on PATH that record their arguments: building and installing the
# package are tested by tests/deb/check.sh, the bootstrap by its own tests;
# what is tested here is what the installer decides (fetch, verify, build
# only a changed source, always bootstrap, fail loudly, converge on a re-run).
set -euo pipefail
cd "$(dirname "$0")/../.."

py=/usr/bin/python3
t=$(mktemp -d)
server=
cleanup() {
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

"$py" tests/provision/write-files.py provision/cloud-init.yaml "$t/root"
installer=$t/root/usr/local/sbin/orchestrator-agent-install

# Stand-ins.  make fails when STUB_MAKE_FAIL is set, the bootstrap when
# STUB_BOOTSTRAP_FAIL is; each call is one line in $t/calls.
mkdir "$t/bin"
cat > "$t/bin/make" <<'EOF'
#!/bin/sh
echo "make $*" >> "$STUB_CALLS"
[ "$1" = -C ] && [ -f "$2/Makefile" ] || { echo "stub make: no Makefile in $2" >&2; exit 2; }
[ -z "${STUB_MAKE_FAIL:-}" ] || { echo "stub make: compile error" >&2; exit 2; }
mkdir -p "$2/build" && echo deb > "$2/build/orchestrator-agent_1_amd64.deb"
echo "build/orchestrator-agent_1_amd64.deb"
EOF
cat > "$t/bin/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >> "$STUB_CALLS"
for a; do last=$a; done
[ "$1" = install ] && [ -f "$last" ] && case $last in /*.deb) ;; *) exit 100 ;; esac
EOF
cat > "$t/bin/orchestrator-agent" <<'EOF'
#!/bin/sh
echo "orchestrator-agent $*" >> "$STUB_CALLS"
[ -z "${STUB_BOOTSTRAP_FAIL:-}" ] || { echo "stub bootstrap: failed" >&2; exit 69; }
EOF
chmod 0755 "$t/bin"/*

"$py" tests/fakegcs/server.py --port 0 --port-file "$t/port" --auth \
	--data-dir "$t/data" 2>"$t/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$t/port" ] && break; sleep 0.1; done
[ -s "$t/port" ] || { echo "install-test: fake server did not start:" >&2; cat "$t/server.log" >&2; exit 1; }
fake=127.0.0.1:$(cat "$t/port")
ctl() { curl -fsS -X POST "http://$fake/_fake/$1" "${@:2}" >/dev/null; }

# zip NAME TOPDIR: a source zip with a Makefile, at the top or in TOPDIR.
mkzip() {
	"$py" - "$t/$1" "$2" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    top = sys.argv[2] + "/" if sys.argv[2] != "-" else ""
    z.writestr(top + "Makefile", "deb:\n\t@echo %s\n" % sys.argv[1])
    z.writestr(top + "agent/version.h", "/* %s */\n" % sys.argv[1])
EOF
}
mkzip a.zip -
mkzip b.zip orchestrator-agent-src
mkzip c.zip -
# upload ZIP: ZIP becomes the source object.
upload() { ctl object/oa-src/agent/orchestrator-agent-src.zip --data-binary "@$t/$1"; }
attr() {
	local v=null
	[ "$1" = - ] || v="\"$1\""
	ctl config -H 'Content-Type: application/json' \
		-d "{\"metadata\":{\"attributes\":{\"oa-agent-source\":$v}}}"
}
md5b64() { openssl dgst -md5 -binary "$t/$1" | base64; }

src=gs://oa-src/agent/orchestrator-agent-src.zip
# name | attribute (- unset) | object to upload as the source (- none) |
# env | exit status (a failed step's own) | stderr must have | calls (in order) | installed md5 of
cases=(
	"first boot|$src|a.zip|-|0|running orchestrator-agent bootstrap|make,apt-get install,orchestrator-agent bootstrap|a.zip"
	"second boot, same source|$src|-|-|0|is installed already|orchestrator-agent bootstrap|a.zip"
	"new source, in a folder|$src|b.zip|-|0|downloading $src|make,apt-get install,orchestrator-agent bootstrap|b.zip"
	"build fails|$src|c.zip|STUB_MAKE_FAIL=1|2|fix the cause, then: systemctl restart orchestrator-agent-install.service|make|b.zip"
	"next boot retries|$src|-|-|0|running orchestrator-agent bootstrap|make,apt-get install,orchestrator-agent bootstrap|c.zip"
	"bootstrap fails|$src|-|STUB_BOOTSTRAP_FAIL=1|69|failed (line|orchestrator-agent bootstrap|c.zip"
	"attribute unset|-|-|-|1|cannot read the instance attribute oa-agent-source||c.zip"
	"attribute not gs://|https://example.invalid/src.zip|-|-|1|must be gs://BUCKET/OBJECT||c.zip"
	"object missing|gs://oa-src/agent/missing.zip|-|-|1|cannot read gs://oa-src/agent/missing.zip||c.zip"
)

passed=0 failed=0
fail() { echo "install-test: FAIL: $*" >&2; failed=$((failed + 1)); }
mkdir "$t/state"
for c in "${cases[@]}"; do
	IFS='|' read -r name a obj envs rc want calls md5of <<<"$c"
	attr "$a"
	[ "$obj" = - ] || upload "$obj"
	: > "$t/calls"
	envv=()
	[ "$envs" = - ] || envv=("$envs")
	got=0
	env "${envv[@]}" PATH="$t/bin:$PATH" STUB_CALLS="$t/calls" STATE_DIRECTORY="$t/state" \
		GCE_METADATA_HOST="$fake" STORAGE_EMULATOR_HOST="http://$fake" \
		"$installer" 2>"$t/err" >/dev/null || got=$?
	seen=$(cut -d' ' -f1-2 "$t/calls" | sed 's/^make .*/make/' | paste -sd, -)
	if [ "$got" != "$rc" ]; then
		fail "$name: exit status $got, expected $rc: $(cat "$t/err")"
	elif ! grep -qF -- "$want" "$t/err"; then
		fail "$name: stderr lacks \"$want\": $(cat "$t/err")"
	elif [ "$seen" != "$calls" ]; then
		fail "$name: calls were \"$seen\", expected \"$calls\""
	elif [ "$(cat "$t/state/installed.md5")" != "$(md5b64 "$md5of")" ]; then
		fail "$name: installed.md5 is not that of $md5of"
	else
		passed=$((passed + 1))
	fi
done

# The token went to Cloud Storage in a header, and never in an argument.
if curl -fsS "http://$fake/_fake/log" | "$py" -c '
import json, sys
log = json.load(sys.stdin)["entries"]
gcs = [e for e in log if e["path"].startswith("/storage/")]
sys.exit(0 if gcs and all(e.get("token_valid") for e in gcs) else 1)'; then
	passed=$((passed + 1))
else
	fail "a Cloud Storage request went without the metadata server's token"
fi
if grep -q 'curl[^|]*Bearer' "$installer"; then
	fail "the installer puts the token in curl's arguments"
else
	passed=$((passed + 1))
fi

echo "install-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
