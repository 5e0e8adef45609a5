-- The console's overview asks, per mine in scope, whether an `offline` finding is open:
-- a probe of this small partial index instead of a walk over the mine's findings.
CREATE INDEX IF NOT EXISTS findings_open_offline_idx ON findings (mine_id)
    WHERE rule = 'offline' AND end_ts IS NULL AND state = 'open';
