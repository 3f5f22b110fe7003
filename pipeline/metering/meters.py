"""Meter entries: what one matched event contributes to each metric of its product.

``meter_entries(product, fields)`` gives one :class:`MeterEntry` per metric whose ``where``
conditions all hold (see :mod:`pipeline.metering.conditions` for their semantics):

* ``count``: value 1.
* ``sum`` / ``max``: the field's value as an exact Decimal (ints as they are, attribute text
  parsed as a plain decimal number). A null field gives no entry. A value that is not a
  number, or is negative (usage cannot be negative), gives a :class:`MeterProblem` instead,
  which the worker counts; nothing raises.
* ``unique_count``: ``distinct_value`` = the field's value as text; null gives no entry.

:func:`aggregate_quantity` turns a period's entries of one metric into its quantity, exactly
as the invoice does (:func:`pipeline.rating.metric_quantity_from_raw`): the raw aggregate
(count, sum, max or number of distinct values), divided by ``divide_by`` once at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, Inexact, Overflow
from decimal import InvalidOperation as DecimalInvalidOperation
from typing import Final, NamedTuple, cast

from pipeline.catalog import Aggregation, Metric, Product
from pipeline.errors import PipelineError
from pipeline.metering.conditions import (
    ATTRIBUTES_PREFIX,
    CompiledCondition,
    NotANumber,
    as_text,
    parse_number,
)

#: ``meter_entries.value`` is ``Decimal(38, 9)`` (migrations/0002): at most 29 integer digits
#: and 9 fractional digits. The edge refuses an event whose meter value would not fit
#: (pipeline/ingest/checks.py), the worker dead-letters one (pipeline/worker/batch.py).
METER_INTEGER_DIGITS: Final = 29
METER_FRACTION_DIGITS: Final = 9
ONE: Final = Decimal(1)
ZERO: Final = Decimal(0)

#: Sums and maxima: never rounded (Inexact traps; 80 digits hold any realistic total).
EXACT_CONTEXT: Final = Context(
    prec=80, traps=[DecimalInvalidOperation, DivisionByZero, Overflow, Inexact]
)
#: The one division by divide_by: same precision and rounding as the invoice's RATING_CONTEXT.
DIVISION_CONTEXT: Final = Context(
    prec=60, rounding=ROUND_HALF_EVEN, traps=[DecimalInvalidOperation, DivisionByZero, Overflow]
)


class MeterEntry(NamedTuple):
    """One metric's contribution of one event."""

    metric_id: str
    aggregation: Aggregation
    value: Decimal | None  # count: 1; sum/max: the field's value; unique_count: None
    distinct_value: str | None  # unique_count: the field's value as text; else None
    divide_by: Decimal


class MeterProblem(NamedTuple):
    """A metric that could not use this event's value (bad data, not a bug): count it."""

    metric_id: str
    field: str
    value: str  # the offending value as sent
    detail: str


class MeterError(PipelineError):
    """Entries given to :func:`aggregate_quantity` do not belong to one metric, or overflow."""


class _CompiledMetric:
    __slots__ = (
        "aggregation",
        "attribute",
        "count_entry",
        "divide_by",
        "field",
        "metric_id",
        "name",
        "where",
    )

    def __init__(self, metric: Metric) -> None:
        self.metric_id = metric.id
        self.aggregation: Aggregation = metric.aggregation
        self.divide_by = metric.divide_by
        self.field = metric.field or ""
        self.attribute = self.field.startswith(ATTRIBUTES_PREFIX)
        self.name = self.field.removeprefix(ATTRIBUTES_PREFIX) if self.attribute else self.field
        self.where = tuple(CompiledCondition(f, c) for f, c in metric.where.items())
        # Entries are immutable: every counted event shares the one count entry.
        self.count_entry = MeterEntry(metric.id, "count", ONE, None, metric.divide_by)


class ProductMeters:
    """The metrics of one product, compiled; :meth:`entries` is the hot path."""

    __slots__ = ("_metrics", "_reads_tenant_header", "product")

    def __init__(self, product: Product) -> None:
        self.product = product
        self._metrics = tuple(_CompiledMetric(metric) for metric in product.metrics)
        self._reads_tenant_header = any(
            metric.field == TENANT_HEADER or TENANT_HEADER in metric.where
            for metric in product.metrics
        )

    def entries(self, fields: Mapping[str, object]) -> list[MeterEntry | MeterProblem]:
        """One entry (or problem) per metric of the product that this event counts for."""
        if self._reads_tenant_header:
            fields = with_tenant_header(fields)
        attributes = cast("Mapping[str, str]", fields["attributes"])
        out: list[MeterEntry | MeterProblem] = []
        for metric in self._metrics:
            if metric.where and not _where_holds(metric, fields, attributes, out):
                continue
            aggregation = metric.aggregation
            if aggregation == "count":
                out.append(metric.count_entry)
                continue
            name = metric.name
            value = attributes.get(name) if metric.attribute else fields.get(name)
            if value is None:
                continue
            if aggregation == "unique_count":
                text = value if type(value) is str else as_text(value)
                out.append(
                    _new(MeterEntry, (metric.metric_id, aggregation, None, text, metric.divide_by))
                )
            elif type(value) is int and value >= 0:
                number = Decimal(value)
                out.append(
                    _new(
                        MeterEntry, (metric.metric_id, aggregation, number, None, metric.divide_by)
                    )
                )
            else:
                out.append(_number_entry(metric, value))
        return out


