-- 0003 maintenance: autovacuum settings for a queue's tables.
--
-- The defaults suit tables that mostly grow: autovacuum waits until 20% of
-- a table is dead rows.  A queue is the opposite: every task is inserted,
-- updated two to four times (claim, lease renewals, result) and finally
-- deleted by `maintain cleanup`, so at a million rows the defaults let
-- 200,000 dead versions pile up between vacuums, and the claim index scans
-- wade through them.  These settings make autovacuum visit the queue
-- tables after about 1% of change and let it work faster while there.
-- `orchestrator-agent maintain vacuum` adds a VACUUM (ANALYZE) each run.
--
-- ALTER TABLE ... SET (...) takes only a SHARE UPDATE EXCLUSIVE lock: the
-- worker and the orchestrator's client keep running.

-- High churn: vacuum after 1% (plus 1,000 rows) is dead, analyze after
-- 2%, and a tenfold cost limit so one pass finishes quickly.
ALTER TABLE tasks SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_cost_limit = 2000
);

-- Insert-heavy (a row per transition) and deleted in bulk by cleanup:
-- vacuum after 5% of new rows, so the visibility map keeps up and the
-- cleanup's deletions are reclaimed.
ALTER TABLE task_history SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_limit = 2000
);

-- A few rows, each updated by a heartbeat every 15 seconds per worker:
-- room on the page for HOT updates, and vacuum often.
ALTER TABLE workers SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 200
);

-- Expired rows are deleted by cleanup.
ALTER TABLE triage_results_cache SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);
