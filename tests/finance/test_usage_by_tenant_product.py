"""finance/usage_by_tenant_product.sql: usage from the meters of the run invoices use."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from pipeline.billing import BillingRun, billing_run_for, record_billing_run, run_finance_query
from pipeline.rating import Period
from pipeline.store import Store
from tests.billing.rows import MARCH, Usage, acme_march_across_three_gateways, at, write_usage

pytestmark = pytest.mark.integration


def _replay(run_id: str, tenant: str, day: int) -> BillingRun:
    return BillingRun(
        run_id, "replay", Period.parse(MARCH), tenant, "f", datetime(2026, 4, day, tzinfo=UTC)
    )


def _usage(store: Store, database: str, billing_run: str) -> list[tuple[Any, ...]]:
    rows = run_finance_query(
        store,
        database,
        "usage_by_tenant_product",
        {"period": MARCH, "billing_run": billing_run},
    )
    return [
        (r["tenant"], r["metric"], r["billing_run"], r["quantity"], r["raw_quantity"], r["entries"])
        for r in rows
    ]


def test_usage_per_tenant_from_the_invoice_run(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    write_usage(store, database, acme_march_across_three_gateways())
    write_usage(
        store,
        database,
        [
            Usage("g1", "kong", at(1), tenant="globex", consumer="app-9"),
            Usage("g2", "kong", at(2), tenant="globex"),
            Usage("i1", "kong", at(3), tenant="initech"),
            Usage("apr", "kong", datetime(2026, 4, 1, tzinfo=UTC), tenant="globex"),
            # replay-all re-processed March for everyone: acme now has 5 calls, initech none.
            *[Usage(f"ra{n}", "kong", at(n), billing_run="replay-all") for n in range(1, 6)],
            # replay-globex is newer and only for globex: 1 call.
            Usage("rg1", "kong", at(1), tenant="globex", billing_run="replay-globex"),
        ],
    )
    record_billing_run(store, database, _replay("replay-all", "", 2))
    record_billing_run(store, database, _replay("replay-globex", "globex", 3))

    # By hand, live: acme 20 calls, 2.5e9 bytes = 2.5 GB, 3 apps, peak 340 ms; globex 2 calls
    # and 1 app; initech 1 call.
    assert _usage(store, database, "live") == [
        ("acme", "active_apps", "live", D(3), D(3), 20),  # every event has a consumer
        ("acme", "calls", "live", D(20), D(20), 20),
        ("acme", "egress_gb", "live", D("2.5"), D(2_500_000_000), 3),
        ("acme", "peak_latency", "live", D(340), D(340), 3),
        ("globex", "active_apps", "live", D(1), D(1), 1),
        ("globex", "calls", "live", D(2), D(2), 2),
        ("initech", "calls", "live", D(1), D(1), 1),
    ]
    # Per tenant, the run its invoice uses: acme -> replay-all, globex -> replay-globex,
    # initech -> replay-all, in which it has no usage at all.
    assert _usage(store, database, "") == [
        ("acme", "calls", "replay-all", D(5), D(5), 5),
        ("globex", "calls", "replay-globex", D(1), D(1), 1),
    ]
    assert [billing_run_for(store, database, t, MARCH) for t in ("acme", "globex", "initech")] == [
        "replay-all",
        "replay-globex",
        "replay-all",
    ]
