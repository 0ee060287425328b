-- 0002 worker: scheduling, leases, cancellation, wake-ups and the worker
-- registry for the built-in worker.  The seed's client SQL keeps working:
-- new columns have defaults and the seed's functions keep their signatures.

ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('queued', 'started', 'finished', 'failed', 'cancelled'));

ALTER TABLE tasks
    -- Not before this time (retry backoff, --run-at).
    ADD COLUMN run_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Higher runs first.
    ADD COLUMN priority         INTEGER     NOT NULL DEFAULT 0,
    -- Set while a worker holds the task; extended while its handler runs.
    -- NULL for tasks claimed by older clients through get_next_task().
    ADD COLUMN lease_expires_at TIMESTAMPTZ,
    -- Set by `orchestrator-agent cancel` for a running task.
    ADD COLUMN cancel_requested BOOLEAN     NOT NULL DEFAULT false;

-- What workers claim: queued, due, by priority then time.
CREATE INDEX idx_tasks_claim ON tasks (priority DESC, run_at, created_at)
    WHERE status = 'queued';
-- What rescue looks at.
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at)
    WHERE status = 'started';

CREATE TABLE workers (
    worker_id    VARCHAR(100) PRIMARY KEY,
    host         TEXT         NOT NULL,
    pid          INTEGER      NOT NULL,
    version      TEXT         NOT NULL,
    task_types   TEXT[]       NOT NULL,
    concurrency  INTEGER      NOT NULL,
    started_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    stopped_at   TIMESTAMPTZ
);

-- Wake workers for tasks inserted by any client (the seed's Python INSERT
-- included) and for requeued tasks.  PostgreSQL folds identical
-- notifications within a transaction, and the insert trigger fires once per
-- statement, so a bulk load or COPY sends one.
CREATE FUNCTION tasks_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orchestrator_tasks', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_insert
    AFTER INSERT ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_notify();

CREATE TRIGGER tasks_notify_requeue
    AFTER UPDATE OF status ON tasks
    FOR EACH ROW
    WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION tasks_notify();

