-- 0001 baseline: the published design's schema, made to load on PostgreSQL.
--
-- The published postgres_schema.sql used MySQL-style "INDEX name (col)"
-- clauses inside CREATE TABLE, so on PostgreSQL only `repositories` and the
-- functions were created.  Tables therefore use IF NOT EXISTS and the seed's
-- functions are dropped first: a database left half-loaded by the old guide
-- is adopted instead of refused.  Object names and function signatures are
-- the seed's, so the orchestrator's client SQL runs unchanged.
--
-- Applied inside one transaction by `orchestrator-agent schema init`; do not
-- add BEGIN/COMMIT here.

CREATE TABLE IF NOT EXISTS tasks (
    task_id             VARCHAR(64)  PRIMARY KEY,
    skill_name          VARCHAR(100) NOT NULL,
    task_type           VARCHAR(50)  NOT NULL,
    status              VARCHAR(20)  NOT NULL DEFAULT 'queued',
    source_repo         VARCHAR(255) NOT NULL,
    target_repo         VARCHAR(255) NOT NULL,
    change_event        JSONB        NOT NULL,
    relationship_config JSONB        NOT NULL,
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    started_at          TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    result              JSONB,
    error               TEXT,
    worker_id           VARCHAR(100),
    attempt_count       INTEGER      NOT NULL DEFAULT 0,
    max_attempts        INTEGER      NOT NULL DEFAULT 3,
    -- Named so later migrations can widen them (ALTER ... DROP CONSTRAINT).
    CONSTRAINT tasks_status_check
        CHECK (status IN ('queued', 'started', 'finished', 'failed')),
    CONSTRAINT tasks_task_type_check CHECK (task_type <> ''),
    CONSTRAINT tasks_attempts_check
        CHECK (attempt_count >= 0 AND max_attempts >= 1)
);

CREATE INDEX IF NOT EXISTS idx_tasks_status      ON tasks (status);
CREATE INDEX IF NOT EXISTS idx_tasks_created_at  ON tasks (created_at);
CREATE INDEX IF NOT EXISTS idx_tasks_source_repo ON tasks (source_repo);
CREATE INDEX IF NOT EXISTS idx_tasks_target_repo ON tasks (target_repo);
CREATE INDEX IF NOT EXISTS idx_tasks_type        ON tasks (task_type);
CREATE INDEX IF NOT EXISTS idx_tasks_queued      ON tasks (created_at)
    WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS idx_tasks_processing  ON tasks (started_at)
    WHERE status = 'started';

-- BIGSERIAL rather than the seed's SERIAL: a busy queue writes several
-- history rows per task and would exhaust 2^31 ids.
CREATE TABLE IF NOT EXISTS task_history (
    id          BIGSERIAL    PRIMARY KEY,
    task_id     VARCHAR(64)  NOT NULL
                REFERENCES tasks (task_id) ON DELETE CASCADE,
    status      VARCHAR(20)  NOT NULL,
    "timestamp" TIMESTAMPTZ  NOT NULL DEFAULT now(),
    worker_id   VARCHAR(100),
    error       TEXT,
    duration_ms INTEGER
);

-- Also serves the ON DELETE CASCADE from tasks.
CREATE INDEX IF NOT EXISTS idx_history_task_id   ON task_history (task_id);
CREATE INDEX IF NOT EXISTS idx_history_timestamp ON task_history ("timestamp");

CREATE TABLE IF NOT EXISTS triage_results_cache (
    id                SERIAL       PRIMARY KEY,
    source_repo       VARCHAR(255) NOT NULL,
    target_repo       VARCHAR(255) NOT NULL,
    commit_sha        VARCHAR(40)  NOT NULL,
    relationship_type VARCHAR(50)  NOT NULL,
    requires_action   BOOLEAN      NOT NULL,
    urgency           VARCHAR(20),
    impact_summary    TEXT,
    confidence        FLOAT,
    result_data       JSONB        NOT NULL,
    created_at        TIMESTAMPTZ  DEFAULT now(),
    expires_at        TIMESTAMPTZ,
    UNIQUE (source_repo, target_repo, commit_sha)
);

