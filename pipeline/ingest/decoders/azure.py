"""Azure API Management: ApiManagementGatewayLogs-shaped JSON.

Two forms:

* flat (an outbound policy posting the columns): ``TimeGenerated``, ``CorrelationId``,
  ``Method``, ``Url``, ``ApiId``, ``OperationId``, ``ProductId``, ``ApimSubscriptionId``,
  ``ResponseCode``, ``RequestSize``, ``ResponseSize``, ``TotalTime``, ``RequestHeaders``;
* resource logs ``{"records": [{"time", "correlationId", "durationMs", "category",
  "properties": {camelCase columns}}]}``; each record becomes one outcome with
  ``sub_index`` and, as raw bytes, ``{"records": [that record]}``.

Column names are matched case-insensitively (so a policy may use camelCase too); in a record,
``properties`` win over record-level fields. ``time`` stands for ``TimeGenerated`` and
``durationMs`` for ``TotalTime``. Times carry up to 7 fraction digits (truncated to µs).
``ResponseCode`` 0 (client went away before a response) is an unknown status. Route is the
path of ``Url``; ``RequestHeaders`` may be an object or a JSON string of one. Extras kept as
attributes under their PascalCase names: OperationId, ProductId, ApiRevision, UserId, Region,
BackendResponseCode, Cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pipeline.events import EventRecord
from pipeline.ingest.decoders.context import DecoderContext, EventOutcome, build_event
from pipeline.ingest.decoders.fields import (
    as_count,
    as_key,
    as_latency,
    as_method,
    as_status,
    as_text,
    extras,
    header_values,
    iso_time,
    url_path,
)
from pipeline.ingest.errors import InvalidField

TENANT_HEADER = "X-Tenant-Id"
GATEWAY_CATEGORIES = ("gatewaylogs", "apimanagementgatewaylogs")
EXTRA_COLUMNS = (
    "OperationId",
    "ProductId",
    "ApiRevision",
    "UserId",
    "Region",
    "BackendResponseCode",
    "Cache",
)


# The columns read for an event, in this order (a column with its aliases, tried in turn).
LOOKUPS: tuple[tuple[str, ...], ...] = (
    ("CorrelationId",),
    ("TimeGenerated", "time"),
    ("Method",),
    ("Url",),
    ("ApiId",),
    ("ResponseCode",),
    ("RequestSize",),
    ("ResponseSize",),
    ("TotalTime", "durationMs"),
    ("ApimSubscriptionId",),
    ("RequestHeaders",),
    *((column,) for column in EXTRA_COLUMNS),
)
PROPERTIES_PREFIX = "properties."
_Candidate = tuple[int, str, str]
"""Where a column's value may be: (layer: 0 the item or record, 1 its properties; key; name as
sent, for messages)."""
_Plan = tuple[tuple[tuple[_Candidate, ...], str], ...]
"""Per lookup: its candidates, the winner first, and the column's name."""
_Simple = tuple[tuple[int, str, str, str], ...]
"""Per lookup with at most one candidate: (layer, key, name as sent, column); layer 2 (an empty
object) for an absent column."""
_PLAN_CACHE_SIZE = 256
_PLAN_MAX_KEYS = 64
_NOTHING: Mapping[str, Any] = {}


class _Columns:
    """Case-insensitive column lookup over one flat item or one resource-log record.

    A name matches a column in any case; when several keys match, the last non-null one wins
    (``properties`` after the record); an alias is tried when no key of the column has a value.
    Which keys can hold which column depends only on the objects' keys, so that part (the
    "plan") is worked out once per key layout and cached: reading an event is then one pass.
    """

    __slots__ = ("_layers", "_plan", "_simple")

    def __init__(self, item: Mapping[str, Any], properties: Mapping[str, Any] | None = None):
        self._layers = (item, properties if properties is not None else _NOTHING, _NOTHING)
        self._plan, self._simple = _plan_of(item, properties)

    def values(self) -> list[tuple[Any, str]]:
        """(value, name as sent) for each of :data:`LOOKUPS`; (None, column) when absent."""
        layers = self._layers
        if self._simple is not None:  # one key (or none) per column: no fallbacks to try
            return [
                (value, sent) if (value := layers[layer].get(key)) is not None else (None, column)
                for layer, key, sent, column in self._simple
            ]
        out: list[tuple[Any, str]] = []
        for candidates, column in self._plan:
            for layer, key, sent in candidates:
                value = layers[layer][key]
                if value is not None:
                    out.append((value, sent))
                    break
            else:
                out.append((None, column))
        return out


_PLANS: dict[tuple[object, ...], tuple[_Plan, _Simple | None]] = {}