-- Same signature as before; now honours run_at and priority.  Tasks claimed
-- here carry no lease (the caller does not renew one): reset_stuck_tasks()
-- rescues them by age instead.
CREATE OR REPLACE FUNCTION get_next_task(worker_id_param VARCHAR)
RETURNS TABLE (
    task_id             VARCHAR,
    skill_name          VARCHAR,
    task_type           VARCHAR,
    source_repo         VARCHAR,
    target_repo         VARCHAR,
    change_event        JSONB,
    relationship_config JSONB
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH next AS (
        SELECT t.task_id
          FROM tasks t
         WHERE t.status = 'queued'
           AND t.run_at <= now()
           AND t.attempt_count < t.max_attempts
         ORDER BY t.priority DESC, t.run_at, t.created_at
         LIMIT 1
           FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE tasks t
           SET status = 'started',
               started_at = now(),
               ended_at = NULL,
               worker_id = worker_id_param,
               attempt_count = t.attempt_count + 1,
               lease_expires_at = NULL
          FROM next
         WHERE t.task_id = next.task_id
        RETURNING t.task_id, t.skill_name, t.task_type, t.source_repo,
                  t.target_repo, t.change_event, t.relationship_config
    ), history AS (
        INSERT INTO task_history (task_id, status, worker_id)
        SELECT c.task_id, 'started', worker_id_param FROM claimed c
    )
    SELECT c.task_id, c.skill_name, c.task_type, c.source_repo,
           c.target_repo, c.change_event, c.relationship_config
      FROM claimed c;
END;
$$;

CREATE OR REPLACE FUNCTION update_task_status(
    task_id_param VARCHAR,
    status_param  VARCHAR,
    result_param  JSONB DEFAULT NULL,
    error_param   TEXT  DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_started TIMESTAMPTZ;
    v_worker  VARCHAR(100);
    v_end     TIMESTAMPTZ := clock_timestamp();
    v_final   BOOLEAN := status_param IN ('finished', 'failed', 'cancelled');
BEGIN
    UPDATE tasks t
       SET status = status_param,
           ended_at = CASE WHEN v_final THEN v_end END,
           result = COALESCE(result_param, t.result),
           error = error_param,
           lease_expires_at = NULL
     WHERE t.task_id = task_id_param
    RETURNING t.started_at, t.worker_id INTO v_started, v_worker;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'update_task_status: no task with task_id %',
            task_id_param USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO task_history (task_id, status, worker_id, error, duration_ms)
    VALUES (task_id_param, status_param, v_worker, error_param,
            CASE WHEN v_final AND v_started IS NOT NULL THEN
                LEAST(EXTRACT(EPOCH FROM (v_end - v_started)) * 1000,
                      2147483647)::integer
            END);
END;
$$;

CREATE OR REPLACE FUNCTION cleanup_old_tasks(retention INTERVAL DEFAULT INTERVAL '7 days')
RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
BEGIN
    DELETE FROM tasks
     WHERE status IN ('finished', 'failed', 'cancelled')
       AND COALESCE(ended_at, created_at) < now() - retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM triage_results_cache WHERE expires_at < now();
    RETURN n;
END;
$$;

-- Rescue tasks abandoned by dead workers: 'started' with an expired lease,
-- or with no lease (claimed by an older client) and started longer ago than
-- unleased_after.  Requeued while attempts remain, else failed with the
-- reason.  Also fails queued tasks that have no attempts left, which
-- nothing would ever claim.  Never touches a task whose lease is fresh, and
-- skips rows another session has locked, so it is safe beside live workers.
CREATE FUNCTION reset_stuck_tasks(
    unleased_after INTERVAL DEFAULT INTERVAL '10 minutes',
    dry_run        BOOLEAN  DEFAULT false
) RETURNS TABLE (
    task_id       VARCHAR,
    action        TEXT,
    worker_id     VARCHAR,
    attempt_count INTEGER,
    max_attempts  INTEGER,
    stuck_since   TIMESTAMPTZ
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF dry_run THEN
        RETURN QUERY
        SELECT t.task_id,
               CASE WHEN t.status = 'queued' OR t.attempt_count >= t.max_attempts
                    THEN 'fail' ELSE 'requeue' END,
               t.worker_id, t.attempt_count, t.max_attempts,
               COALESCE(t.lease_expires_at, t.started_at, t.created_at)
          FROM tasks t
         WHERE (t.status = 'started'
                AND ((t.lease_expires_at IS NOT NULL AND t.lease_expires_at < now())
                  OR (t.lease_expires_at IS NULL AND t.started_at < now() - unleased_after)))
            OR (t.status = 'queued' AND t.attempt_count >= t.max_attempts)
         ORDER BY t.task_id;
        RETURN;
    END IF;
    RETURN QUERY
    WITH stuck AS (
        SELECT t.task_id
          FROM tasks t
         WHERE (t.status = 'started'
                AND ((t.lease_expires_at IS NOT NULL AND t.lease_expires_at < now())
                  OR (t.lease_expires_at IS NULL AND t.started_at < now() - unleased_after)))
            OR (t.status = 'queued' AND t.attempt_count >= t.max_attempts)
           FOR UPDATE SKIP LOCKED
    ), old AS (
        SELECT t.task_id, t.status, t.worker_id,
               COALESCE(t.lease_expires_at, t.started_at, t.created_at) AS since
          FROM tasks t JOIN stuck USING (task_id)
    ), upd AS (
        UPDATE tasks t
           SET status = CASE WHEN o.status = 'started'
                              AND t.attempt_count < t.max_attempts
                             THEN 'queued' ELSE 'failed' END,
               run_at = now(),
               lease_expires_at = NULL,
               ended_at = CASE WHEN o.status = 'started'
                                AND t.attempt_count < t.max_attempts
                               THEN NULL ELSE clock_timestamp() END,
               error = CASE
                   WHEN o.status = 'queued' THEN
                       format('no attempts left (%s of %s used); not run',
                              t.attempt_count, t.max_attempts)
                   WHEN t.attempt_count < t.max_attempts THEN t.error
                   ELSE format('abandoned by worker %s (stuck since %s) '
                               'with no attempts left (%s of %s)',
                               COALESCE(o.worker_id, '(unknown)'), o.since,
                               t.attempt_count, t.max_attempts)
               END
          FROM old o
         WHERE t.task_id = o.task_id
        RETURNING t.task_id, t.status, o.worker_id, t.attempt_count,
                  t.max_attempts, o.since, t.error
    ), history AS (
        INSERT INTO task_history (task_id, status, worker_id, error)
        SELECT u.task_id,
               CASE WHEN u.status = 'queued' THEN 'rescued' ELSE 'failed' END,
               u.worker_id,
               CASE WHEN u.status = 'queued'
                    THEN 'lease expired; requeued by reset_stuck_tasks'
                    ELSE u.error END
          FROM upd u
    )
    SELECT u.task_id,
           CASE WHEN u.status = 'queued' THEN 'requeue' ELSE 'fail' END,
           u.worker_id, u.attempt_count, u.max_attempts, u.since
      FROM upd u
     ORDER BY u.task_id;
END;
$$;
