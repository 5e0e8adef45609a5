-- A read-only role for Grafana (and any other reporting tool) on the Minewatch database.
--
-- Run it once, as the role that owns the tables (the one `minewatch migrate` connects as):
--   psql "$DATABASE_URL" -v reader=minewatch_grafana -f deploy/postgres/grafana_reader.sql
-- then give the role a password in psql:  \password minewatch_grafana
-- psql fills in :"reader" from -v and :"DBNAME" with the database it is connected to.
-- tests/dashboards runs this file and every dashboard query as the role it creates.

CREATE ROLE :"reader" LOGIN;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
-- Tables, views and the 1m / 1h bucket views (continuous aggregates on TimescaleDB). On the
-- plain path new daily partitions need no grant: they are read through their parent table.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
-- Tables that later migrations create (run by this same owner).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
-- Token hashes and the outgoing messages (phone numbers, webhook URLs, texts) are none of a
-- dashboard's business.
REVOKE SELECT ON api_tokens, notifications, notification_attempts, notification_members FROM :"reader";
-- Belt and braces: Grafana runs whatever SQL a dashboard editor types.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
