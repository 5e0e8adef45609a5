-- Dead letters keep hostile input without letting it hurt anyone (issue 15).
-- `payload` is text PostgreSQL accepts (NUL and invalid UTF-8 replaced) and at most
-- 1 MiB; `payload_raw` holds the original bytes when they differ from that text
-- (also capped), and `payload_bytes` the size that arrived, so a capped or repaired
-- payload says so.
ALTER TABLE dead_letters ADD COLUMN payload_raw bytea;
ALTER TABLE dead_letters ADD COLUMN payload_bytes bigint;
