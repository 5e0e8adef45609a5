-- API tokens: stored as a keyed hash only; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('mine', 'county', 'city', 'province', 'admin')),
    scope_mines   text[] NOT NULL DEFAULT '{}',   -- role mine: the mine codes
    scope_region  text,                          -- county / city / province code
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
