"""The sink's retry loop: resumes where it failed, never returns before everything is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pipeline.errors import StoreError
from pipeline.worker.sink import COLUMNS, ClickHouseSink, SinkBatch, SinkStopped


class FlakyStore:
    engine = "fake"

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.written: list[tuple[str, int]] = []

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, dedup_token: str | None = None
    ) -> None:
        raise AssertionError("the sink inserts value tuples (insert_columns)")

    def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        name = table.split(".")[1]
        assert all(len(row) == len(columns) for row in rows)
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            raise StoreError("engine down", sql="INSERT", engine="fake")
        self.written.append((name, len(rows)))

    def command(self, sql: str) -> None: ...
    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return []

    def close(self) -> None: ...


def batch() -> SinkBatch:
    log, usage, entries = (len(COLUMNS[t]) for t in ("event_log", "usage_events", "meter_entries"))
    return SinkBatch(
        event_log=[(1,) * log, (2,) * log],
        usage_events=[(1,) * usage],
        meter_entries=[(1,) * entries] * 3,
    )


def test_retries_until_written_and_resumes_at_the_failed_table() -> None:
    store = FlakyStore({"usage_events": 3})
    sleeps: list[float] = []
    sink = ClickHouseSink(store, "db", sleep=sleeps.append)  # type: ignore[arg-type]
    assert sink.write(batch()) == 4
    # event_log written once (not re-inserted on each retry), then the rest
    assert store.written == [("event_log", 2), ("usage_events", 1), ("meter_entries", 3)]
    assert sleeps == [0.2, 0.4, 0.8]  # capped exponential backoff


def test_stopping_while_unwritten_raises_instead_of_returning() -> None:
    store = FlakyStore({"event_log": 10**6})
    sink = ClickHouseSink(store, "db", sleep=lambda _s: sink.stopping.set())  # type: ignore[arg-type]
    with pytest.raises(SinkStopped, match="2 events unwritten"):
        sink.write(batch())
    assert store.written == []
