"""Process settings, read once from the environment in `main()` and passed down."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from minewatch.errors import ConfigError

# The token pepper keys the API token hashes and the cursors' HMAC: a known or guessable one
# makes cursors forgeable and token hashes crackable offline. 32 characters is what
# `openssl rand -hex 16` prints, 128 bits; docs ask for `openssl rand -hex 32`.
MIN_PEPPER_CHARS = 32
# Public values: the old built-in default and the placeholders docs and examples have shown.
KNOWN_PEPPERS = frozenset({"minewatch-dev-pepper", "changeme", "change-me", "secret", "pepper",
                           "test-pepper", "bench-pepper"})


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
    # A static partition of the mines over N ingest processes, "K/N" (0 <= K < N): this process
    # subscribes to mines/{mine}/# of the registry's mines whose code hashes to K (CRC-32 mod N),
    # on its own persistent session (client id + "-pKofN"). Lossless across broker restarts,
    # unlike $share (docs/operations.md, "Scaling ingest").
    partition: str | None = None
    topic_prefix: str = ""
    # Also accept the provincial field variant `/{mine}/{system}` (docs/files.md), mapped
    # into the same pipeline; off unless the mines of this deployment publish it.
    field_variant: bool = False
    # Also accept Sparkplug B 3.0 (`{prefix}spBv1.0/#`, as a host application; docs/ingest.md):
    # on by default because contract v1 lists it as accepted.
    sparkplug: bool = True
    # 20 000 items or 50 ms, whichever first: large enough that COPY dominates
    # the per-batch overhead, small enough that a reading reaches the rules
    # worker well inside its 500 ms latency budget.
    batch_max_items: int = Field(default=20_000, ge=1, le=1_000_000)
    batch_max_age_ms: int = Field(default=50, ge=1, le=60_000)
    # Messages held between the network thread and the writer; when full the
    # network thread blocks, TCP pushes back and the broker queues for us.
    queue_max_messages: int = Field(default=20_000, ge=10)
    # ... and by bytes (issue 15: 30 x 20 MB messages held 940 MB): 64 MiB holds 16 of the
    # largest messages the broker lets through, or thousands of ordinary ones.
    queue_max_bytes: int = Field(default=64 << 20, ge=1 << 20, le=4 << 30)
    # A message over this is dead-lettered as too_large (a preview kept), not parsed: the
    # contract's 10 000-item batch is about 0.8 MB; the shipped broker refuses more than 4 MiB.
    max_message_bytes: int = Field(default=4 << 20, ge=64 << 10, le=256 << 20)
    # Readings older than this are dead letters (too_old), not partitions: unset, the
    # retention period (MINEWATCH_RETENTION_DAYS), since older rows would be dropped anyway.
    max_age_days: int | None = Field(default=None, ge=1)
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
    # Bounds on what one client may make an API process hold (api/limits.py, docs/operations.md):
    # the largest request body (the biggest legitimate one, a case action with a long comment, is
    # a few KB), the time its body may take to arrive, the connections + requests in flight past
    # which uvicorn answers 503, and how long an idle keep-alive connection stays open.
    api_max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    api_body_timeout_s: float = Field(default=10.0, gt=0, le=600)
    api_limit_concurrency: int = Field(default=500, ge=10, le=100_000)
    api_keep_alive_s: float = Field(default=5.0, gt=0, le=300)
    # How long the console keeps a rendered page for sessions of the same scope (api/console/cache.py);
    # 0 turns the cache off.
    console_cache_ttl_s: float = Field(default=2.0, ge=0, le=60, validation_alias="MINEWATCH_CONSOLE_CACHE_TTL")
    metrics_port: int = 9108
    # No usable default: `minewatch api` and `minewatch tokens` refuse to start without a strong
    # one (require_strong_pepper); `minewatch run`, the embedded demo, makes one per data dir.
    token_pepper: SecretStr = SecretStr("")
    ingest: IngestSettings = Field(default_factory=IngestSettings)


def pepper_problem(pepper: str) -> str | None:
    """Why `pepper` is unfit to key tokens and cursors, or None when it is fit."""
    if not pepper.strip():
        return "is empty"
    if pepper.strip().lower() in KNOWN_PEPPERS:
        return "is a publicly known value"
    if len(pepper) < MIN_PEPPER_CHARS:
        return f"is shorter than {MIN_PEPPER_CHARS} characters"
    if len(set(pepper)) < 8:
        return "repeats too few distinct characters to be random"
    return None


def require_strong_pepper(settings: Settings) -> None:
    """ConfigError naming MINEWATCH_TOKEN_PEPPER unless the pepper is fit (see pepper_problem).
    Called where a service that uses it starts (`minewatch api`, `minewatch tokens`)."""
    problem = pepper_problem(settings.token_pepper.get_secret_value())
    if problem is not None:
        raise ConfigError(f"MINEWATCH_TOKEN_PEPPER {problem}: set it to a random secret of at least "
                          f"{MIN_PEPPER_CHARS} characters, e.g. `openssl rand -hex 32` (docs/operations.md)")
