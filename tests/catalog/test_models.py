from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from pipeline.catalog.models import Condition, Integration, MatchRule, Metric, normalize_tenant_key


def test_normalize_tenant_key() -> None:
    assert normalize_tenant_key("  ACME-Legacy\n") == "acme-legacy"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (("aws", "h7k2p9q4xa", "/v1/payments/123", "POST"), True),
        (("aws", "h7k2p9q4xa", "/v1/payments", "post"), True),  # method case-insensitive
        (("aws", "h7k2p9q4xa", "/v1/payments/123", "GET"), False),
        (("aws", "h7k2p9q4xa", "/v1/refunds", "POST"), False),
        (("aws", "h7k2p9q4xa", "/V1/payments", "POST"), False),  # routes are case-sensitive
        (("aws", "h7k2p9q4xa", None, "POST"), False),  # the rule needs a route
        (("aws", "other", "/v1/payments", "POST"), False),
        (("kong", "h7k2p9q4xa", "/v1/payments", "POST"), False),
    ],
)
def test_match_rule(event: tuple[str, str, str | None, str | None], expected: bool) -> None:
    rule = MatchRule.model_validate(
        {"gateway": "aws", "api": "h7k2p9q4xa", "route": "/v1/payments*", "method": "post"}
    )
    assert rule.method == "POST"
    assert rule.matches(*event) is expected


def test_match_rule_without_route_or_method_matches_any() -> None:
    rule = MatchRule.model_validate({"gateway": "mulesoft", "api": 16183421})
    assert rule.api == "16183421"  # numeric YAML ids are read as text
    assert rule.matches("mulesoft", "16183421", None, None)


def test_condition_operators_and_decimal_values() -> None:
    condition = Condition.model_validate({"lt": 500, "in": [200, "201", "x"], "eq": None})
    assert condition.operators() == (
        ("eq", None),
        ("in", (Decimal(200), "201", "x")),
        ("lt", Decimal(500)),
    )
    with pytest.raises(ValidationError, match="at least one of"):
        Condition.model_validate({})
    with pytest.raises(ValidationError):
        Condition.model_validate({"lt": "abc"})


@pytest.mark.parametrize(
    ("metric", "error"),
    [
        ({"id": "m", "aggregation": "count", "field": "status"}, "takes no field"),
        ({"id": "m", "aggregation": "sum"}, "needs a field"),
        ({"id": "m", "aggregation": "sum", "field": "consumer"}, "numeric field"),
        ({"id": "m", "aggregation": "max", "field": "tokens"}, "unknown event field 'tokens'"),
        ({"id": "m", "aggregation": "sum", "field": "attributes."}, "unknown event field"),
        ({"id": "m", "aggregation": "sum", "field": "request_bytes", "divide_by": 0}, "> 0"),
        ({"id": "m", "aggregation": "median", "field": "latency_ms"}, "aggregation"),
    ],
)
def test_metric_field_rules(metric: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Metric.model_validate(metric)


def test_metric_defaults() -> None:
    metric = Metric.model_validate(
        {"id": "tokens", "aggregation": "sum", "field": "attributes.tokens"}
    )
    assert metric.divide_by == 1 and metric.where == {}


def test_integration_consistency() -> None:
    base = {"id": "i", "gateway": "apigee", "api_key_sha256": "A" * 64, "allowed_tenants": "any"}
    assert Integration.model_validate(base).api_key_sha256 == "a" * 64
    with pytest.raises(ValidationError, match="every event would be quarantined"):
        Integration.model_validate({**base, "allowed_tenants": []})
    with pytest.raises(ValidationError, match="default_tenant 'x' is not in allowed_tenants"):
        Integration.model_validate({**base, "default_tenant": "x", "allowed_tenants": ["y"]})
    aws = {**base, "gateway": "aws", "allowed_tenants": ["y"], "api_key_tenants": {"k": "x"}}
    with pytest.raises(ValidationError, match="not in allowed_tenants"):
        Integration.model_validate(aws)
    ok = Integration.model_validate({**aws, "api_key_tenants": {"k": "y"}, "default_tenant": "y"})
    assert ok.referenced_tenants() == (
        ("default_tenant", "y"),
        ("allowed_tenants", "y"),
        ("api_key_tenants['k']", "y"),
    )


def test_models_are_frozen() -> None:
    rule = MatchRule.model_validate({"gateway": "kong", "api": "a"})
    with pytest.raises(ValidationError):
        rule.api = "b"  # type: ignore[misc]


def test_tenant_scoping_is_deny_by_default() -> None:
    """contract §12: an integration names the tenants its key may bill, or says ``any``."""
    base = {"id": "i", "gateway": "kong", "api_key_sha256": "a" * 64}
    for missing in (base, {**base, "allowed_tenants": None}):
        with pytest.raises(ValidationError, match=r"allowed_tenants is (missing|null)") as caught:
            Integration.model_validate(missing)
        assert "allowed_tenants: any" in str(caught.value)
    listed = Integration.model_validate({**base, "allowed_tenants": ["acme"]})
    assert listed.allows("acme") and not listed.allows("globex")
    assert listed.listed_tenants == ("acme",)
    anyone = Integration.model_validate({**base, "allowed_tenants": "any"})
    assert anyone.allows("acme") and anyone.allows("globex") and anyone.listed_tenants == ()
    with pytest.raises(ValidationError):
        Integration.model_validate({**base, "allowed_tenants": "everyone"})


def test_a_bad_key_hash_is_not_echoed() -> None:
    """A plaintext key pasted where its sha256 belongs must not reach an error message."""
    secret = "prod-live-key-do-not-log"
    with pytest.raises(ValidationError) as caught:
        Integration.model_validate(
            {"id": "i", "gateway": "kong", "api_key_sha256": secret, "allowed_tenants": "any"}
        )
    [error] = caught.value.errors()
    assert secret not in error["msg"]  # the loader reports msg, never the input value
    assert "got 24 characters, not shown" in error["msg"]
