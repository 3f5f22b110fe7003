"""``compute_invoice`` against the naive pricer of tests/support/pricer.py, over generated plans
(every price model, included units, flat fees, several plan versions, minimum commitments, USD,
EUR and JPY) and generated quantities: the same lines, subtotal and total, to the minor unit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.catalog import Catalog, parse_rules
from pipeline.rating.invoice import compute_invoice
from pipeline.rating.period import Period
from tests.support.pricer import price

METRICS = ("calls", "gb", "tokens")
prices = (
    st.decimals(min_value=0, max_value=20, places=4)
    | st.decimals(min_value=0, max_value=1, places=3)
).map(str)
amounts = st.decimals(min_value=0, max_value=5000, places=2).map(str)
bounds = st.lists(st.integers(1, 10**6), min_size=1, max_size=4, unique=True).map(sorted)


@st.composite
def tiers(draw: st.DrawFn) -> list[dict[str, Any]]:
    tops = draw(bounds)
    out: list[dict[str, Any]] = []
    for top in [*tops, None]:
        tier: dict[str, Any] = {"unit_price": draw(prices)}
        if top is not None:
            tier["up_to"] = top
        if draw(st.booleans()):
            tier["flat_fee"] = draw(amounts)
        out.append(tier)
    return out


@st.composite
def usage_charge(draw: st.DrawFn, metric: str) -> dict[str, Any]:
    model = draw(st.sampled_from(["per_unit", "graduated", "volume", "package"]))
    charge: dict[str, Any] = {"product": "api", "metric": metric, "model": model}
    if draw(st.booleans()):
        charge["included"] = draw(st.integers(0, 5000))
    if model == "per_unit":
        charge["unit_price"] = draw(prices)
    elif model == "package":
        charge["package_size"] = draw(st.integers(1, 5000))
        charge["package_price"] = draw(amounts)
    else:
        charge["tiers"] = draw(tiers())
    return charge


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(["USD", "EUR", "JPY"]))
    money = st.integers(0, 5000).map(str) if currency == "JPY" else amounts
    versions = []
    for year in sorted(draw(st.sets(st.integers(2024, 2026), min_size=1, max_size=3))):
        charges: list[dict[str, Any]] = []
        if draw(st.booleans()):
            charges.append({"model": "flat", "amount": draw(money), "name": "Platform fee"})
        metrics = draw(st.lists(st.sampled_from(METRICS), min_size=1, max_size=3, unique=True))
        charges += [draw(usage_charge(metric)) for metric in metrics]
        version: dict[str, Any] = {"effective_from": f"{year}-01-01", "charges": charges}
        if draw(st.booleans()):
            version["minimum_commitment"] = draw(money)
        versions.append(version)
    return {"id": "plan", "currency": currency, "versions": versions}


def catalog_of(plan: dict[str, Any]) -> Catalog:
    rules = {
        "tenants": [{"id": "acme", "plan": "plan"}],
        "products": [
            {
                "id": "api",
                "match": [{"gateway": "kong", "api": "api"}],
                "metrics": [
                    {"id": m, "aggregation": "sum", "field": f"attributes.{m}"} for m in METRICS
                ],
            }
        ],
        "plans": [plan],
    }
    return Catalog.from_rules(parse_rules(yaml.safe_dump(rules), "generated.yaml"))


quantities = st.dictionaries(
    st.sampled_from(METRICS),
    st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=400)
@given(plan=plans(), usage=quantities, month=st.integers(1, 12), year=st.integers(2024, 2027))
def test_compute_invoice_equals_the_naive_pricer(
    plan: dict[str, Any], usage: dict[str, Decimal], month: int, year: int
) -> None:
    start = date(year, month, 1)
    if all(date.fromisoformat(v["effective_from"]) > start for v in plan["versions"]):
        year = 2027  # every period needs an effective version
        start = date(year, month, 1)
    keyed = {("api", metric): quantity for metric, quantity in usage.items()}
    invoice = compute_invoice(catalog_of(plan), "acme", Period(year, month), keyed)
    naive = price(plan, start, keyed)
    assert [line.amount for line in invoice.lines] == [amount for _, amount in naive.lines]
    assert invoice.subtotal == naive.subtotal
    assert invoice.total == naive.total


@pytest.mark.parametrize(
    ("currency", "unit_price", "quantity"),
    [("USD", "0.005", "1"), ("USD", "0.0025", "10"), ("EUR", "0.015", "1"), ("JPY", "0.5", "5")],
)
def test_ties_round_half_up_as_the_naive_pricer_does(
    currency: str, unit_price: str, quantity: str
) -> None:
    plan = {
        "id": "plan",
        "currency": currency,
        "versions": [
            {
                "effective_from": "2026-01-01",
                "charges": [
                    {"product": "api", "metric": "calls", "model": "per_unit",
                     "unit_price": unit_price}
                ],
            }
        ],
    }  # fmt: skip
    keyed = {("api", "calls"): Decimal(quantity)}
    invoice = compute_invoice(catalog_of(plan), "acme", Period(2026, 3), keyed)
    naive = price(plan, date(2026, 3, 1), keyed)
    assert invoice.total == naive.total != Decimal(0)  # half-even would give 0 for most
