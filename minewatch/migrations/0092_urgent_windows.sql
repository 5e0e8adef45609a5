-- Windows that may hold a finding raised at once (a methane exceedance; rules.md §7:
-- `restricted_area`, `seal_breach`) are claimed ahead of the queue (rules.store.claim_mine).
-- Under load the rules worker's queue is a few seconds of windows long, claimed oldest first
-- across mines; a methane rise at a face, a card entering a restricted area or a read at a mine
-- under a shutdown order must not wait behind every other mine's readings.
--
-- Only the claim order changes: every window is still evaluated, and a mine's claim still
-- takes all its windows, so the findings are the same whatever the order (streaming = back-fill).
-- In a backlog the worker alternates urgent and oldest-first claims, so neither starves.
ALTER TABLE dirty_windows ADD COLUMN IF NOT EXISTS urgent boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS dirty_windows_urgent_idx ON dirty_windows (id) WHERE urgent;

-- The ingest marks a window urgent itself when a reading is at or beyond its point's alarm
-- level (`TableBatch.urgent_mines`, with its lookup's `AlarmTable`), and asks this function for
-- the rest: the mine has a shutdown order (not withdrawn) in force at some time of the window (a
-- seal breach by card or by production signal may be in it), or the window's card reads include
-- one at a station of a restricted area. Both are index probes of small tables; over-inclusive
-- is harmless (it only reorders the queue).
CREATE OR REPLACE FUNCTION dirty_window_urgent(p_mine integer, p_kind text, p_lo timestamptz, p_hi timestamptz,
                                               p_stations integer[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM orders o
                   WHERE o.mine_id = p_mine AND o.withdrawn_at IS NULL AND o.start_ts <= p_hi
                     AND (o.lifted_at IS NULL OR o.lifted_at > p_lo))
        OR (p_kind = 'card_reads' AND EXISTS (
                SELECT 1 FROM area_stations x JOIN areas a ON a.id = x.area_id
                WHERE a.restricted AND x.station_id = ANY(p_stations)))
$$;
