-- People who sign in to the web console (api/console): named users with a role and scope
-- (the same roles and scopes as api_tokens), server-side sessions and sign-in failures.

CREATE TABLE console_users (
    id            serial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL,              -- argon2id, PHC string
    role          text NOT NULL CHECK (role IN ('mine', 'county', 'city', 'province', 'admin')),
    scope_mines   text[] NOT NULL DEFAULT '{}',
    scope_region  text,
    created_at    timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL,
    disabled_at   timestamptz
);

-- A session is known only by the SHA-256 of its cookie value: a leaked table signs nobody in.
CREATE TABLE console_sessions (
    id_hash       text PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES console_users(id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,              -- the synchronizer token every POST must echo
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    ip            text NOT NULL DEFAULT ''
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Failed sign-ins, per user name and client address, counted over a sliding window so the
-- throttle holds across API workers and restarts.
CREATE TABLE console_login_failures (
    id        bigserial PRIMARY KEY,
    username  text NOT NULL,
    ip        text NOT NULL,
    at        timestamptz NOT NULL
);
CREATE INDEX console_login_failures_idx ON console_login_failures (username, ip, at);
