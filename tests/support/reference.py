"""A deliberately naive reference calculator for end-to-end tests (contract §5 and §6).

Written from the spec with plain loops, independent of :mod:`pipeline.metering` (only the
catalog's data is used), so that the production chain can be checked against it.

Input: the catalog and ``(event, copies)`` pairs, where ``event`` is a canonical event dict
(the keys of ``pipeline.events.EventFields``: ``tenant_headers`` a tuple, ``timestamp`` a UTC
datetime) and ``copies`` how many times it was delivered (>= 1). Among distinct events that
share a tenant and idempotency key, the one listed first wins (give such events in the order
the pipeline will see their first copies).

Conventions the production side must agree with (they mirror pipeline.metering's docs):

* quarantined events are counted by reason once per distinct event (``quarantined``) and once
  per copy (``quarantined_copies``): they have no canonical tenant, so tenant dedup does not
  apply to them;
* ``unique`` = distinct (tenant, idempotency key) pairs, metered or unmapped;
  ``duplicates`` = the other copies of those; ``unmapped`` = unique events with no product;
* ``quantities`` has every metric of every (tenant, product, month) with a metered event
  (0 when no event of that month passed the metric's ``where``); ``entries`` how many meter
  entries each one sums (a meter row exists exactly for the keys with at least one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from fnmatch import fnmatchcase
from typing import Any

from pipeline.catalog import Catalog, Metric, Product

#: (tenant, product, metric, "YYYY-MM")
QuantityKey = tuple[str, str, str, str]

_DIVISION = Context(prec=60)


@dataclass
class Expected:
    quantities: dict[QuantityKey, Decimal] = field(default_factory=dict)
    entries: dict[QuantityKey, int] = field(default_factory=dict)
    delivered: int = 0
    unique: int = 0
    duplicates: int = 0
    unmapped: int = 0
    metered: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    quarantined_copies: Counter[str] = field(default_factory=Counter)
    #: metric problems (value not a number or negative), per (product, metric), per unique event
    problems: Counter[tuple[str, str]] = field(default_factory=Counter)


def expected_usage(
    catalog: Catalog, deliveries: Iterable[tuple[Mapping[str, Any], int]]
) -> Expected:
    out = Expected()
    seen: set[tuple[str, str]] = set()
    raw: dict[QuantityKey, list[Any]] = {}
    for event, copies in deliveries:
        assert copies >= 1
        out.delivered += copies
        tenant, reason = reference_tenant(catalog, event)
        if tenant is None:
            out.quarantined[reason] += 1
            out.quarantined_copies[reason] += copies
            continue
        if (tenant, event["idempotency_key"]) in seen:
            out.duplicates += copies
            continue
        seen.add((tenant, event["idempotency_key"]))
        out.unique += 1
        out.duplicates += copies - 1
        product = reference_product(catalog, event)
        if product is None:
            out.unmapped += 1
            continue
        out.metered += 1
        month = event["timestamp"].astimezone(UTC).strftime("%Y-%m")
        for metric in product.metrics:
            values = raw.setdefault((tenant, product.id, metric.id, month), [])
            holds = where_holds(metric, event)
            if holds is None:
                out.problems[(product.id, metric.id)] += 1
            if not holds:
                continue
            if metric.aggregation == "count":
                values.append(1)
                continue
            assert metric.field is not None
            value = field_value(event, metric.field)
            if value is None:
                continue
            if metric.aggregation == "unique_count":
                values.append(value if isinstance(value, str) else str(value))
                continue
            number = reference_number(value)
            if number is None or number < 0:
                out.problems[(product.id, metric.id)] += 1
                continue
            values.append(number)
    for key, values in raw.items():
        _tenant, product_id, metric_id, _month = key
        metric = catalog.metric(product_id, metric_id)
        assert metric is not None
        out.quantities[key] = reference_quantity(metric, values)
        out.entries[key] = len(values)
    return out


def reference_quantity(metric: Metric, values: Sequence[Any]) -> Decimal:
    if metric.aggregation == "count":
        total = Decimal(len(values))
    elif metric.aggregation == "sum":
        total = Decimal(0)
        for value in values:
            total += value  # few, small values in tests: exact in the default context
    elif metric.aggregation == "max":
        total = Decimal(0)
        for value in values:
            if value > total:
                total = value
    else:
        total = Decimal(len(set(values)))
    return _DIVISION.divide(total, metric.divide_by)


def reference_tenant(catalog: Catalog, event: Mapping[str, Any]) -> tuple[str | None, str]:
    """(tenant id, "") or (None, quarantine reason)."""
    integration = None
    for candidate in catalog.integrations:
        if candidate.id == event["integration_id"]:
            integration = candidate
    if integration is None:
        return None, "unknown_integration"
    values = []
    for header in event["tenant_headers"]:
        if header.strip() != "":
            values.append(header.strip())
    if not values:
        if integration.default_tenant is None:
            return None, "missing_tenant"
        tenant = integration.default_tenant
    else:
        found = []
        for value in values:
            match = None
            for candidate in catalog.tenants:
                names = [candidate.id, *candidate.aliases]
                for name in names:
                    if name.strip().casefold() == value.casefold():
                        match = candidate.id
            if match is None:
                return None, "unknown_tenant"
            found.append(match)
        for other in found:
            if other != found[0]:
                return None, "conflicting_tenants"
        tenant = found[0]
    if integration.allowed_tenants != "any" and tenant not in integration.allowed_tenants:
        return None, "tenant_not_allowed"
    return tenant, ""


def reference_product(catalog: Catalog, event: Mapping[str, Any]) -> Product | None:
    for product in catalog.products:
        for rule in product.match:
            if rule.gateway != event["gateway"] or rule.api != event["api"]:
                continue
            route_fits = rule.route is None or (
                event["route"] is not None and fnmatchcase(event["route"], rule.route)
            )
            method_fits = rule.method is None or (
                event["method"] is not None and event["method"].upper() == rule.method
            )
            if route_fits and method_fits:
                return product
    return None


def field_value(event: Mapping[str, Any], path: str) -> Any:
    if path.startswith("attributes."):
        return event["attributes"].get(path[len("attributes.") :])
    return event[path]


def reference_number(value: Any) -> Decimal | None:
    """ints, and text that is a plain decimal (sign, digits, at most one point; <= 40 chars)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 40:
        return None
    body = text[1:] if text[:1] in ("+", "-") else text
    digits = 0
    points = 0
    for char in body:
        if char in "0123456789":
            digits += 1
        elif char == ".":
            points += 1
        else:
            return None
    if digits == 0 or points > 1:
        return None
    return Decimal(text)


