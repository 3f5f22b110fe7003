"""Period quantities and tenants of a billing run, read from the meters in ClickHouse.

The month rollup (``meters_monthly``) gives each metric's raw aggregate over the period and its
``divide_by``; the division happens here, once, in Decimal, through
:func:`pipeline.rating.metric_quantity_from_raw`: the same function the pure invoice core
uses, so stored meters and invoices agree by construction.
"""

from __future__ import annotations

from decimal import Decimal

from pipeline.billing.common import as_period, bind_database
from pipeline.billing.errors import InconsistentMeters
from pipeline.catalog import AGGREGATIONS, Aggregation
from pipeline.rating import MetricKey, Period, metric_quantity_from_raw
from pipeline.store import Store

_PERIOD_METERS = """
SELECT product, metric, aggregation, raw_quantity, divide_by
FROM {database}.meters_monthly
WHERE billing_run = {billing_run:String}
  AND tenant = {tenant:String}
  AND period = {period:String}
ORDER BY product, metric, aggregation
"""

_TENANTS_OF_RUN = """
SELECT DISTINCT tenant
FROM {database}.usage_events
WHERE billing_run = {billing_run:String}
  AND event_time >= {start:DateTime64(6, 'UTC')}
  AND event_time < {end:DateTime64(6, 'UTC')}
ORDER BY tenant
"""

_TENANTS_OF_ANY_RUN = """
SELECT DISTINCT tenant
FROM {database}.usage_events
WHERE event_time >= {start:DateTime64(6, 'UTC')}
  AND event_time < {end:DateTime64(6, 'UTC')}
ORDER BY tenant
"""


def period_quantities(
    store: Store, database: str, tenant: str, period: Period | str, billing_run: str
) -> dict[MetricKey, Decimal]:
    """(product, metric) -> quantity of ``tenant`` (canonical id) over ``period`` in the run.

    Metrics without entries are absent (the invoice rates them at 0). Raises
    InconsistentMeters when one metric was metered with two aggregations in the period (the
    catalog changed an aggregation mid-period: replay the period with one catalog).
    """
    month = as_period(period)
    rows = store.query(
        bind_database(_PERIOD_METERS, database),
        {"billing_run": billing_run, "tenant": tenant, "period": str(month)},
    )
    quantities: dict[MetricKey, Decimal] = {}
    aggregations: dict[MetricKey, str] = {}
    for row in rows:
        key: MetricKey = (str(row["product"]), str(row["metric"]))
        aggregation = str(row["aggregation"])
        if key in aggregations:
            raise InconsistentMeters(
                f"meters of {key[0]}/{key[1]} for tenant {tenant} in {month} (run "
                f"{billing_run}) were recorded with two aggregations, {aggregations[key]} and "
                f"{aggregation}: the rules changed within the period. Replay the period with "
                "the current rules before invoicing",
                tenant=tenant,
                period=str(month),
                billing_run=billing_run,
                product=key[0],
                metric=key[1],
            )
        aggregations[key] = aggregation
        quantities[key] = metric_quantity_from_raw(
            _aggregation(aggregation, key, tenant, month, billing_run),
            _raw(row["raw_quantity"]),
            _raw_divisor(row["divide_by"], key, tenant, month, billing_run),
        )
    return quantities


def tenants_with_usage(
    store: Store, database: str, period: Period | str, billing_run: str | None
) -> list[str]:
    """Canonical tenants with at least one usage event (any fate) in ``period``, sorted.

    ``billing_run`` None means any run (the live stream or any replay).
    """
    month = as_period(period)
    params: dict[str, object] = {"start": month.start, "end": month.end}
    if billing_run is None:
        rows = store.query(bind_database(_TENANTS_OF_ANY_RUN, database), params)
    else:
        params["billing_run"] = billing_run
        rows = store.query(bind_database(_TENANTS_OF_RUN, database), params)
    return [str(row["tenant"]) for row in rows]


def _aggregation(
    value: str, key: MetricKey, tenant: str, month: Period, billing_run: str
) -> Aggregation:
    if value not in AGGREGATIONS:
        raise InconsistentMeters(
            f"meters of {key[0]}/{key[1]} for tenant {tenant} in {month} (run {billing_run}) "
            f"have the unknown aggregation {value!r} (known: {', '.join(AGGREGATIONS)})",
            tenant=tenant,
            period=str(month),
            billing_run=billing_run,
            aggregation=value,
        )
    return value


def _raw(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _raw_divisor(
    value: object, key: MetricKey, tenant: str, month: Period, billing_run: str
) -> Decimal:
    divisor = _raw(value)
    if divisor is None or not divisor.is_finite() or divisor <= 0:
        raise InconsistentMeters(
            f"meters of {key[0]}/{key[1]} for tenant {tenant} in {month} (run {billing_run}) "
            f"have divide_by {value!r}; it must be a positive number. Re-meter the period",
            tenant=tenant,
            period=str(month),
            billing_run=billing_run,
            divide_by=repr(value),
        )
    return divisor
