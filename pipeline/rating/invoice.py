"""One invoice per tenant per period: rate each charge of the plan version, round, true up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from typing import Any, Literal

from pipeline.catalog.catalog import Catalog
from pipeline.catalog.plans import (
    FlatCharge,
    GraduatedCharge,
    PackageCharge,
    PerUnitCharge,
    Tier,
    UsageCharge,
    VolumeCharge,
)
from pipeline.catalog.values import plain
from pipeline.rating.errors import UnknownTenant
from pipeline.rating.money import RATING_CONTEXT, round_money
from pipeline.rating.period import Period
from pipeline.rating.plan_version import select_plan_version
from pipeline.rating.pricing import (
    ZERO,
    billable_quantity,
    flat_amount,
    graduated_units,
    package_count,
    usage_amount,
    volume_tier,
)
from pipeline.rating.quantities import Quantities, checked_quantity

LineKind = Literal["flat", "usage", "true_up"]
TRUE_UP_NAME = "Minimum commitment true-up"


@dataclass(frozen=True)
class InvoiceLine:
    """One charge of the invoice; ``amount`` is already rounded to the currency's minor unit."""

    kind: LineKind
    name: str
    product: str | None
    metric: str | None
    quantity: Decimal | None
    billable: Decimal | None
    unit_description: str
    amount: Decimal

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "product": self.product,
            "metric": self.metric,
            "quantity": _text(self.quantity),
            "billable": _text(self.billable),
            "unit_description": self.unit_description,
            "amount": plain(self.amount),
        }


@dataclass(frozen=True)
class Invoice:
    """The invoice of one tenant for one period. ``total = subtotal + true_up``."""

    tenant: str
    period: Period
    plan: str
    plan_version: date
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    minimum_commitment: Decimal | None
    true_up: Decimal
    total: Decimal

    def true_up_line(self) -> InvoiceLine | None:
        """The true-up as a line (for storage and display), or None when there is none."""
        if self.true_up <= 0 or self.minimum_commitment is None:
            return None
        return InvoiceLine(
            kind="true_up",
            name=TRUE_UP_NAME,
            product=None,
            metric=None,
            quantity=None,
            billable=None,
            unit_description=f"minimum commitment {plain(self.minimum_commitment)}",
            amount=self.true_up,
        )

    def lines_with_true_up(self) -> tuple[InvoiceLine, ...]:
        """Charge lines followed by the true-up line when there is one; amounts sum to total."""
        true_up = self.true_up_line()
        return self.lines if true_up is None else (*self.lines, true_up)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict; amounts and quantities are decimal strings, never floats."""
        return {
            "tenant": self.tenant,
            "period": str(self.period),
            "plan": self.plan,
            "plan_version": self.plan_version.isoformat(),
            "currency": self.currency,
            "lines": [line.to_json_dict() for line in self.lines],
            "subtotal": plain(self.subtotal),
            "minimum_commitment": _text(self.minimum_commitment),
            "true_up": plain(self.true_up),
            "total": plain(self.total),
        }


def compute_invoice(
    catalog: Catalog, tenant_id: str, period: Period, quantities: Quantities
) -> Invoice:
    """Rate ``quantities`` ((product, metric) -> period quantity, divide_by applied) for the
    tenant (id or alias) with its plan version effective at the period's start.

    Charges whose metric has no quantity are rated at 0; quantities no charge uses are ignored.
    Raises UnknownTenant, NoEffectivePlanVersion (a CatalogError) or InvalidQuantity.
    """
    tenant = catalog.tenant(tenant_id) or catalog.tenant_for_header(tenant_id)
    if tenant is None:
        raise UnknownTenant(
            f"no tenant has the id or alias {tenant_id!r} in the rating rules", tenant=tenant_id
        )
    plan = catalog.plan_of(tenant)
    version = select_plan_version(plan, period)
    lines = tuple(
        _flat_line(charge, plan.currency)
        if isinstance(charge, FlatCharge)
        else _usage_line(charge, plan.currency, quantities)
        for charge in version.charges
    )
    with localcontext(RATING_CONTEXT):
        subtotal = sum((line.amount for line in lines), round_money(ZERO, plan.currency))
        minimum = version.minimum_commitment
        true_up = round_money(
            max(minimum - subtotal, ZERO) if minimum is not None else ZERO, plan.currency
        )
        total = subtotal + true_up
    return Invoice(
        tenant=tenant.id,
        period=period,
        plan=plan.id,
        plan_version=version.effective_from,
        currency=plan.currency,
        lines=lines,
        subtotal=subtotal,
        minimum_commitment=minimum,
        true_up=true_up,
        total=total,
    )


def _flat_line(charge: FlatCharge, currency: str) -> InvoiceLine:
    return InvoiceLine(
        kind="flat",
        name=charge.display_name,
        product=None,
        metric=None,
        quantity=None,
        billable=None,
        unit_description="flat",
        amount=round_money(flat_amount(charge.amount), currency),
    )


def _usage_line(charge: UsageCharge, currency: str, quantities: Quantities) -> InvoiceLine:
    key = (charge.product, charge.metric)
    quantity = checked_quantity(key, quantities.get(key, ZERO))
    billable = billable_quantity(quantity, charge.included)
    return InvoiceLine(
        kind="usage",
        name=charge.display_name,
        product=charge.product,
        metric=charge.metric,
        quantity=quantity,
        billable=billable,
        unit_description=describe_pricing(charge, billable),
        amount=round_money(usage_amount(charge, billable), currency),
    )


def describe_pricing(charge: UsageCharge, billable: Decimal) -> str:
    """How the amount of a usage line came about, e.g. ``10000 x 0 + 5000 x 0.002``."""
    if isinstance(charge, PerUnitCharge):
        text = f"{plain(billable)} x {plain(charge.unit_price)}"
    elif isinstance(charge, GraduatedCharge):
        parts = [
            f"{plain(units)} x {plain(tier.unit_price)}"
            + (f" + fee {plain(tier.flat_fee)}" if tier.flat_fee else "")
            for tier, units in graduated_units(billable, charge.tiers)
        ]
        text = " + ".join(parts) or "no billable units"
    elif isinstance(charge, VolumeCharge):
        if billable <= 0:
            text = "no billable units"
        else:
            tier = volume_tier(billable, charge.tiers)
            fee = f" + fee {plain(tier.flat_fee)}" if tier.flat_fee else ""
            text = (
                f"{plain(billable)} x {plain(tier.unit_price)} ({_tier_range(charge, tier)}){fee}"
            )
    elif isinstance(charge, PackageCharge):
        packages = package_count(billable, charge.package_size)
        text = f"{plain(packages)} x {plain(charge.package_price)} per {plain(charge.package_size)}"
    if charge.included:
        text += f" ({plain(charge.included)} included)"
    return text


def _tier_range(charge: VolumeCharge, tier: Tier) -> str:
    position = charge.tiers.index(tier)
    if tier.up_to is not None:
        return f"tier #{position + 1}: up to {plain(tier.up_to)}"
    below = charge.tiers[position - 1].up_to if position else None
    return f"tier #{position + 1}: over {plain(below)}" if below is not None else "single tier"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)
