-- Per-mine registry lookups the API makes (mine page counts, personnel's cards of a mine);
-- with thousands of mines these tables are too big to read whole per request.
CREATE INDEX IF NOT EXISTS cards_mine_idx ON cards (mine_id);
CREATE INDEX IF NOT EXISTS stations_mine_idx ON stations (mine_id);
