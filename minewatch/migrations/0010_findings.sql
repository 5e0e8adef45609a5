-- Findings of the rule engine. Typed tables for what the API shows
-- (episodes, exceedance events, orders) and a generic `findings` row for
-- everything alerting acts on. Identities are stable: re-evaluating the same
-- data updates rows instead of inserting new ones.

CREATE TABLE episodes (
    id              bigserial PRIMARY KEY,
    mine_id         integer NOT NULL REFERENCES mines(id),
    point_id        integer NOT NULL REFERENCES points(id),
    start_ts        timestamptz NOT NULL,
    end_ts          timestamptz,                 -- NULL while open
    end_reason      text CHECK (end_reason IN ('cleared', 'gap')),
    peak            double precision NOT NULL,
    peak_ts         timestamptz NOT NULL,
    level           text NOT NULL CHECK (level IN ('alarm', 'power_off')),
    thresholds      jsonb NOT NULL,              -- the threshold set it was judged by
    threshold_from  timestamptz NOT NULL,        -- that set's effective_from
    event_id        bigint,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (point_id, start_ts)
);
CREATE INDEX episodes_mine_start_idx ON episodes (mine_id, start_ts DESC);
CREATE INDEX episodes_event_idx ON episodes (event_id);

CREATE TABLE exceedance_events (
    id          bigserial PRIMARY KEY,
    mine_id     integer NOT NULL REFERENCES mines(id),
    gas         text NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('point', 'face', 'mine')),
    scope_key   text NOT NULL,                   -- point code, face code or mine code
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz,                     -- NULL while open
    peak        double precision NOT NULL,
    peak_ts     timestamptz NOT NULL,
    level       text NOT NULL CHECK (level IN ('alarm', 'power_off')),
    tier        text,                            -- county | city | province (methane peak tiers)
    order_id    bigint,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mine_id, gas, scope_key, start_ts)
);
CREATE INDEX exceedance_events_mine_start_idx ON exceedance_events (mine_id, start_ts DESC);

CREATE TABLE orders (
    id           bigserial PRIMARY KEY,
    mine_id      integer NOT NULL REFERENCES mines(id),
    rule         text NOT NULL,                  -- rule id within the pack
    pack         text NOT NULL,
    start_ts     timestamptz NOT NULL,
    min_end_ts   timestamptz NOT NULL,
    ladder_step  integer NOT NULL DEFAULT 1,
    state        text NOT NULL DEFAULT 'active'
                 CHECK (state IN ('active', 'awaiting_verification', 'lifted')),
    lifted_at    timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mine_id, rule, start_ts)
);
CREATE INDEX orders_mine_start_idx ON orders (mine_id, start_ts DESC);

CREATE TABLE order_events (
    order_id  bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    event_id  bigint NOT NULL,
    role      text NOT NULL CHECK (role IN ('trigger', 'attached')),
    PRIMARY KEY (order_id, event_id)
);

-- Accident records entered through the API (findings of kind "accident" for
-- the count-in-window rules).
CREATE TABLE accidents (
    id           bigserial PRIMARY KEY,
    mine_id      integer NOT NULL REFERENCES mines(id),
    occurred_at  timestamptz NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('general', 'major', 'serious', 'especially_serious')),
    description  text NOT NULL DEFAULT '',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Everything alerting acts on. `rule` + `mine_id` + `subject` + `start_ts` is
-- the stable identity; `ref_table`/`ref_id` point at the typed row.
CREATE TABLE findings (
    id             bigserial PRIMARY KEY,
    rule           text NOT NULL,
    mine_id        integer NOT NULL REFERENCES mines(id),
    subject        text NOT NULL,
    start_ts       timestamptz NOT NULL,
    end_ts         timestamptz,
    level          text NOT NULL,               -- alarm | power_off | warning | major | order | ...
    tier           text,                        -- supervising level the rule asks for
    state          text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'superseded')),
    superseded_by  bigint REFERENCES findings(id),
    ref_table      text,
    ref_id         bigint,
    evidence       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- alerting's watermark: a finding whose updated_at is newer than this needs its case updated
    case_synced_at timestamptz,
    UNIQUE (rule, mine_id, subject, start_ts)
);
CREATE INDEX findings_unsynced_idx ON findings (updated_at) WHERE case_synced_at IS NULL OR case_synced_at < updated_at;
CREATE INDEX findings_mine_idx ON findings (mine_id, start_ts DESC);

-- Rule worker state that must survive a restart (watermarks, cursors).
CREATE TABLE rule_state (
    mine_id  integer NOT NULL,
    key      text NOT NULL,
    value    jsonb NOT NULL,
    PRIMARY KEY (mine_id, key)
);
