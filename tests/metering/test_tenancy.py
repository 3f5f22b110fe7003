"""Tenant unification rules (contract §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.metering import QuarantineReason, TenantResolution, TenantResolver, resolve_tenant
from tests.support.builders import catalog_from_yaml, key_sha256

CATALOG = catalog_from_yaml(
    f"""
tenants:
  - {{id: acme, plan: p, aliases: [ACME-LEGACY, acme_eu]}}
  - {{id: globex, plan: p, aliases: [Globex-Corp]}}
  - {{id: initech, plan: p}}
integrations:
  - {{id: kong-prod, gateway: kong, api_key_sha256: "{key_sha256("kong")}", allowed_tenants: any}}
  - id: apigee-prod
    gateway: apigee
    api_key_sha256: "{key_sha256("apigee")}"
    default_tenant: globex
    allowed_tenants: [globex, acme]
  - id: aws-prod
    gateway: aws
    api_key_sha256: "{key_sha256("aws")}"
    api_key_tenants: {{a1b2c3: acme}}
    allowed_tenants: [acme, initech]
products:
  - {{id: x, match: [{{gateway: kong, api: x}}], metrics: [{{id: calls, aggregation: count}}]}}
plans:
  - {{id: p, currency: USD, versions: [{{effective_from: 2026-01-01,
      charges: [{{model: flat, amount: "1"}}]}}]}}
