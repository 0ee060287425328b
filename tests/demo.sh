#!/usr/bin/env bash
# demo.sh AGENT - what `make demo` shows, run by tests/pgtest.sh beside a
# throwaway PostgreSQL under .demo/ (removed afterwards).
set -euo pipefail
agent=$1
export POSTGRES_DB=orchestrator POSTGRES_USER=postgres PGDATABASE=orchestrator

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" >&2; "$@"; }

step "a throwaway PostgreSQL is running on port $PGPORT (data in .demo/)"
"$OA_PGBIN/createdb" orchestrator

step "the effective configuration, and where each value came from"
show "$agent" config show

step "apply the schema (migrations are built into the binary)"
show "$agent" schema init
step "a second run applies nothing"
show "$agent" schema init
show "$agent" schema status

step "the orchestrator's own client SQL works unchanged"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO tasks (task_id, skill_name, task_type, status, source_repo, target_repo,
                   change_event, relationship_config)
VALUES ('demo-1', 'trigger_consumer_triage', 'consumer_triage', 'queued',
        'acme/api', 'acme/web', '{"commit_sha": "abc123"}', '{"interface_files": ["api.py"]}');
SELECT task_id, task_type, source_repo, target_repo FROM get_next_task('demo-worker');
SELECT update_task_status('demo-1', 'finished', '{"requires_action": false}'::jsonb, NULL);
SELECT task_type, status, count FROM task_statistics;
SELECT status, worker_id, duration_ms IS NOT NULL AS timed FROM task_history ORDER BY id;
SQL

step "enqueue triage tasks: one from options, two more as NDJSON (one COPY)"
id=$(show "$agent" enqueue --type consumer_triage --source acme/api --target acme/web \
	--change-event '{"commit_sha": "abc123", "files": ["api/openapi.yaml"]}' \
	--relationship-config '{"interface_files": ["api/openapi.yaml"]}' | tail -n 1)
echo "$id"
printf '%s\n' \
	'{"task_type": "template_triage", "source_repo": "acme/template", "target_repo": "acme/svc-a", "change_event": {"commit_sha": "def456"}, "relationship_config": {"shared_concerns": ["ci"]}}' \
	'{"task_type": "template_triage", "source_repo": "acme/template", "target_repo": "acme/svc-b", "change_event": {"commit_sha": "def456"}, "relationship_config": {"shared_concerns": ["ci"]}}' |
	show "$agent" enqueue --ndjson -

step "a worker drains the queue: consumer triage through an exec handler (no shell unless asked for), template triage through noop"
cfg=$PGHOST/demo-worker.ini
cat >"$cfg" <<'INI'
[worker]
concurrency = 4
[handler.consumer_triage]
kind = exec
command = /bin/sh -c 'read -r task; echo "{\"requires_action\": true, \"summary\": \"reviewed by the demo handler\"}"'
timeout_seconds = 10
[handler.template_triage]
kind = noop
INI
show "$agent" -c "$cfg" worker --exit-when-empty
show "$agent" status "$id"
show "$agent" stats

step "back up to file:// (pg_dump -> zstd, CRC32C and MD5 on the way), verify every block, restore into a new database"
cat >"$PGHOST/demo-backup.ini" <<INI
[agent]
state_dir = $PGHOST/state
[backup]
target = file://$PGHOST/backups
pg_dump = $OA_PGBIN/pg_dump
pg_restore = $OA_PGBIN/pg_restore
INI
show "$agent" -c "$PGHOST/demo-backup.ini" backup
show "$agent" -c "$PGHOST/demo-backup.ini" backup list
show "$agent" -c "$PGHOST/demo-backup.ini" backup verify latest --restore
show "$agent" -c "$PGHOST/demo-backup.ini" restore latest --to orchestrator_restored
psql -X -q -d orchestrator_restored -c "SELECT status, count(*) FROM tasks GROUP BY status"

step "maintenance (hourly timer): rescue, cleanup in batches, vacuum, reindex; the tasks are too young to delete"
show "$agent" -c "$PGHOST/demo-backup.ini" maintain --dry-run
show "$agent" -c "$PGHOST/demo-backup.ini" maintain

step "doctor: every check on one screen (a worker runs in the background, so queue.workers is ok)"
cat "$cfg" "$PGHOST/demo-backup.ini" >"$PGHOST/demo-all.ini"
"$agent" -q -c "$PGHOST/demo-all.ini" worker &
worker=$!
for _ in $(seq 50); do
	[ "$(psql -X -qAt -c "SELECT count(*) FROM workers WHERE stopped_at IS NULL")" != 0 ] && break
	sleep 0.1
done
show "$agent" -c "$PGHOST/demo-all.ini" doctor
show "$agent" -c "$PGHOST/demo-all.ini" metrics | grep -E '^orchestrator_(queue_tasks|backup_last_success|check_status\{check="db)'
kill -TERM "$worker"
wait "$worker"

step "done; the server and .demo/ are removed on exit"
