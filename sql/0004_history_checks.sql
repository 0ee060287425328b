-- 0004 history checks: task_history's link to tasks, checked per statement.
--
-- The baseline declared task_history.task_id a foreign key to tasks.  Its
-- check runs once per inserted row and locks the task row (FOR KEY SHARE);
-- with two history rows per task that cost a third of the worker's
-- throughput.  These triggers keep both of its guarantees, once per
-- statement:
--   * a history row must name an existing task (checked after each INSERT
--     or UPDATE of task_history, with one anti-join over the new rows);
--   * deleting or truncating tasks deletes their history (the old ON
--     DELETE CASCADE, and TRUNCATE tasks no longer needs CASCADE).
-- Every writer of history (the worker, the seed's functions,
-- reset_stuck_tasks, cancel and retry) updates the task row in the same
-- statement or transaction, which locks it until commit, so the lock the
-- foreign key took added nothing for them.

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
         WHERE conrelid = 'task_history'::regclass AND contype = 'f'
           AND confrelid = 'tasks'::regclass
    LOOP
        EXECUTE format('ALTER TABLE task_history DROP CONSTRAINT %I',
                       c.conname);
    END LOOP;
END;
$$;

-- The joins below must probe the indexes row by row: the transition
-- tables have no statistics, and a hash join would read all of tasks (or
-- all of task_history) once per statement.
CREATE FUNCTION task_history_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    missing VARCHAR;
BEGIN
    SELECT n.task_id INTO missing
      FROM (SELECT DISTINCT task_id FROM new_rows) n
     WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = n.task_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'task_history: no task with task_id %',
            coalesce(missing, 'NULL')
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'insert the task into tasks first';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER task_history_task_exists
    AFTER INSERT ON task_history
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_history_check();

CREATE TRIGGER task_history_task_exists_upd
    AFTER UPDATE ON task_history
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_history_check();

CREATE FUNCTION tasks_delete_history() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
BEGIN
    DELETE FROM task_history h USING old_rows o WHERE h.task_id = o.task_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_delete_history
    AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_delete_history();

CREATE FUNCTION tasks_truncate_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE task_history;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_truncate_history
    AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_truncate_history();

-- The foreign key also refused renaming a task that has history.  Only an
-- UPDATE that sets task_id fires this, so the worker's updates never do.
CREATE FUNCTION tasks_check_rename() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = OLD.task_id) THEN
        RAISE EXCEPTION 'tasks: task % has history rows; its task_id cannot change',
            OLD.task_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER tasks_check_rename
    BEFORE UPDATE OF task_id ON tasks
    FOR EACH ROW WHEN (OLD.task_id IS DISTINCT FROM NEW.task_id)
    EXECUTE FUNCTION tasks_check_rename();

-- History is append-only and its timestamps rise with its physical order,
-- which is what BRIN is for: a few pages instead of a btree that took two
-- insertions per task.  Time-range reads ("the last hour" in doctor) stay
-- index-driven.
DROP INDEX IF EXISTS idx_history_timestamp;
CREATE INDEX idx_history_timestamp ON task_history USING brin ("timestamp")
    WITH (pages_per_range = 32);
