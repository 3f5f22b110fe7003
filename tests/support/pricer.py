"""A deliberately naive invoice pricer, written from the rules format (contract §6) alone.

It reads a plan as the YAML of ``rating_rules`` spells it (plain dicts and strings) and knows
nothing of ``pipeline.catalog`` or ``pipeline.rating``: tests compare its totals and lines with
:func:`pipeline.rating.invoice.compute_invoice`. Naive on purpose: graduated tiers are filled
one tier at a time from the bottom, volume tiers are searched from the top, amounts are computed
with Python's default decimal context widened to 80 digits, and rounding is done by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import yaml

MINOR_DIGITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}


@dataclass(frozen=True)
class NaiveInvoice:
    lines: tuple[tuple[str, Decimal], ...]
    """(what the line prices, amount rounded to the currency's minor unit)"""
    subtotal: Decimal
    total: Decimal


def price(
    plan: Mapping[str, Any], period_start: date, quantities: Mapping[tuple[str, str], Decimal]
) -> NaiveInvoice:
    """The invoice of ``quantities`` ((product, metric) -> quantity) under ``plan``."""
    with localcontext() as context:
        context.prec = 80
        versions = [v for v in plan["versions"] if _date(v["effective_from"]) <= period_start]
        version = max(versions, key=lambda v: _date(v["effective_from"]))
        digits = MINOR_DIGITS[plan["currency"]]
        lines = []
        for charge in version["charges"]:
            if charge["model"] == "flat":
                amount, what = _d(charge["amount"]), "flat"
            else:
                quantity = quantities.get((charge["product"], charge["metric"]), Decimal(0))
                billable = max(quantity - Decimal(str(charge.get("included", 0))), Decimal(0))
                amount = _usage(charge, billable)
                what = f"{charge['product']}/{charge['metric']}"
            lines.append((what, _round(amount, digits)))
        subtotal = sum((amount for _, amount in lines), Decimal(0))
        minimum = version.get("minimum_commitment")
        total = subtotal
        if minimum is not None and subtotal < _d(minimum):
            total = _round(_d(minimum), digits)
        return NaiveInvoice(tuple(lines), _round(subtotal, digits), _round(total, digits))


def plan_of(rules_dir: Path, tenant: str) -> dict[str, Any]:
    """The raw plan dict of ``tenant`` (an id) read straight from the rules' YAML files."""
    merged: dict[str, list[Any]] = {"tenants": [], "plans": []}
    for path in sorted(rules_dir.glob("*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        for key in merged:
            merged[key] += document.get(key) or []
    (plan_id,) = [t["plan"] for t in merged["tenants"] if t["id"] == tenant]
    (plan,) = [p for p in merged["plans"] if p["id"] == plan_id]
    return dict(plan)


def _usage(charge: Mapping[str, Any], billable: Decimal) -> Decimal:
    model = charge["model"]
    if model == "per_unit":
        return billable * _d(charge["unit_price"])
    if model == "package":
        packages = (billable / Decimal(str(charge["package_size"]))).to_integral_value(
            rounding=ROUND_CEILING
        )
        return packages * _d(charge["package_price"])
    tiers = charge["tiers"]
    if model == "graduated":
        amount, below = Decimal(0), Decimal(0)
        for tier in tiers:  # bottom up: each tier holds the units between its bounds
            top = Decimal(str(tier["up_to"])) if "up_to" in tier else billable
            units = min(billable, top) - below
            if units > 0:
                amount += units * _d(tier["unit_price"]) + _d(tier.get("flat_fee", "0"))
            below = max(below, top)
        return amount
    if model == "volume":
        if billable == 0:
            return Decimal(0)
        chosen = tiers[-1]
        for tier in reversed(tiers):  # top down: the lowest tier whose bound holds billable
            if "up_to" in tier and billable <= Decimal(str(tier["up_to"])):
                chosen = tier
        return billable * _d(chosen["unit_price"]) + _d(chosen.get("flat_fee", "0"))
    raise ValueError(f"unknown model {model}")


def _d(value: Any) -> Decimal:
    """A rules number as an exact decimal (YAML may give it as text, int or float)."""
    return Decimal(str(value))


def _round(amount: Decimal, digits: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
