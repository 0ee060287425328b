#!/usr/bin/env bash
# install.sh - the installer that provision/cloud-init.yaml writes
# (/usr/local/sbin/orchestrator-agent-install), run for real against the
# fake metadata server and Cloud Storage (tests/fakegcs, auth on: every
# Cloud Storage request needs the token the metadata server issued), boot
# after boot, table-driven, with real .deb files built here by dpkg-deb.
# apt-get, dpkg-query, systemctl and orchestrator-agent are stand-ins on PATH
# that record their arguments (apt-get "installs" by recording the version
# and md5sums dpkg would); what is tested here is what the installer decides:
# verify the sha256, install only a newer version (or a permitted
# downgrade), refuse a tampered, older, same-version-other-build or dirty
# package while bootstrapping the installed one, retry 403 for a while, fail
# loudly, record the outcome for doctor, and start the install unit when the
# metadata changes (--watch).  The real install and upgrade in a booted
# system are tests/firstboot/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

py=/usr/bin/python3
t=$(mktemp -d)
server='' watch=''
cleanup() {
	[ -z "$watch" ] || kill "$watch" 2>/dev/null || true
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

"$py" tests/provision/write-files.py provision/cloud-init.yaml "$t/root"
installer=$t/root/usr/local/sbin/orchestrator-agent-install

# Stand-ins.  Each call is one line in $t/calls.  The "dpkg database" is
# $t/db/version (the installed version) and $t/db/info/*.md5sums.
mkdir -p "$t/bin" "$t/db/info"
cat > "$t/bin/apt-get" <<'EOF'
#!/bin/bash
for a; do last=$a; done
case " $* " in
*" update "*) echo "apt-get update" >> "$STUB_CALLS"; exit 0 ;;
esac
down=''
case " $* " in *" --allow-downgrades "*) down=' --allow-downgrades' ;; esac
case $last in
*.deb)
	v=$(dpkg-deb -f "$last" Version)
	echo "apt-get install$down $v" >> "$STUB_CALLS"
	[ -z "${STUB_APT_FAIL:-}" ] || { echo "E: stub apt-get: failed" >&2; exit 100; }
	[ -z "${STUB_APT_NOOP:-}" ] || { echo "stub apt-get: already the newest version"; exit 0; }
	printf '%s\n' "$v" > "$STUB_DB/version"
	dpkg-deb --ctrl-tarfile "$last" | tar -xOf - ./md5sums > "$STUB_DB/info/orchestrator-agent.md5sums"
	;;
*) echo "apt-get install $last" >> "$STUB_CALLS" ;;
esac
EOF
cat > "$t/bin/dpkg-query" <<'EOF'
#!/bin/bash
for a; do last=$a; done
case "$*" in
*Status-Abbrev*)
	[ -s "$STUB_DB/version" ] || { echo "dpkg-query: no packages found matching $last" >&2; exit 1; }
	printf 'ii  %s\n' "$(cat "$STUB_DB/version")" ;;
*)
	case " ${STUB_MISSING:-} " in *" $last "*) exit 1 ;; esac
	printf 'install ok installed' ;;
