"""finance/top_consumers.sql: consumers with the most billed events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.billing import BillingRun, record_billing_run, run_finance_query
from pipeline.rating import Period
from pipeline.store import Store
from tests.billing.rows import (
    MARCH,
    Usage,
    acme_march_across_three_gateways,
    at,
    usage_event_row,
    write_usage,
)

pytestmark = pytest.mark.integration


def _top(store: Store, database: str, billing_run: str, top: int) -> list[tuple[Any, ...]]:
    rows = run_finance_query(
        store,
        database,
        "top_consumers",
        {"period": MARCH, "billing_run": billing_run, "top": top},
    )
    return [(r["tenant"], r["consumer"], r["product"], r["events"], r["billing_run"]) for r in rows]


def test_most_billed_events_per_consumer(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    acme = acme_march_across_three_gateways()  # app-1: 8 kong + 5 aws, app-2: 6, app-3: 1
    write_usage(store, database, acme)
    write_usage(
        store,
        database,
        [
            Usage("g1", "kong", at(1), tenant="globex", consumer="app-9"),
            Usage("g2", "kong", at(2), tenant="globex", consumer="app-9"),
            Usage("g3", "kong", at(3), tenant="globex"),  # no consumer
            Usage("u1", "kong", at(4), consumer="app-1", product=None),  # unmapped: not billed
            Usage("apr", "kong", datetime(2026, 4, 1, tzinfo=UTC), consumer="app-2"),
        ],
    )
    # A later-processed row for kong-1 with another consumer: the first processed one counts.
    late = usage_event_row(replace(acme[0], consumer="app-late"))
    late["processed_at"] += timedelta(hours=1)
    store.insert_rows(f"{database}.usage_events", [late])

    assert _top(store, database, "", 4) == [
        ("acme", "app-1", "payments", 13, "live"),
        ("acme", "app-2", "payments", 6, "live"),
        ("globex", "app-9", "payments", 2, "live"),
        ("acme", "app-3", "payments", 1, "live"),
    ]
    assert _top(store, database, "live", 10)[-1] == ("globex", "", "payments", 1, "live")

    # A replay for acme only: acme's consumers come from it, globex's from live.
    write_usage(
        store,
        database,
        [Usage(f"r{n}", "kong", at(n), consumer="app-5", billing_run="r1") for n in range(1, 4)],
    )
    record_billing_run(
        store,
        database,
        BillingRun(
            "r1", "replay", Period.parse(MARCH), "acme", "f", datetime(2026, 4, 2, tzinfo=UTC)
        ),
    )
    assert _top(store, database, "", 10) == [
        ("acme", "app-5", "payments", 3, "r1"),
        ("globex", "app-9", "payments", 2, "live"),
        ("globex", "", "payments", 1, "live"),
    ]
