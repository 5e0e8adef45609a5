-- Station power-state codes differ between sources (formats.md): `0 DC / 1 AC /
-- 2 fault / 9 unknown` versus `1 DC / 2 AC / 9 fault`. station_states keeps the
-- raw code; the scheme a mine uses is configured here and applied by a view, so
-- fixing a mine's scheme later re-labels its whole history.

CREATE TABLE power_schemes (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT ''
);
INSERT INTO power_schemes (name, description) VALUES
    ('dc0', '0 DC, 1 AC, 2 fault, 9 unknown'),
    ('dc1', '1 DC, 2 AC, 9 fault');

CREATE TABLE power_state_codes (
    scheme  text NOT NULL REFERENCES power_schemes(name),
    code    smallint NOT NULL,
    state   text NOT NULL,
    PRIMARY KEY (scheme, code)
);
INSERT INTO power_state_codes (scheme, code, state) VALUES
    ('dc0', 0, 'dc'), ('dc0', 1, 'ac'), ('dc0', 2, 'fault'), ('dc0', 9, 'unknown'),
    ('dc1', 1, 'dc'), ('dc1', 2, 'ac'), ('dc1', 9, 'fault');

-- Per-mine settings of the file source; a mine without a row uses dc0 and
-- encoding detection.
CREATE TABLE mine_file_settings (
    mine_id       integer PRIMARY KEY REFERENCES mines(id),
    power_scheme  text NOT NULL DEFAULT 'dc0' REFERENCES power_schemes(name),
    encoding      text CHECK (encoding IN ('utf-8', 'gbk', 'gb18030'))
);

CREATE VIEW station_states_named AS
SELECT s.station_id, s.ts, s.state,
       CASE s.state WHEN 0 THEN 'ok' WHEN 1 THEN 'comm_lost' WHEN 2 THEN 'fault' WHEN 9 THEN 'unknown' END AS run_state,
       s.power,
       c.state AS power_state
FROM station_states s
JOIN stations st ON st.id = s.station_id
LEFT JOIN mine_file_settings f ON f.mine_id = st.mine_id
LEFT JOIN power_state_codes c ON c.scheme = coalesce(f.power_scheme, 'dc0') AND c.code = s.power;
