-- Indexes for the API's queries (docs/query-plans.md shows each plan).

-- Mine status: "under order" and "warning" are probes for the few rows still open;
-- partial indexes keep those probes tiny however long the history grows.
CREATE INDEX IF NOT EXISTS orders_open_idx ON orders (mine_id) WHERE state <> 'lifted';
CREATE INDEX IF NOT EXISTS exceedance_events_open_idx ON exceedance_events (mine_id) WHERE end_ts IS NULL;
CREATE INDEX IF NOT EXISTS cases_open_idx ON cases (mine_id, opened_at DESC) WHERE state <> 'closed';

-- An admin's case list (no mine filter), newest first.
CREATE INDEX IF NOT EXISTS cases_opened_idx ON cases (opened_at DESC);

-- Accident records per mine, newest first (the accident count rules read them the same way).
CREATE INDEX IF NOT EXISTS accidents_mine_occurred_idx ON accidents (mine_id, occurred_at DESC);

-- Personnel: which area a station belongs to.
CREATE INDEX IF NOT EXISTS area_stations_station_idx ON area_stations (station_id);
