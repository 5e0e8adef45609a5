-- What the rules worker needs beyond 0010.

-- An order whose basis vanished when late data or a threshold correction was re-evaluated
-- (e.g. two events turned out to be one). Orders are never deleted — a case may point at
-- one — so it is marked withdrawn (and lifted); it is restored if the count comes back.
ALTER TABLE orders ADD COLUMN withdrawn_at timestamptz;

-- The worker claims a mine's dirty windows oldest first.
CREATE INDEX dirty_windows_mine_idx ON dirty_windows (mine_id, id);

-- Episodes still running at a window's start are found by their end (or NULL while open).
CREATE INDEX episodes_mine_end_idx ON episodes (mine_id, end_ts);
