# shellcheck shell=bash
# cgroup.sh - sourced by root.sh and run.sh.  systemd-nspawn --keep-unit
# makes its payload and supervisor cgroups below the cgroup it starts in,
# so each nspawn runs in a cgroup of its own (two containers at once would
# otherwise share /payload), made here and removed with all it holds.

cg_hierarchies=()
for h in systemd unified; do
	[ -d "/sys/fs/cgroup/$h" ] && cg_hierarchies+=("/sys/fs/cgroup/$h")
done
[ ${#cg_hierarchies[@]} -gt 0 ] || cg_hierarchies=(/sys/fs/cgroup)

# cg_enter NAME: move the calling (sub)shell into cgroup NAME, made in each
# hierarchy nspawn uses.
cg_enter() {
	local h
	for h in "${cg_hierarchies[@]}"; do
		mkdir -p "$h/$1"
		echo "$BASHPID" >"$h/$1/cgroup.procs"
	done
}

# cg_remove NAME: kill whatever is left in cgroup NAME, then remove it and
# the cgroups below it, deepest first.
cg_remove() {
	local h p
	for h in "${cg_hierarchies[@]}"; do
		[ -d "$h/$1" ] || continue
		find "$h/$1" -name cgroup.procs -exec cat {} + 2>/dev/null |
			while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
	done
	sleep 0.2
	for h in "${cg_hierarchies[@]}"; do
		[ -d "$h/$1" ] || continue
		find "$h/$1" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}