"""
)


def resolve(integration: str, *headers: str) -> TenantResolution:
    return resolve_tenant(CATALOG, integration, headers)


@pytest.mark.parametrize(
    "header",
    [
        "acme",
        "ACME",
        "AcMe",
        "ACME-LEGACY",
        "acme-legacy",
        "acme_eu",
        "ACME_EU",
        " acme ",
        "\tacme_eu\n",
    ],
)
def test_id_and_aliases_case_insensitive_and_trimmed(header: str) -> None:
    result = resolve("kong-prod", header)
    assert result == TenantResolution("acme", None, result.detail)
    assert not result.quarantined
    assert header.strip() in result.detail and "acme" in result.detail


def test_several_values_of_one_tenant_are_fine() -> None:
    assert resolve("kong-prod", "ACME", "acme_eu", "acme-legacy").tenant_id == "acme"
    assert resolve("kong-prod", "acme", "acme").tenant_id == "acme"


def test_values_naming_different_tenants_conflict() -> None:
    result = resolve("kong-prod", "ACME", "globex-corp")
    assert result.tenant_id is None
    assert result.reason is QuarantineReason.CONFLICTING_TENANTS
    assert "'ACME'" in result.detail and "'globex-corp'" in result.detail
    assert "acme" in result.detail and "globex" in result.detail


def test_unknown_value_wins_over_conflict_and_is_named() -> None:
    result = resolve("kong-prod", "acme", "hooli")
    assert result.reason is QuarantineReason.UNKNOWN_TENANT
    assert "'hooli'" in result.detail and "'acme'" not in result.detail


def test_unknown_tenant() -> None:
    result = resolve("kong-prod", "ac me")
    assert (result.tenant_id, result.reason) == (None, QuarantineReason.UNKNOWN_TENANT)
    assert "'ac me'" in result.detail


def test_no_header_without_default_is_missing() -> None:
    result = resolve("kong-prod")
    assert (result.tenant_id, result.reason) == (None, QuarantineReason.MISSING_TENANT)
    assert "kong-prod" in result.detail


def test_blank_values_count_as_no_header() -> None:
    assert resolve("kong-prod", "  ", "").reason is QuarantineReason.MISSING_TENANT
    assert resolve("apigee-prod", " ").tenant_id == "globex"


def test_no_header_uses_default_tenant() -> None:
    result = resolve("apigee-prod")
    assert (result.tenant_id, result.reason) == ("globex", None)
    assert "default_tenant" in result.detail


def test_header_present_overrides_default_tenant() -> None:
    assert resolve("apigee-prod", "acme_eu").tenant_id == "acme"
    # an unknown header is not replaced by the default: never bill a guess
    assert resolve("apigee-prod", "hooli").reason is QuarantineReason.UNKNOWN_TENANT


def test_tenant_not_allowed_for_integration() -> None:
    result = resolve("apigee-prod", "initech")
    assert (result.tenant_id, result.reason) == (None, QuarantineReason.TENANT_NOT_ALLOWED)
    assert "initech" in result.detail and "apigee-prod" in result.detail
    assert "globex, acme" in result.detail


def test_allowed_check_uses_the_canonical_tenant_of_an_alias() -> None:
    assert resolve("apigee-prod", "Globex-Corp").tenant_id == "globex"
    assert resolve("aws-prod", "ACME-LEGACY").tenant_id == "acme"


def test_aws_style_single_canonical_value() -> None:
    # the AWS decoder puts authorizer.tenantId or api_key_tenants[apiKeyId] in as one value
    assert resolve("aws-prod", "acme") == TenantResolution(
        "acme", None, resolve("aws-prod", "acme").detail
    )
    assert resolve("aws-prod", "initech").tenant_id == "initech"
    assert resolve("aws-prod", "globex").reason is QuarantineReason.TENANT_NOT_ALLOWED
    assert resolve("aws-prod").reason is QuarantineReason.MISSING_TENANT


def test_unknown_integration() -> None:
    result = resolve("kong-staging", "acme")
    assert (result.tenant_id, result.reason) == (None, QuarantineReason.UNKNOWN_INTEGRATION)
    assert "kong-staging" in result.detail


def test_reason_codes_are_stable_strings() -> None:
    assert {reason.value for reason in QuarantineReason} == {
        "unknown_integration",
        "missing_tenant",
        "unknown_tenant",
        "conflicting_tenants",
        "tenant_not_allowed",
    }
    assert str(QuarantineReason.UNKNOWN_TENANT) == "unknown_tenant"
    assert f"{QuarantineReason.MISSING_TENANT}" == "missing_tenant"


NAMES = {
    "acme": ["acme", "ACME-LEGACY", "acme_eu"],
    "globex": ["globex", "Globex-Corp"],
    "initech": ["initech"],
}


@st.composite
def spelled(draw: st.DrawFn, name: str) -> str:
    """``name`` in random letter case, with random surrounding whitespace."""
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    pad = st.text(alphabet=" \t\n", max_size=2)
    return draw(pad) + cased + draw(pad)


@given(st.data())
def test_any_spelling_of_one_tenant_resolves_to_it(data: st.DataObject) -> None:
    tenant = data.draw(st.sampled_from(sorted(NAMES)))
    names = data.draw(st.lists(st.sampled_from(NAMES[tenant]), min_size=1, max_size=4))
    headers = tuple(data.draw(spelled(name)) for name in names)
    assert resolve_tenant(CATALOG, "kong-prod", headers).tenant_id == tenant


@given(st.data())
def test_spellings_of_two_tenants_always_conflict(data: st.DataObject) -> None:
    first, second = data.draw(st.permutations(sorted(NAMES)))[:2]
    headers = [data.draw(spelled(data.draw(st.sampled_from(NAMES[t])))) for t in (first, second)]
    headers = data.draw(st.permutations(headers))
    result = resolve_tenant(CATALOG, "kong-prod", tuple(headers))
    assert result.reason is QuarantineReason.CONFLICTING_TENANTS


def test_resolver_caches_and_stays_bounded() -> None:
    resolver = TenantResolver(CATALOG, max_size=2)
    first = resolver.resolve("kong-prod", ("ACME",))
    assert resolver.resolve("kong-prod", ("ACME",)) is first
    for header in ("globex", "initech", "hooli", "acme_eu", "ACME"):
        result = resolver.resolve("kong-prod", (header,))
        assert result == resolve_tenant(CATALOG, "kong-prod", (header,))
        assert len(resolver._cache) <= 2
