#!/usr/bin/env bash
# inner.sh - runs beside the benchmark's PostgreSQL (see run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/oa-bench-backup.XXXXXX")
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export PGDATABASE=bench POSTGRES_DB=bench POSTGRES_USER=postgres

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "pgbench -i -s $BENCH_SCALE"
"$OA_PGBIN/createdb" bench
"$OA_PGBIN/pgbench" -q -i -s "$BENCH_SCALE" bench >/dev/null 2>&1
"$AGENT" schema init >/dev/null
size=$(psql -Atc "select pg_database_size('bench')")
log "database: $((size / 1048576)) MiB"

now() { date +%s.%N; }

# Run a command, sampling the peak RSS of the process it starts.
# Prints: seconds peak_kib
timed() {
	local t0 t1 pid peak=0 hwm
	t0=$(now)
	"$@" >/dev/null &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
		[ -n "$hwm" ] && [ "$hwm" -gt "$peak" ] && peak=$hwm
		sleep 0.05
	done
	wait "$pid"
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc -l) $peak"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

floor_t=(); gzip_t=(); file_t=(); gcs_t=(); gzip_b=0; file_b=0; gcs_b=0; file_rss=0; gcs_rss=0

/usr/bin/python3 "$root/tests/fakegcs/server.py" --port 0 --port-file "$work/port" \
	--data-dir "$work/gcs" --bucket bench >/dev/null 2>&1 &
fake_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

cat >"$work/file.ini" <<INI
[agent]
state_dir = $work/state
[backup]
target = file://$work/file
pg_dump = $OA_PGBIN/pg_dump
INI
cat >"$work/gcs.ini" <<INI
[agent]
state_dir = $work/state
[backup]
target = gs://bench/pg
pg_dump = $OA_PGBIN/pg_dump
INI

for run in $(seq 1 "$BENCH_RUNS"); do
	log "run $run/$BENCH_RUNS: pg_dump -Fc -Z0 > /dev/null"
	read -r t _ < <(timed sh -c "'$OA_PGBIN/pg_dump' -Fc -Z0 bench > /dev/null")
	floor_t+=("$t")
	log "run $run/$BENCH_RUNS: pg_dump -Fc (gzip-6) > file"
	read -r t _ < <(timed sh -c "'$OA_PGBIN/pg_dump' -Fc bench > '$work/gzip.dump'")
	gzip_t+=("$t"); gzip_b=$(stat -c %s "$work/gzip.dump"); rm -f "$work/gzip.dump"
	log "run $run/$BENCH_RUNS: orchestrator-agent backup -> file://"
	rm -rf "$work/file"
	read -r t rss < <(timed "$AGENT" -q -c "$work/file.ini" backup)
	file_t+=("$t"); [ "$rss" -gt "$file_rss" ] && file_rss=$rss
	file_b=$(find "$work/file" -name '*.dump.zst' -exec stat -c %s {} +)
	log "run $run/$BENCH_RUNS: orchestrator-agent backup -> gs:// (fake)"
	read -r t rss < <(STORAGE_EMULATOR_HOST=127.0.0.1:$port timed "$AGENT" -q -c "$work/gcs.ini" backup)
	gcs_t+=("$t"); [ "$rss" -gt "$gcs_rss" ] && gcs_rss=$rss
	gcs_b=$(find "$work/gcs/objects" -type f -size +1k -printf '%s\n' 2>/dev/null | sort -n | tail -n 1)
	sleep 1	# object names have one-second resolution
done

fl=$(printf '%s\n' "${floor_t[@]}" | median)
gz=$(printf '%s\n' "${gzip_t[@]}" | median)
fi=$(printf '%s\n' "${file_t[@]}" | median)
gc=$(printf '%s\n' "${gcs_t[@]}" | median)
printf '\ndatabase %d MiB (pgbench scale %s), %s runs, medians\n\n' "$((size / 1048576))" "$BENCH_SCALE" "$BENCH_RUNS"
printf '%-44s %10s %10s %14s %10s\n' system "wall s" "x floor" "stored MiB" "x gzip-6"
printf '%-44s %10.2f %10s %14s %10s\n' "pg_dump -Fc -Z0 > /dev/null (floor)" "$fl" "1.00" "-" "-"
printf '%-44s %10.2f %10.2f %14.1f %10s\n' "pg_dump -Fc (gzip-6) > file" "$gz" "$(echo "$gz / $fl" | bc -l)" "$(echo "$gzip_b / 1048576" | bc -l)" "1.00"
printf '%-44s %10.2f %10.2f %14.1f %10.2f\n' "orchestrator-agent backup, zstd -> file://" "$fi" "$(echo "$fi / $fl" | bc -l)" "$(echo "$file_b / 1048576" | bc -l)" "$(echo "$file_b / $gzip_b" | bc -l)"
printf '%-44s %10.2f %10.2f %14.1f %10.2f\n' "orchestrator-agent backup, zstd -> gs:// fake" "$gc" "$(echo "$gc / $fl" | bc -l)" "$(echo "${gcs_b:-0} / 1048576" | bc -l)" "$(echo "${gcs_b:-0} / $gzip_b" | bc -l)"
printf '\npeak RSS of the agent: file:// %.1f MiB, gs:// %.1f MiB (targets: <= 1.15x floor wall time, <= 0.8x gzip-6 bytes, <= 32 MiB)\n' \
	"$(echo "$file_rss / 1024" | bc -l)" "$(echo "$gcs_rss / 1024" | bc -l)"
