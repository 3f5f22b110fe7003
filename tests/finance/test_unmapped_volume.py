"""finance/unmapped_volume.sql: events no product matched, by gateway, API and route."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.billing import run_finance_query
from pipeline.store import Store
from tests.billing.rows import MARCH, Usage, at, write_usage

pytestmark = pytest.mark.integration


def test_unmapped_first_copies_by_gateway_api_route(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    unmapped = {"product": None, "api": "unknown-svc", "route": "/v1/x"}
    write_usage(
        store,
        database,
        [
            Usage("u1", "kong", at(1), copies=3, **unmapped),  # duplicates are not counted
            Usage("u2", "kong", at(2), tenant="globex", headers=("globex",), **unmapped),
            Usage("u3", "aws", at(3), product=None, api="zzz", route=None, headers=()),
            # Not unmapped: billed, quarantined, or in another month.
            Usage("b1", "kong", at(4), copies=2),
            Usage("q1", "kong", at(5), tenant=None, quarantine_reason="unknown_tenant", **unmapped),
            Usage("apr", "kong", datetime(2026, 4, 1, tzinfo=UTC), **unmapped),
        ],
    )

    rows = run_finance_query(store, database, "unmapped_volume", {"period": MARCH})

    assert [
        (r["gateway"], r["api"], r["route"], r["events"], r["tenants"], r["integrations"])
        for r in rows
    ] == [
        ("kong", "unknown-svc", "/v1/x", 2, 2, ["kong-prod"]),
        ("aws", "zzz", "", 1, 1, ["aws-prod"]),
    ]
    assert (rows[0]["first_event"], rows[0]["last_event"]) == (at(1), at(2))
