-- Windows that may hold a finding rules.md raises at once (rules.md §7: `restricted_area`,
-- `seal_breach`) are claimed ahead of the queue (rules.store.claim_mine). Under load the rules
-- worker's queue is a few seconds of windows long, claimed oldest first across mines; a card
-- entering a restricted area, or a read at a mine under a shutdown order, must not wait behind
-- every other mine's readings (reading -> first webhook p99 <= 1 s, issue 13).
--
-- Only the claim order changes: every window is still evaluated, and a mine's claim still
-- takes all its windows, so the findings are the same whatever the order (streaming = back-fill).
-- The worker alternates urgent and oldest-first claims, so urgent windows cannot starve the rest.
ALTER TABLE dirty_windows ADD COLUMN IF NOT EXISTS urgent boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS dirty_windows_urgent_idx ON dirty_windows (id) WHERE urgent;

-- Whether a window the ingest queues is urgent: the mine has a shutdown order (not withdrawn)
-- in force at some time of the window (a seal breach by card or by production signal may be
-- in it), or the window's card reads include one at a station of a restricted area. Both are
-- index probes of small tables; over-inclusive is harmless (it only reorders the queue).
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
