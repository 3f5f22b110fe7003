from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Settings, load_settings


def test_no_targets_by_default_and_the_local_server_lives_in_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in (
        "PIPELINE_KAFKA_BOOTSTRAP_SERVERS",
        "PIPELINE_CLICKHOUSE_URL",
        "PIPELINE_CLICKHOUSE_LOCAL_DIR",
        "PIPELINE_CACHE_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.kafka_bootstrap_servers is None  # production commands refuse; dev starts one
    assert s.clickhouse_url is None
    assert s.clickhouse_local_home == Path.home() / ".cache" / "usage-pipeline" / "clickhouse"
    assert s.topics.events == "usage.events"
    monkeypatch.setenv("PIPELINE_CLICKHOUSE_LOCAL_DIR", "/srv/ch-dev")
    assert load_settings().clickhouse_local_home == Path("/srv/ch-dev")


def test_environment_with_one_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("PIPELINE_CLICKHOUSE_URL", "http://default:s3cret@ch:8123")
    monkeypatch.setenv("PIPELINE_TOPIC_EVENTS", "prod.usage")
    monkeypatch.setenv("PIPELINE_INGEST_PORT", "9000")
    s = load_settings()
    assert s.kafka_bootstrap_servers == "broker:9092"
    assert s.topics.events == "prod.usage"
    assert s.ingest_port == 9000
    assert s.clickhouse_url is not None
    assert "s3cret" not in repr(s)  # secrets never show in logs
    assert s.clickhouse_url.get_secret_value().endswith("@ch:8123")


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError, match="frozen"):
        s.ingest_port = 1  # type: ignore[misc]


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_INGEST_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="PIPELINE_INGEST_PORT"):
        load_settings()


def test_the_crash_point_setting_accepts_exactly_the_workers_crash_points() -> None:
    from pipeline.worker.faults import SPEC_PATTERN

    field = Settings.model_fields["worker_crash_at"]
    patterns = [m.pattern for m in field.metadata if hasattr(m, "pattern")]
    assert patterns == [SPEC_PATTERN]