CREATE INDEX IF NOT EXISTS idx_cache_repos   ON triage_results_cache (source_repo, target_repo);
CREATE INDEX IF NOT EXISTS idx_cache_expires ON triage_results_cache (expires_at);

CREATE TABLE IF NOT EXISTS repositories (
    id         SERIAL       PRIMARY KEY,
    repo_name  VARCHAR(255) UNIQUE NOT NULL,
    repo_type  VARCHAR(50)  DEFAULT 'service_provider',
    metadata   JSONB,
    created_at TIMESTAMPTZ  DEFAULT now(),
    updated_at TIMESTAMPTZ  DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dependency_relationships (
    id                 SERIAL      PRIMARY KEY,
    source_repo_id     INTEGER     NOT NULL
                       REFERENCES repositories (id) ON DELETE CASCADE,
    target_repo_id     INTEGER     NOT NULL
                       REFERENCES repositories (id) ON DELETE CASCADE,
    relationship_type  VARCHAR(50) NOT NULL,
    interface_files    JSONB,
    change_triggers    JSONB,
    shared_concerns    JSONB,
    divergent_concerns JSONB,
    urgency_mapping    JSONB,
    metadata           JSONB,
    created_at         TIMESTAMPTZ DEFAULT now(),
    updated_at         TIMESTAMPTZ DEFAULT now(),
    CONSTRAINT dependency_relationships_type_check
        CHECK (relationship_type IN ('api_consumer', 'template_fork')),
    UNIQUE (source_repo_id, target_repo_id, relationship_type)
);

CREATE INDEX IF NOT EXISTS idx_relationships_source ON dependency_relationships (source_repo_id);
CREATE INDEX IF NOT EXISTS idx_relationships_target ON dependency_relationships (target_repo_id);

-- The seed declared updated_at but never maintained it.
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS repositories_updated_at ON repositories;
CREATE TRIGGER repositories_updated_at
    BEFORE UPDATE ON repositories
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS dependency_relationships_updated_at ON dependency_relationships;
CREATE TRIGGER dependency_relationships_updated_at
    BEFORE UPDATE ON dependency_relationships
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The seed's functions may exist from the old guide with other return types.
DROP FUNCTION IF EXISTS cleanup_old_tasks();
DROP FUNCTION IF EXISTS get_next_task(VARCHAR);
DROP FUNCTION IF EXISTS update_task_status(VARCHAR, VARCHAR, JSONB, TEXT);

-- Claim the oldest claimable task for a worker (seed signature).
CREATE FUNCTION get_next_task(worker_id_param VARCHAR)
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
           AND t.attempt_count < t.max_attempts
         ORDER BY t.created_at
         LIMIT 1
           FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE tasks t
           SET status = 'started',
               started_at = now(),
               ended_at = NULL,
               worker_id = worker_id_param,
               attempt_count = t.attempt_count + 1
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

-- Set a task's status and record it in task_history (seed signature).
-- Unlike the seed, an unknown task_id is an error rather than a silent no-op,
-- and the history row carries the run's duration.
CREATE FUNCTION update_task_status(
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
    v_final   BOOLEAN := status_param IN ('finished', 'failed');
BEGIN
    UPDATE tasks t
       SET status = status_param,
           ended_at = CASE WHEN v_final THEN v_end END,
           result = COALESCE(result_param, t.result),
           error = error_param
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

-- Delete ended tasks (and, by cascade, their history) older than the
-- retention, and expired cache rows.  The seed deleted queued and started
-- tasks too; this never does.  Returns the number of tasks deleted.
CREATE FUNCTION cleanup_old_tasks(retention INTERVAL DEFAULT INTERVAL '7 days')
RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
BEGIN
    DELETE FROM tasks
     WHERE status IN ('finished', 'failed')
       AND COALESCE(ended_at, created_at) < now() - retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM triage_results_cache WHERE expires_at < now();
    RETURN n;
END;
$$;

CREATE OR REPLACE VIEW task_statistics AS
SELECT task_type,
       status,
       COUNT(*) AS count,
       AVG(EXTRACT(EPOCH FROM (ended_at - started_at))) AS avg_duration_seconds,
       MAX(ended_at) AS last_completed
  FROM tasks
 WHERE ended_at IS NOT NULL
 GROUP BY task_type, status;
