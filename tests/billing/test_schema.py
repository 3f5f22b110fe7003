"""Migration 0003: billing_runs, invoices, invoice_lines and their views behave as designed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from pipeline.store import Store
from pipeline.store.migrate import load_migrations

pytestmark = pytest.mark.integration

Fresh = tuple[Store, str]


def _tables(store: Store, database: str) -> dict[str, dict[str, Any]]:
    rows = store.query(
        "SELECT name, engine, engine_full, sorting_key, partition_key FROM system.tables "
        "WHERE database = {db:String} AND name IN "
        "('billing_runs', 'invoices', 'invoice_lines', 'invoices_current', "
        "'invoice_lines_current')",
        {"db": database},
    )
    return {str(row["name"]): row for row in rows}


def _invoice(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "invoice_id": "acme-2026-03-v1",
        "tenant": "acme",
        "period": "2026-03",
        "version": 1,
        "revision": 1,
        "status": "draft",
        "billing_run": "live",
        "catalog_fingerprint": "f",
        "plan": "growth",
        "plan_version": date(2026, 1, 1),
        "currency": "USD",
        "subtotal": D("10.00"),
        "minimum_commitment": None,
        "true_up": D("0.00"),
        "total": D("10.00"),
        "line_count": 1,
        "supersedes": "",
        "difference_from_superseded": D("0"),
        "computed_at": datetime(2026, 4, 1, tzinfo=UTC),
        "finalized_at": None,
    }
    row.update(overrides)
    return row


def _line(revision: int, line_no: int, amount: str) -> dict[str, Any]:
    return {
        "invoice_id": "acme-2026-03-v1",
        "tenant": "acme",
        "period": "2026-03",
        "version": 1,
        "revision": revision,
        "line_no": line_no,
        "kind": "flat",
        "name": f"line {line_no}",
        "product": None,
        "metric": None,
        "quantity": None,
        "billable": None,
        "unit_description": "flat",
        "amount": D(amount),
    }


def test_migration_0003_ships_and_keys_are_as_designed(fresh_database: Fresh) -> None:
    store, database = fresh_database
    assert [m.filename for m in load_migrations()][2] == "0003_invoices.sql"
    tables = _tables(store, database)
    assert {
        name: (t["engine"], t["sorting_key"], t["partition_key"]) for name, t in tables.items()
    } == {
        "billing_runs": ("ReplacingMergeTree", "period, tenant, run_id", ""),
        "invoices": ("ReplacingMergeTree", "tenant, period, version", "period"),
        "invoice_lines": (
            "ReplacingMergeTree",
            "tenant, period, version, revision, line_no",
            "period",
        ),
        "invoices_current": ("View", "", ""),
        "invoice_lines_current": ("View", "", ""),
    }
    assert str(tables["invoices"]["engine_full"]).startswith("ReplacingMergeTree(row_rank)")
    [money] = store.query(
        "SELECT type FROM system.columns WHERE database = {db:String} AND table = 'invoices' "
        "AND name = 'total'",
        {"db": database},
    )
    assert money["type"] == "Decimal(38, 4)"


def test_a_finalized_row_outranks_any_later_draft_even_after_merges(fresh_database: Fresh) -> None:
    store, database = fresh_database
    table = f"{database}.invoices"
    store.insert_rows(table, [_invoice(revision=3)])
    store.insert_rows(
        table,
        [_invoice(revision=3, status="finalized", finalized_at=datetime(2026, 4, 2, tzinfo=UTC))],
    )
    store.insert_rows(table, [_invoice(revision=4, total=D("99.00"))])  # a stale racing write
    [final] = store.query(f"SELECT status, revision, total FROM {table} FINAL")
    assert final == {"status": "finalized", "revision": 3, "total": D("10.0000")}
    store.command(f"OPTIMIZE TABLE {table} FINAL")
    assert store.query(f"SELECT status, revision FROM {table}") == [
        {"status": "finalized", "revision": 3}
    ]


def test_only_the_current_revisions_lines_are_current(fresh_database: Fresh) -> None:
    store, database = fresh_database
    store.insert_rows(
        f"{database}.invoice_lines",
        [_line(1, 1, "5.00"), _line(1, 2, "5.00"), _line(1, 3, "5.00"), _line(2, 1, "7.00")],
    )
    store.insert_rows(f"{database}.invoices", [_invoice(line_count=3, total=D("15.00"))])
    store.insert_rows(f"{database}.invoices", [_invoice(revision=2, line_count=1, total=D("7"))])
    # A line beyond line_count (e.g. left by an interrupted longer write) is not current either.
    store.insert_rows(f"{database}.invoice_lines", [_line(2, 2, "1.00")])
    rows = store.query(
        f"SELECT revision, line_no, amount, status, currency FROM {database}.invoice_lines_current"
    )
    assert rows == [
        {"revision": 2, "line_no": 1, "amount": D("7.0000"), "status": "draft", "currency": "USD"}
    ]


def test_invoices_current_marks_the_latest_version(fresh_database: Fresh) -> None:
    store, database = fresh_database
    store.insert_rows(
        f"{database}.invoices",
        [
            _invoice(status="finalized", finalized_at=datetime(2026, 4, 2, tzinfo=UTC)),
            _invoice(invoice_id="acme-2026-03-v2", version=2, supersedes="acme-2026-03-v1"),
            _invoice(invoice_id="acme-2026-02-v1", period="2026-02"),
        ],
    )
    rows = store.query(
        f"SELECT invoice_id, is_latest FROM {database}.invoices_current ORDER BY invoice_id"
    )
    assert [(r["invoice_id"], r["is_latest"]) for r in rows] == [
        ("acme-2026-02-v1", 1),
        ("acme-2026-03-v1", 0),
        ("acme-2026-03-v2", 1),
    ]
