"""Invoices end to end on a small catalog, with amounts worked out by hand."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog import Catalog, NoEffectivePlanVersion, parse_rules
from pipeline.rating.errors import InvalidQuantity, UnknownTenant
from pipeline.rating.invoice import compute_invoice
from pipeline.rating.period import Period
from pipeline.rating.quantities import MetricKey

RULES = """
tenants:
  - {id: acme, plan: growth, aliases: [ACME-LEGACY]}
  - {id: initech, plan: tokyo}
products:
  - id: payments
    match: [{gateway: kong, api: payments-svc}]
    metrics:
      - {id: calls, aggregation: count}
      - {id: egress_gb, aggregation: sum, field: response_bytes, divide_by: 1000000000}
      - {id: tokens, aggregation: sum, field: attributes.tokens}
      - {id: active_apps, aggregation: unique_count, field: consumer}
plans:
  - id: growth
    currency: USD
    versions:
      - effective_from: 2025-01-01
        charges:
          - {model: flat, amount: "39.00", name: Platform fee}
          - {product: payments, metric: calls, model: per_unit, unit_price: "0.003",
             included: 10000}
      - effective_from: 2026-01-01
        minimum_commitment: "100.00"
        charges:
          - {model: flat, amount: "49.00", name: Platform fee}
          - {product: payments, metric: calls, model: graduated,
             tiers: [{up_to: 10000, unit_price: "0"}, {up_to: 1000000, unit_price: "0.002"},
                     {unit_price: "0.001", flat_fee: "0"}]}
          - {product: payments, metric: egress_gb, model: per_unit, unit_price: "0.09",
             included: 10}
          - {product: payments, metric: tokens, model: package, package_size: 1000,
             package_price: "0.50"}
          - {product: payments, metric: active_apps, model: volume,
             tiers: [{up_to: 10, unit_price: "5"}, {unit_price: "4", flat_fee: "10"}]}
  - id: tokyo
    currency: JPY
    versions:
      - effective_from: 2025-06-01
        minimum_commitment: "50000"
        charges:
          - {product: payments, metric: calls, model: volume,
             tiers: [{up_to: 100000, unit_price: "0.5"},
                     {up_to: 1000000, unit_price: "0.4", flat_fee: "1000"},
                     {unit_price: "0.3", flat_fee: "5000"}]}
