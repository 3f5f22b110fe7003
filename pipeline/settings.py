"""Typed, frozen settings: loaded once from the environment (prefix ``PIPELINE_``), passed down.

Nothing else in the code reads ``os.environ``. See the configuration table in README.md.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError

ENV_PREFIX = "PIPELINE_"


class TopicNames(BaseSettings):
    """Kafka topic names (env ``PIPELINE_TOPIC_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "TOPIC_", frozen=True, extra="ignore")

    events: str = "usage.events"
    dead_letters: str = "usage.dead-letters"
    quarantine: str = "usage.quarantine"


class Settings(BaseSettings):
    """All configuration. Production commands need the Kafka and ClickHouse targets set; only
    ``dev``, the tests and the launcher commands start local servers."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="host:port[,host:port]; unset = the project's local Apache Kafka launcher",
    )
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1, description="3 on a production cluster")
    topics: TopicNames = Field(default_factory=TopicNames)

    # --- ClickHouse --------------------------------------------------------------------------
    clickhouse_url: SecretStr | None = Field(
        default=None,
        description="http(s)://user:password@host:port of the ClickHouse server (required by "
        "every command that reads or writes ClickHouse; `dev` and tests start a local one)",
    )
    clickhouse_database: str = Field(default="metering", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_local_dir: Path | None = Field(
        default=None,
        description="home of the local development server (`clickhouse start`, `dev`): config, "
        "password, data, log; unset = <cache_dir>/clickhouse",
    )

    # --- Rules, ingest, local state ------------------------------------------------------------
    rules_dir: Path = Path("rating_rules")
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(default=8080, ge=0, le=65535)
    state_dir: Path = Path("var")

    # --- Ingest edge -----------------------------------------------------------------------------
    # Sized from what the plugins send: ~100 events per 5-s flush, 5-20 KB as lz4 and 20-100 KB
    # of JSON; a CloudWatch Logs subscription delivers at most 10,000 log events per envelope
    # (~1 MB compressed). The caps leave room for spill-to-disk replays of larger batches while
    # bounding what one request may cost: 32 requests in flight of at most 4 MiB each hold at
    # most 128 MiB of bodies, and decoding (one request at a time, on the event loop) at most
    # 16 MiB of JSON; the edge's peak memory under a hostile campaign is in docs/benchmarks.md.
    ingest_max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="cap on a request body as sent (compressed)"
    )
    ingest_max_decompressed_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="cap on what one request decompresses: the body and any gzip data inside it",
    )
    ingest_max_events: int = Field(
        default=10_000, ge=1, description="most events one request may carry (413 past it)"
    )
    ingest_max_concurrent_requests: int = Field(
        default=32, ge=1, description="requests in progress at once; more get 503 + Retry-After"
    )
    ingest_body_timeout_s: float = Field(
        default=30.0, gt=0, description="a body not received within this is refused (408)"
    )
    ingest_kafka_timeout_s: float = Field(
        default=10.0, gt=0, description="answer 503 when Kafka has not acknowledged in time"
    )

    # --- Stream workers ----------------------------------------------------------------------
    worker_group_id: str = "usage-metering"
    # 20,000: each ClickHouse insert has a fixed cost (~4 ms in chdb) and every insert is a part
    # that background merges rewrite; 20k-event inserts took ~40 % less engine CPU per event
    # than 5k ones (docs/benchmarks.md). Memory: two batches in flight, ~2 KB of rows per event.
    worker_batch_max: int = Field(
        default=20_000, ge=1, description="most events per batch (one ClickHouse insert per table)"
    )
    worker_batch_within_s: float = Field(default=0.5, gt=0, description="max wait to fill a batch")
    worker_session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        description="a worker that died without leaving the group holds its partitions this long",
    )
    dedup_window_days: int = Field(default=35, ge=1, description="exact in-stream dedup window")
    worker_web_port: int = Field(
        default=6066, ge=0, le=65535, description="the worker's /metrics port (0 = off)"
    )

    worker_crash_at: str | None = Field(
        default=None,
        # the crash points of pipeline/worker/faults.py (SPEC_PATTERN, checked by a test)
        pattern=r"^(during_sink:(event_log|usage_events|meter_entries)|after_sink|after_outputs"
        r"|after_changelog|after_state|after_commit):[0-9]+$",
        description="TEST ONLY fault injection: SIGKILL the worker at <point>:<batch number>",
    )

    # --- Local broker launcher -----------------------------------------------------------------
    kafka_version: str = "4.1.1"
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "usage-pipeline",
        description="where the launcher keeps resolved Kafka jars and its broker's data",
    )

    @property
    def clickhouse_local_home(self) -> Path:
        """Where the local ClickHouse server of ``dev`` and ``clickhouse start`` lives."""
        return self.clickhouse_local_dir or self.cache_dir / "clickhouse"


def load_settings() -> Settings:
    """Read the environment once. Call at process start and pass the result down.

    Invalid values raise :class:`ConfigError` naming each variable and what is wrong with it.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}", errors=exc.errors()) from None
