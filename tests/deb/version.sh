#!/usr/bin/env bash
# version.sh - every build names its own version (packaging/version.sh), so
# `apt-get install ./x.deb` of a newer build is an upgrade and never
# "already the newest version".  In one throwaway clone of this repository:
# make deb, an empty commit, make deb again (two packages, increasing by
# dpkg's rules, the second relinking without recompiling); a tag; a modified
# tracked file (+dirty); make dist's tarball built with no .git, also when
# unpacked inside another checkout; and the failures (no VERSION, a shallow
# clone) that must stop the build.  No root needed (dpkg-deb builds as any
# user); about 30 s, two full builds.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Our own make runs below, not the caller's: make check SANITIZE=1 would
# pass SANITIZE=1 on (and make deb refuses it).
unset MAKEFLAGS MFLAGS MAKELEVEL SANITIZE
mk() { make --no-print-directory -s -j2 "$@"; }
git() { command git -c user.name=version-test -c user.email=test@example.invalid \
	-c advice.detachedHead=false "$@"; }

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
c=$t/clone
git clone -q . "$c"

passed=0 failed=0
# expect DESCRIPTION COMMAND...: one row run as a check.
expect() {
	local what=$1; shift
	if "$@" >"$t/out" 2>&1; then
		passed=$((passed + 1))
	else
		echo "version-test: FAIL: $what: $(head -c 600 "$t/out")" >&2
		failed=$((failed + 1))
	fi
}
lt() { dpkg --compare-versions "$1" lt "$2"; }
valid() { dpkg --validate-version "$1"; }
is() { [ "$1" = "$2" ] || { echo "got '$1', want '$2'"; return 1; }; }
matches() { echo "$1" | grep -Eq "$2" || { echo "'$1' !~ $2"; return 1; }; }
fails_with() { local want=$1; shift; ! "$@" 2>"$t/err" >/dev/null &&
	grep -qF -- "$want" "$t/err" || { echo "want failure with '$want':"; cat "$t/err"; return 1; }; }
debver() { dpkg-deb -f "$1" Version; }
# The version of the binary inside a package.
debbin() {
	rm -rf "$t/x" && dpkg-deb -x "$1" "$t/x" &&
		"$t/x/usr/bin/orchestrator-agent" --version | sed 's/^orchestrator-agent //'
}
# doctor's agent.package with the installer's record of VERSION installed,
# run by the clone's binary; prints doctor's output and its exit status on one line.
sha=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
doctor_pkg() {
	printf '{"installed": {"version": "%s", "sha256": "%s", "object": "gs://b/p.deb", "at": "2026-12-02T18:00:00Z"}, "last": {"result": "ok", "at": "2026-12-02T18:00:00Z", "object": "gs://b/p.deb", "version": "%s", "sha256": "%s", "message": "installed"}}' \
		"$1" "$sha" "$1" "$sha" > "$t/state.json"
	printf '[doctor]\ninstall_state = %s\n' "$t/state.json" > "$t/agent.ini"
	{ "$c/build/orchestrator-agent" -c "$t/agent.ini" doctor --only agent.package 2>&1 &&
		echo "exit 0" || echo "exit $?"; } | tr '\n' ' '
}
sha12() { git -C "$1" rev-parse HEAD | cut -c1-12; }
count() { git -C "$1" rev-list --count HEAD; }

# 1. The first build of a commit.
deb1=$(mk -C "$c" deb | tail -n 1)
v1=$(debver "$c/$deb1")
main_o=$(stat -c %Y "$c/build/main.o")
expect "untagged clone: 0.1.0+N.gSHA12" is "$v1" "0.1.0+$(count "$c").g$(sha12 "$c")"
expect "make version says the same" is "$(mk -C "$c" version)" "$v1"
expect "the packaged binary says the same" is "$(debbin "$c/$deb1")" "$v1"
expect "the built binary says the same" is "$("$c/build/orchestrator-agent" version)" "orchestrator-agent $v1"
expect "the package file is named by it" matches "$deb1" "^build/orchestrator-agent_${v1//+/\\+}_[a-z0-9]+\\.deb\$"
expect "a valid Debian version" valid "$v1"

# 2. A new commit: a new, higher version, and only version.c recompiled.
sleep 1	# mtimes have a one-second resolution on some file systems
git -C "$c" commit -q --allow-empty -m "an empty commit"
deb2=$(mk -C "$c" deb | tail -n 1)
v2=$(debver "$c/$deb2")
expect "a new commit, a new package" test "$deb1" != "$deb2"
expect "a new commit: 0.1.0+(N+1).gSHA12" is "$v2" "0.1.0+$(count "$c").g$(sha12 "$c")"
expect "dpkg sorts it higher ($v1 < $v2)" lt "$v1" "$v2"
expect "its binary says it" is "$(debbin "$c/$deb2")" "$v2"
expect "doctor: the installed version is ok" matches "$(doctor_pkg "$v2")" "agent.package +orchestrator-agent ${v2//+/\\+} \\(sha256 0123456789ab\\.\\.\\.\\) from gs://b/p.deb.*exit 0"
expect "doctor: another installed version warns" matches "$(doctor_pkg "$v1")" "the installer installed ${v1//+/\\+}, but this is.*exit 1"
expect "only the version recompiled (main.o kept)" is "$(stat -c %Y "$c/build/main.o")" "$main_o"
bin_t=$(stat -c %Y "$c/build/orchestrator-agent")
sleep 1
mk -C "$c" all
expect "the same commit relinks nothing" is "$(stat -c %Y "$c/build/orchestrator-agent")" "$bin_t"

