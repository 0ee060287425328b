#!/bin/sh
# version.sh [SRCDIR] - print the agent's version: the one source for
# `orchestrator-agent --version`, the worker registry, the user agents and
# the package `make deb` builds.  Every commit must give a new version that
# dpkg sorts above the one before, or `apt-get install ./x.deb` keeps the
# old binary ("already the newest version").
#
#   git checkout, a tag v[0-9]* reachable:  X.Y.Z+N.gSHA12 (N commits since
#                                           vX.Y.Z)
#   git checkout, no such tag:              0.1.0+N.gSHA12 (N commits in all)
#   either, tracked files modified:         ...+dirty
#   no checkout (make dist's tarball):      the first line of SRCDIR/VERSION
#
# The first tag must be above 0.1.0 (v0.2.0): v0.1.0 itself would restart N
# at 0 and sort below the untagged builds before it.
set -eu

base=0.1.0
src=$(cd "${1:-$(dirname "$0")/..}" && pwd -P)

die() { echo "version: $*" >&2; exit 1; }

# Debian's rules for a native package's version: a digit first, then
# alphanumerics and . + ~ (no '-': that would start a Debian revision).
valid() {
	case $1 in
	'' | [!0-9]* | *[!0-9A-Za-z.+~]*) return 1 ;;
	esac
}

# A hook or `git rebase -x` exports these; they would point git elsewhere.
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_COMMON_DIR

# Only SRCDIR's own repository counts: a tarball unpacked inside another
# checkout must not take that project's commits for its own.
if [ -e "$src/.git" ]; then
	command -v git >/dev/null ||
		die "$src is a git checkout but git is not installed (apt-get install git)"
	top=$(git -C "$src" rev-parse --show-toplevel) ||
		die "git cannot read the checkout $src (see its message above)"
	[ "$(cd "$top" && pwd -P)" = "$src" ] ||
		die "git says $src belongs to $top; build from the checkout's top directory"
	sha=$(git -C "$src" rev-parse --verify HEAD) ||
		die "$src has no commit yet"
	sha=$(echo "$sha" | cut -c1-12)
	if [ "$(git -C "$src" rev-parse --is-shallow-repository)" != false ]; then
		# A shallow clone counts only the commits it fetched.  It still
		# builds (a CI checkout may be shallow), as
		# BASE+0.COUNT.gSHA+shallow: above the clone's own earlier
		# commits, below every real build, so the VM's installer keeps
		# what it has rather than take it for an upgrade.
		echo "version: $src is a shallow clone, so its commit count is not the real one;" \
			"building as a +shallow version that no VM takes for an upgrade" \
			"(git fetch --unshallow gives the real one)" >&2
		ver=$base
		n=0.$(git -C "$src" rev-list --count HEAD)
		sha=$sha+shallow
	elif desc=$(git -C "$src" describe --tags --long --abbrev=12 \
	    --match 'v[0-9]*' HEAD 2>/dev/null); then
		# vX.Y.Z-N-gSHA: the tag itself may contain '-'.
		rest=${desc%-g*}
		n=${rest##*-}
		ver=${rest%-*}
		ver=${ver#v}
		valid "$ver" ||
			die "tag v$ver is not a Debian version (digits, letters, . + ~); tag as vX.Y.Z"
	else
		ver=$base
		n=$(git -C "$src" rev-list --count HEAD)
	fi
	v=$ver+$n.g$sha
	# status refreshes the index in memory, so a touched but unchanged
	# file does not count; untracked files (build/) never do.
	if [ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
		v=$v+dirty
	fi
	echo "$v"
	exit 0
fi

if [ -f "$src/VERSION" ]; then
	v=$(sed -n 1p "$src/VERSION")
	valid "$v" || die "$src/VERSION holds '$v', not a version (make dist writes it)"
	echo "$v"
	exit 0
fi

die "$src is neither a git checkout nor a source archive with a VERSION file; build from a clone or from the tarball 'make dist' writes"