def _plan_of(
    item: Mapping[str, Any], properties: Mapping[str, Any] | None
) -> tuple[_Plan, _Simple | None]:
    if len(item) + (len(properties) if properties is not None else 0) > _PLAN_MAX_KEYS:
        return _plan(item, properties)
    shape = (tuple(item), None if properties is None else tuple(properties))
    plan = _PLANS.get(shape)
    if plan is None:
        if len(_PLANS) >= _PLAN_CACHE_SIZE:
            _PLANS.clear()
        plan = _PLANS[shape] = _plan(item, properties)
    return plan


def _plan(
    item: Mapping[str, Any], properties: Mapping[str, Any] | None
) -> tuple[_Plan, _Simple | None]:
    by_name: dict[str, list[_Candidate]] = {}
    layers = [(item, "")] if properties is None else [(item, ""), (properties, PROPERTIES_PREFIX)]
    for layer, (columns, prefix) in enumerate(layers):
        for key in columns:
            by_name.setdefault(key.casefold(), []).insert(0, (layer, key, prefix + key))
    plan = tuple(
        (
            tuple(found for name in names for found in by_name.get(name.casefold(), ())),
            names[0],
        )
        for names in LOOKUPS
    )
    simple: _Simple | None = None
    if all(len(candidates) <= 1 for candidates, _ in plan):
        simple = tuple(
            (*candidates[0], column) if candidates else (2, column, column, column)
            for candidates, column in plan
        )
    return plan, simple


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be an ApiManagementGatewayLogs JSON object", item)
    if "records" not in item:
        return [EventOutcome(decode_columns(_Columns(item), ctx))]
    records = item["records"]
    if not isinstance(records, list):
        raise InvalidField("records", "must be an array of resource-log records", records)
    outcomes = []
    for j, record in enumerate(records):
        raw_item = {"records": [record]}
        try:
            event = decode_record(record, ctx)
        except InvalidField as exc:
            outcomes.append(
                EventOutcome(error=f"records[{j}].{exc}", sub_index=j, raw_item=raw_item)
            )
        except Exception as exc:  # a decoder bug must not reject the other records
            error = (
                f"records[{j}] could not be decoded (internal error {type(exc).__name__}: {exc})"
            )
            outcomes.append(EventOutcome(error=error, sub_index=j, raw_item=raw_item))
        else:
            outcomes.append(EventOutcome(record=event, sub_index=j, raw_item=raw_item))
    return outcomes


def decode_record(record: Any, ctx: DecoderContext) -> EventRecord:
    """One resource-log record (``properties`` in camelCase)."""
    if not isinstance(record, dict):
        raise InvalidField("record", "must be a JSON object", record)
    category = as_text(record.get("category"), "category")
    if category is not None and category.casefold() not in GATEWAY_CATEGORIES:
        raise InvalidField(
            "category", "must be GatewayLogs (other log categories carry no calls)", category
        )
    properties = record.get("properties")
    if not isinstance(properties, dict):
        raise InvalidField("properties", "must be a JSON object of gateway log columns", properties)
    return decode_columns(_Columns(record, properties), ctx)


def decode_columns(columns: _Columns, ctx: DecoderContext) -> EventRecord:
    (
        (key, key_name),
        (time, time_name),
        (method, method_name),
        (url, url_name),
        (api, api_name),
        (status, status_name),
        (request_size, request_size_name),
        (response_size, response_size_name),
        (total, total_name),
        (consumer, consumer_name),
        (headers, headers_name),
        *extra_values,
    ) = columns.values()
    return build_event(
        ctx,
        idempotency_key=as_key(key, key_name),
        tenant_headers=header_values(
            _headers_object(headers, headers_name), TENANT_HEADER, headers_name
        ),
        timestamp=iso_time(time, time_name),
        api=as_text(api, api_name),
        route=url_path(url, url_name),
        method=as_method(method, method_name),
        status=as_status(status, status_name, zero_is_unknown=True),
        request_bytes=as_count(request_size, request_size_name),
        response_bytes=as_count(response_size, response_size_name),
        latency_ms=as_latency(total, total_name),
        consumer=as_text(consumer, consumer_name),
        attributes=extras(zip(EXTRA_COLUMNS, (value for value, _ in extra_values), strict=True)),
    )


def _headers_object(headers: Any, name: str) -> Any:
    if isinstance(headers, str) and headers.strip().startswith("{"):
        try:
            return orjson.loads(headers)
        except orjson.JSONDecodeError as exc:
            raise InvalidField(name, f"is a string but not a JSON object ({exc})", headers) from exc
    return headers
