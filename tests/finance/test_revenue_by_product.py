"""finance/revenue_by_product.sql: billed amounts per currency, product and line kind."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from pipeline.billing import finalize_invoice, invoice_tenant, run_finance_query
from pipeline.store import Store
from tests.billing.rows import (
    MARCH,
    Clock,
    Usage,
    acme_march_across_three_gateways,
    at,
    catalog,
    write_usage,
)

pytestmark = pytest.mark.integration


def test_revenue_from_finalized_or_latest_invoices(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    clock = Clock()
    write_usage(store, database, acme_march_across_three_gateways())
    jpy = [Usage(f"jp-{n}", "kong", at(n), tenant="initech") for n in range(1, 8)]
    jpy[0] = replace(jpy[0], response_bytes=3_000_000_000)
    write_usage(store, database, jpy)
    # acme: finalized v1 at 73.64 (49 fee + 2.50 calls + 0.14 egress + 22 apps), then a price
    # change makes draft v2 (74.14), which is not revenue until finalized.
    invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    finalize_invoice(store, database, "acme", MARCH, clock=clock)
    invoice_tenant(store, database, catalog(call_price="0.30"), "acme", MARCH, clock=clock)
    # hooli: no usage, draft only, recomputed twice: 49 fee + 11 true-up, counted once.
    for _ in range(3):
        invoice_tenant(store, database, catalog(), "hooli", MARCH, clock=clock)
    # initech (JPY): 1200 fee, 7 calls x 0.5 = 3.5 -> 4, 3 GB x 13.5 = 40.5 -> 41.
    invoice_tenant(store, database, catalog(), "initech", MARCH, clock=clock)
    # Another period does not count.
    invoice_tenant(store, database, catalog(), "hooli", "2026-02", clock=clock)

    rows = run_finance_query(store, database, "revenue_by_product", {"period": MARCH})

    assert [
        (r["currency"], r["product"], r["kind"], r["amount"], r["tenants"], r["draft_tenants"])
        for r in rows
    ] == [
        ("JPY", "", "flat", D(1200), 1, 1),
        ("JPY", "payments", "usage", D(45), 1, 1),
        ("USD", "", "flat", D("98.00"), 2, 1),  # acme 49 (final) + hooli 49 (draft)
        ("USD", "payments", "usage", D("24.64"), 2, 1),  # acme 2.50 + 0.14 + 22; hooli 0
        ("USD", "", "true_up", D("11.00"), 1, 1),
    ]
