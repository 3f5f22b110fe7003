"""The reference calculator itself, on cases computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.support.builders import example_catalog, make_event
from tests.support.reference import expected_usage, reference_number

CATALOG = example_catalog()
JAN = datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def test_counts_and_quantities_by_hand() -> None:
    deliveries = [
        (
            make_event(
                idempotency_key="a", timestamp=JAN, response_bytes=600_000_000, consumer="x"
            ),
            3,
        ),
        (
            make_event(
                idempotency_key="b",
                timestamp=JAN,
                response_bytes=400_000_001,
                consumer="x",
                status=503,
                latency_ms=900,
            ),
            1,
        ),
        (
            make_event(
                idempotency_key="c",
                timestamp=FEB,
                tenant_headers=("ACME_EU",),
                consumer=None,
                response_bytes=None,
            ),
            2,
        ),
        # same key as "a", same tenant under an alias: a duplicate of "a", not billed
        (
            make_event(idempotency_key="a", tenant_headers=("acme-legacy",), response_bytes=10**12),
            2,
        ),
        # same key, another tenant: its own event (azure: umbrella is allowed there)
        (
            make_event(
                idempotency_key="a",
                tenant_headers=("umbrella",),
                gateway="azure",
                integration_id="azure-prod",
                api="payments-api",
            ),
            1,
        ),
        (make_event(idempotency_key="q1", tenant_headers=("hooli",)), 2),
        (make_event(idempotency_key="q2", tenant_headers=("acme", "globex")), 1),
        (make_event(idempotency_key="q3", tenant_headers=(), integration_id="kong-prod"), 1),
        (
            make_event(
                idempotency_key="q4",
                tenant_headers=("globex",),
                gateway="azure",
                integration_id="azure-prod",
            ),
            1,
        ),
        (make_event(idempotency_key="u", api="unknown-svc"), 4),
    ]
    expected = expected_usage(CATALOG, deliveries)
    assert expected.delivered == 18
    assert expected.quarantined == {
        "unknown_tenant": 1,
        "conflicting_tenants": 1,
        "missing_tenant": 1,
        "tenant_not_allowed": 1,
    }
    assert expected.quarantined_copies == {
        "unknown_tenant": 2,
        "conflicting_tenants": 1,
        "missing_tenant": 1,
        "tenant_not_allowed": 1,
    }
    assert (expected.unique, expected.metered, expected.unmapped) == (5, 4, 1)
    assert expected.duplicates == 2 + 0 + 1 + 2 + 0 + 3
    assert (
        expected.delivered
        == expected.unique + expected.duplicates + expected.quarantined_copies.total()
    )
    q = expected.quantities
    assert q[("acme", "payments", "calls", "2026-01")] == 1  # b has status 503
    assert q[("acme", "payments", "egress_gb", "2026-01")] == Decimal("1.000000001")
    assert q[("acme", "payments", "active_apps", "2026-01")] == 1
    assert q[("acme", "payments", "peak_latency", "2026-01")] == 900
    assert q[("acme", "payments", "calls", "2026-02")] == 1
    assert q[("acme", "payments", "egress_gb", "2026-02")] == 0
    assert q[("acme", "payments", "active_apps", "2026-02")] == 0
    assert q[("umbrella", "payments", "calls", "2026-01")] == 1
    assert len(q) == 12


def test_reference_number() -> None:
    assert reference_number("12.50") == Decimal("12.50")
    assert reference_number(7) == 7
    assert reference_number("1e3") is None
    assert reference_number("-") is None
    assert reference_number(True) is None
