"""Catalog lookups and cross-reference checks on rules built in memory."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.catalog import Catalog, CatalogError, RulesFile, parse_rules

KEY = "dev-test-key"
RULES = f"""
tenants:
  - {{id: acme, plan: growth, aliases: [ACME-LEGACY, acme_eu]}}
  - {{id: globex, plan: growth}}
integrations:
  - {{id: kong-prod, gateway: kong, allowed_tenants: any,
      api_key_sha256: "{hashlib.sha256(KEY.encode()).hexdigest()}"}}
  - {{id: aws-prod, gateway: aws, api_key_sha256: "{"b" * 64}", allowed_tenants: [acme]}}
products:
  - id: payments
    match: [{{gateway: kong, api: payments-svc}}]
    metrics: [{{id: calls, aggregation: count}}]
  - id: fallback
    match: [{{gateway: kong, api: payments-svc}}, {{gateway: aws, api: h7k2p9q4xa}}]
    metrics: [{{id: calls, aggregation: count}}]
plans:
  - id: growth
    currency: USD
    versions: [{{effective_from: 2026-01-01, charges: [{{model: flat, amount: "1"}}]}}]
"""
CATALOG = Catalog.from_rules(parse_rules(RULES, "catalog.yaml"))


@pytest.mark.parametrize("header", ["acme", "ACME", "  acme_eu ", "Acme-Legacy", "acme-legacy\t"])
def test_tenant_for_header_by_id_or_alias(header: str) -> None:
    tenant = CATALOG.tenant_for_header(header)
    assert tenant is not None and tenant.id == "acme"


@pytest.mark.parametrize("header", ["", "acm", "acme eu", "initech"])
def test_unknown_header_values(header: str) -> None:
    assert CATALOG.tenant_for_header(header) is None


def test_tenant_by_exact_id_only() -> None:
    assert CATALOG.tenant("acme") is not None
    assert CATALOG.tenant("ACME") is None
    acme = CATALOG.tenant("acme")
    assert acme is not None and CATALOG.plan_of(acme).id == "growth"


def test_integration_lookups() -> None:
    kong = CATALOG.integration("kong-prod")
    assert kong is not None
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    assert CATALOG.integration_by_key_sha256(digest.upper()) is kong
    assert CATALOG.integration_for_api_key(KEY) is kong
    assert CATALOG.integration_for_api_key(KEY + "x") is None
    assert CATALOG.integration("nope") is None
    aws = CATALOG.integration("aws-prod")
    assert aws is not None and aws.allows("acme") and not aws.allows("globex")
    assert kong.allows("globex")


def test_products_keep_declared_order_and_first_match_is_first() -> None:
    assert [p.id for p in CATALOG.products] == ["payments", "fallback"]
    matching = [p.id for p in CATALOG.products if p.matches("kong", "payments-svc", "/x", "GET")]
    assert matching[0] == "payments"
    metric = CATALOG.metric("payments", "calls")
    assert metric is not None and metric.aggregation == "count"
    assert CATALOG.metric("payments", "nope") is None
    assert CATALOG.metric("nope", "calls") is None
    assert CATALOG.plan("growth") is not None and CATALOG.product("fallback") is not None


def test_fingerprint_depends_on_content_not_layout() -> None:
    reformatted = Catalog.from_rules(parse_rules("# a comment\n" + RULES, "other.yaml"))
    assert reformatted.fingerprint == CATALOG.fingerprint
    changed = Catalog.from_rules(parse_rules(RULES.replace('amount: "1"', 'amount: "2"'), "x.yaml"))
    assert changed.fingerprint != CATALOG.fingerprint


def test_from_rules_cross_checks() -> None:
    rules = RulesFile.model_validate({"tenants": [{"id": "t", "plan": "missing"}]})
    with pytest.raises(CatalogError, match=r"^<rules>: tenant 't': plan 'missing' does not exist"):
        Catalog.from_rules(rules)
