from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_invalid_setting_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPELINE_TOPIC_PARTITIONS", "0")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert "PIPELINE_TOPIC_PARTITIONS" in err and "greater than or equal to 1" in err


@pytest.mark.integration
def test_kafka_status_and_topics(
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unique_name: str,
) -> None:
    monkeypatch.setenv("PIPELINE_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("PIPELINE_TOPIC_EVENTS", f"{unique_name}.events")
    monkeypatch.setenv("PIPELINE_TOPIC_QUARANTINE", f"{unique_name}.quarantine")
    monkeypatch.setenv("PIPELINE_TOPIC_DEAD_LETTERS", f"{unique_name}.dlq")
    assert main(["topics"]) == 0
    out = capsys.readouterr().out
    assert f"topic {unique_name}.events: 4 partitions, created" in out
    assert main(["topics"]) == 0
    assert f"topic {unique_name}.events: 4 partitions, already present" in capsys.readouterr().out


def _without_targets() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    return {**env, "PIPELINE_RULES_DIR": str(REPO / "rating_rules")}


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["worker"], "PIPELINE_KAFKA_BOOTSTRAP_SERVERS"),
        (["ingest"], "PIPELINE_KAFKA_BOOTSTRAP_SERVERS"),
        (["topics"], "PIPELINE_KAFKA_BOOTSTRAP_SERVERS"),
        (["migrate"], "PIPELINE_CLICKHOUSE_URL"),
        (["invoice", "--tenant", "acme", "--period", "2026-03"], "PIPELINE_CLICKHOUSE_URL"),
        (["finance", "usage_by_tenant_product"], "PIPELINE_CLICKHOUSE_URL"),
    ],
)
def test_production_commands_never_start_local_servers_and_name_the_missing_setting(
    command: list[str], setting: str, tmp_path: Path
) -> None:
    """With nothing configured, a production command exits 2 naming the setting (and how to get
    a local server), quickly: it starts no broker and no ClickHouse of its own."""
    env = {**_without_targets(), "PIPELINE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{setting} is not set" in done.stderr
    assert "start`: it prints the line to export" in done.stderr
    assert not (tmp_path / "cache").exists()  # no launcher ran


def test_worker_with_kafka_but_no_clickhouse_names_the_clickhouse_setting(
    tmp_path: Path,
) -> None:
    env = {**_without_targets(), "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PIPELINE_CLICKHOUSE_URL is not set" in done.stderr
