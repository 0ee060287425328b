#!/usr/bin/env bash
# pgtest.sh - run a command beside a throwaway PostgreSQL.
#
#   tests/pgtest.sh [--dir DIR] run CMD [ARGS...]
#
# Starts a private PostgreSQL (Debian's 15 unless PGBIN says otherwise) in a
# temporary directory (or DIR, which must not exist yet), on a free loopback
# port, runs CMD with PGHOST/PGPORT/PGUSER/PGDATABASE pointing at it, then
# stops the server and removes the directory, whatever CMD's outcome.  When
# run as root the server runs as the unprivileged user oa-pgtest (created on
# first use), since PostgreSQL refuses to run as root.
#
# CMD also gets OA_PGDATA, OA_PGBIN, OA_PGRUNAS and OA_PGCTL (a command line
# that runs pg_ctl for this cluster, e.g. "$OA_PGCTL restart") so tests can
# stop and restart the server.  Exits with CMD's status.
set -euo pipefail

die() { echo "pgtest: $*" >&2; exit 70; }

dir=""
if [ "${1:-}" = "--dir" ]; then
	dir=$2
	shift 2
fi
[ "${1:-}" = "run" ] || die "usage: pgtest.sh [--dir DIR] run CMD [ARGS...]"
shift
[ $# -gt 0 ] || die "usage: pgtest.sh [--dir DIR] run CMD [ARGS...]"

pgbin=${PGBIN:-}
if [ -z "$pgbin" ]; then
	for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ]; then pgbin=$d; break; fi
	done
fi
[ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] ||
	die "no PostgreSQL server binaries found; run 'make deps' (installs postgresql-15)"

runas=""
if [ "$(id -u)" = 0 ]; then
	runas=oa-pgtest
	if ! id "$runas" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$runas" ||
			die "cannot create the unprivileged user $runas"
	fi
fi

as_pg() {
	if [ -n "$runas" ]; then
		runuser -u "$runas" -- "$@"
	else
		"$@"
	fi
}

if [ -n "$dir" ]; then
	[ -e "$dir" ] && die "$dir already exists; remove it or choose another --dir"
	mkdir -p "$dir"
	base=$(cd "$dir" && pwd)
else
	base=$(mktemp -d "${TMPDIR:-/tmp}/oa-pg.XXXXXX")
fi
chmod 0755 "$base"
[ -n "$runas" ] && chown "$runas" "$base"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -f "$base/data/postmaster.pid" ]; then
		as_pg "$pgbin/pg_ctl" -D "$base/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$base/server.log" ] && [ -n "${PGTEST_SHOW_LOG:-}" ]; then
		echo "pgtest: server log:" >&2
		tail -n 50 "$base/server.log" >&2 || true
	fi
	rm -rf "$base"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg "$pgbin/initdb" -D "$base/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync \
	>"$base/initdb.log" 2>&1 || { cat "$base/initdb.log" >&2; die "initdb failed"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	port=$((20000 + RANDOM % 30000))
	port_free "$port" || continue
	cat >"$base/data/postgresql.auto.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$base'
max_connections = 120
shared_buffers = 64MB
fsync = ${PGTEST_FSYNC:-off}
synchronous_commit = ${PGTEST_FSYNC:-off}
full_page_writes = ${PGTEST_FSYNC:-off}
log_min_messages = warning
log_statement = '${PGTEST_LOG_STATEMENT:-none}'
EOF
	[ -n "$runas" ] && chown "$runas" "$base/data/postgresql.auto.conf"
	if as_pg "$pgbin/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 start >/dev/null 2>&1; then
		started=1
		break
	fi
done
[ "$started" = 1 ] || { tail -n 20 "$base/server.log" >&2 || true; die "PostgreSQL did not start"; }

export PGHOST=$base PGPORT=$port PGUSER=postgres PGDATABASE=postgres
export OA_PGDATA=$base/data OA_PGBIN=$pgbin OA_PGRUNAS=$runas OA_PGLOG=$base/server.log
if [ -n "$runas" ]; then
	export OA_PGCTL="runuser -u $runas -- $pgbin/pg_ctl -D $base/data -l $base/server.log -w"
else
	export OA_PGCTL="$pgbin/pg_ctl -D $base/data -l $base/server.log -w"
fi
unset PGPASSWORD PGSERVICE PGSSLMODE DATABASE_URL POSTGRES_HOST POSTGRES_PORT \
	POSTGRES_DB POSTGRES_USER POSTGRES_PASSWORD ORCHESTRATOR_AGENT_CONFIG

set +e
"$@"
rc=$?
set -e
exit "$rc"