#: The contract's ``tenant_header`` (the first raw X-Tenant-Id) is not a key of the event fields,
#: which keep every value as ``tenant_headers``; metrics naming it read it through this.
TENANT_HEADER: Final = "tenant_header"


def with_tenant_header(fields: Mapping[str, object]) -> Mapping[str, object]:
    """``fields`` plus ``tenant_header``: the first ``tenant_headers`` value, or None."""
    headers = cast("tuple[str, ...]", fields.get("tenant_headers") or ())
    return {**fields, TENANT_HEADER: headers[0] if headers else None}


#: tuple.__new__ builds a NamedTuple without its Python-level __new__ (hot path).
_new = tuple.__new__


def _where_holds(
    metric: _CompiledMetric,
    fields: Mapping[str, object],
    attributes: Mapping[str, str],
    out: list[MeterEntry | MeterProblem],
) -> bool:
    for condition in metric.where:
        name = condition.name
        value = attributes.get(name) if condition.attribute else fields.get(name)
        try:
            if not condition.holds(value):
                return False
        except NotANumber:
            out.append(
                MeterProblem(
                    metric.metric_id,
                    condition.field,
                    as_text(value),
                    f"where {condition.field}: {as_text(value)!r} is not a number, "
                    "so a lt/lte/gt/gte condition cannot hold",
                )
            )
            return False
    return True


def _number_entry(metric: _CompiledMetric, value: object) -> MeterEntry | MeterProblem:
    """The sum or max entry of a value that is not a plain non-negative int."""
    number = parse_number(value) if isinstance(value, str) else None
    if number is None:
        problem = "is not a decimal number"
    elif number < 0:
        problem = "is negative"
    else:
        return MeterEntry(metric.metric_id, metric.aggregation, number, None, metric.divide_by)
    return MeterProblem(
        metric.metric_id,
        metric.field,
        as_text(value),
        f"{metric.field} = {as_text(value)!r} {problem}; "
        f"{metric.aggregation} of {metric.metric_id} skips this event",
    )


_COMPILED_LIMIT: Final = 4096
# id(product) -> (product, compiled); keeping the product alive keeps its id unique.
_compiled: dict[int, tuple[Product, ProductMeters]] = {}


def product_meters(product: Product) -> ProductMeters:
    """The compiled metrics of ``product`` (cached per product object)."""
    found = _compiled.get(id(product))
    if found is not None and found[0] is product:
        return found[1]
    compiled = ProductMeters(product)
    if len(_compiled) >= _COMPILED_LIMIT:
        _compiled.clear()
    _compiled[id(product)] = (product, compiled)
    return compiled


def meter_entries(
    product: Product, fields: Mapping[str, object]
) -> list[MeterEntry | MeterProblem]:
    """What the event ``fields`` (an EventFields dict) contributes to each metric of ``product``."""
    return product_meters(product).entries(fields)


def aggregate_quantity(aggregation: Aggregation, entries: Iterable[MeterEntry]) -> Decimal:
    """The metric's quantity over a period from all its entries (see module doc).

    ``count`` = number of entries (sum of their values), ``sum`` = sum of values, ``max`` =
    largest value (0 without entries), ``unique_count`` = distinct non-null distinct_values;
    then divided once by the metric's ``divide_by`` (1 unless configured).
    """
    divide_by: Decimal | None = None
    total = ZERO
    largest: Decimal | None = None
    distinct: set[str] = set()
    try:
        for entry in entries:
            if entry.aggregation != aggregation:
                raise MeterError(
                    f"entry of metric {entry.metric_id} is a {entry.aggregation} entry, "
                    f"not {aggregation}",
                    metric=entry.metric_id,
                )
            if divide_by is None:
                divide_by = entry.divide_by
            elif entry.divide_by != divide_by:
                raise MeterError(
                    f"entries of metric {entry.metric_id} disagree on divide_by "
                    f"({divide_by} and {entry.divide_by}); aggregate one metric at a time",
                    metric=entry.metric_id,
                )
            if aggregation == "unique_count":
                if entry.distinct_value is not None:
                    distinct.add(entry.distinct_value)
            elif entry.value is not None:
                if aggregation == "max":
                    if largest is None or entry.value > largest:
                        largest = entry.value
                else:
                    total = EXACT_CONTEXT.add(total, entry.value)
    except Inexact as exc:
        raise MeterError(
            f"the {aggregation} exceeds {EXACT_CONTEXT.prec} significant digits and would be "
            "rounded; check the metric's field for absurd values",
            aggregation=aggregation,
        ) from exc
    if aggregation == "unique_count":
        raw = Decimal(len(distinct))
    elif aggregation == "max":
        raw = ZERO if largest is None else largest
    else:
        raw = total
    return DIVISION_CONTEXT.divide(raw, divide_by or ONE)


def fits_meter_value(text: str) -> bool:
    """Whether a meter value, as plain decimal text (``format(value, "f")``), fits
    ``Decimal(38, 9)``: at most 29 integer digits and 9 fractional digits (beyond 9 ClickHouse
    would cut the value without an error; beyond 29 it refuses the whole insert). A sign,
    leading zeros and trailing zeros do not count."""
    point = text.find(".")
    if point < 0:
        if len(text) <= METER_INTEGER_DIGITS:
            return True
    elif point <= METER_INTEGER_DIGITS and len(text) - point - 1 <= METER_FRACTION_DIGITS:
        return True
    whole, _point, fraction = text.lstrip("+-").partition(".")
    return (
        len(whole.lstrip("0")) <= METER_INTEGER_DIGITS
        and len(fraction.rstrip("0")) <= METER_FRACTION_DIGITS
    )
