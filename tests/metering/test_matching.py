"""Product matching: first product in catalog order whose rules fit; cached and bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog import Catalog
from pipeline.metering import ProductMatcher
from tests.support.builders import catalog_from_yaml, example_catalog, key_sha256

COUNT = "metrics: [{id: calls, aggregation: count}]"
CATALOG = catalog_from_yaml(
    f"""
tenants: [{{id: acme, plan: p}}]
integrations:
  - {{id: kong-prod, gateway: kong, api_key_sha256: "{key_sha256("k")}", allowed_tenants: any}}
products:
  - id: refunds
    match: [{{gateway: aws, api: api1, route: "/v1/payments/*/refund", method: POST}}]
    {COUNT}
  - id: payments
    match:
      - {{gateway: aws, api: api1, route: "/v1/payments*"}}
      - {{gateway: kong, api: payments-svc}}
    {COUNT}
  - id: reports
    match: [{{gateway: aws, api: api1, route: "/v1/report?/[0-9]*", method: get}}]
    {COUNT}
  - id: fallback
    match:
      - {{gateway: aws, api: api1}}
      - {{gateway: kong, api: payments-svc, method: POST}}
      - {{gateway: mulesoft, api: "16183421"}}
    {COUNT}
plans:
  - {{id: p, currency: USD, versions: [{{effective_from: 2026-01-01,
      charges: [{{model: flat, amount: "1"}}]}}]}}
"""
)


def product_id(
    matcher: ProductMatcher, gateway: str, api: str | None, route: str | None, method: str | None
) -> str | None:
    found = matcher.match(gateway, api, route, method)
    return None if found is None else found.id


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # route globs: * spans /, case-sensitive, ? and [...] classes
        (("aws", "api1", "/v1/payments/p_1/refund", "POST"), "refunds"),
        (("aws", "api1", "/v1/payments/a/b/refund", "POST"), "refunds"),
        (("aws", "api1", "/v1/payments/p_1/refund", "GET"), "payments"),
        (("aws", "api1", "/v1/payments", "GET"), "payments"),
        (("aws", "api1", "/v1/payments/p_1", None), "payments"),
        (("aws", "api1", "/V1/payments", "GET"), "fallback"),
        (("aws", "api1", "/v1/reports/2026", "GET"), "reports"),
        (("aws", "api1", "/v1/reportz/9", "get"), "reports"),
        (("aws", "api1", "/v1/reports/x2026", "GET"), "fallback"),
        (("aws", "api1", "/v1/reports/2026", "POST"), "fallback"),
        (("aws", "api1", "/v1/reports/2026", None), "fallback"),  # method rule needs a method
        (("aws", "api1", None, "POST"), "fallback"),  # route rules need a route
        # order: kong payments-svc is payments (earlier) although fallback also fits POST
        (("kong", "payments-svc", None, "POST"), "payments"),
        (("kong", "payments-svc", "/anything", None), "payments"),
        (("mulesoft", "16183421", "/x", "GET"), "fallback"),
        # unmapped
        (("aws", "api2", "/v1/payments", "POST"), None),
        (("aws", None, "/v1/payments", "POST"), None),
        (("kong", "api1", "/v1/payments", "POST"), None),
        (("azure", "payments-svc", None, None), None),
        (("kong", "Payments-svc", None, None), None),  # api ids are exact
    ],
)
def test_first_matching_product(
    event: tuple[str, str | None, str | None, str | None], expected: str | None
) -> None:
    matcher = ProductMatcher(CATALOG)
    assert product_id(matcher, *event) == expected
    assert product_id(matcher, *event) == expected  # cached answer is the same


def test_example_catalog() -> None:
    matcher = ProductMatcher(example_catalog())
    assert product_id(matcher, "aws", "h7k2p9q4xa", "/v1/payments/42", "GET") == "payments"
    assert product_id(matcher, "aws", "h7k2p9q4xa", "/v1/completions", "POST") == "ai-completions"
    assert product_id(matcher, "aws", "h7k2p9q4xa", "/v1/completions", "GET") is None
    assert product_id(matcher, "mulesoft", "16183500", None, None) == "search"
    assert product_id(matcher, "kong", "llm-gateway", "/v1/chat", "POST") == "ai-completions"


def test_cache_is_bounded_and_answers_stay_right() -> None:
    matcher = ProductMatcher(CATALOG, max_size=3)
    for n in range(20):
        route = f"/v1/payments/{n}/refund"
        assert product_id(matcher, "aws", "api1", route, "POST") == "refunds"
        assert product_id(matcher, "aws", "api1", route, "GET") == "payments"
        assert len(matcher._cache) <= 3


def first_by_catalog(
    catalog: Catalog, event: tuple[str, str | None, str | None, str | None]
) -> str | None:
    return next((p.id for p in catalog.products if p.matches(*event)), None)


ROUTES = st.text(alphabet="/v1paymentsrefund0129X-_", max_size=24).map(lambda r: "/" + r)


@given(
    st.sampled_from(["aws", "kong", "mulesoft", "azure"]),
    st.sampled_from(["api1", "payments-svc", "16183421", "other", None]),
    st.one_of(st.none(), ROUTES, st.sampled_from(["/v1/payments/1/refund", "/v1/reports/7"])),
    st.sampled_from([None, "GET", "POST", "post", "Get", "DELETE"]),
)
def test_agrees_with_the_catalog_models(
    gateway: str, api: str | None, route: str | None, method: str | None
) -> None:
    event = (gateway, api, route, method)
    assert product_id(ProductMatcher(CATALOG), *event) == first_by_catalog(CATALOG, event)
