#!/usr/bin/env bash
# check.sh - offline checks of terraform/ (called by make check-run):
#   1. formatting: `terraform fmt -check` when terraform is installed, else
#      hclfmt built from Debian's HCL v2 sources (the hclwrite formatter
#      terraform fmt uses for layout);
#   2. syntax: every .tf / .tftest.hcl parsed by HashiCorp's HCL parser
#      (npm @cdktf/hcl2json, installed into build/npm);
#   3. policies over the parsed HCL, with failing fixtures for each rule
#      (tests/terraform/policy.test.js);
#   4. terraform test with mock providers, only when terraform can install
#      its providers (it needs the registry or a mirror); skipped otherwise.
# OA_TF_FMT=hclfmt forces the Debian formatter even where terraform exists.
# terraform validate is not run: it needs the real providers.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$root/build
mkdir -p "$build"

tf_files() {
	find terraform \( -name .terraform -prune \) -o \
		\( -name '*.tf' -o -name '*.tftest.hcl' \) -type f -print | sort
}

# --- 1. formatting --------------------------------------------------------
fmt=${OA_TF_FMT:-auto}
if [ "$fmt" = auto ]; then
	if command -v terraform >/dev/null; then fmt=terraform; else fmt=hclfmt; fi
fi
case $fmt in
terraform)
	echo "terraform: fmt -check ($(terraform version | head -1))"
	terraform fmt -check -recursive -diff terraform
	;;
hclfmt)
	# GOPATH mode over /usr/share/gocode: no module download.
	hclfmt=$build/hclfmt
	gosrc=/usr/share/gocode/src/github.com/hashicorp/hcl/v2
	if [ ! -x "$hclfmt" ] || [ "$gosrc/cmd/hclfmt/main.go" -nt "$hclfmt" ]; then
		command -v go >/dev/null && [ -d "$gosrc" ] || {
			echo "terraform: no terraform and no golang-go + golang-github-hashicorp-hcl-v2-dev to build hclfmt (run make deps)" >&2
			exit 1
		}
		GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE=$build/go-cache \
			go build -o "$hclfmt" github.com/hashicorp/hcl/v2/cmd/hclfmt
	fi
	echo "terraform: formatting checked with hclfmt (hclwrite from Debian's golang-github-hashicorp-hcl-v2-dev)"
	bad=0
	while read -r f; do
		if ! "$hclfmt" "$f" | diff -u --label "$f" --label "$f (formatted)" "$f" -; then
			bad=1
		fi
	done < <(tf_files)
	# terraform fmt also unwraps interpolation-only strings; hclwrite does not.
	if grep -nE '=[[:space:]]*"\$\{[^"{}]*\}"[[:space:]]*$' $(tf_files); then
		echo "terraform: interpolation-only strings above: write the expression without \"\${...}\"" >&2
		bad=1
	fi
	[ $bad = 0 ] || { echo "terraform: files above are not formatted (terraform fmt -recursive terraform)" >&2; exit 1; }
	;;
*)
	echo "terraform: OA_TF_FMT must be auto, terraform or hclfmt" >&2
	exit 64
	;;
esac

# --- 2 and 3. syntax and policies -------------------------------------------
npmdir=$build/npm
# Node keeps its own list of root CAs; trust the system's as well, so a
# registry reached through a proxy with a locally installed CA verifies.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
	export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
if ! cmp -s tests/terraform/package-lock.json "$npmdir/package-lock.json" ||
	[ ! -f "$npmdir/node_modules/@cdktf/hcl2json/package.json" ]; then
	command -v npm >/dev/null || { echo "terraform: npm not installed (run make deps)" >&2; exit 1; }
	rm -rf "$npmdir"
	mkdir -p "$npmdir"
	cp tests/terraform/package.json tests/terraform/package-lock.json "$npmdir/"
	(cd "$npmdir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >/dev/null)
fi
NODE_PATH=$npmdir/node_modules node --test --test-reporter=spec tests/terraform/policy.test.js

# --- 4. terraform test ----------------------------------------------------
if ! command -v terraform >/dev/null; then
	echo "terraform: skipped: terraform test (terraform is not installed)"
	exit 0
fi
# A copy, so init's .terraform and lock file stay out of the work tree.
work=$build/terraform-test
rm -rf "$work"
mkdir -p "$work/provision"
cp -r terraform "$work/"
if [ -f provision/cloud-init.yaml ]; then
	cp provision/cloud-init.yaml "$work/provision/"
else
	printf '#cloud-config\n{}\n' > "$work/provision/cloud-init.yaml"
fi
ex=$work/terraform/examples/complete
if ! timeout 300 terraform -chdir="$ex" init -backend=false -input=false -no-color \
	> "$work/init.log" 2>&1; then
	echo "terraform: skipped: terraform test (providers unavailable offline; terraform init failed:" \
		"$(grep -m1 -E 'Error:' "$work/init.log" || tail -1 "$work/init.log"))"
	exit 0
fi
terraform -chdir="$ex" test -test-directory=../../tests -no-color
