#!/usr/bin/env bash
# check.sh - provision/cloud-init.yaml passes `cloud-init schema`, the
# broken fixtures in tests/provision/bad/ each fail it for the reason the
# table names (so the check can fail: without python3-jsonschema, cloud-init
# calls anything valid), and the installer script it embeds passes
# shellcheck, which is shown able to fail the same way.
#
# cloud-init comes from Debian's package, downloaded and extracted under
# build/cloud-init (never installed: that would enable its boot services on
# this machine); its Python dependencies are Debian packages (tests/deps.sh)
# and it runs with Debian's /usr/bin/python3, which sees them.
set -euo pipefail
cd "$(dirname "$0")/../.."

# fixture | what the error must mention
bad_cases=(
	"no-header.yaml|needs to begin with \"#cloud-config\""
	"bad-yaml.yaml|is not valid yaml"
	"runcmd-string.yaml|runcmd: 'systemctl start orchestrator-agent-install.service' is not of type 'array'"
	"typo-key.yaml|'permisions' was unexpected"
	"write-files-no-path.yaml|'path' is a required property"
	"update-not-bool.yaml|package_update: 'sometimes' is not of type 'boolean'"
)
installer=/usr/local/sbin/orchestrator-agent-install

py=/usr/bin/python3
cache=build/cloud-init
tree=$cache/root
download() {
	(cd "$cache/deb" && apt-get download -qq cloud-init 2>&1 |
		grep -v '^W: Download is performed unsandboxed' || true)
	ls "$cache"/deb/cloud-init_*.deb >/dev/null 2>&1
}
if [ ! -x "$tree/usr/bin/cloud-init" ]; then
	rm -rf "$cache"
	mkdir -p "$cache/deb"
	if ! download; then
		apt-get update -qq >/dev/null 2>&1 || true
		download || {
			echo "provision-check: cannot download Debian's cloud-init package (apt-get download cloud-init)" >&2
			exit 1
		}
	fi
	dpkg-deb -x "$cache"/deb/cloud-init_*.deb "$tree"
fi
export PYTHONPATH=$PWD/$tree/usr/lib/python3/dist-packages
schema() { "$py" "$tree/usr/bin/cloud-init" schema --config-file "$1" 2>&1; }

# installer_check FILE: shellcheck's findings on the installer that FILE
# writes (write_files); status 1 then.
installer_check() {
	local root rc=0
	root=$(mktemp -d)
	"$py" tests/provision/write-files.py "$1" "$root"
	shellcheck -s bash "$root$installer" 2>&1 || rc=1
	rm -rf "$root"
	return $rc
}

passed=0 failed=0
fail() { echo "provision-check: FAIL: $*" >&2; failed=$((failed + 1)); }

f=provision/cloud-init.yaml
if out=$(schema "$f") && [ "$out" = "Valid cloud-config: $f" ]; then
	passed=$((passed + 1))
else
	fail "cloud-init schema on $f: $out"
fi

for c in "${bad_cases[@]}"; do
	name=${c%%|*} want=${c#*|}
	if out=$(schema "tests/provision/bad/$name"); then
		fail "broken fixture $name passed cloud-init schema: $out"
	elif [[ $out != *"$want"* ]]; then
		fail "broken fixture $name failed for another reason than \"$want\": $out"
	else
		passed=$((passed + 1))
	fi
done

if out=$(installer_check "$f"); then
	passed=$((passed + 1))
else
	fail "shellcheck on the installer in $f: $out"
fi
if out=$(installer_check tests/provision/bad/installer-shellcheck.yaml); then
	fail "shellcheck passed the unquoted expansion in bad/installer-shellcheck.yaml"
elif [[ $out != *SC2086* ]]; then
	fail "shellcheck failed bad/installer-shellcheck.yaml for another reason than SC2086: $out"
else
	passed=$((passed + 1))
fi

echo "provision-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
