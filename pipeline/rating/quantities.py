"""Metric quantities over a period, as compute_invoice expects them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext
from typing import TypeAlias

from pipeline.catalog.models import Aggregation
from pipeline.rating.errors import InvalidQuantity
from pipeline.rating.money import RATING_CONTEXT

#: (product id, metric id)
MetricKey: TypeAlias = tuple[str, str]
#: (product id, metric id) -> the metric's quantity over the period (divide_by already applied).
Quantities: TypeAlias = Mapping[MetricKey, Decimal]


def metric_quantity_from_raw(
    aggregation: Aggregation, raw_value: Decimal | int | None, divide_by: Decimal
) -> Decimal:
    """The metric quantity from its raw aggregate over the whole period.

    ``raw_value`` is the event count (count), the sum of the field (sum), the largest value
    (max) or the number of distinct non-null values (unique_count); None (no events, or max
    over nothing) counts as 0. ``divide_by`` is applied once, here, to the period's total,
    so callers that add up raw sums (e.g. hourly buckets) must add raw values, then call this.
    """
    if raw_value is None:
        return Decimal(0)
    if isinstance(raw_value, bool) or not isinstance(raw_value, Decimal | int):
        raise InvalidQuantity(
            f"raw {aggregation} value must be a Decimal or int, got {type(raw_value).__name__}",
            aggregation=aggregation,
        )
    if isinstance(raw_value, Decimal) and not raw_value.is_finite():
        raise InvalidQuantity(
            f"raw {aggregation} value must be finite, got {raw_value}", aggregation=aggregation
        )
    if aggregation in ("count", "unique_count") and (
        not isinstance(raw_value, int) and raw_value != raw_value.to_integral_value()
    ):
        raise InvalidQuantity(
            f"raw {aggregation} value must be a whole number, got {raw_value}",
            aggregation=aggregation,
        )
    with localcontext(RATING_CONTEXT):
        return Decimal(raw_value) / divide_by


def checked_quantity(key: MetricKey, value: object) -> Decimal:
    """``value`` if it is a finite, non-negative Decimal (or int); else InvalidQuantity."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidQuantity(
            f"quantity of {key[0]}/{key[1]} must be a finite Decimal >= 0, got {value!r}"
            " (floats are not accepted: money and quantities are exact decimals)",
            product=key[0],
            metric=key[1],
            value=repr(value),
        )
    return value