esac
EOF
cat > "$t/bin/orchestrator-agent" <<'EOF'
#!/bin/sh
echo "orchestrator-agent $*" >> "$STUB_CALLS"
[ -z "${STUB_BOOTSTRAP_FAIL:-}" ] || { echo "stub bootstrap: failed" >&2; exit 69; }
EOF
cat > "$t/bin/systemctl" <<'EOF'
#!/bin/sh
echo "systemctl $*" >> "$STUB_CALLS"
EOF
chmod 0755 "$t/bin"/*

# mkdeb NAME VERSION [SALT]: $t/NAME.deb, package orchestrator-agent at
# VERSION; SALT changes the contents (another build of the same version).
mkdeb() {
	local d=$t/pkg-$1
	rm -rf "$d"
	mkdir -p "$d/DEBIAN" "$d/usr/share/doc/orchestrator-agent"
	printf 'build %s %s\n' "$2" "${3:-}" > "$d/usr/share/doc/orchestrator-agent/build"
	printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test\n' \
		"${4:-orchestrator-agent}" "$2" > "$d/DEBIAN/control"
	(cd "$d" && md5sum usr/share/doc/orchestrator-agent/build > DEBIAN/md5sums)
	dpkg-deb --root-owner-group --build "$d" "$t/$1.deb" > /dev/null
}
mkdeb v1 0.1.0+10.gaaaaaaaaaaaa
mkdeb v2 0.1.0+11.gbbbbbbbbbbbb
mkdeb v2other 0.1.0+11.gbbbbbbbbbbbb other
mkdeb v3dirty 0.1.0+12.gcccccccccccc+dirty
mkdeb v4 0.1.0+13.gdddddddddddd
mkdeb wrongname 0.1.0+14.geeeeeeeeeeee - something-else
printf 'not a package\n' > "$t/junk.deb"

"$py" tests/fakegcs/server.py --port 0 --port-file "$t/port" --auth \
	--data-dir "$t/data" 2>"$t/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$t/port" ] && break; sleep 0.1; done
[ -s "$t/port" ] || { echo "install-test: fake server did not start:" >&2; cat "$t/server.log" >&2; exit 1; }
fake=127.0.0.1:$(cat "$t/port")
ctl() { curl -fsS -X POST "http://$fake/_fake/$1" "${@:2}" >/dev/null; }

bucket=oa-artifacts
sha() { sha256sum "$t/$1.deb" | cut -d' ' -f1; }
# upload DEB: DEB as packages/DEB.deb.
upload() { ctl "object/$bucket/packages/$1.deb" --data-binary "@$t/$1.deb"; }
for d in v1 v2 v2other v3dirty v4 wrongname junk; do upload "$d"; done
# attrs OBJECT SHA [EXTRA-JSON]: the oa-agent-* attributes (- unsets).
attrs() {
	local o=null s=null
	[ "$1" = - ] || o="\"gs://$bucket/packages/$1\""
	[ "$2" = - ] || s="\"$2\""
	ctl config -H 'Content-Type: application/json' -d "{\"metadata\":{\"attributes\":{
		\"oa-agent-package\":$o,\"oa-agent-sha256\":$s,
		\"oa-agent-allow-downgrade\":null,\"oa-agent-allow-dirty\":null${3:+,$3}}}}"
}

bad=$(printf '0%.0s' $(seq 64))
# name | object (- unset) | sha256: a deb's name for its own, or a literal |
# extra attributes (JSON, - none) | env (- none) | exit status |
# stderr must have | calls (in order) | installed version after |
# state.json: last.result and installed.version
cases=(
	"first boot|v1.deb|v1|-|-|0|installing orchestrator-agent 0.1.0+10|apt-get install 0.1.0+10.gaaaaaaaaaaaa,orchestrator-agent bootstrap|0.1.0+10.gaaaaaaaaaaaa|ok 0.1.0+10.gaaaaaaaaaaaa"
	"second boot, same package|v1.deb|v1|-|-|0|is installed already|orchestrator-agent bootstrap|0.1.0+10.gaaaaaaaaaaaa|ok 0.1.0+10.gaaaaaaaaaaaa"
	"newer package|v2.deb|v2|-|-|0|upgrading orchestrator-agent 0.1.0+10.gaaaaaaaaaaaa to 0.1.0+11|apt-get install 0.1.0+11.gbbbbbbbbbbbb,orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|ok 0.1.0+11.gbbbbbbbbbbbb"
	"tampered: sha256 mismatch|v4.deb|$bad|-|-|65|the object changed after Terraform uploaded it|orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|refused 0.1.0+11.gbbbbbbbbbbbb"
	"older version|v1.deb|v1|-|-|65|older than the installed 0.1.0+11.gbbbbbbbbbbbb; set allow_downgrade|orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|refused 0.1.0+11.gbbbbbbbbbbbb"
	"same version, other build|v2other.deb|v2other|-|-|65|two different builds carry one version|orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|refused 0.1.0+11.gbbbbbbbbbbbb"
	"dirty build|v3dirty.deb|v3dirty|-|-|65|uncommitted changes|orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|refused 0.1.0+11.gbbbbbbbbbbbb"
	"dirty build, allowed|v3dirty.deb|v3dirty|\"oa-agent-allow-dirty\":\"true\"|-|0|upgrading|apt-get install 0.1.0+12.gcccccccccccc+dirty,orchestrator-agent bootstrap|0.1.0+12.gcccccccccccc+dirty|ok 0.1.0+12.gcccccccccccc+dirty"
	"rollback, allowed|v2.deb|v2|\"oa-agent-allow-downgrade\":\"true\"|-|0|downgrading|apt-get install --allow-downgrades 0.1.0+11.gbbbbbbbbbbbb,orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|ok 0.1.0+11.gbbbbbbbbbbbb"
	"not our package|wrongname.deb|wrongname|-|-|65|it is package 'something-else'|orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|refused 0.1.0+11.gbbbbbbbbbbbb"
	"not a package|junk.deb|junk|-|-|65|it is not a Debian package|orchestrator-agent bootstrap|0.1.0+11.gbbbbbbbbbbbb|refused 0.1.0+11.gbbbbbbbbbbbb"
	"apt-get fails|v4.deb|v4|-|STUB_APT_FAIL=1|1|apt-get could not install|apt-get install 0.1.0+13.gdddddddddddd|0.1.0+11.gbbbbbbbbbbbb|failed 0.1.0+11.gbbbbbbbbbbbb"
	"apt-get installs nothing|v4.deb|v4|-|STUB_APT_NOOP=1|1|apt-get succeeded but orchestrator-agent 0.1.0+11.gbbbbbbbbbbbb is installed, not 0.1.0+13|apt-get install 0.1.0+13.gdddddddddddd|0.1.0+11.gbbbbbbbbbbbb|failed 0.1.0+11.gbbbbbbbbbbbb"
	"bootstrap fails|v4.deb|v4|-|STUB_BOOTSTRAP_FAIL=1|69|orchestrator-agent bootstrap failed (exit status 69|apt-get install 0.1.0+13.gdddddddddddd,orchestrator-agent bootstrap|0.1.0+13.gdddddddddddd|failed 0.1.0+13.gdddddddddddd"
	"next boot converges|v4.deb|v4|-|-|0|is installed already|orchestrator-agent bootstrap|0.1.0+13.gdddddddddddd|ok 0.1.0+13.gdddddddddddd"
	"postgresql missing|v4.deb|v4|-|STUB_MISSING=postgresql|0|installing postgresql (cloud-init's packages step did not)|apt-get install postgresql,orchestrator-agent bootstrap|0.1.0+13.gdddddddddddd|ok 0.1.0+13.gdddddddddddd"
	"attribute unset|-|v4|-|-|1|the instance attribute oa-agent-package is not set||0.1.0+13.gdddddddddddd|failed 0.1.0+13.gdddddddddddd"
	"attribute not gs://|-|v4|\"oa-agent-package\":\"https://example.invalid/x.deb\"|-|1|must be gs://BUCKET/OBJECT.deb||0.1.0+13.gdddddddddddd|failed 0.1.0+13.gdddddddddddd"
	"sha256 not hex|v4.deb|ABC|-|-|1|oa-agent-sha256 must be the package's sha256 in 64 lowercase hex digits||0.1.0+13.gdddddddddddd|failed 0.1.0+13.gdddddddddddd"
	"object missing|missing.deb|v1|-|-|1|no such object (404)||0.1.0+13.gdddddddddddd|failed 0.1.0+13.gdddddddddddd"
)

passed=0 failed=0
fail() { echo "install-test: FAIL: $*" >&2; failed=$((failed + 1)); }
mkdir "$t/state"
# run ENV...: the installer as its unit runs it, with stand-ins first.
run() {
	env "$@" PATH="$t/bin:$PATH" STUB_CALLS="$t/calls" STUB_DB="$t/db" DPKG_ADMINDIR="$t/db" \
		STATE_DIRECTORY="$t/state" GCE_METADATA_HOST="$fake" STORAGE_EMULATOR_HOST="http://$fake" \
		OA_INSTALL_RETRY_SECONDS=0 "$installer"
}
for c in "${cases[@]}"; do
	IFS='|' read -r name obj shaof extra envs rc want calls version result <<<"$c"
	s=$shaof
	[ -f "$t/$shaof.deb" ] && s=$(sha "$shaof")
	extra=${extra#-}
	attrs "$obj" "$s" "$extra"
	: > "$t/calls"
	envv=()
	[ "$envs" = - ] || envv=("$envs")
	got=0
	run "${envv[@]}" 2>"$t/err" >/dev/null || got=$?
	seen=$(paste -sd, "$t/calls")
	have=$(cat "$t/db/version" 2>/dev/null || true)
	st=$(jq -r '"\(.last.result) \(.installed.version)"' "$t/state/state.json" 2>/dev/null || true)
	if [ "$got" != "$rc" ]; then
		fail "$name: exit status $got, expected $rc: $(cat "$t/err")"
	elif ! grep -qF -- "$want" "$t/err"; then
		fail "$name: stderr lacks \"$want\": $(cat "$t/err")"
	elif [ "$seen" != "$calls" ]; then
		fail "$name: calls were \"$seen\", expected \"$calls\""
	elif [ "$have" != "$version" ]; then
		fail "$name: installed version $have, expected $version"
	elif [ "$st" != "$result" ]; then
		fail "$name: state.json says \"$st\", expected \"$result\""
	else
		passed=$((passed + 1))
	fi
done

# state.json: readable by doctor, names what happened.
expect() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else fail "$what"; fi
}
expect "state.json is 0644" test "$(stat -c %a "$t/state/state.json")" = 644
expect "state.json records the object and sha256" jq -e --arg s "$(sha v4)" \
	'.installed.sha256 == $s and .installed.object == "gs://oa-artifacts/packages/v4.deb" and (.last.at | test("^[0-9-]+T[0-9:]+Z$"))' \
	"$t/state/state.json"
expect "the download directory is private" test "$(stat -c %a "$t/state/download")" = 700

# A 403 while IAM propagates is retried; one that lasts is not, and says why.
attrs v2.deb "$(sha v2)" '"oa-agent-allow-downgrade":"true"'
ctl faults -H 'Content-Type: application/json' -d '[{"op":"download","kind":"403","count":2}]'
: > "$t/calls"
if run OA_INSTALL_403_SECONDS=60 2>"$t/err" >/dev/null && grep -q 'status 403; retrying' "$t/err" &&
	[ "$(cat "$t/db/version")" = 0.1.0+11.gbbbbbbbbbbbb ]; then
	passed=$((passed + 1))
else
	fail "a passing 403 was not retried: $(cat "$t/err")"
fi
attrs v4.deb "$(sha v4)"
ctl faults -H 'Content-Type: application/json' -d '[{"op":"download","kind":"403","count":50}]'
if run OA_INSTALL_403_SECONDS=0 2>"$t/err" >/dev/null; then
	fail "a lasting 403 succeeded"
elif ! grep -q "may not read the artifacts bucket" "$t/err"; then
	fail "a lasting 403 does not say why: $(cat "$t/err")"
else
	passed=$((passed + 1))
fi
curl -fsS -X DELETE "http://$fake/_fake/faults" >/dev/null

# The token went to Cloud Storage in a header, and never in an argument.
if curl -fsS "http://$fake/_fake/log" | "$py" -c '
import json, sys
log = json.load(sys.stdin)["entries"]
gcs = [e for e in log if e["path"].startswith("/storage/") and e["status"] != 403]
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

# --watch: a change of an oa-* attribute starts the install unit, any
# other attribute does not; and a change the last install run did not act
# on (made while it ran, or before the watch started) starts it at once.
# The stand-in systemctl runs nothing, so the recorded attributes stay.
start_watch() {
	: > "$t/calls"
	env PATH="$t/bin:$PATH" STUB_CALLS="$t/calls" STATE_DIRECTORY="$t/state" \
		GCE_METADATA_HOST="$fake" "$installer" --watch 2>"$t/watch.err" &
	watch=$!
}
stop_watch() {
	kill "$watch" 2>/dev/null || true
	wait "$watch" 2>/dev/null || true
	watch=''
}
starts() { grep -c '^systemctl start orchestrator-agent-install.service$' "$t/calls" || true; }
wait_starts() { for _ in $(seq 50); do [ "$(starts)" -ge "$1" ] && break; sleep 0.1; done; }
start_watch
sleep 1
ctl config -H 'Content-Type: application/json' -d '{"metadata":{"attributes":{"unrelated":"1"}}}'
sleep 1
n0=$(starts)
ctl config -H 'Content-Type: application/json' -d '{"metadata":{"attributes":{"oa-workers":"3"}}}'
wait_starts 1
sleep 0.5
stop_watch
if [ "$n0" = 0 ] && [ "$(starts)" = 1 ]; then
	passed=$((passed + 1))
else
	fail "--watch: $n0 starts before and $(starts) after one oa-* change, expected 0 and 1 (calls: $(paste -sd, "$t/calls"); $(cat "$t/watch.err"))"
fi
start_watch
wait_starts 1
stop_watch
if [ "$(starts)" = 1 ]; then
	passed=$((passed + 1))
else
	fail "--watch did not start the install unit for a change the last run had not seen (calls: $(paste -sd, "$t/calls"); $(cat "$t/watch.err"))"
fi
if out=$(env PATH="$t/bin:$PATH" "$installer" --bogus 2>&1); then
	fail "an unknown argument was accepted"
elif [[ $out != *usage* ]]; then
	fail "an unknown argument gives no usage: $out"
else
	passed=$((passed + 1))
fi

echo "install-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
