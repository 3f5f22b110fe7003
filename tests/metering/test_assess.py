"""The one-call facade: tenancy, then product and meter entries; cached routing."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events import EventFields
from pipeline.metering import (
    Fate,
    MeterEntry,
    Metering,
    QuarantineReason,
    meter_entries,
    resolve_tenant,
)
from tests.support.builders import example_catalog, make_event

CATALOG = example_catalog()
METERING = Metering(CATALOG)


def test_metered_event() -> None:
    event = make_event(tenant_headers=("ACME-LEGACY",), response_bytes=5000, consumer="app-9")
    assessment = METERING.assess(event)
    assert assessment.tenant.tenant_id == "acme"
    assert assessment.product_id == "payments"
    assert assessment.fate is Fate.METERED
    assert [e.metric_id for e in assessment.entries] == [
        "calls",
        "egress_gb",
        "active_apps",
        "peak_latency",
    ]
    assert assessment.entries[1] == MeterEntry(
        "egress_gb", "sum", Decimal(5000), None, Decimal(1_000_000_000)
    )


def test_quarantined_event_is_not_matched() -> None:
    assessment = METERING.assess(make_event(tenant_headers=("acme", "globex")))
    assert assessment.tenant.reason is QuarantineReason.CONFLICTING_TENANTS
    assert (assessment.product_id, list(assessment.entries)) == (None, [])
    assert assessment.fate is Fate.QUARANTINED
    assert Fate.QUARANTINED == "quarantined"


def test_unmapped_event() -> None:
    assessment = METERING.assess(make_event(api="billing-svc"))
    assert assessment.tenant.tenant_id == "acme"
    assert (assessment.product_id, list(assessment.entries), assessment.fate) == (
        None,
        [],
        Fate.UNMAPPED,
    )


def test_default_tenant_and_cache_do_not_leak_entries_between_events() -> None:
    first = METERING.assess(
        make_event(
            gateway="apigee",
            integration_id="apigee-prod",
            tenant_headers=(),
            api="llm-v1",
            attributes={"tokens": "10"},
        )
    )
    second = METERING.assess(
        make_event(
            gateway="apigee",
            integration_id="apigee-prod",
            tenant_headers=(),
            api="llm-v1",
            attributes={"tokens": "32"},
        )
    )
    assert first.tenant.tenant_id == second.tenant.tenant_id == "globex"
    assert [e.value for e in first.entries] == [Decimal(1), Decimal(10)]
    assert [e.value for e in second.entries] == [Decimal(1), Decimal(32)]


EVENTS = st.builds(
    make_event,
    integration_id=st.sampled_from([i.id for i in CATALOG.integrations] + ["nope"]),
    gateway=st.sampled_from(["kong", "apigee", "aws", "azure", "mulesoft"]),
    tenant_headers=st.lists(
        st.sampled_from(["acme", "ACME_EU", " globex ", "initech", "umbrella-eu", "hooli"]),
        max_size=2,
    ).map(tuple),
    api=st.sampled_from(
        ["payments-svc", "search-v2", "h7k2p9q4xa", "openai-proxy", "16183421", "x"]
    ),
    route=st.sampled_from([None, "/v1/payments/1", "/v1/completions", "/other"]),
    method=st.sampled_from([None, "GET", "POST"]),
    status=st.sampled_from([None, 200, 404, 503]),
    attributes=st.sampled_from([{}, {"tokens": "12"}, {"tokens": "x"}]),
)


@settings(max_examples=300)
@given(EVENTS)
def test_assess_agrees_with_the_separate_functions(event: EventFields) -> None:
    assessment = METERING.assess(event)
    tenant = resolve_tenant(CATALOG, event["integration_id"], event["tenant_headers"])
    assert assessment.tenant == tenant
    if tenant.reason is not None:
        assert assessment.product_id is None and not assessment.entries
        return
    product = next(
        (
            p
            for p in CATALOG.products
            if p.matches(event["gateway"], event["api"], event["route"], event["method"])
        ),
        None,
    )
    assert assessment.product_id == (None if product is None else product.id)
    expected = [] if product is None else meter_entries(product, event)
    assert list(assessment.entries) == expected
