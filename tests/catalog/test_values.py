from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog.values import plain, to_decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, "0.1"),  # the float's shortest text, not its binary expansion
        (1e-7, "1E-7"),
        (3, "3"),
        (" 0.002 ", "0.002"),
        ("1e9", "1E+9"),
        (Decimal("49.00"), "49.00"),
    ],
)
def test_to_decimal(value: object, expected: str) -> None:
    assert str(to_decimal(value)) == expected


@pytest.mark.parametrize("value", [True, "abc", "", float("inf"), "NaN", None, [1]])
def test_to_decimal_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        to_decimal(value)


def test_plain_has_no_exponent() -> None:
    assert plain(Decimal("1E+9")) == "1000000000"
    assert plain(Decimal("0.10")) == "0.10"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_to_the_same_float(value: float) -> None:
    assert float(to_decimal(value)) == value
    assert str(to_decimal(value)) == str(Decimal(repr(value)))
