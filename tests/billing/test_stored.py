"""Stored invoice rows: conversion both ways, integrity checks, loaders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.billing import CorruptInvoice, InvoiceNotFound, StoredInvoice, load_invoice
from pipeline.billing.stored import (
    invoice_id_for,
    invoice_row,
    invoice_versions,
    latest_invoice,
    line_rows,
    stored_from_rows,
    stored_quantity,
)
from pipeline.rating import Invoice, Period, compute_invoice
from pipeline.store import Store
from tests.billing.rows import MARCH, catalog

Fresh = tuple[Store, str]
COMPUTED_AT = datetime(2026, 4, 1, 9, tzinfo=UTC)


def _stored(invoice: Invoice, **overrides: Any) -> StoredInvoice:
    fields: dict[str, Any] = {
        "invoice": invoice,
        "version": 1,
        "revision": 1,
        "status": "draft",
        "billing_run": "live",
        "catalog_fingerprint": "abc",
        "supersedes": "",
        "difference_from_superseded": D("0.00"),
        "computed_at": COMPUTED_AT,
        "finalized_at": None,
    }
    fields.update(overrides)
    return StoredInvoice(**fields)


def _as_read_back(row: dict[str, Any], scale: int) -> dict[str, Any]:
    """What the engine returns for a written row: decimals padded to the column scale."""
    step = D(1).scaleb(-scale)
    return {
        key: value.quantize(step) if isinstance(value, D) and key != "quantity" else value
        for key, value in row.items()
    }


def _round_trip(stored: StoredInvoice) -> StoredInvoice:
    row = _as_read_back(invoice_row(stored), 4)
    lines = [
        {
            **_as_read_back(line, 4),
            "quantity": None if line["quantity"] is None else line["quantity"].quantize(D("1E-9")),
            "billable": None if line["billable"] is None else line["billable"].quantize(D("1E-9")),
        }
        for line in line_rows(stored)
    ]
    return stored_from_rows(row, lines)


def _invoice(calls: D, egress: D, apps: int, tenant: str = "acme") -> Invoice:
    quantities = {
        ("payments", "calls"): calls,
        ("payments", "egress_gb"): egress,
        ("payments", "active_apps"): D(apps),
    }
    return compute_invoice(catalog(), tenant, Period.parse(MARCH), quantities)


def test_invoice_ids_are_derived_from_tenant_period_and_version() -> None:
    assert invoice_id_for("acme", Period(2026, 3), 12) == "acme-2026-03-v12"


def test_rows_carry_every_line_including_the_true_up() -> None:
    stored = _stored(_invoice(D(0), D(0), 0))
    row = invoice_row(stored)
    assert row["line_count"] == 5
    assert row["total"] == D("60.00")
    assert "row_rank" not in row
    lines = line_rows(stored)
    assert [line["line_no"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["kind"] == "true_up"
    assert lines[-1]["amount"] == D("11.00")
    assert sum(line["amount"] for line in lines) == row["total"]


@settings(max_examples=60, deadline=None)
@given(
    calls=st.integers(min_value=0, max_value=10**7),
    egress=st.decimals(min_value=0, max_value=10**6, places=9),
    apps=st.integers(min_value=0, max_value=50),
    tenant=st.sampled_from(["acme", "initech"]),
)
def test_rows_read_back_to_the_same_invoice(calls: int, egress: D, apps: int, tenant: str) -> None:
    invoice = _invoice(D(calls), egress, apps, tenant)
    stored = _stored(invoice, difference_from_superseded=D("-2"))
    back = _round_trip(stored)
    assert back.invoice == invoice
    assert back.difference_from_superseded == D("-2")
    assert back.invoice_id == stored.invoice_id
    assert [line.amount.as_tuple().exponent for line in back.lines] == [
        line.amount.as_tuple().exponent for line in invoice.lines_with_true_up()
    ]


@given(st.decimals(min_value=0, max_value=10**20, places=15, allow_nan=False))
def test_stored_quantities_keep_nine_decimals_at_most(value: D) -> None:
    stored = stored_quantity(value)
    assert stored is not None
    exponent = stored.as_tuple().exponent
    assert isinstance(exponent, int)
    assert exponent >= -9 or stored == value
    assert abs(stored - value) <= D("0.0000000005")


def test_stored_quantity_keeps_short_values_exactly() -> None:
    assert stored_quantity(None) is None
    assert str(stored_quantity(D("2.5"))) == "2.5"
    assert stored_quantity(D(1) / D(3)) == D("0.333333333")


def test_missing_lines_are_reported() -> None:
    stored = _stored(_invoice(D(30), D(0), 2))  # 49 + 20 x 0.25 + 2 x 5 = 64.00: 4 lines
    lines = line_rows(stored)[:-1]
    with pytest.raises(CorruptInvoice, match=r"should have lines 1\.\.4 but has \[1, 2, 3\]"):
        stored_from_rows(invoice_row(stored), lines)


def test_lines_that_do_not_add_up_are_reported() -> None:
    stored = _stored(_invoice(D(30), D(0), 2))
    lines = line_rows(stored)
    lines[0] = {**lines[0], "amount": D("48.00")}
    with pytest.raises(CorruptInvoice, match=r"lines add up to 63.00 USD but its total is 64.00"):
        stored_from_rows(invoice_row(stored), lines)


def test_amounts_finer_than_the_minor_unit_are_reported() -> None:
    stored = _stored(_invoice(D(7), D(0), 0, tenant="initech"))
    row = {**invoice_row(stored), "total": D("1204.5000")}
    with pytest.raises(CorruptInvoice, match="not a whole number of JPY minor units"):
        stored_from_rows(row, line_rows(stored))


def test_json_has_the_stored_facts_and_decimal_strings() -> None:
    stored = _stored(
        _invoice(D(30), D(0), 2),
        version=2,
        status="finalized",
        supersedes="acme-2026-03-v1",
        difference_from_superseded=D("-0.50"),
        finalized_at=datetime(2026, 4, 2, tzinfo=UTC),
    )
    document = stored.to_json_dict()
    assert document["invoice_id"] == "acme-2026-03-v2"
    assert document["status"] == "finalized"
    assert document["supersedes"] == "acme-2026-03-v1"
    assert document["difference_from_superseded"] == "-0.50"
    assert document["finalized_at"] == "2026-04-02T00:00:00+00:00"
    assert document["total"] == "64.00"  # 49 + 20 x 0.25 + 2 apps x 5
    assert _stored(_invoice(D(0), D(0), 0)).to_json_dict()["supersedes"] is None


@pytest.mark.integration
def test_loaders_find_versions_and_say_what_exists(fresh_database: Fresh) -> None:
    from pipeline.billing.stored import write_invoice

    store, database = fresh_database
    assert latest_invoice(store, database, "acme", MARCH) is None
    with pytest.raises(InvoiceNotFound, match="no invoice for tenant acme in 2026-03"):
        load_invoice(store, database, "acme", MARCH)
    first = _stored(_invoice(D(20), D(0), 1), status="finalized", finalized_at=COMPUTED_AT)
    second = _stored(
        _invoice(D(25), D(0), 1),
        version=2,
        supersedes=first.invoice_id,
        difference_from_superseded=D("1.25"),
    )
    write_invoice(store, database, first)
    write_invoice(store, database, second)

    assert load_invoice(store, database, "acme", Period(2026, 3)).invoice == second.invoice
    assert load_invoice(store, database, "acme", MARCH, version=1).invoice == first.invoice
    assert [v.version for v in invoice_versions(store, database, "acme", MARCH)] == [1, 2]
    with pytest.raises(
        InvoiceNotFound, match=r"no invoice version 7 for 2026-03 \(versions: 1, 2\)"
    ):
        load_invoice(store, database, "acme", MARCH, version=7)
