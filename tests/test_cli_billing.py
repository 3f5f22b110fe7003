"""The billing commands as a user runs them, against the run's ClickHouse server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest

from pipeline.cli import main
from pipeline.store import Store
from pipeline.store.migrate import migrate
from tests.replay.support import Clock, LiveStream, at, kong
from tests.support.builders import example_catalog

pytestmark = pytest.mark.integration


@pytest.fixture
def database(clickhouse_url: str, store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The commands' environment: the run's server, and a database of this test's own."""
    name = f"cli_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PIPELINE_CLICKHOUSE_URL", clickhouse_url)
    monkeypatch.setenv("PIPELINE_CLICKHOUSE_DATABASE", name)
    try:
        yield name
    finally:
        store.command(f"DROP DATABASE IF EXISTS {name}")


def test_invoice_replay_and_events_commands(
    database: str, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(store, database)
    live = LiveStream(store, database, example_catalog(), clock=Clock())
    # 30 acme calls through Kong, each delivered twice; one unknown tenant (quarantined).
    live.deliver([kong(f"k{i}", "ACME-LEGACY", at(3 + i % 20), copies=2) for i in range(30)])
    live.deliver([kong("q1", "nobody", at(5))])

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
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoice", "--tenant", "nobody-at-all", "--period", "2026-03"]) == 2
    assert "nobody-at-all" in capsys.readouterr().err
