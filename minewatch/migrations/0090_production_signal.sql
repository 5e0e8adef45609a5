-- Points the registry marks as production signals (rules.md §7, electronic seal): a coal-output
-- counter (3001) rising or an equipment on-off point (1004) switching on while a shutdown order
-- is active or awaiting verification is a `seal_breach` (rules.personnel_worker).
ALTER TABLE points ADD COLUMN IF NOT EXISTS production_signal boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS points_production_signal_idx ON points (mine_id) WHERE production_signal;

-- A disaster-severe mine (rules.md §7): its underground head count is bounded by the higher
-- national limit (the rule pack's `personnel.national_limit_severe`, 850; else 450).
ALTER TABLE mines ADD COLUMN IF NOT EXISTS disaster_severe boolean NOT NULL DEFAULT false;
