"""Period totals of a replay run, accumulated in memory from the rows it produces (pure).

A replay needs its new quantities before anything is registered (the diff, and the whole of a
dry run, which writes nothing). :class:`RunTotals` folds the run's ``meter_entries`` rows as
they stream by, with exactly the arithmetic of the ``meters_monthly`` view followed by
:func:`pipeline.billing.period_quantities`:

* ``count`` and ``sum``: the sum of the entries' values (a count entry is worth 1);
* ``max``: the largest value;
* ``unique_count``: the number of distinct non-null ``distinct_value``;

then :func:`pipeline.rating.metric_quantity_from_raw` divides by ``divide_by`` once. Sums are
exact (no rounding, :data:`pipeline.metering.meters.EXACT_CONTEXT`); memory is one accumulator
per (tenant, product, metric), plus the distinct values of unique_count metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, Inexact
from typing import Any

from pipeline.catalog import AGGREGATIONS, Aggregation
from pipeline.metering.meters import EXACT_CONTEXT
from pipeline.rating import MetricKey, metric_quantity_from_raw
from pipeline.replay.errors import ReplayError


@dataclass
class _Accumulator:
    aggregation: Aggregation
    divide_by: Decimal
    total: Decimal = Decimal(0)
    largest: Decimal | None = None
    distinct: set[str] = field(default_factory=set)
    entries: int = 0

    def raw(self) -> Decimal | int | None:
        if self.aggregation == "unique_count":
            return len(self.distinct)
        if self.aggregation == "max":
            return self.largest
        return self.total


class RunTotals:
    """Tenants and period quantities of one run, from its usage_events and meter_entries rows."""

    __slots__ = ("_metrics", "_tenants")

    def __init__(self) -> None:
        self._tenants: set[str] = set()
        self._metrics: dict[tuple[str, str, str], _Accumulator] = {}

    def add_usage(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Note the tenants of ``usage_events`` rows (unmapped events count: a tenant is billed
        its flat fees and minimum whatever its usage)."""
        for row in rows:
            self._tenants.add(str(row["tenant"]))

    def add_entries(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Fold ``meter_entries`` rows (as :class:`pipeline.worker.batch.BatchProcessor` makes
        them) into the totals."""
        for row in rows:
            tenant, product, metric = str(row["tenant"]), str(row["product"]), str(row["metric"])
            aggregation = _aggregation(row["aggregation"], product, metric)
            divide_by = Decimal(row["divide_by"])
            key = (tenant, product, metric)
            accumulator = self._metrics.get(key)
            if accumulator is None:
                accumulator = self._metrics[key] = _Accumulator(aggregation, divide_by)
            elif accumulator.aggregation != aggregation or accumulator.divide_by != divide_by:
                raise ReplayError(
                    f"meter entries of {product}/{metric} for tenant {tenant} disagree within "
                    f"one replay ({accumulator.aggregation} / {accumulator.divide_by} and "
                    f"{aggregation} / {divide_by}); a replay uses one catalog, so this is a bug",
                    tenant=tenant,
                    product=product,
                    metric=metric,
                )
            _fold(accumulator, row, key)

    def tenants(self) -> set[str]:
        """Tenants with at least one usage event in the run."""
        return set(self._tenants)

    def quantities(self, tenant: str) -> dict[MetricKey, Decimal]:
        """(product, metric) -> period quantity of ``tenant``; metrics without entries absent,
        as :func:`pipeline.billing.period_quantities` returns them."""
        return {
            (product, metric): metric_quantity_from_raw(
                accumulator.aggregation, accumulator.raw(), accumulator.divide_by
            )
            for (owner, product, metric), accumulator in sorted(self._metrics.items())
            if owner == tenant
        }

    def entry_count(self) -> int:
        return sum(accumulator.entries for accumulator in self._metrics.values())


def _fold(accumulator: _Accumulator, row: Mapping[str, Any], key: tuple[str, str, str]) -> None:
    accumulator.entries += 1
    if accumulator.aggregation == "unique_count":
        distinct = row.get("distinct_value")
        if distinct is not None:
            accumulator.distinct.add(str(distinct))
        return
    raw_value = row.get("value")
    if raw_value is None:
        return
    value = Decimal(raw_value)
    if accumulator.aggregation == "max":
        if accumulator.largest is None or value > accumulator.largest:
            accumulator.largest = value
        return
    try:
        accumulator.total = EXACT_CONTEXT.add(accumulator.total, value)
    except Inexact as exc:
        raise ReplayError(
            f"the sum of {key[1]}/{key[2]} for tenant {key[0]} exceeds "
            f"{EXACT_CONTEXT.prec} significant digits; check the metric's field for absurd values",
            tenant=key[0],
            product=key[1],
            metric=key[2],
        ) from exc


def _aggregation(value: object, product: str, metric: str) -> Aggregation:
    for known in AGGREGATIONS:
        if value == known:
            return known
    raise ReplayError(
        f"meter entry of {product}/{metric} has the unknown aggregation {value!r} "
        f"(known: {', '.join(AGGREGATIONS)})",
        product=product,
        metric=metric,
    )