def where_holds(metric: Metric, event: Mapping[str, Any]) -> bool | None:
    """Whether every condition holds; None when an ordering condition met a non-number."""
    for path, condition in metric.where.items():
        value = field_value(event, path)
        for op, operand in condition.operators():
            holds = _operator_holds(path, op, operand, value)
            if not holds:
                return holds
    return True


def _number_of(path: str, value: Any) -> Decimal | None:
    if path == "timestamp":  # epoch milliseconds
        micros = (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return Decimal(micros) / 1000
    return reference_number(value)


def _text_of(path: str, value: Any) -> str:
    if path == "timestamp":
        return str(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return value if isinstance(value, str) else str(value)


def _operator_holds(path: str, op: str, operand: Any, value: Any) -> bool | None:
    if value is None:
        return op in ("ne", "not_in")
    if op in ("lt", "lte", "gt", "gte"):
        number = _number_of(path, value)
        if number is None:
            return None
        if op == "lt":
            return number < operand
        if op == "lte":
            return number <= operand
        if op == "gt":
            return number > operand
        return number >= operand
    operands = list(operand) if op in ("in", "not_in") else [operand]
    equal = False
    for candidate in operands:
        if _equal(path, candidate, value):
            equal = True
    if op in ("eq", "in"):
        return equal
    return not equal


def _equal(path: str, operand: Any, value: Any) -> bool:
    if isinstance(operand, bool):
        return _text_of(path, value).lower() == ("true" if operand else "false")
    if isinstance(operand, Decimal):
        number = _number_of(path, value)
        return number is not None and number == operand
    if path == "method":
        return _text_of(path, value).upper() == operand.upper()
    return _text_of(path, value) == operand
