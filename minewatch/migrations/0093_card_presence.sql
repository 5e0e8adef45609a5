-- Who is underground, kept rather than recomputed (GET /v1/mines/{mine}/personnel).
--
-- By rules.md §7 a card's latest read decides, however old, so answering "who is underground
-- now" from card_reads looks up every card of the mine on every request (a probe per card, and
-- two backward walks per listed card for "since" and "entered"): 30-60 ms of server CPU for a
-- mine of 2 000-4 500 cards. The rules worker keeps each card's presence here instead, in the
-- transaction that claims the card-read windows (rules.presence_store): its latest read, the
-- first read of its current run in the area (`run`, after the last read elsewhere, `run_mark`)
-- and of its stay (`stay`, after the last shaft read, `stay_mark`). The marks make a late read's
-- effect decidable without reading history back: only a read after a mark can move it.
--
-- The table is an index of card_reads, never the record: the API answers from it only for a mine
-- whose row in presence_built carries the hash of its current layout (cards, stations' areas,
-- shaft areas), and recomputes from card_reads every card with reads in a window not yet claimed
-- (or read after the request's "now"). Without the worker, or after a registry change the worker
-- has not caught up with, the API answers from card_reads as before: slower, never different.
CREATE TABLE IF NOT EXISTS card_presence (
    card_id     integer PRIMARY KEY REFERENCES cards(id) ON DELETE CASCADE,
    mine_id     integer NOT NULL,
    ts          timestamptz NOT NULL,      -- the card's latest read
    station_id  integer NOT NULL,
    run         timestamptz NOT NULL,      -- first read after run_mark
    run_mark    timestamptz,               -- last read elsewhere (another station outside the area); NULL: none
    stay        timestamptz NOT NULL,      -- first read after stay_mark
    stay_mark   timestamptz                -- last shaft read before the latest; NULL: none
);
CREATE INDEX IF NOT EXISTS card_presence_mine_idx ON card_presence (mine_id);

CREATE TABLE IF NOT EXISTS presence_built (
    mine_id     integer PRIMARY KEY,
    layout      text NOT NULL,             -- rules.presence_store.LAYOUT: the hash it was built under
    built_at    timestamptz NOT NULL
);
