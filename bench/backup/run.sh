#!/usr/bin/env bash
# run.sh - the backup benchmark: orchestrator-agent backup (zstd) to file://
# and to the project's fake Cloud Storage, against pg_dump -Fc -Z0 to
# /dev/null (the floor: what it costs just to read the database) and
# pg_dump -Fc (gzip level 6) to a file (what was done before).
#
#   bench/backup/run.sh [AGENT_BIN]      (make bench-backup passes it)
#
# Knobs: BENCH_SCALE [70] pgbench scale (70 is about 1 GB of tables),
# BENCH_RUNS [3] runs per system (median reported).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
agent=${1:-${AGENT_BIN:-$root/build/orchestrator-agent}}
case $agent in /*) ;; *) agent=$PWD/$agent ;; esac
export AGENT=$agent BENCH_SCALE=${BENCH_SCALE:-70} BENCH_RUNS=${BENCH_RUNS:-3}
PGTEST_FSYNC=on exec "$root/tests/pgtest.sh" run bash "$here/inner.sh"
