"""load_catalog: the shipped rules load, and every kind of bad rule names its file and item."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.catalog import CatalogError, GraduatedCharge, load_catalog, parse_rules
from pipeline.errors import ConfigError

REPO_RULES = Path(__file__).resolve().parents[2] / "rating_rules"

TENANTS = """
tenants:
  - {id: acme, plan: growth, aliases: [ACME-LEGACY, acme_eu]}
  - {id: globex, plan: growth}
"""
INTEGRATIONS = f"""
integrations:
  - {{id: kong-prod, gateway: kong, api_key_sha256: "{"a" * 64}", allowed_tenants: any}}
  - id: aws-prod
    gateway: aws
    api_key_sha256: "{"b" * 64}"
    api_key_tenants: {{k1: acme}}
    allowed_tenants: [acme]
"""
PRODUCTS = """
products:
  - id: payments
    match: [{gateway: kong, api: payments-svc}]
    metrics:
      - {id: calls, aggregation: count, where: {status: {lt: 500}}}
"""
PLANS = """
plans:
  - id: growth
    currency: USD
    versions:
      - effective_from: 2026-01-01
        charges:
          - {model: flat, amount: "49.00"}
          - {product: payments, metric: calls, model: graduated,
             tiers: [{up_to: 100, unit_price: "0"}, {unit_price: "0.002"}]}
