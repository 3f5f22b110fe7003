"""The sink's retry loop and its poison isolation, on a store double that fails on command.

What the real engine refuses and how it says so is tested against the real server in
test_sink_clickhouse.py; this file pins the loop: what is retried, what is cut down to the
offending events, what is held."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline.errors import StoreError
from pipeline.worker import sink as sink_module
from pipeline.worker.poison import Verdict, classify, engine_message
from pipeline.worker.sink import COLUMNS, ClickHouseSink, SinkBatch, SinkStopped

Refuse = Callable[[str, Sequence[Any]], StoreError | None]


class FlakyStore:
    """Fails the first ``failures[table]`` inserts into a table; ``refuse(table, row)`` may
    refuse any insert holding that row, for good."""

    engine = "fake"

    def __init__(self, failures: dict[str, int] | None = None, refuse: Refuse | None = None):
        self.failures = dict(failures or {})
        self.refuse = refuse
        self.written: list[tuple[str, int]] = []
        self.rows: dict[str, list[Sequence[Any]]] = {t: [] for t in COLUMNS}

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
        for row in rows:
            if self.refuse is not None and (error := self.refuse(name, row)) is not None:
                raise error
        self.written.append((name, len(rows)))
        self.rows[name].extend(rows)

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
    assert sink.write(batch()).attempts == 6  # 1 + 4 + 1 inserts
    # event_log written once (not re-inserted on each retry), then the rest
    assert store.written == [("event_log", 2), ("usage_events", 1), ("meter_entries", 3)]
    assert sleeps == [0.2, 0.4, 0.8]  # capped exponential backoff


def test_stopping_while_unwritten_raises_instead_of_returning() -> None:
    store = FlakyStore({"event_log": 10**6})
    sink = ClickHouseSink(store, "db", sleep=lambda _s: sink.stopping.set())  # type: ignore[arg-type]
    with pytest.raises(SinkStopped, match="2 rows of event_log unwritten"):
        sink.write(batch())
    assert store.written == []


# --- isolation ----------------------------------------------------------------------------

LOG, USAGE, ENTRY = ({c: n for n, c in enumerate(COLUMNS[t])} for t in COLUMNS)


def events(count: int, metrics: int = 2) -> SinkBatch:
    """``count`` first copies at offsets 0..count-1 of partition 3, ``metrics`` entries each."""
    out = SinkBatch()
    for offset in range(count):
        key = f"k{offset}"
        log = [None] * len(LOG)
        log[LOG["source_partition"]], log[LOG["source_offset"]] = 3, offset
        log[LOG["idempotency_key"]], log[LOG["disposition"]] = key, "first_copy"
        log[LOG["processed_at"]] = "2026-02-01 12:00:00.000000"
        usage = [None] * len(USAGE)
        usage[USAGE["source_partition"]], usage[USAGE["source_offset"]] = 3, offset
        usage[USAGE["billing_run"]], usage[USAGE["tenant"]] = "live", "acme"
        usage[USAGE["idempotency_key"]], usage[USAGE["fate"]] = key, "billed"
        usage[USAGE["product"]] = "payments"
        out.event_log.append(tuple(log))
        out.usage_events.append(tuple(usage))
        for metric in range(metrics):
            entry = [None] * len(ENTRY)
            entry[ENTRY["billing_run"]], entry[ENTRY["tenant"]] = "live", "acme"
            entry[ENTRY["idempotency_key"]], entry[ENTRY["metric"]] = key, f"m{metric}"
            out.meter_entries.append(tuple(entry))
    return out


def refused(code: int, text: str = "DB::Exception: no") -> StoreError:
    return StoreError(
        f"the ClickHouse server at http://h:1 failed: Received ClickHouse exception, code: "
        f"{code}, server response: Code: {code}. {text}. (NAME) (version 26.9.2.1) "
        "(for url http://h:1)",
        sql="INSERT",
        engine="fake",
        code=code,
    )


def isolated(table: str) -> float:
    value = REGISTRY.get_sample_value("pipeline_worker_poison_records_total", {"table": table})
    return value or 0.0


def keys(store: FlakyStore, table: str) -> list[str]:
    column = COLUMNS[table].index("idempotency_key")
    return [row[column] for row in store.rows[table]]


def test_a_refused_row_is_found_by_bisection_and_its_event_isolated_in_every_table() -> None:
    def refuse(table: str, row: Sequence[Any]) -> StoreError | None:
        poison = table == "usage_events" and row[USAGE["idempotency_key"]] == "k37"
        return refused(469, "Constraint `c` is violated") if poison else None

    store = FlakyStore(refuse=refuse)
    sink = ClickHouseSink(store, "db", sleep=lambda _s: None)  # type: ignore[arg-type]
    counted = isolated("usage_events")
    result = sink.write(events(100))
    assert isolated("usage_events") == counted + 1  # pipeline_worker_poison_records_total
    [refusal] = result.refused
    assert (refusal.partition, refusal.offset, refusal.table, refusal.code) == (
        3,
        37,
        "usage_events",
        469,
    )
    assert refusal.message == "Code: 469. Constraint `c` is violated. (NAME)"
    good = [f"k{n}" for n in range(100) if n != 37]
    # every other row written exactly once, in order; the poison's entries never
    assert keys(store, "usage_events") == good
    assert keys(store, "meter_entries") == [k for k in good for _ in range(2)]
    # its event_log row: written as first_copy, then rewritten as dead_letter with the reason
    log = store.rows["event_log"]
    assert len(log) == 101 and log[-1][LOG["source_offset"]] == 37
    assert log[-1][LOG["disposition"]] == "dead_letter"
    assert log[-1][LOG["quarantine_reason"]] == "clickhouse_refused"
    assert (
        "usage_events refused it (code 469 VIOLATED_CONSTRAINT)"
        in (log[-1][LOG["quarantine_detail"]])
    )
    # bisection, not one insert per row: ~2 * log2(100) refused inserts
    assert result.attempts < 30


def test_an_event_refused_in_meter_entries_loses_all_its_entries_and_its_billed_fate() -> None:
    def refuse(table: str, row: Sequence[Any]) -> StoreError | None:
        poison = table == "meter_entries" and row[ENTRY["idempotency_key"]] == "k5"
        return (
            refused(69, "Decimal value is too big")
            if poison and row[ENTRY["metric"]] == "m2"
            else None
        )

    store = FlakyStore(refuse=refuse)
    sink = ClickHouseSink(store, "db", sleep=lambda _s: None)  # type: ignore[arg-type]
    [refusal] = sink.write(events(10, metrics=4)).refused
    assert (refusal.offset, refusal.table) == (5, "meter_entries")
    assert "k5" not in keys(store, "meter_entries")  # m0, m1, m3 of k5 were not written either
    usage = store.rows["usage_events"]
    assert usage[-1][USAGE["idempotency_key"]] == "k5"
    assert (usage[-1][USAGE["fate"]], usage[-1][USAGE["product"]]) == ("dead_letter", None)


def test_an_event_whose_event_log_row_is_refused_is_recorded_by_its_coordinates_only() -> None:
    def refuse(table: str, row: Sequence[Any]) -> StoreError | None:
        return (
            refused(131) if table == "event_log" and row[LOG["idempotency_key"]] == "k2" else None
        )

    store = FlakyStore(refuse=refuse)
    sink = ClickHouseSink(store, "db", sleep=lambda _s: None)  # type: ignore[arg-type]
    [refusal] = sink.write(events(4)).refused
    assert (refusal.offset, refusal.table) == (2, "event_log")
    assert keys(store, "usage_events") == ["k0", "k1", "k3"]
    minimal = store.rows["event_log"][-1]
    assert (minimal[LOG["source_offset"]], minimal[LOG["disposition"]]) == (2, "dead_letter")
    assert minimal[LOG["idempotency_key"]] == "" and minimal[LOG["payload"]] == ""
    assert minimal[LOG["event_time"]] == minimal[LOG["processed_at"]]


@pytest.mark.parametrize("code", [None, 241, 252, 60, 16, 516, 9999])
def test_outages_and_statement_errors_are_retried_never_isolated(code: int | None) -> None:
    failures = {"usage_events": 3}

    def refuse(table: str, _row: Sequence[Any]) -> StoreError | None:
        if table == "usage_events" and failures["usage_events"] > 0:
            failures["usage_events"] -= 1
            if code is None:
                return StoreError("connection refused", sql="INSERT", engine="fake")
            return refused(code)
        return None

    store = FlakyStore(refuse=refuse)
    sleeps: list[float] = []
    sink = ClickHouseSink(store, "db", sleep=sleeps.append)  # type: ignore[arg-type]
    assert sink.write(events(8)).refused == ()
    assert keys(store, "usage_events") == [f"k{n}" for n in range(8)]
    assert sleeps == [0.2, 0.4, 0.8]


def test_more_refusals_than_poison_explains_hold_the_batch_instead(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A constraint that every row violates is a broken schema, not a stream of poison."""
    monkeypatch.setattr(sink_module, "MAX_REFUSED_PER_BATCH", 3)
    fixed = {"now": False}

    def refuse(table: str, _row: Sequence[Any]) -> StoreError | None:
        return None if fixed["now"] or table != "usage_events" else refused(469)

    def sleep(_seconds: float) -> None:
        fixed["now"] = "holding the batch" in caplog.text  # an operator fixes it meanwhile

    store = FlakyStore(refuse=refuse)
    sink = ClickHouseSink(store, "db", sleep=sleep)  # type: ignore[arg-type]
    assert sink.write(events(20)).refused == ()
    assert sorted(set(keys(store, "usage_events"))) == sorted(f"k{n}" for n in range(20))
    assert "more than 3 events of one batch" in caplog.text


def test_the_store_encoder_refusing_a_value_is_a_refusal() -> None:
    try:
        raise TypeError("Integer exceeds 64-bit range")
    except TypeError as cause:
        encoded = StoreError("cannot insert into db.t: ...", engine="x", table="db.t", sql=None)
        encoded.__cause__ = cause
    assert classify(encoded) is Verdict.REFUSED
    assert classify(StoreError("Network Error", sql="INSERT", engine="x")) is Verdict.RETRY
    assert classify(refused(60)) is Verdict.HELD
    assert engine_message(refused(27, "Cannot parse input")) == (
        "Code: 27. Cannot parse input. (NAME)"
    )
