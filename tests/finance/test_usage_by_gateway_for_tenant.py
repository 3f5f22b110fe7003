"""finance/usage_by_gateway_for_tenant.sql: the multi-gateway check from the event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.billing import run_finance_query
from pipeline.store import Store
from tests.billing.rows import MARCH, Usage, at, write_usage

pytestmark = pytest.mark.integration

COUNTS = ("accepted", "billed", "duplicate", "quarantined", "unmapped", "unique_events")


def _check(store: Store, database: str, aliases: list[str]) -> list[tuple[Any, ...]]:
    rows = run_finance_query(
        store,
        database,
        "usage_by_gateway_for_tenant",
        {"tenant": "acme", "tenant_aliases": aliases, "period": MARCH},
    )
    for row in rows:
        assert row["accepted"] == sum(
            row[fate] for fate in ("billed", "duplicate", "quarantined", "unmapped", "dead_letter")
        )
    return [(r["gateway"], r["integration_id"], *(r[c] for c in COUNTS)) for r in rows]


def test_every_copy_of_a_tenants_events_by_gateway(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    write_usage(
        store,
        database,
        [
            # kong: 3 events, k1 delivered twice -> 3 billed + 1 duplicate.
            Usage("k1", "kong", at(1), copies=2),
            Usage("k2", "kong", at(2)),
            Usage("k3", "kong", at(3), headers=("ACME-LEGACY",)),
            # apigee: 1 billed, 1 unmapped.
            Usage("a1", "apigee", at(4), api="payments-v1"),
            Usage("a2", "apigee", at(5), api="unknown-proxy", product=None),
            # aws: 1 billed.
            Usage("w1", "aws", at(6), api="h7k2p9q4xa", headers=()),
            # azure: quarantined (alias, not allowed there), 2 copies; only with the aliases.
            Usage(
                "z1",
                "azure",
                at(7),
                tenant=None,
                headers=(" acme_eu ",),
                quarantine_reason="tenant_not_allowed",
                copies=2,
            ),
            # Not acme: another tenant, an unknown header, another month.
            Usage("g1", "kong", at(8), tenant="globex", headers=("globex",)),
            Usage(
                "q1",
                "mulesoft",
                at(9),
                tenant=None,
                headers=("acme-typo",),
                quarantine_reason="unknown_tenant",
            ),
            Usage("apr", "kong", datetime(2026, 4, 1, tzinfo=UTC)),
        ],
    )

    assert _check(store, database, ["ACME-LEGACY", "acme_eu"]) == [
        ("apigee", "apigee-prod", 2, 1, 0, 0, 1, 2),
        ("aws", "aws-prod", 1, 1, 0, 0, 0, 1),
        ("azure", "azure-prod", 2, 0, 0, 2, 0, 1),
        ("kong", "kong-prod", 4, 3, 1, 0, 0, 3),
    ]
    without_aliases = _check(store, database, [])
    assert [row[0] for row in without_aliases] == ["apigee", "aws", "kong"]
