"""The billing commands as a user runs them, on an embedded store owned by a relay process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main
from pipeline.processes import Relay
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.store.migrate import migrate
from tests.replay.support import Clock, LiveStream, at, kong
from tests.support.builders import example_catalog

pytestmark = pytest.mark.integration


@pytest.fixture
def relay_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    relay = Relay(tmp_path / "clickhouse", tmp_path / "relay.log")
    relay.start()
    monkeypatch.setenv("PIPELINE_CLICKHOUSE_URL", relay.url)
    try:
        yield relay.url
    finally:
        relay.stop()


def test_invoice_replay_and_events_commands(
    relay_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(Settings(clickhouse_url=relay_url))  # type: ignore[arg-type]
    try:
        migrate(store, "metering")
        live = LiveStream(store, "metering", example_catalog(), clock=Clock())
        # 30 acme calls through Kong, each delivered twice; one unknown tenant (quarantined).
        live.deliver([kong(f"k{i}", "ACME-LEGACY", at(3 + i % 20), copies=2) for i in range(30)])
        live.deliver([kong("q1", "nobody", at(5))])
    finally:
        store.close()

    assert main(["invoice", "--tenant", "acme", "--period", "2026-03", "--json"]) == 0
    invoice = orjson.loads(capsys.readouterr().out)
    assert invoice["tenant"] == "acme" and invoice["version"] == 1
    calls = next(line for line in invoice["lines"] if line.get("metric") == "calls")
    assert calls["quantity"] in ("30", "30.000000000")  # duplicates billed once

    assert main(["invoice", "--tenant", "acme", "--period", "2026-03", "--finalize"]) == 0
    assert "finalized" in capsys.readouterr().out

    assert main(["replay", "--period", "2026-03", "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out.lower()

    assert main(["events", "--tenant", "acme", "--period", "2026-03", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    text = orjson.dumps(report).decode()
    assert "kong" in text


def test_invoice_for_unknown_tenant_is_a_clear_error(
    relay_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoice", "--tenant", "nobody-at-all", "--period", "2026-03"]) == 2
    assert "nobody-at-all" in capsys.readouterr().err
