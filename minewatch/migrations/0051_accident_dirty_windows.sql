-- An accident recorded, corrected or deleted asks the rules worker to re-count that mine's
-- accident count rules (rules.md §3: ≥ 2 general accidents in 3 months → special inspection),
-- exactly as committed readings do: a dirty window of kind `accidents`, written in the same
-- transaction as the change, and a NOTIFY on minewatch_dirty (delivered at commit). A trigger
-- rather than the API's service, so that a correction made in SQL by an operator is counted
-- too. Only the columns the count reads fire it; a description edit changes no finding.
-- The window's bounds are the accident's time (the worker re-counts the mine's whole accident
-- history: a handful of rows).

CREATE FUNCTION accidents_dirty_window() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows)
        VALUES (NEW.mine_id, 'accidents', NEW.occurred_at, NEW.occurred_at, 1);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows)
        VALUES (OLD.mine_id, 'accidents', OLD.occurred_at, OLD.occurred_at, 1);
    END IF;
    PERFORM pg_notify('minewatch_dirty', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER accidents_dirty_window
    AFTER INSERT OR DELETE OR UPDATE OF mine_id, occurred_at, severity ON accidents
    FOR EACH ROW EXECUTE FUNCTION accidents_dirty_window();
