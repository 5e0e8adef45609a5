-- National upload files: the ledger of processed files.
--
-- One row per distinct file content (sha256). A file whose row says `done` is
-- never ingested again, whatever its name; a `started` row means a process
-- stopped in the middle of it: the next one resumes after `done_ordinal`, the
-- last record of the last committed chunk (chunks commit their rows, their dead
-- letters and this row together, so nothing is lost or written twice).
CREATE TABLE file_ledger (
    id             bigserial PRIMARY KEY,
    sha256         text NOT NULL UNIQUE,
    name           text NOT NULL,
    size           bigint NOT NULL,
    mine_code      text,
    kind           text,                 -- CDDY | CDSS | FZDY | FZSS | TJSJ | YCBJ (NULL if unreadable)
    state          text NOT NULL CHECK (state IN ('started', 'done', 'quarantined')),
    records        integer NOT NULL DEFAULT 0,   -- data records in the file, good and bad
    done_ordinal   integer NOT NULL DEFAULT 0,   -- records up to this ordinal are committed
    stored         integer NOT NULL DEFAULT 0,   -- new rows (or definitions applied)
    duplicates     integer NOT NULL DEFAULT 0,   -- identical rows already stored
    rejected       jsonb NOT NULL DEFAULT '{}',  -- reason -> records sent to dead letters
    summary        jsonb NOT NULL DEFAULT '{}',  -- kind-specific extras (threshold versions, reprocessed, ...)
    reason         text,                 -- why a whole file was quarantined
    detail         text,
    attempts       integer NOT NULL DEFAULT 1,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz
);
CREATE INDEX file_ledger_mine_idx ON file_ledger (mine_code, started_at);
CREATE INDEX file_ledger_unfinished_idx ON file_ledger (started_at) WHERE state = 'started';
