"""Prometheus metrics of the ingest, on a registry passed in (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """Counters and histograms the contract promises: received / stored / rejected by reason, and more."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter("minewatch_ingest_messages_total", "MQTT messages or files received",
                                ["source"], registry=registry)
        self.received = Counter("minewatch_ingest_items_received_total", "Items received", ["family"],
                                 registry=registry)
        self.stored = Counter("minewatch_ingest_items_stored_total", "Items stored (new rows)", ["table"],
                              registry=registry)
        self.rejected = Counter("minewatch_ingest_items_rejected_total", "Items sent to dead letters",
                                ["reason"], registry=registry)
        self.duplicates = Counter("minewatch_ingest_duplicates_total", "Identical duplicates (stored once)",
                                  ["table"], registry=registry)
        self.conflicts = Counter("minewatch_ingest_conflicts_total",
                                 "Duplicates with a different value (first kept, other dead-lettered)",
                                 ["table"], registry=registry)
        self.batch_size = Histogram("minewatch_ingest_batch_items", "Items per committed batch",
                                    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
                                    registry=registry)
        self.commit_seconds = Histogram("minewatch_ingest_commit_seconds", "Time to write and commit a batch",
                                        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                        registry=registry)
        self.queue_depth = Gauge("minewatch_ingest_queue_depth", "Messages waiting for the writer",
                                 registry=registry)
        self.queue_bytes = Gauge("minewatch_ingest_queue_bytes", "Payload bytes waiting for the writer",
                                 registry=registry)
        self.lag_seconds = Histogram("minewatch_ingest_lag_seconds",
                                     "now - item time of the newest item of each batch",
                                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
                                     registry=registry)
        self.db_errors = Counter("minewatch_ingest_db_errors_total", "Batch writes that failed and were retried",
                                 registry=registry)
        self.connected = Gauge("minewatch_ingest_broker_connected", "1 while connected to the broker",
                               registry=registry)
        self.heartbeat = Gauge("minewatch_ingest_heartbeat_timestamp_seconds",
                               "Last time the writer loop ran", registry=registry)
