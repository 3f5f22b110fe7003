"""The finance query runner: names, headers, parameter checks (no engine needed)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline.billing import (
    FINANCE_DIR,
    BillingError,
    FinanceQueryError,
    finance_query_names,
    finance_query_summary,
    load_finance_query,
    query_parameters,
    run_finance_query,
)
from pipeline.rating import InvalidPeriod, Period

SHIPPED = [
    "invoice_register",
    "quarantine_volume",
    "revenue_by_product",
    "top_consumers",
    "unmapped_volume",
    "usage_by_gateway_for_tenant",
    "usage_by_tenant_product",
]


class RecordingStore:
    """Stands in for the engine: records the statement and parameters it was given."""

    engine = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, object] | None]] = []

    def command(self, sql: str) -> None:
        raise AssertionError("finance queries only read")

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        self.calls.append((sql, params))
        return [{"ok": 1}]

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, dedup_token: str | None = None
    ) -> None:
        raise AssertionError("finance queries only read")

    def close(self) -> None:
        pass


def test_the_shipped_queries_are_listed_in_the_readme() -> None:
    assert finance_query_names() == SHIPPED
    readme = (FINANCE_DIR / "README.md").read_text(encoding="utf-8")
    for name in SHIPPED:
        assert f"`{name}.sql`" in readme


@pytest.mark.parametrize("name", SHIPPED)
def test_every_query_documents_what_it_answers_its_parameters_and_how_to_run_it(
    name: str,
) -> None:
    sql = load_finance_query(name)
    header = _header(sql)
    assert header.startswith(f"-- {name}: ")
    assert "-- Parameters:" in header
    assert "-- Run:" in header
    assert f'"{name}"' in header  # the Python call names the query
    parameters = query_parameters(sql)
    assert parameters, "every query is parameterised (at least the period)"
    for parameter, kind in parameters.items():
        assert f"{{{parameter}:{kind}}}" in header, f"{parameter} is not documented"
    assert "{database}." in sql
    assert sql.rstrip().endswith(";")
    assert finance_query_summary(name).startswith(f"{name}: ")


def _header(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_query_parameters_read_code_not_comments() -> None:
    sql = "-- {ignored:String}\nSELECT {a:UInt32}, {b:Array(String)}, {a:UInt32}"
    assert query_parameters(sql) == {"a": "UInt32", "b": "Array(String)"}
    with pytest.raises(FinanceQueryError, match="declared with two types, UInt32 and String"):
        query_parameters("SELECT {a:UInt32}, {a:String}")


def test_the_database_is_substituted_and_parameters_are_bound_by_the_engine() -> None:
    store = RecordingStore()
    rows = run_finance_query(store, "billing_db", "quarantine_volume", {"period": Period(2026, 3)})
    assert rows == [{"ok": 1}]
    [(sql, params)] = store.calls
    assert "billing_db.quarantine" in sql
    assert "{database}" not in sql
    assert "{period:String}" in sql  # never spliced into the text
    assert not sql.endswith(";")
    assert params == {"period": "2026-03"}


def test_missing_and_unknown_parameters_name_what_the_query_takes() -> None:
    store = RecordingStore()
    message = (
        r"finance query top_consumers: missing billing_run, top; unknown month\. "
        r"It takes: billing_run \(String\), period \(String\), top \(UInt32\)"
    )
    with pytest.raises(FinanceQueryError, match=message):
        run_finance_query(store, "db", "top_consumers", {"period": "2026-03", "month": "x"})
    assert store.calls == []


def test_a_bad_period_is_refused_before_the_query_runs() -> None:
    store = RecordingStore()
    with pytest.raises(InvalidPeriod, match="expected YYYY-MM"):
        run_finance_query(store, "db", "quarantine_volume", {"period": "March"})
    assert store.calls == []


def test_unknown_queries_and_bad_database_names_are_refused() -> None:
    with pytest.raises(FinanceQueryError, match=r"no finance query named 'revenue'.*known: "):
        load_finance_query("revenue")
    with pytest.raises(BillingError, match="not a plain identifier"):
        run_finance_query(RecordingStore(), "db; DROP", "quarantine_volume", {"period": "2026-03"})


def test_queries_can_come_from_another_directory(tmp_path: Path) -> None:
    (tmp_path / "one.sql").write_text("-- one: counts\nSELECT {n:UInt8} AS n FROM {database}.t;\n")
    (tmp_path / "Not A Query.sql").write_text("SELECT 1")
    assert finance_query_names(tmp_path) == ["one"]
    store = RecordingStore()
    run_finance_query(store, "db", "one", {"n": 3}, directory=tmp_path)
    assert re.search(r"FROM db\.t$", store.calls[0][0])
