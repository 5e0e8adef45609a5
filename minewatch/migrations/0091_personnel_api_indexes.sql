-- GET /v1/mines/{mine}/personnel (api/personnel/service.py) walks each listed card's reads back
-- from its latest to the last one elsewhere or at the shaft (the start of its run in the area
-- and of its stay): hundreds of reads a card after a few hours below, and it needs each read's
-- station. With the key (card_id, ts) alone every one of them was a heap fetch (21 000 buffers
-- for a page of 100 people four hours into a shift, bench/api/personnel.py). The primary key now
-- carries station_id, so those walks (and the latest-read probes) are index-only scans where the
-- visibility map allows (everything but a partition's newest rows, which autovacuum has not
-- reached yet).
--
-- The key is widened, not joined by a second index: a third btree on card_reads cost the card-read
-- ingest more than half its COPY rate (bench/ingest/cards.py; docs/bench-personnel.md), the
-- INCLUDE column almost nothing. It stays the ingest's ON CONFLICT arbiter, as 0036 did for
-- readings. Both storage paths: on plain PostgreSQL the key is rebuilt on every daily partition
-- and later partitions inherit it; on TimescaleDB on every chunk (compressed ones included) and
-- later chunks inherit it. On a large existing table this rewrites every partition's key under
-- an exclusive lock: run `minewatch migrate` in a maintenance window there.
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO pk FROM pg_constraint WHERE conrelid = 'card_reads'::regclass AND contype = 'p';
    IF pk IS NOT NULL THEN
        EXECUTE format('ALTER TABLE card_reads DROP CONSTRAINT %I', pk);
    END IF;
    ALTER TABLE card_reads ADD PRIMARY KEY (card_id, ts) INCLUDE (station_id);
END
$$;
