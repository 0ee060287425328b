#!/usr/bin/env bash
# deps.sh [--quiet] - install every build and test dependency from Debian
# packages.  Safe to re-run: when all are present it does nothing.
set -euo pipefail

pkgs=(
	gcc make pkg-config util-linux e2fsprogs bc
	libpq-dev libjson-c-dev libinih-dev libssl-dev
	libcurl4-openssl-dev libzstd-dev zlib1g-dev libmicrohttpd-dev
	libcriterion-dev
	postgresql-15 postgresql-client-15
	python3 python3-crcmod python3-cryptography python3-prometheus-client
	systemd procps dpkg-dev shellcheck curl jq unzip openssl
	python3-yaml python3-jsonschema python3-configobj python3-jsonpatch
	python3-requests python3-oauthlib
	git iproute2 debootstrap systemd-container
)
# systemd-container is installed without its recommended libnss-mymachines
# (--no-install-recommends below), which would edit /etc/nsswitch.conf.
# tests/terraform/check.sh: node runs the HCL parser (npm @cdktf/hcl2json).
# A NodeSource nodejs ships npm itself and conflicts with Debian's npm.
pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
# Without terraform, formatting is checked with hclfmt built from Debian's
# HCL sources.
command -v terraform >/dev/null || pkgs+=(golang-go golang-github-hashicorp-hcl-v2-dev)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	[ "${1:-}" = "--quiet" ] || echo "deps: all ${#pkgs[@]} packages are installed"
	exit 0
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 77; }
	sudo=(sudo)
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
