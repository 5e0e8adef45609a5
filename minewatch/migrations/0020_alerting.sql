-- Supervised-rectification cases (挂牌督办), their audit trail, and the notification outbox.

CREATE TABLE cases (
    id                  bigserial PRIMARY KEY,
    mine_id             integer NOT NULL REFERENCES mines(id),
    rule                text NOT NULL,
    level               text NOT NULL,          -- supervising level now: mine | county | city | province
    severity            text NOT NULL DEFAULT 'normal' CHECK (severity IN ('normal', 'red', 'major')),
    state               text NOT NULL DEFAULT 'open'
                        CHECK (state IN ('open', 'acknowledged', 'rectifying', 'rectified', 'verified', 'closed')),
    title               text NOT NULL DEFAULT '',
    opened_at           timestamptz NOT NULL,
    level_since         timestamptz NOT NULL,   -- when the case reached its current level
    acknowledged_at     timestamptz,
    deadline            timestamptz,
    closed_at           timestamptz,
    last_reminder_at    timestamptz,
    order_id            bigint REFERENCES orders(id),
    order_min_end       timestamptz,
    checklist           jsonb NOT NULL DEFAULT '[]'::jsonb,
    identity            text NOT NULL UNIQUE,   -- the finding identity that opened it (one case per identity)
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_mine_idx ON cases (mine_id, opened_at DESC);
CREATE INDEX cases_state_idx ON cases (state, opened_at DESC);

CREATE TABLE case_findings (
    case_id     bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    finding_id  bigint NOT NULL REFERENCES findings(id),
    PRIMARY KEY (case_id, finding_id)
);
CREATE INDEX case_findings_finding_idx ON case_findings (finding_id);

CREATE TABLE case_history (
    id          bigserial PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    from_state  text,
    to_state    text,
    comment     text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- effects of the transition (notify whom, lift order) still to be carried
    -- out by the alerting worker; NULL once done
    effects     jsonb NOT NULL DEFAULT '[]'::jsonb,
    effects_done_at timestamptz
);
CREATE INDEX case_history_pending_idx ON case_history (id) WHERE effects_done_at IS NULL;
CREATE INDEX case_history_case_idx ON case_history (case_id, at);

CREATE TABLE silences (
    id          bigserial PRIMARY KEY,
    mine_id     integer REFERENCES mines(id),
    point_id    integer REFERENCES points(id),
    rule        text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_by  text NOT NULL,
    comment     text NOT NULL DEFAULT '',
    CHECK (ends_at > starts_at)
);

-- The durable outbox: a notification is a row before anything is sent.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    case_id          bigint REFERENCES cases(id),
    mine_id          integer REFERENCES mines(id),
    reason           text NOT NULL CHECK (reason IN ('raised', 'escalated', 'reminder', 'state_changed', 'resolved')),
    level            text NOT NULL,
    receiver         text NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('sms', 'webhook')),
    target           text NOT NULL,           -- phone number or URL
    dedup_key        text NOT NULL UNIQUE,
    body             jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed', 'expired', 'suppressed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    last_error       text
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_case_idx ON notifications (case_id);

CREATE TABLE notification_attempts (
    id               bigserial PRIMARY KEY,
    notification_id  uuid NOT NULL REFERENCES notifications(id),
    at               timestamptz NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retryable', 'permanent')),
    status_code      integer,
    error            text,
    duration_ms      double precision
);
CREATE INDEX notification_attempts_n_idx ON notification_attempts (notification_id, at);