"""
VALID = {
    "tenants.yaml": TENANTS,
    "integrations.yaml": INTEGRATIONS,
    "products.yaml": PRODUCTS,
    "plans.yaml": PLANS,
}


def write(tmp_path: Path, **overrides: str) -> Path:
    rules_dir = tmp_path / "rating_rules"
    rules_dir.mkdir(exist_ok=True)
    files = {**VALID, **{name.replace("_", ".", 1): text for name, text in overrides.items()}}
    for name, text in files.items():
        (rules_dir / name).write_text(text)
    return rules_dir


def load_error(tmp_path: Path, **overrides: str) -> str:
    rules_dir = write(tmp_path, **overrides)
    with pytest.raises(CatalogError) as err:
        load_catalog(rules_dir)
    assert isinstance(err.value, ConfigError)
    return str(err.value)


# --- the shipped rules ---------------------------------------------------------------------


def test_shipped_rules_load() -> None:
    catalog = load_catalog(REPO_RULES)
    assert {i.gateway for i in catalog.integrations} == {
        "kong",
        "apigee",
        "aws",
        "azure",
        "mulesoft",
    }
    assert {i.id for i in catalog.integrations} == {
        "kong-prod",
        "apigee-prod",
        "aws-prod",
        "azure-prod",
        "mulesoft-prod",
    }
    acme = catalog.tenant_for_header("acme-legacy")
    assert acme is not None and acme.id == "acme"
    aws = catalog.integration("aws-prod")
    assert aws is not None and aws.api_key_tenants
    models = {c.model for p in catalog.plans for v in p.versions for c in v.charges}
    assert models == {"flat", "per_unit", "graduated", "volume", "package"}
    assert any(v.minimum_commitment for p in catalog.plans for v in p.versions)
    assert {p.currency for p in catalog.plans} >= {"USD", "JPY"}
    # Every gateway's API identifiers reach some product.
    assert {r.gateway for p in catalog.products for r in p.match} == {
        "kong",
        "apigee",
        "aws",
        "azure",
        "mulesoft",
    }


def test_shipped_dev_keys_match_their_comments() -> None:
    text = (REPO_RULES / "integrations.yaml").read_text()
    pairs = re.findall(r'api_key_sha256: "([0-9a-f]{64})"\s*#\s*(\S+)', text)
    assert len(pairs) == 5
    catalog = load_catalog(REPO_RULES)
    for digest, plaintext in pairs:
        assert hashlib.sha256(plaintext.encode()).hexdigest() == digest
        integration = catalog.integration_for_api_key(plaintext)
        assert integration is not None and plaintext == f"dev-{integration.id}-key"


# --- parsing -------------------------------------------------------------------------------


def test_yaml_numbers_become_exact_decimals(tmp_path: Path) -> None:
    plans = PLANS.replace('unit_price: "0.002"', "unit_price: 0.1").replace(
        'amount: "49.00"', "amount: 1_000.10"
    )
    catalog = load_catalog(write(tmp_path, plans_yaml=plans))
    charges = catalog.plans[0].versions[0].charges
    assert charges[0].model == "flat" and charges[0].amount == Decimal("1000.10")
    assert str(charges[0].amount) == "1000.10"
    graduated = charges[1]
    assert isinstance(graduated, GraduatedCharge)
    assert str(graduated.tiers[1].unit_price) == "0.1"  # not 0.1000000000000000055511...


def test_files_merge_in_name_order(tmp_path: Path) -> None:
    rules_dir = write(tmp_path)
    (rules_dir / "products.yaml").write_text(
        PRODUCTS + "  - {id: b-second, match: [{gateway: kong, api: b}], "
        "metrics: [{id: n, aggregation: count}]}\n"
    )
    (rules_dir / "a-products.yaml").write_text(
        "products:\n  - {id: a-first, match: [{gateway: kong, api: a}], "
        "metrics: [{id: n, aggregation: count}]}\n"
    )
    (rules_dir / "notes.txt").write_text("ignored: not yaml")
    (rules_dir / "empty.yaml").write_text("# nothing yet\n")
    catalog = load_catalog(rules_dir)
    assert [p.id for p in catalog.products] == ["a-first", "payments", "b-second"]


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope")
    with pytest.raises(CatalogError, match=r"no \*\.yaml"):
        load_catalog(tmp_path)


def test_parse_rules_names_the_source() -> None:
    with pytest.raises(
        CatalogError, match=r"^inline\.yaml: tenant 'x': missing required key 'plan'$"
    ):
        parse_rules("tenants: [{id: x}]", "inline.yaml")


# --- each invalid case names file and item -------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, plans_yaml="plans:\n  - id: growth\n   currency: [USD\n")
    assert message.startswith(f"{tmp_path}/rating_rules/plans.yaml: YAML syntax error at line ")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, tenants_yaml=TENANTS + "tenants: []\n")
    assert "tenants.yaml: YAML syntax error" in message
    assert "duplicate key 'tenants'" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    message = load_error(tmp_path, tenants_yaml="- id: acme\n")
    assert "tenants.yaml: expected a mapping" in message


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "tenants_yaml",
            TENANTS.replace("plan: growth,", "plan: growth, colour: red,", 1),
            "tenants.yaml: tenant 'acme': unknown key 'colour'",
        ),
        (
            "plans_yaml",
            PLANS.replace('{model: flat, amount: "49.00"}', '{model: flat, amount: "49.00", x: 1}'),
            "plans.yaml: plan 'growth' version 2026-01-01 charge #1: unknown key 'x'",
        ),
        (
            "plans_yaml",
            PLANS.replace('{up_to: 100, unit_price: "0"}', '{upto: 100, unit_price: "0"}'),
            "plans.yaml: plan 'growth' version 2026-01-01 charge #2 tier #1: unknown key 'upto'",
        ),
        (
            "products_yaml",
            PRODUCTS.replace("{lt: 500}", "{less: 500}"),
            "products.yaml: product 'payments' metric 'calls': where.status: unknown key 'less'",
        ),
        (
            "products_yaml",
            PRODUCTS + "widgets: []\n",
            "products.yaml: unknown top-level key 'widgets'",
        ),
    ],
)
def test_unknown_keys(tmp_path: Path, file: str, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, **{file: text})


def test_unknown_product_in_charge(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, plans_yaml=PLANS.replace("product: payments", "product: paymnts")
    )
    assert message == (
        f"{tmp_path}/rating_rules/plans.yaml: plan 'growth' version 2026-01-01 charge #2: "
        "unknown product 'paymnts' (known products: payments)"
    )


def test_unknown_metric_in_charge(tmp_path: Path) -> None:
    message = load_error(tmp_path, plans_yaml=PLANS.replace("metric: calls", "metric: cals"))
    assert "plans.yaml: plan 'growth' version 2026-01-01 charge #2: " in message
    assert "unknown metric 'cals' in product 'payments' (its metrics: calls)" in message


def test_overlapping_tiers(tmp_path: Path) -> None:
    tiers = '[{up_to: 100, unit_price: "0"}, {up_to: 50, unit_price: "1"}, {unit_price: "0.002"}]'
    plans = PLANS.replace('[{up_to: 100, unit_price: "0"}, {unit_price: "0.002"}]', tiers)
    message = load_error(tmp_path, plans_yaml=plans)
    assert message.startswith(
        f"{tmp_path}/rating_rules/plans.yaml: plan 'growth' version 2026-01-01 charge #2: "
        "tiers overlap (up_to 100 then up_to 50)"
    )


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        ('[{up_to: 100, unit_price: "0"}, {up_to: 100, unit_price: "1"}, {unit_price: "2"}]',
         "tiers overlap (up_to 100 then up_to 100)"),
        ('[{up_to: 100, unit_price: "0"}, {up_to: 200, unit_price: "1"}]',
         "the last tier must be unbounded"),
        ('[{unit_price: "0"}, {up_to: 200, unit_price: "1"}, {unit_price: "2"}]',
         "tier #1 has no up_to but is not the last tier"),
        ("[]", "tiers must not be empty"),
        ('[{up_to: 0, unit_price: "0"}, {unit_price: "1"}]', "tier #1: up_to: must be > 0"),
        ('[{up_to: 10, unit_price: "-1"}, {unit_price: "1"}]', "tier #1: unit_price: must be >= 0"),
    ],
)  # fmt: skip
def test_bad_tier_lists(tmp_path: Path, tiers: str, expected: str) -> None:
    plans = PLANS.replace('[{up_to: 100, unit_price: "0"}, {unit_price: "0.002"}]', tiers)
    message = load_error(tmp_path, plans_yaml=plans)
    assert "plans.yaml: plan 'growth' version 2026-01-01 charge #2" in message
    assert expected in message


def test_unknown_currency(tmp_path: Path) -> None:
    message = load_error(tmp_path, plans_yaml=PLANS.replace("currency: USD", "currency: XAU"))
    assert "plans.yaml: plan 'growth': currency: unknown currency 'XAU'" in message
    assert "EUR, GBP, JPY, USD" in message


def test_minimum_commitment_finer_than_currency(tmp_path: Path) -> None:
    plans = PLANS.replace("currency: USD", "currency: JPY").replace(
        "effective_from: 2026-01-01",
        'effective_from: 2026-01-01\n        minimum_commitment: "10.5"',
    )
    message = load_error(tmp_path, plans_yaml=plans)
    assert "plan 'growth'" in message and "minimum_commitment 10.5" in message


def test_tenant_on_missing_plan(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        tenants_yaml=TENANTS.replace("{id: globex, plan: growth}", "{id: globex, plan: gold}"),
    )
    assert message == (
        f"{tmp_path}/rating_rules/tenants.yaml: tenant 'globex': plan 'gold' does not exist "
        "(known plans: growth)"
    )


def test_duplicate_tenant_across_files(tmp_path: Path) -> None:
    rules_dir = write(tmp_path)
    (rules_dir / "zz-tenants.yaml").write_text("tenants: [{id: acme, plan: growth}]\n")
    with pytest.raises(CatalogError) as err:
        load_catalog(rules_dir)
    assert str(err.value) == (
        f"{rules_dir}/zz-tenants.yaml: tenant 'acme': duplicate tenant id "
        f"(first defined in {rules_dir}/tenants.yaml)"
    )
    assert err.value.fields["item"] == "tenant 'acme'"


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        ("integrations_yaml", INTEGRATIONS.replace("aws-prod", "kong-prod"),
         "integrations.yaml: integration 'kong-prod': duplicate integration id"),
        ("products_yaml", PRODUCTS + PRODUCTS.replace("products:\n", ""),
         "products.yaml: product 'payments': duplicate product id"),
        ("plans_yaml", PLANS + PLANS.replace("plans:\n", ""),
         "plans.yaml: plan 'growth': duplicate plan id"),
        ("products_yaml", PRODUCTS + "      - {id: calls, aggregation: count}\n",
         "products.yaml: product 'payments': duplicate metric id 'calls'"),
        ("plans_yaml", PLANS + "      - {effective_from: 2026-01-01}\n",
         "plans.yaml: plan 'growth': two versions have effective_from 2026-01-01"),
    ],
)  # fmt: skip
def test_duplicate_ids(tmp_path: Path, file: str, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, **{file: text})


@pytest.mark.parametrize(
    ("globex", "expected"),
    [
        ("{id: globex, plan: growth, aliases: [Acme_EU]}",
         "tenant 'globex': alias 'Acme_EU' is already the id or an alias of tenant 'acme'"),
        ("{id: globex, plan: growth, aliases: [ACME]}",
         "tenant 'globex': alias 'ACME' is already the id or an alias of tenant 'acme'"),
        ("{id: ACME-legacy, plan: growth}",
         "tenant 'acme': alias 'ACME-LEGACY' is already the id or an alias of tenant "
         "'ACME-legacy'"),
        ("{id: Acme, plan: growth}", "tenant 'Acme': id differs only in case from tenant 'acme'"),
    ],
)  # fmt: skip
def test_alias_claimed_twice(tmp_path: Path, globex: str, expected: str) -> None:
    tenants = TENANTS.replace("{id: globex, plan: growth}", globex)
    message = load_error(tmp_path, tenants_yaml=tenants)
    assert f"tenants.yaml: {expected}" in message


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("default_tenant: nobody\n    allowed_tenants: any",
         "default_tenant names unknown tenant 'nobody'"),
        ("allowed_tenants: [acme, nobody]", "allowed_tenants names unknown tenant 'nobody'"),
        ("allowed_tenants: [acme, ACME-LEGACY]",
         "allowed_tenants names unknown tenant 'ACME-LEGACY' (use a tenant id, not an alias)"),
    ],
)  # fmt: skip
def test_integration_names_unknown_tenant(tmp_path: Path, setting: str, expected: str) -> None:
    integrations = INTEGRATIONS.replace(
        "    api_key_tenants: {k1: acme}\n    allowed_tenants: [acme]", f"    {setting}"
    )
    message = load_error(tmp_path, integrations_yaml=integrations)
    assert f"integrations.yaml: integration 'aws-prod': {expected}" in message


def test_an_integration_without_allowed_tenants_says_what_to_add(tmp_path: Path) -> None:
    """Catalogs written before tenant scoping was deny-by-default fail to load, with the fix."""
    integrations = INTEGRATIONS.replace("    allowed_tenants: [acme]\n", "")
    message = load_error(tmp_path, integrations_yaml=integrations)
    assert "integrations.yaml: integration 'aws-prod': allowed_tenants is missing" in message
    assert "allowed_tenants: [acme, globex]" in message and "allowed_tenants: any" in message


def test_api_key_tenants_naming_unknown_tenant(tmp_path: Path) -> None:
    integrations = INTEGRATIONS.replace("k1: acme", "k1: nobody").replace(
        "allowed_tenants: [acme]", "allowed_tenants: any"
    )
    message = load_error(tmp_path, integrations_yaml=integrations)
    assert "integration 'aws-prod': api_key_tenants['k1'] names unknown tenant 'nobody'" in message


@pytest.mark.parametrize("digest", ["abc", "g" * 64, "a" * 63, "a" * 65])
def test_api_key_sha256_must_be_64_hex(tmp_path: Path, digest: str) -> None:
    message = load_error(tmp_path, integrations_yaml=INTEGRATIONS.replace("a" * 64, digest))
    assert (
        "integrations.yaml: integration 'kong-prod': api_key_sha256: must be the sha256" in message
    )


def test_a_plaintext_key_pasted_as_its_hash_is_not_echoed(tmp_path: Path) -> None:
    secret = "live-key-0123456789abcdef"
    message = load_error(tmp_path, integrations_yaml=INTEGRATIONS.replace("a" * 64, secret))
    assert "api_key_sha256: must be the sha256" in message and secret not in message


def test_shared_api_key_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, integrations_yaml=INTEGRATIONS.replace("b" * 64, "A" * 64))
    assert (
        "integration 'aws-prod': api_key_sha256 is the same as integration 'kong-prod'" in message
    )


def test_api_key_tenants_only_for_aws(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, integrations_yaml=INTEGRATIONS.replace("gateway: aws", "gateway: kong")
    )
    assert "integration 'aws-prod': api_key_tenants is only used by aws integrations" in message


def test_every_problem_is_reported_one_per_line(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        tenants_yaml=TENANTS.replace("plan: growth}", "plan: gold}"),
        plans_yaml=PLANS.replace("product: payments", "product: nope"),
    )
    lines = message.splitlines()
    assert len(lines) == 2
    assert any("tenants.yaml: tenant 'globex': plan 'gold'" in line for line in lines)
    assert any(
        "plans.yaml: plan 'growth' version 2026-01-01 charge #2: unknown product" in line
        for line in lines
    )


def test_a_plan_without_a_current_version_still_loads(tmp_path: Path) -> None:
    # Refused only when a period before 2026-01 is billed (see tests/rating/test_plan_version.py).
    catalog = load_catalog(write(tmp_path))
    assert catalog.plans[0].versions[0].effective_from.isoformat() == "2026-01-01"
