-- Exceedance events and episodes carry their API rendering (`doc`, the JSON text of
-- ExceedanceOut / EpisodeOut), kept current by triggers, so that a page of a mine's history
-- is an index range scan and a string concatenation instead of rendering ~1 000 times and
-- aggregating episodes on every request (issue 6: ~2.5 ms of PostgreSQL CPU per 90-event page
-- before, the whole budget at 20 concurrent clients on two cores).
--
-- Who keeps `doc` current, for every writer (rules worker, back-fill, tests, hand-made SQL):
--   * episodes: BEFORE INSERT / UPDATE renders the row (point code and location looked up);
--   * exceedance_events: BEFORE INSERT / UPDATE renders the row with its episodes' docs;
--   * AFTER each statement on episodes, the events whose episodes were inserted, changed,
--     re-linked or deleted are rendered again (transition tables: once per event, not per row);
--   * a point's code or location, or a mine's code, changing re-renders what shows it.
-- The row triggers fix extra_float_digits (floats as Python writes them, whatever the writer's
-- session says); api_time is independent of TimeZone and DateStyle.
-- Renderings are exactly what api/exceedances rendered per request before (same fields, same
-- order, times through api_time); only the separator between list items is ',' instead of ', '.

ALTER TABLE episodes ADD COLUMN IF NOT EXISTS doc text;
ALTER TABLE exceedance_events ADD COLUMN IF NOT EXISTS doc text;

-- One episode as EpisodeOut. A threshold set that is not a JSON object is wrapped as
-- {"value": ...} (EpisodeOut.thresholds is an object).
CREATE OR REPLACE FUNCTION episode_doc(ep episodes) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_json(o)::text FROM (SELECT ep.id, pt.code AS point, pt.location,
        api_time(ep.start_ts) AS start, api_time(ep.end_ts) AS "end", ep.end_reason, ep.peak,
        api_time(ep.peak_ts) AS peak_at, ep.level,
        CASE WHEN jsonb_typeof(ep.thresholds) = 'object' THEN ep.thresholds
             ELSE jsonb_build_object('value', ep.thresholds) END AS thresholds,
        api_time(ep.threshold_from) AS thresholds_from
      FROM points pt WHERE pt.id = ep.point_id) o
$$;

-- One event as ExceedanceOut, its episodes ordered by start then id.
CREATE OR REPLACE FUNCTION exceedance_doc(e exceedance_events) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || e.id || ',"mine":' || to_json(m.code)::text || ',' || substr(to_json(o)::text, 2)
      FROM mines m, (SELECT e.gas, e.scope, e.scope_key, api_time(e.start_ts) AS start,
        api_time(e.end_ts) AS "end", e.peak, api_time(e.peak_ts) AS peak_at, e.level, e.tier, e.order_id,
        (SELECT coalesce('[' || string_agg(ep.doc, ',' ORDER BY ep.start_ts, ep.id) || ']', '[]')::json
           FROM episodes ep WHERE ep.event_id = e.id) AS episodes) o
     WHERE m.id = e.mine_id
$$;

CREATE OR REPLACE FUNCTION episodes_render_row() RETURNS trigger LANGUAGE plpgsql
    SET extra_float_digits = 1 AS $$
BEGIN
    NEW.doc := episode_doc(NEW);
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION exceedance_events_render_row() RETURNS trigger LANGUAGE plpgsql
    SET extra_float_digits = 1 AS $$
BEGIN
    NEW.doc := exceedance_doc(NEW);
    RETURN NEW;
END $$;

-- After a statement on episodes: render the events it touched (old and new links) again.
CREATE OR REPLACE FUNCTION episodes_render_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE exceedance_events e SET doc = NULL
         WHERE e.id IN (SELECT event_id FROM new_rows WHERE event_id IS NOT NULL);
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE exceedance_events e SET doc = NULL
         WHERE e.id IN (SELECT event_id FROM new_rows WHERE event_id IS NOT NULL
                        UNION SELECT event_id FROM old_rows WHERE event_id IS NOT NULL);
    ELSE
        UPDATE exceedance_events e SET doc = NULL
         WHERE e.id IN (SELECT event_id FROM old_rows WHERE event_id IS NOT NULL);
    END IF;
    RETURN NULL;
END $$;  -- (`doc = NULL` only makes the row change; the BEFORE UPDATE trigger renders it)

CREATE OR REPLACE FUNCTION points_render_episodes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE episodes SET doc = NULL WHERE point_id = NEW.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mines_render_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE exceedance_events SET doc = NULL WHERE mine_id = NEW.id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS episodes_render_row ON episodes;
CREATE TRIGGER episodes_render_row BEFORE INSERT OR UPDATE ON episodes
    FOR EACH ROW EXECUTE FUNCTION episodes_render_row();
DROP TRIGGER IF EXISTS exceedance_events_render_row ON exceedance_events;
CREATE TRIGGER exceedance_events_render_row BEFORE INSERT OR UPDATE ON exceedance_events
    FOR EACH ROW EXECUTE FUNCTION exceedance_events_render_row();
-- A trigger with transition tables serves one kind of statement: three of them.
DROP TRIGGER IF EXISTS episodes_render_events_ins ON episodes;
CREATE TRIGGER episodes_render_events_ins AFTER INSERT ON episodes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION episodes_render_events();
DROP TRIGGER IF EXISTS episodes_render_events_upd ON episodes;
CREATE TRIGGER episodes_render_events_upd AFTER UPDATE ON episodes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION episodes_render_events();
DROP TRIGGER IF EXISTS episodes_render_events_del ON episodes;
CREATE TRIGGER episodes_render_events_del AFTER DELETE ON episodes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION episodes_render_events();
DROP TRIGGER IF EXISTS points_render_episodes ON points;
CREATE TRIGGER points_render_episodes AFTER UPDATE OF code, location ON points FOR EACH ROW
    WHEN (OLD.code IS DISTINCT FROM NEW.code OR OLD.location IS DISTINCT FROM NEW.location)
    EXECUTE FUNCTION points_render_episodes();
DROP TRIGGER IF EXISTS mines_render_events ON mines;
CREATE TRIGGER mines_render_events AFTER UPDATE OF code ON mines FOR EACH ROW
    WHEN (OLD.code IS DISTINCT FROM NEW.code) EXECUTE FUNCTION mines_render_events();

-- Render what is there (episodes first: events include their docs), then insist on it.
UPDATE episodes SET doc = NULL;
UPDATE exceedance_events SET doc = NULL;
ALTER TABLE episodes ALTER COLUMN doc SET NOT NULL;
ALTER TABLE exceedance_events ALTER COLUMN doc SET NOT NULL;
