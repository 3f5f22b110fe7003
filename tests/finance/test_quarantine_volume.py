"""finance/quarantine_volume.sql: quarantined events by integration and reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.billing import run_finance_query
from pipeline.store import Store
from tests.billing.rows import MARCH, Usage, at, write_usage

pytestmark = pytest.mark.integration


def test_quarantine_by_integration_and_reason(fresh_database: tuple[Store, str]) -> None:
    store, database = fresh_database
    unknown = {"tenant": None, "quarantine_reason": "unknown_tenant"}
    write_usage(
        store,
        database,
        [
            Usage("q1", "kong", at(1), headers=("acme-typo",), copies=2, **unknown),
            Usage("q2", "kong", at(2), headers=("acme-typo", "Acme-Typo"), **unknown),
            Usage(
                "q3",
                "azure",
                at(3),
                tenant=None,
                headers=("umbrella",),
                quarantine_reason="tenant_not_allowed",
            ),
            Usage("q4", "kong", datetime(2026, 4, 1, tzinfo=UTC), headers=("x",), **unknown),
            Usage("ok", "kong", at(4)),  # billed: not quarantined
        ],
    )

    rows = run_finance_query(store, database, "quarantine_volume", {"period": MARCH})

    assert [
        (
            r["integration_id"],
            r["gateway"],
            r["reason"],
            r["copies"],
            r["events"],
            r["tenant_headers"],
            r["first_event"],
            r["last_event"],
        )
        for r in rows
    ] == [
        ("kong-prod", "kong", "unknown_tenant", 3, 2, ["Acme-Typo", "acme-typo"], at(1), at(2)),
        ("azure-prod", "azure", "tenant_not_allowed", 1, 1, ["umbrella"], at(3), at(3)),
    ]
    assert rows[1]["example_detail"] == "tenant_not_allowed for ('umbrella',)"
