from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.rating.errors import InvalidQuantity
from pipeline.rating.quantities import checked_quantity, metric_quantity_from_raw


def test_sum_is_divided_once_at_the_end() -> None:
    # 12.5 GB of egress from raw bytes
    assert metric_quantity_from_raw("sum", Decimal(12_500_000_000), Decimal(10**9)) == Decimal(
        "12.5"
    )
    assert metric_quantity_from_raw("count", 42, Decimal(1)) == 42
    assert metric_quantity_from_raw("max", None, Decimal(1)) == 0


def test_count_must_be_whole() -> None:
    with pytest.raises(InvalidQuantity):
        metric_quantity_from_raw("count", Decimal("1.5"), Decimal(1))


def test_float_quantities_are_refused() -> None:
    with pytest.raises(InvalidQuantity, match="float"):
        checked_quantity(("payments", "calls"), 1.5)
    with pytest.raises(InvalidQuantity):
        checked_quantity(("payments", "calls"), Decimal(-1))
    with pytest.raises(InvalidQuantity):
        checked_quantity(("payments", "calls"), Decimal("NaN"))
    assert checked_quantity(("payments", "calls"), 3) == Decimal(3)


@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=30))
def test_summing_raw_parts_then_dividing_equals_dividing_the_total(parts: list[int]) -> None:
    divide_by = Decimal(10**9)
    total = metric_quantity_from_raw("sum", Decimal(sum(parts)), divide_by)
    per_part = sum(
        (metric_quantity_from_raw("sum", Decimal(p), divide_by) for p in parts), Decimal(0)
    )
    assert total == per_part  # exact because 10**9 divides without remainder digits
