#!/usr/bin/env bash
# root.sh DIR - build (or reuse) the root filesystem the first-boot test
# boots: Debian 12 (debootstrap, minbase) with systemd, cloud-init 22.4,
# PostgreSQL 15 and the runtime libraries the package depends on, standing
# in for the Ubuntu 24.04 GCE image.  Nothing of the agent is in it: the
# test's cloud-config installs the package.
#
# The root is cached in DIR with a stamp holding this file's sha256: it is
# rebuilt only when this recipe changes (delete DIR to force it).  The
# test mounts it read-only as an overlay's lower layer, so boots never
# change it.
#
# Packages come from the Debian mirrors this machine's apt uses.  The
# finished root has no apt sources and no lists: at boot, cloud-init's
# `package_update` and the installer's apt-get find nothing to fetch and
# everything the package needs already installed, as the container has no
# network beyond the test's own namespace.
set -euo pipefail

dir=$1
here=$(cd "$(dirname "$0")" && pwd)
stamp=$(sha256sum "$here/root.sh" | cut -d' ' -f1)
if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
	exit 0
fi

say() { echo "firstboot-root: $*" >&2; }
# The mirrors of this machine's Debian sources (bookworm, -updates,
# -security).
# shellcheck disable=SC2016 # apt's format, not the shell's
mirrors=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
	'Created-By: Packages' 2>/dev/null | awk '$3 == "main" && $2 ~ /^bookworm/' | sort -u)
main=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$mirrors")
[ -n "$main" ] || {
	say "no Debian 12 (bookworm) main source in this machine's apt configuration; run apt-get update"
	exit 1
}

say "building the Debian 12 root in $dir (a few minutes, once; cached until tests/firstboot/root.sh changes)"
rm -rf "$dir" "$dir.tmp"
mkdir -p "$dir.tmp"
log=$dir.log
if ! debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,dbus,iproute2,ca-certificates \
	bookworm "$dir.tmp" "$main" >"$log" 2>&1; then
	say "debootstrap failed; its log: $log"
	tail -n 20 "$log" >&2
	exit 1
fi
awk '{ print "deb " $1 " " $2 " " $3 }' <<<"$mirrors" >"$dir.tmp/etc/apt/sources.list"

# The VM image's packages.  PostgreSQL comes with the image here (on the
# VM cloud-init installs it; the step is the same, apt finds it
# installed).  The libraries are the package's runtime Depends.
pkgs=(
	cloud-init postgresql postgresql-15 postgresql-client-15 curl jq
	e2fsprogs util-linux procps passwd
	libpq5 libjson-c5 libinih1 libssl3 zlib1g libcurl4 libmicrohttpd12 libzstd1
)
# systemd-nspawn without -b: /proc, /sys and /dev set up and torn down by
# nspawn itself; the host's network, for the mirror.
# shellcheck source=tests/firstboot/cgroup.sh
. "$here/cgroup.sh"
cg=oa-firstboot-root-$$
trap 'cg_remove "$cg"' EXIT
if ! (
	cg_enter "$cg"
	exec systemd-nspawn -q --register=no --keep-unit -D "$dir.tmp" \
		env DEBIAN_FRONTEND=noninteractive sh -c \
		"apt-get update -qq && apt-get install -y -qq --no-install-recommends ${pkgs[*]} && apt-get clean"
) >>"$log" 2>&1; then
	say "installing packages into the root failed; its log: $log"
	tail -n 20 "$log" >&2
	exit 1
fi

r=$dir.tmp
# Offline from now on: no sources, no lists.
: >"$r/etc/apt/sources.list"
rm -rf "$r"/var/lib/apt/lists/*
# As on a GCE image: the metadata server by name.
echo "169.254.169.254 metadata.google.internal metadata" >>"$r/etc/hosts"
# cloud-init: the NoCloud seed the test writes; C.UTF-8 (no locales
# package to generate another).
mkdir -p "$r/etc/cloud/cloud.cfg.d"
cat >"$r/etc/cloud/cloud.cfg.d/90-firstboot-test.cfg" <<'EOF'
datasource_list: [NoCloud, None]
locale: C.UTF-8
EOF
# Jobs that want the internet the container does not have.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
	ln -sf /dev/null "$r/etc/systemd/system/$u"
done
# A machine id per boot, as a fresh image has none.
: >"$r/etc/machine-id"
echo "$stamp" >"$r/.stamp"
mv "$r" "$dir"
say "root ready"
