-- A read-only role for Grafana (and any other reporting tool) on the Minewatch database.
--
-- Run it once, as the role that owns the tables (the one `minewatch migrate` connects as):
--   psql "$DATABASE_URL" -v reader=minewatch_grafana -f deploy/postgres/grafana_reader.sql
-- then give the role a password in psql:  \password minewatch_grafana
-- psql fills in :"reader" from -v and :"DBNAME" with the database it is connected to.
-- tests/dashboards runs this file and every dashboard query as the role it creates, and checks
-- that it reads nothing else (tests/dashboards/test_reader_role.py).
--
-- Least privilege: the role sees exactly the relations the provisioned dashboards query
-- (dashboards/json), listed below, and no others. Not dead-letter payloads (hostile input and
-- whatever a device leaked), not token hashes, console users or sessions, not the outbox
-- (phone numbers, webhook URLs, texts), not case comments. A new dashboard query on another
-- relation needs a grant added here, on purpose; re-running this file after an upgrade
-- (CREATE ROLE then fails harmlessly) resets the role to this list.

CREATE ROLE :"reader" LOGIN;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
-- Earlier versions of this file granted every table, and every future one by default: undo that.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM :"reader";

-- Registry: mines, their regions, points and their threshold versions, stations, areas, cards.
GRANT SELECT ON mines, regions, points, point_thresholds, stations, areas, area_stations, cards TO :"reader";
-- Measurements: readings and their 1m / 1h bucket views (continuous aggregates on TimescaleDB;
-- on the plain path the daily partitions are read through their parent and need no grant), the
-- outstations' named states, card reads.
GRANT SELECT ON readings, readings_1m, readings_1h, station_states_named, card_reads TO :"reader";
-- What the rules and the case lifecycle made of them.
GRANT SELECT ON exceedance_events, episodes, orders, order_events, cases TO :"reader";
-- Operations: the rules worker's backlog, and which time-series backend is in use.
GRANT SELECT ON dirty_windows, meta TO :"reader";
-- Dead letters: counts by reason, source, mine and time only, never payload, detail, topic or file.
GRANT SELECT (received_at, source, reason, mine_code, reprocessed_at) ON dead_letters TO :"reader";

-- Belt and braces: Grafana runs whatever SQL a dashboard editor types.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
