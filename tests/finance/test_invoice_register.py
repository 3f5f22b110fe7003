"""finance/invoice_register.sql: every invoice version of a period."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from pipeline.billing import finalize_invoice, invoice_tenant, run_finance_query
from pipeline.store import Store
from tests.billing.rows import MARCH, Clock, acme_march_across_three_gateways, catalog, write_usage

pytestmark = pytest.mark.integration


def test_versions_statuses_and_differences(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    clock = Clock()
    write_usage(store, database, acme_march_across_three_gateways())
    invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    finalize_invoice(store, database, "acme", MARCH, clock=clock)
    invoice_tenant(store, database, catalog(call_price="0.30"), "acme", MARCH, clock=clock)
    invoice_tenant(store, database, catalog(), "hooli", MARCH, clock=clock)
    invoice_tenant(store, database, catalog(), "hooli", "2026-02", clock=clock)

    rows = run_finance_query(store, database, "invoice_register", {"period": MARCH})

    assert [
        (
            r["invoice_id"],
            r["status"],
            r["is_latest"],
            r["total"],
            r["supersedes"],
            r["difference_from_superseded"],
            r["finalized_at"] is not None,
        )
        for r in rows
    ] == [
        ("acme-2026-03-v1", "finalized", 0, D("73.64"), "", D(0), True),
        ("acme-2026-03-v2", "draft", 1, D("74.14"), "acme-2026-03-v1", D("0.50"), False),
        ("hooli-2026-03-v1", "draft", 1, D("60.00"), "", D(0), False),
    ]
