"""Process settings, read once from the environment in `main()` and passed down."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def packaged(name: str) -> Path:
    """Path of a data file shipped inside the `minewatch` package (sample registry, packs)."""
    return Path(str(resources.files("minewatch") / "data" / name))


class IngestSettings(BaseSettings):
    """How the MQTT ingest batches, bounds and identifies itself."""

    model_config = SettingsConfigDict(env_prefix="MINEWATCH_INGEST_", extra="forbid")

    # A fixed client id + clean session off is what makes the broker queue
    # messages for us while we are down (contract: persistent session).
    client_id: str = "minewatch-ingest-1"
    # Several ingest processes can share the load through $share/<group>/...
    # Off by default: Mosquitto 2.0.x does not restore a shared subscription
    # from its persistence file, so after a broker restart a $share session
    # receives nothing (and messages published meanwhile have no subscriber).
    # A plain persistent subscription survives restarts; see docs/operations.md.
    share_group: str | None = None
    topic_prefix: str = ""
    # Also accept the provincial field variant `/{mine}/{system}` (docs/files.md), mapped
    # into the same pipeline; off unless the mines of this deployment publish it.
    field_variant: bool = False
    # 20 000 items or 50 ms, whichever first: large enough that COPY dominates
    # the per-batch overhead, small enough that a reading reaches the rules
    # worker well inside its 500 ms latency budget.
    batch_max_items: int = Field(default=20_000, ge=1, le=1_000_000)
    batch_max_age_ms: int = Field(default=50, ge=1, le=60_000)
    # Messages held between the network thread and the writer; when full the
    # network thread blocks, TCP pushes back and the broker queues for us.
    queue_max_messages: int = Field(default=20_000, ge=10)
    future_tolerance_s: int = Field(default=300, ge=0)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    metrics_port: int | None = None


class Settings(BaseSettings):
    """Everything a Minewatch process needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="MINEWATCH_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MINEWATCH_DATABASE_URL")
    )
    mqtt_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MQTT_URL", "MINEWATCH_MQTT_URL")
    )
    # Where embedded servers keep their data when no URLs are configured.
    data_dir: Path = Path(".minewatch")
    registry_path: Path = Field(default_factory=lambda: packaged("sample_registry.yaml"))
    timezone: str = "Asia/Shanghai"
    # National practice keeps monitoring data at least two years.
    retention_days: int = Field(default=730, ge=1)
    partitions_ahead_days: int = Field(default=7, ge=1, le=366)
    timeseries_backend: Literal["auto", "plain", "timescale"] = "auto"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # Database connections per API process. Every request holds one briefly; more connections
    # than the database has cores only queue work inside PostgreSQL and take CPU from the API's
    # own event loop: on 2 cores with PostgreSQL beside the API, 4 per process (2 processes)
    # answered the 30-day hourly series at p95 ~50 ms where 20 gave 60-120 ms (docs/api.md).
    # Keep processes x this near 2 x the database server's cores, and within max_connections.
    api_pool_size: int = Field(default=4, ge=1, le=100)
    # Longest an API statement may run (PostgreSQL statement_timeout, lock waits included). The
    # heaviest legitimate request (400 days at a sub-hour step) takes ~2 s; past the limit the
    # client gets a 503 problem and the connection is free again, instead of one stuck request
    # holding one of the process's few connections.
    api_statement_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    metrics_port: int = 9108
    token_pepper: SecretStr = SecretStr("minewatch-dev-pepper")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
