"""Worked examples and properties of the price models (amounts unrounded here)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog.plans import Tier, check_tiers
from pipeline.rating.pricing import (
    billable_quantity,
    flat_amount,
    graduated_amount,
    graduated_units,
    package_amount,
    package_count,
    per_unit_amount,
    volume_amount,
    volume_tier,
)

SPEC_GRADUATED = (
    Tier(up_to=D(10000), unit_price=D("0")),
    Tier(up_to=D(1000000), unit_price=D("0.002")),
    Tier(unit_price=D("0.001"), flat_fee=D("0")),
)
FEES = (
    Tier(up_to=D(100), unit_price=D(1), flat_fee=D(10)),
    Tier(up_to=D(200), unit_price=D("0.5"), flat_fee=D(20)),
    Tier(unit_price=D("0.1"), flat_fee=D(30)),
)
SPEC_VOLUME = (Tier(up_to=D(10), unit_price=D(5)), Tier(unit_price=D(4), flat_fee=D(10)))


# --- billable / per unit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "included", "billable"),
    [
        (D(0), D(0), D(0)),
        (D("12.5"), D(10), D("2.5")),
        (D(10), D(10), D(0)),  # exactly the included amount
        (D(5), D(10), D(0)),  # included larger than usage: nothing billable, never negative
    ],
)
def test_billable_is_quantity_minus_included_floored_at_zero(
    quantity: D, included: D, billable: D
) -> None:
    assert billable_quantity(quantity, included) == billable


def test_per_unit_worked_examples() -> None:
    # 2.5 GB x 0.09 = 0.225 (rounded to 0.23 only on the invoice line)
    assert per_unit_amount(D("2.5"), D("0.09")) == D("0.225")
    assert per_unit_amount(D(0), D("0.09")) == 0
    assert flat_amount(D("49.00")) == D("49.00")


# --- graduated -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billable", "expected"),
    [
        (D(0), D(0)),
        (D(10000), D(0)),  # exactly on the first boundary: all in the free tier
        (D(10001), D("0.002")),  # 1 unit in tier 2
        (D(25000), D(30)),  # 15000 x 0.002
        (D(1000000), D(1980)),  # 990000 x 0.002, boundary inclusive
        (D(1000001), D("1980.001")),  # + 1 x 0.001
    ],
)
def test_graduated_spec_tiers(billable: D, expected: D) -> None:
    assert graduated_amount(billable, SPEC_GRADUATED) == expected


@pytest.mark.parametrize(
    ("billable", "expected"),
    [
        (D(0), D(0)),  # no tier holds a unit: no flat fee at all
        (D(1), D(11)),  # 1 x 1 + fee 10
        (D(100), D(110)),  # 100 x 1 + 10; tier 2 holds nothing, so no fee 20
        (D(101), D("130.5")),  # 110 + 1 x 0.5 + 20
        (D(250), D(215)),  # 110 + (100 x 0.5 + 20) + (50 x 0.1 + 30)
        (D("100.5"), D("130.25")),  # a fractional position in tier 2 counts as held
    ],
)
def test_graduated_flat_fees_for_tiers_holding_units(billable: D, expected: D) -> None:
    assert graduated_amount(billable, FEES) == expected


def test_graduated_units_split_by_inclusive_bounds() -> None:
    held = graduated_units(D(250), FEES)
    assert [units for _, units in held] == [D(100), D(100), D(50)]
    assert graduated_units(D(200), FEES)[-1] == (FEES[1], D(100))


# --- volume --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billable", "expected"),
    [
        (D(0), D(0)),
        (D(3), D(15)),  # 3 x 5
        (D(10), D(50)),  # up_to inclusive: still tier 1
        (D(11), D(54)),  # 11 x 4 + 10
        (D(12), D(58)),  # 12 x 4 + 10
    ],
)
def test_volume_spec_tiers(billable: D, expected: D) -> None:
    assert volume_amount(billable, SPEC_VOLUME) == expected


def test_volume_flat_fee_only_when_something_is_billable() -> None:
    tiers = (Tier(up_to=D(10), unit_price=D(5), flat_fee=D(7)), Tier(unit_price=D(4)))
    assert volume_amount(D(0), tiers) == 0
    assert volume_amount(D(1), tiers) == D(12)  # 1 x 5 + 7


def test_volume_is_not_monotonic_across_a_tier_boundary() -> None:
    # Documented property of volume pricing: 10 units cost 50, 11 units cost 44.
    tiers = (Tier(up_to=D(10), unit_price=D(5)), Tier(unit_price=D(4)))
    assert volume_amount(D(10), tiers) == D(50)
    assert volume_amount(D(11), tiers) == D(44)
    assert volume_tier(D(10), tiers) is tiers[0]
    assert volume_tier(D("10.0001"), tiers) is tiers[1]


# --- package -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billable", "packages", "expected"),
    [
        (D(0), 0, D(0)),
        (D(1), 1, D("0.50")),  # a started package is a full package
        (D(1000), 1, D("0.50")),  # exactly one package
        (D(1001), 2, D("1.00")),  # remainder of 1 buys a second package
        (D(2500), 3, D("1.50")),
    ],
)
def test_package_worked_examples(billable: D, packages: int, expected: D) -> None:
    assert package_count(billable, D(1000)) == packages
    assert package_amount(billable, D(1000), D("0.50")) == expected


def test_package_fractional_size_and_tiny_remainder() -> None:
    assert package_amount(D("1.2"), D("0.5"), D(2)) == D(6)  # ceil(2.4) = 3 packages
    # A remainder far below the quotient's precision still opens a package.
    assert package_count(D("1000.0000000000000000000000000001"), D(1000)) == 2


# --- properties ----------------------------------------------------------------------------

quantities = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False)
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = draw(
        st.lists(
            st.decimals(min_value=1, max_value=10**7, places=2, allow_nan=False),
            max_size=4,
            unique=True,
        )
    )
    ups: list[D | None] = [*sorted(bounds), None]
    tiers = tuple(Tier(up_to=up, unit_price=draw(prices), flat_fee=draw(prices)) for up in ups)
    check_tiers(tiers)
    return tiers


@given(quantities, quantities, prices)
def test_per_unit_monotonic(a: D, b: D, price: D) -> None:
    low, high = sorted((a, b))
    assert per_unit_amount(low, price) <= per_unit_amount(high, price)


@given(quantities, quantities, tier_lists())
def test_graduated_monotonic(a: D, b: D, tiers: tuple[Tier, ...]) -> None:
    low, high = sorted((a, b))
    assert graduated_amount(low, tiers) <= graduated_amount(high, tiers)


@given(quantities, quantities, st.decimals(min_value="0.001", max_value=10**6, places=3), prices)
def test_package_monotonic(a: D, b: D, size: D, price: D) -> None:
    low, high = sorted((a, b))
    assert package_amount(low, size, price) <= package_amount(high, size, price)


@given(quantities, quantities, tier_lists())
def test_volume_monotonic_within_one_tier(a: D, b: D, tiers: tuple[Tier, ...]) -> None:
    low, high = sorted((a, b))
    if low > 0 and volume_tier(low, tiers) is volume_tier(high, tiers):
        assert volume_amount(low, tiers) <= volume_amount(high, tiers)


@given(quantities, quantities, quantities, prices)
def test_more_included_never_costs_more(quantity: D, inc_a: D, inc_b: D, price: D) -> None:
    small, large = sorted((inc_a, inc_b))
    more_free = per_unit_amount(billable_quantity(quantity, large), price)
    assert more_free <= per_unit_amount(billable_quantity(quantity, small), price)


@given(quantities, tier_lists())
def test_graduated_bounded_by_extreme_prices_plus_fees(
    billable: D, tiers: tuple[Tier, ...]
) -> None:
    amount = graduated_amount(billable, tiers)
    all_fees = sum((t.flat_fee for t in tiers), D(0))
    assert amount <= billable * max(t.unit_price for t in tiers) + all_fees
    assert amount >= billable * min(t.unit_price for t in tiers)


@given(quantities, tier_lists())
def test_graduated_units_add_up_to_billable(billable: D, tiers: tuple[Tier, ...]) -> None:
    held = graduated_units(billable, tiers)
    assert sum((units for _, units in held), D(0)) == billable
    assert all(units > 0 for _, units in held)


@given(quantities, tier_lists())
def test_volume_prices_every_unit_at_the_containing_tier(
    billable: D, tiers: tuple[Tier, ...]
) -> None:
    tier = volume_tier(billable, tiers)
    assert tier.up_to is None or billable <= tier.up_to
    expected = billable * tier.unit_price + tier.flat_fee if billable > 0 else D(0)
    assert volume_amount(billable, tiers) == expected


@given(quantities, st.decimals(min_value="0.001", max_value=10**6, places=3))
def test_package_count_is_the_ceiling(billable: D, size: D) -> None:
    packages = package_count(billable, size)
    assert packages == packages.to_integral_value()
    assert (packages - 1) * size < billable <= packages * size or (billable == packages == 0)
