from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.rating.errors import RatingError
from pipeline.rating.money import minor_unit, round_money


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("0.225"), "USD", Decimal("0.23")),  # half-up, not banker's (0.22)
        (Decimal("0.235"), "EUR", Decimal("0.24")),
        (Decimal("0.2249999"), "GBP", Decimal("0.22")),
        (Decimal("49"), "USD", Decimal("49.00")),
        (Decimal("1.5"), "JPY", Decimal("2")),  # JPY has no minor digits
        (Decimal("2.5"), "JPY", Decimal("3")),  # half-up again (banker's would give 2)
        (Decimal("0.49"), "JPY", Decimal("0")),
    ],
)
def test_round_half_up_to_minor_unit(amount: Decimal, currency: str, expected: Decimal) -> None:
    rounded = round_money(amount, currency)
    assert rounded == expected
    assert str(rounded) == str(expected)  # the scale is the currency's


def test_unknown_currency_is_a_rating_error() -> None:
    with pytest.raises(RatingError, match="XYZ"):
        minor_unit("XYZ")


@given(st.decimals(min_value=0, max_value=10**12, places=6), st.sampled_from(["USD", "JPY"]))
def test_rounding_is_floor_of_amount_plus_half_a_unit(amount: Decimal, currency: str) -> None:
    unit = minor_unit(currency)
    expected = ((amount / unit) + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR) * unit
    rounded = round_money(amount, currency)
    assert rounded == expected
    assert abs(rounded - amount) <= unit / 2
