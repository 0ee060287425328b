#!/bin/sh
# build.sh WORK OUTDIR VERSION - turn the tree `make install PREFIX=/usr
# DESTDIR=WORK/debian/orchestrator-agent` left (the layout dpkg-shlibdeps
# expects) into OUTDIR/orchestrator-agent_VERSION_ARCH.deb with
# dpkg-dev's tools only (no debhelper), as `make deb` does on Debian 12 and
# on the Ubuntu 24.04 VM.  Prints the package's path.
#
# Depends are computed by dpkg-shlibdeps from the binary's libraries on the
# building machine, plus the packages shipping the libraries the agent
# dlopen()s (libcurl, libmicrohttpd, libzstd), so the package names
# (libcurl4 or libcurl4t64 ...) are those of the distribution it was built
# on.
set -eu

work=$1 out=$2 version=$3
stage=$work/debian/orchestrator-agent
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
bin=$stage/usr/bin/orchestrator-agent

[ -x "$bin" ] || { echo "deb: $bin is missing; run make install first" >&2; exit 1; }

# Debian layout: stripped binary, compressed man page, docs.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$bin"
gzip -9nf "$stage/usr/share/man/man8/orchestrator-agent.8"
install -d "$stage/usr/share/doc/orchestrator-agent"
install -m 0644 "$here/../../README.md" "$stage/usr/share/doc/orchestrator-agent/README.md"
maint=$(sed -n 's/^Maintainer: //p' "$here/control.in")
printf '%s (%s) unstable; urgency=medium\n\n  * Built from source with make deb.\n\n -- %s  %s\n' \
	orchestrator-agent "$version" "$maint" "$(date -R)" |
	gzip -9n > "$stage/usr/share/doc/orchestrator-agent/changelog.gz"

# dpkg-shlibdeps wants a debian/control beside it (a minimal one here)
# and finds the package's root by its DEBIAN directory.
install -d -m 0755 "$stage/DEBIAN"
printf 'Source: orchestrator-agent\n\nPackage: orchestrator-agent\nArchitecture: any\n' \
	> "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O debian/orchestrator-agent/usr/bin/orchestrator-agent | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# agent/dl.c dlopen()s these at first use, so dpkg-shlibdeps cannot see
# them: depend on the package that ships each SONAME here.
for so in libcurl.so.4 libmicrohttpd.so.12 libzstd.so.1; do
	p=$(dpkg-query -S "*/$so" 2>/dev/null |
		sed -n "s|^\([^:, ]*\)\(:$arch\)\{0,1\}: .*/$so\$|\1|p" | head -n 1)
	[ -n "$p" ] || { echo "deb: no installed package ships $so (make deps)" >&2; exit 1; }
	case ", $depends," in
	*", $p,"* | *", $p "*) ;;
	*) depends="$depends, $p" ;;
	esac
done

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
	-e "s|@DEPENDS@|$depends|" "$here/control.in" > "$stage/DEBIAN/control"
install -m 0644 "$here/conffiles" "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$stage/DEBIAN/$s"
done
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
	xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/orchestrator-agent_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
