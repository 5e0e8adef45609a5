-- Registry, dead letters and the ingest → rules hand-off.

CREATE TABLE regions (
    code    text PRIMARY KEY,
    name    text NOT NULL,
    level   text NOT NULL CHECK (level IN ('county', 'city', 'province')),
    parent  text
);

CREATE TABLE mines (
    id                   serial PRIMARY KEY,
    code                 text NOT NULL UNIQUE,
    name                 text NOT NULL,
    kind                 text NOT NULL,
    timezone             text NOT NULL DEFAULT 'Asia/Shanghai',
    county               text NOT NULL,
    city                 text NOT NULL,
    province             text NOT NULL,
    gas_class            text NOT NULL DEFAULT 'low',
    approved_underground integer,
    shift_hours          double precision NOT NULL DEFAULT 8,
    active               boolean NOT NULL DEFAULT true,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mines_county_idx ON mines (county);
CREATE INDEX mines_city_idx ON mines (city);
CREATE INDEX mines_province_idx ON mines (province);

CREATE TABLE stations (
    id        serial PRIMARY KEY,
    mine_id   integer NOT NULL REFERENCES mines(id),
    code      text NOT NULL UNIQUE,
    location  text NOT NULL DEFAULT '',
    x double precision, y double precision, z double precision,
    active    boolean NOT NULL DEFAULT true
);

CREATE TABLE faces (
    id       serial PRIMARY KEY,
    mine_id  integer NOT NULL REFERENCES mines(id),
    code     text NOT NULL,
    UNIQUE (mine_id, code)
);

CREATE TABLE points (
    id                 serial PRIMARY KEY,
    mine_id            integer NOT NULL REFERENCES mines(id),
    station_id         integer REFERENCES stations(id),
    code               text NOT NULL UNIQUE,
    sensor_type        text NOT NULL,
    value_type         text NOT NULL,
    gas                text NOT NULL,
    unit               text NOT NULL DEFAULT '',
    range_low          double precision,
    range_high         double precision,
    location_type      text NOT NULL DEFAULT 'other',
    location           text NOT NULL DEFAULT '',
    face_id            integer REFERENCES faces(id),
    expected_period_s  double precision NOT NULL DEFAULT 30,
    max_gap_s          double precision NOT NULL DEFAULT 300,
    levels             jsonb,
    slope_height_m     double precision,
    x double precision, y double precision, z double precision,
    active             boolean NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_mine_idx ON points (mine_id);

-- Threshold versions: a change applies from its effective time on, so past
-- readings keep being judged by the thresholds that applied to them.
CREATE TABLE point_thresholds (
    point_id        integer NOT NULL REFERENCES points(id),
    effective_from  timestamptz NOT NULL,
    alarm_hi double precision, clear_hi double precision,
    poweroff_hi double precision, restore_hi double precision,
    alarm_lo double precision, clear_lo double precision,
    poweroff_lo double precision, restore_lo double precision,
    source          text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (point_id, effective_from)
);

CREATE TABLE point_relations (
    point_id         integer NOT NULL REFERENCES points(id),
    kind             char(1) NOT NULL,
    target_point_id  integer NOT NULL REFERENCES points(id),
    name             text NOT NULL DEFAULT '',
    PRIMARY KEY (point_id, kind, target_point_id)
);

CREATE TABLE areas (
    id          serial PRIMARY KEY,
    mine_id     integer NOT NULL REFERENCES mines(id),
    code        text NOT NULL,
    name        text NOT NULL DEFAULT '',
    approved    integer,
    restricted  boolean NOT NULL DEFAULT false,
    shaft       boolean NOT NULL DEFAULT false,
    face_id     integer REFERENCES faces(id),
    UNIQUE (mine_id, code)
);

CREATE TABLE area_stations (
    area_id     integer NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    station_id  integer NOT NULL REFERENCES stations(id),
    PRIMARY KEY (area_id, station_id)
);

CREATE TABLE cards (
    id       serial PRIMARY KEY,
    mine_id  integer NOT NULL REFERENCES mines(id),
    code     text NOT NULL UNIQUE,
    role     text NOT NULL CHECK (role IN ('worker', 'leader', 'visitor')),
    name     text NOT NULL DEFAULT '',
    active   boolean NOT NULL DEFAULT true
);

CREATE TABLE registry_loads (
    id         serial PRIMARY KEY,
    loaded_at  timestamptz NOT NULL,
    source     text NOT NULL,
    checksum   text NOT NULL,
    summary    jsonb NOT NULL
);

-- Everything that could not be accepted, kept whole with the reason.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    source       text NOT NULL,          -- mqtt | file | sparkplug
    topic        text,
    file         text,
    line         integer,
    mine_code    text,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    payload      text NOT NULL,
    reprocessed_at timestamptz
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_mine_idx ON dead_letters (mine_code, received_at);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason) WHERE reprocessed_at IS NULL;

-- One row per committed batch and mine: which time range of which kind of
-- data changed. The rules worker claims rows (FOR UPDATE SKIP LOCKED),
-- re-evaluates the windows they touch and deletes them in the same
-- transaction as its findings.
CREATE TABLE dirty_windows (
    id          bigserial PRIMARY KEY,
    mine_id     integer NOT NULL,
    kind        text NOT NULL,           -- readings | card_reads | station_states
    min_ts      timestamptz NOT NULL,
    max_ts      timestamptz NOT NULL,
    n_rows      integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
