from __future__ import annotations

import pytest

from pipeline.cli import main


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