"""
CATALOG = Catalog.from_rules(parse_rules(RULES, "test-rules.yaml"))
JAN = Period.parse("2026-01")
CALLS: MetricKey = ("payments", "calls")
EGRESS: MetricKey = ("payments", "egress_gb")
TOKENS: MetricKey = ("payments", "tokens")
APPS: MetricKey = ("payments", "active_apps")


def test_spec_example_plan() -> None:
    quantities = {CALLS: D(25000), EGRESS: D("12.5"), TOKENS: D(2500), APPS: D(12)}
    invoice = compute_invoice(CATALOG, "acme", JAN, quantities)
    # flat 49.00
    # calls graduated: 10000 x 0 + 15000 x 0.002            = 30.00
    # egress per_unit: (12.5 - 10 included) x 0.09 = 0.225 -> 0.23 (half-up)
    # tokens package: ceil(2500 / 1000) = 3 x 0.50          = 1.50
    # active_apps volume: 12 is in tier 2: 12 x 4 + 10       = 58.00
    # subtotal 138.73 >= minimum 100.00: no true-up
    assert [line.amount for line in invoice.lines] == [
        D("49.00"),
        D("30.00"),
        D("0.23"),
        D("1.50"),
        D("58.00"),
    ]
    assert invoice.subtotal == D("138.73")
    assert invoice.true_up == D("0.00")
    assert invoice.total == D("138.73")
    assert (invoice.plan, invoice.plan_version, invoice.currency) == (
        "growth",
        date(2026, 1, 1),
        "USD",
    )
    egress = invoice.lines[2]
    assert (egress.quantity, egress.billable) == (D("12.5"), D("2.5"))
    assert invoice.true_up_line() is None


def test_zero_usage_bills_flat_fee_and_trues_up_to_minimum() -> None:
    invoice = compute_invoice(CATALOG, "acme", JAN, {})
    # only the flat 49.00; every usage line is 0.00 (volume flat_fee not charged at 0)
    # true-up = 100.00 - 49.00 = 51.00
    assert [line.amount for line in invoice.lines] == [D("49.00")] + [D("0.00")] * 4
    assert invoice.subtotal == D("49.00")
    assert invoice.true_up == D("51.00")
    assert invoice.total == D("100.00")
    true_up = invoice.true_up_line()
    assert true_up is not None and true_up.amount == D("51.00")
    assert sum(line.amount for line in invoice.lines_with_true_up()) == invoice.total


def test_usage_exactly_on_tier_boundaries() -> None:
    quantities = {CALLS: D(10000), APPS: D(10)}
    invoice = compute_invoice(CATALOG, "acme", JAN, quantities)
    # calls: all 10000 in the free tier = 0.00; apps: 10 still in tier 1: 10 x 5 = 50.00
    # subtotal 49 + 50 = 99.00 -> true-up 1.00
    assert invoice.lines[1].amount == D("0.00")
    assert invoice.lines[4].amount == D("50.00")
    assert (invoice.subtotal, invoice.true_up, invoice.total) == (D("99.00"), D("1.00"), D(100))


def test_included_larger_than_usage_bills_nothing() -> None:
    invoice = compute_invoice(CATALOG, "acme", JAN, {EGRESS: D("9.999")})
    assert invoice.lines[2].billable == 0
    assert invoice.lines[2].amount == D("0.00")


def test_package_remainder_buys_a_whole_package() -> None:
    invoice = compute_invoice(CATALOG, "acme", JAN, {TOKENS: D(1001)})
    assert invoice.lines[3].amount == D("1.00")  # ceil(1001 / 1000) = 2 x 0.50


def test_version_selected_by_effective_date() -> None:
    invoice = compute_invoice(CATALOG, "acme", Period.parse("2025-12"), {CALLS: D(30001)})
    # 2025 version: flat 39.00 + (30001 - 10000) x 0.003 = 60.003 -> 60.00; no minimum
    assert invoice.plan_version == date(2025, 1, 1)
    assert [line.amount for line in invoice.lines] == [D("39.00"), D("60.00")]
    assert invoice.minimum_commitment is None
    assert (invoice.true_up, invoice.total) == (D(0), D("99.00"))


def test_period_before_any_version_is_refused() -> None:
    with pytest.raises(NoEffectivePlanVersion, match=r"plan 'growth'.*2024-12"):
        compute_invoice(CATALOG, "acme", Period.parse("2024-12"), {})


@pytest.mark.parametrize(
    ("calls", "line", "true_up", "total"),
    [
        # 3 x 0.5 = 1.5 -> 2 yen (half-up, 0 digits); true-up 50000 - 2
        (D(3), D(2), D(49998), D(50000)),
        # 5 x 0.5 = 2.5 -> 3 yen, not 2 (no banker's rounding)
        (D(5), D(3), D(49997), D(50000)),
        # 100000 is inclusive in tier 1: 100000 x 0.5 = 50000, minimum met exactly
        (D(100000), D(50000), D(0), D(50000)),
        # 150001 in tier 2: 150001 x 0.4 + 1000 = 61000.4 -> 61000
        (D(150001), D(61000), D(0), D(61000)),
    ],
)
def test_jpy_rounds_to_whole_yen(calls: D, line: D, true_up: D, total: D) -> None:
    invoice = compute_invoice(CATALOG, "initech", JAN, {CALLS: calls})
    assert invoice.lines[0].amount == line
    assert (invoice.true_up, invoice.total) == (true_up, total)
    assert invoice.lines[0].amount.as_tuple().exponent == 0


def test_tenant_by_alias_and_unknown_tenant() -> None:
    assert compute_invoice(CATALOG, " acme-legacy", JAN, {}).tenant == "acme"
    with pytest.raises(UnknownTenant, match="nobody"):
        compute_invoice(CATALOG, "nobody", JAN, {})


def test_float_quantities_are_refused() -> None:
    with pytest.raises(InvalidQuantity, match="payments/calls"):
        compute_invoice(CATALOG, "acme", JAN, {CALLS: 1.5})  # type: ignore[dict-item]


def test_quantities_of_uncharged_metrics_are_ignored() -> None:
    base = compute_invoice(CATALOG, "acme", JAN, {CALLS: D(20000)})
    extra = compute_invoice(CATALOG, "acme", JAN, {CALLS: D(20000), ("other", "x"): D(5)})
    assert base == extra


def test_json_dict_uses_strings_for_amounts() -> None:
    invoice = compute_invoice(CATALOG, "acme", JAN, {EGRESS: D("12.5")})
    data = invoice.to_json_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["period"] == "2026-01" and data["plan_version"] == "2026-01-01"
    assert data["subtotal"] == "49.23" and data["true_up"] == "50.77" and data["total"] == "100.00"
    assert data["lines"][0]["quantity"] is None
    assert data["lines"][2] == {
        "kind": "usage",
        "name": "payments egress_gb",
        "product": "payments",
        "metric": "egress_gb",
        "quantity": "12.5",
        "billable": "2.5",
        "unit_description": "2.5 x 0.09 (10 included)",
        "amount": "0.23",
    }


# --- properties ----------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=5 * 10**6)


@given(counts, st.decimals(0, 10**4, places=3), counts, st.integers(0, 50))
def test_totals_are_sums_of_rounded_lines(calls: int, egress: D, tokens: int, apps: int) -> None:
    quantities = {CALLS: D(calls), EGRESS: egress, TOKENS: D(tokens), APPS: D(apps)}
    invoice = compute_invoice(CATALOG, "acme", JAN, quantities)
    assert invoice.subtotal == sum(line.amount for line in invoice.lines)
    assert invoice.total == invoice.subtotal + invoice.true_up
    assert invoice.total == sum(line.amount for line in invoice.lines_with_true_up())
    assert invoice.total == max(invoice.subtotal, D("100.00"))
    assert all(line.amount.as_tuple().exponent == -2 for line in invoice.lines)
