-- Configured point pairs of `implausible_pair` (rules.md §6): a downstream point (e.g. a
-- face's return airway) that must not read far below its upstream point (the face). Written
-- by the registry load (a mine's `pairs`), replaced whole per mine on every load.

CREATE TABLE IF NOT EXISTS point_pairs (
    mine_id              integer NOT NULL REFERENCES mines(id),
    upstream_point_id    integer NOT NULL REFERENCES points(id),
    downstream_point_id  integer NOT NULL REFERENCES points(id),
    name                 text NOT NULL DEFAULT '',
    PRIMARY KEY (upstream_point_id, downstream_point_id),
    CHECK (upstream_point_id <> downstream_point_id)
);
CREATE INDEX IF NOT EXISTS point_pairs_mine_idx ON point_pairs (mine_id);
