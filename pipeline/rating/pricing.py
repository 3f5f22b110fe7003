"""The price models of contract §6 as pure Decimal functions (amounts are not rounded here).

``billable`` is always ``max(quantity - included, 0)``; see :func:`billable_quantity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import assert_never

from pipeline.catalog.plans import (
    GraduatedCharge,
    PackageCharge,
    PerUnitCharge,
    Tier,
    UsageCharge,
    VolumeCharge,
)
from pipeline.rating.money import RATING_CONTEXT

ZERO = Decimal(0)


def billable_quantity(quantity: Decimal, included: Decimal = ZERO) -> Decimal:
    """Units to pay for: ``max(quantity - included, 0)``."""
    with localcontext(RATING_CONTEXT):
        return max(quantity - included, ZERO)


def per_unit_amount(billable: Decimal, unit_price: Decimal) -> Decimal:
    """``billable × unit_price``."""
    with localcontext(RATING_CONTEXT):
        return billable * unit_price


def graduated_units(billable: Decimal, tiers: Sequence[Tier]) -> list[tuple[Tier, Decimal]]:
    """The tiers holding a positive part of ``billable`` and how many units each holds.

    Tier *i* holds the cumulative positions in ``(up_to of tier i-1, up_to of tier i]``; a
    fractional quantity puts its fraction in the tier its position falls in.
    """
    held: list[tuple[Tier, Decimal]] = []
    lower = ZERO
    with localcontext(RATING_CONTEXT):
        for tier in tiers:
            if billable <= lower:
                break
            upper = billable if tier.up_to is None else min(billable, tier.up_to)
            held.append((tier, upper - lower))
            if tier.up_to is None:
                break
            lower = tier.up_to
    return held


def graduated_amount(billable: Decimal, tiers: Sequence[Tier]) -> Decimal:
    """Each unit at the price of the tier its position falls in, plus the flat_fee of every
    tier holding at least part of a unit."""
    with localcontext(RATING_CONTEXT):
        return sum(
            (
                units * tier.unit_price + tier.flat_fee
                for tier, units in graduated_units(billable, tiers)
            ),
            ZERO,
        )


def volume_tier(billable: Decimal, tiers: Sequence[Tier]) -> Tier:
    """The tier containing ``billable`` (``up_to`` inclusive; the last tier is unbounded)."""
    for tier in tiers:
        if tier.up_to is None or billable <= tier.up_to:
            return tier
    return tiers[-1]


def volume_amount(billable: Decimal, tiers: Sequence[Tier]) -> Decimal:
    """All units at the unit_price of the tier containing ``billable``, plus that tier's
    flat_fee; 0 when nothing is billable."""
    if billable <= 0:
        return ZERO
    tier = volume_tier(billable, tiers)
    with localcontext(RATING_CONTEXT):
        return billable * tier.unit_price + tier.flat_fee


def package_count(billable: Decimal, package_size: Decimal) -> Decimal:
    """``ceil(billable / package_size)``, computed exactly (no rounded quotient)."""
    with localcontext(RATING_CONTEXT):
        whole, remainder = divmod(billable, package_size)
        return whole + 1 if remainder > 0 else whole


def package_amount(billable: Decimal, package_size: Decimal, package_price: Decimal) -> Decimal:
    """``ceil(billable / package_size) × package_price``."""
    with localcontext(RATING_CONTEXT):
        return package_count(billable, package_size) * package_price


def flat_amount(amount: Decimal) -> Decimal:
    """A flat charge costs its amount whatever the usage."""
    return amount


def usage_amount(charge: UsageCharge, billable: Decimal) -> Decimal:
    """The unrounded amount of a usage charge for ``billable`` units."""
    if isinstance(charge, PerUnitCharge):
        return per_unit_amount(billable, charge.unit_price)
    if isinstance(charge, GraduatedCharge):
        return graduated_amount(billable, charge.tiers)
    if isinstance(charge, VolumeCharge):
        return volume_amount(billable, charge.tiers)
    if isinstance(charge, PackageCharge):
        return package_amount(billable, charge.package_size, charge.package_price)
    assert_never(charge)
