"""Period quantities and tenants from the stored meters and usage events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from pipeline.billing import InconsistentMeters, period_quantities, tenants_with_usage
from pipeline.rating import metric_quantity_from_raw
from pipeline.store import Store
from tests.billing.rows import MARCH, Usage, at, meter_rows, write_usage

pytestmark = pytest.mark.integration

Fresh = tuple[Store, str]
LAST_INSTANT_OF_MARCH = datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
FIRST_INSTANT_OF_APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def test_every_aggregation_over_the_period(fresh_database: Fresh) -> None:
    store, database = fresh_database
    write_usage(
        store,
        database,
        [
            Usage("k1", "kong", at(1), consumer="app-1", latency_ms=120, response_bytes=10**9),
            Usage("k2", "apigee", at(2), consumer="app-1", latency_ms=340),
            Usage("k3", "aws", LAST_INSTANT_OF_MARCH, consumer="app-2", response_bytes=5 * 10**8),
            # Not in March for acme in run live: next month, other tenant, other run.
            Usage("k4", "kong", FIRST_INSTANT_OF_APRIL, consumer="app-9", latency_ms=999),
            Usage("k5", "kong", at(3), tenant="globex", consumer="app-8"),
            Usage("k6", "kong", at(4), billing_run="replay-1", latency_ms=5000),
        ],
    )
    write_usage(store, database, [Usage("k1", "kong", at(1), consumer="app-1", latency_ms=120)])

    quantities = period_quantities(store, database, "acme", MARCH, "live")

    assert quantities == {
        ("payments", "calls"): D(3),  # k1 written twice counts once
        ("payments", "egress_gb"): D("1.5"),  # (1e9 + 5e8) / 1e9
        ("payments", "active_apps"): D(2),
        ("payments", "peak_latency"): D(340),
    }
    assert period_quantities(store, database, "acme", "2026-04", "live")[
        ("payments", "peak_latency")
    ] == D(999)
    assert period_quantities(store, database, "acme", MARCH, "replay-1") == {
        ("payments", "calls"): D(1),
        ("payments", "peak_latency"): D(5000),
    }
    assert period_quantities(store, database, "nobody", MARCH, "live") == {}


def test_divide_by_is_applied_once_to_the_period_total(fresh_database: Fresh) -> None:
    store, database = fresh_database
    rows = [
        {**row, "divide_by": D(3)}
        for usage in (Usage("a", "kong", at(1), response_bytes=1), Usage("b", "kong", at(2)))
        for row in meter_rows(replace(usage, response_bytes=1))
        if row["metric"] == "egress_gb"
    ]
    store.insert_rows(f"{database}.meter_entries", rows)
    quantity = period_quantities(store, database, "acme", MARCH, "live")[("payments", "egress_gb")]
    # (1 + 1) / 3 divided once: 60 significant digits ending in ...667, not 1/3 + 1/3 (...666).
    assert quantity == metric_quantity_from_raw("sum", D(2), D(3))
    assert str(quantity).endswith("667")


def test_two_aggregations_for_one_metric_are_refused(fresh_database: Fresh) -> None:
    store, database = fresh_database
    [count_row] = [row for row in meter_rows(Usage("a", "kong", at(1))) if row["metric"] == "calls"]
    store.insert_rows(
        f"{database}.meter_entries",
        [count_row, {**count_row, "idempotency_key": "b", "aggregation": "sum"}],
    )
    with pytest.raises(InconsistentMeters, match=r"payments/calls .* count and sum"):
        period_quantities(store, database, "acme", MARCH, "live")


def test_tenants_with_usage_by_run_and_in_any_run(fresh_database: Fresh) -> None:
    store, database = fresh_database
    write_usage(
        store,
        database,
        [
            Usage("a", "kong", LAST_INSTANT_OF_MARCH, tenant="initech"),
            Usage("b", "kong", at(1), tenant="acme", product=None),  # unmapped counts too
            Usage("c", "kong", FIRST_INSTANT_OF_APRIL, tenant="globex"),
            Usage("d", "kong", at(2), tenant="hooli", billing_run="replay-1"),
        ],
    )
    assert tenants_with_usage(store, database, MARCH, "live") == ["acme", "initech"]
    assert tenants_with_usage(store, database, MARCH, "replay-1") == ["hooli"]
    assert tenants_with_usage(store, database, MARCH, None) == ["acme", "hooli", "initech"]
    assert tenants_with_usage(store, database, "2026-04", None) == ["globex"]
