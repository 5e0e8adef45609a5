-- TJSJ statistics and YCBJ abnormal records exactly as the mine reported them,
-- kept beside what the rules engine computes from the readings so the two can
-- be compared. A record sent again with a later data time replaces the earlier
-- one (an ongoing abnormal record is re-sent with its end, cause and measures
-- filled in); an equal or older one changes nothing.

CREATE TABLE reported_stats (
    point_id      integer NOT NULL REFERENCES points(id),
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    max           double precision,
    max_at        timestamptz,
    min           double precision,
    min_at        timestamptz,
    avg           double precision,
    unit          text,
    data_time     timestamptz NOT NULL,
    file          text NOT NULL,
    line          integer NOT NULL,
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (point_id, period_start, period_end)
);
CREATE INDEX reported_stats_end_idx ON reported_stats (period_end);

CREATE TABLE reported_abnormal (
    point_id       integer NOT NULL REFERENCES points(id),
    abnormal_code  text NOT NULL,          -- as written, e.g. '001'
    abnormal_type  text,                   -- formats.md name; NULL for a code not in the list
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,            -- NULL while the mine reports it as going on
    max            double precision,
    max_at         timestamptz,
    min            double precision,
    min_at         timestamptz,
    avg            double precision,
    cause          text,
    measures       text,
    entered_at     timestamptz,
    entered_by     text,
    unit           text,
    data_time      timestamptz NOT NULL,
    file           text NOT NULL,
    line           integer NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (point_id, abnormal_code, started_at)
);
CREATE INDEX reported_abnormal_start_idx ON reported_abnormal (started_at);