# 3. Versions from tags, by dpkg's order (in the clone only).
git -C "$c" tag v0.2.0
v3=$(mk -C "$c" version)
git -C "$c" commit -q --allow-empty -m "after the tag"
v4=$(mk -C "$c" version) sha4=$(sha12 "$c")
git -C "$c" commit -q --allow-empty -m "a release"
git -C "$c" tag v1.0.0
v5=$(mk -C "$c" version) sha5=$(sha12 "$c")
rows=(
	# description | version | want regex
	"tag at HEAD|$v3|^0\.2\.0\+0\.g[0-9a-f]{12}\$"
	"a commit after the tag|$v4|^0\.2\.0\+1\.g$sha4\$"
	"a later tag|$v5|^1\.0\.0\+0\.g$sha5\$"
)
for r in "${rows[@]}"; do
	IFS='|' read -r what v want <<<"$r"
	expect "$what ($v)" matches "$v" "$want"
done
expect "untagged < tagged ($v2 < $v3)" lt "$v2" "$v3"
expect "tagged < after it ($v3 < $v4)" lt "$v3" "$v4"
expect "after it < the next tag ($v4 < $v5)" lt "$v4" "$v5"
git -C "$c" commit -q --allow-empty -m "a tag dpkg cannot take"
git -C "$c" tag v1.1-beta
expect "a tag with '-' is refused" fails_with "not a Debian version" mk -C "$c" version
git -C "$c" tag -d v1.1-beta >/dev/null

# 4. Local changes: only modified tracked files make it +dirty.
head=$(mk -C "$c" version)
touch "$c/README.md"
echo scratch > "$c/untracked.txt"
expect "touched or untracked files are clean" is "$(mk -C "$c" version)" "$head"
echo "local change" >> "$c/README.md"
dirty=$(mk -C "$c" version)
expect "a modified tracked file: +dirty" is "$dirty" "$head+dirty"
expect "+dirty is a valid Debian version" valid "$dirty"
expect "+dirty sorts after its commit" lt "$head" "$dirty"
expect "the package says +dirty" sh -c "deb=\$(make --no-print-directory -s -j2 -C '$c' deb | tail -n 1) &&
	[ \"\$(dpkg-deb -f '$c/'\"\$deb\" Version)\" = '$dirty' ]"
expect "doctor: a +dirty build warns" matches "$(doctor_pkg "$dirty")" "built from a tree with uncommitted changes.*exit 1"

# 5. make dist: HEAD with a VERSION file, built where there is no .git.
dist=$(mk -C "$c" dist 2>"$t/dist.err" | tail -n 1)
expect "dist is named by HEAD's version (no +dirty)" is "$dist" "build/orchestrator-agent-$head.tar.gz"
expect "dist says the changes are left out" grep -q "uncommitted changes are not in the tarball" "$t/dist.err"
mkdir "$t/src"
tar -xzf "$c/$dist" -C "$t/src"
s=$t/src/orchestrator-agent-$head
expect "the tarball holds VERSION" is "$(cat "$s/VERSION")" "$head"
expect "the tarball has no .git" test ! -e "$s/.git"
expect "and not the uncommitted change" sh -c "! grep -q 'local change' '$s/README.md'"
sdeb=$(mk -C "$s" deb | tail -n 1)
expect "a tarball build: the package has VERSION's version" is "$(debver "$s/$sdeb")" "$head"
expect "a tarball build: so has its binary" is "$("$s/build/orchestrator-agent" --version)" "orchestrator-agent $head"
# Unpacked inside another checkout, the tarball is still itself.
mkdir -p "$c/build/nested"
tar -xzf "$c/$dist" -C "$c/build/nested"
expect "inside another checkout: VERSION, not that checkout's" is \
	"$(mk -C "$c/build/nested/orchestrator-agent-$head" version)" "$head"

# 6. What must stop the build.
rm "$s/VERSION"
expect "no .git and no VERSION: version fails" fails_with "neither a git checkout nor a source archive" mk -C "$s" version
expect "no .git and no VERSION: the build fails" fails_with "neither a git checkout" mk -C "$s" all
echo "not a version" > "$s/VERSION"
expect "a garbage VERSION is refused" fails_with "not a version" mk -C "$s" version
git clone -q --depth 1 "file://$c" "$t/shallow"
shallow_version() { v=$(mk -C "$t/shallow" version 2>"$t/shallow.err") && [[ $v == 0.1.0+0.1.g*+shallow ]] && grep -q "git fetch --unshallow" "$t/shallow.err" && dpkg --compare-versions "$v" lt "$v1"; }
expect "a shallow clone builds as a +shallow version below every real one, and says so" shallow_version
shallow_next() {
	local a b
	a=$(mk -C "$t/shallow" version 2>/dev/null)
	git -C "$t/shallow" -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m next
	b=$(mk -C "$t/shallow" version 2>/dev/null)
	dpkg --compare-versions "$b" gt "$a"
}
expect "in a shallow clone the next commit still builds a newer version" shallow_next

echo "version-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
