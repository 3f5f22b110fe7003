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

from pipeline.events import CanonicalEvent
from pipeline.ingest.body import item_bytes
from pipeline.ingest.errors import InvalidField
from tests.ingest.decoders.reference.context import DecoderContext, EventOutcome, build_event
from tests.ingest.decoders.reference.fields import (
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


class _Columns:
    """Case-insensitive column lookup over one flat item or one resource-log record."""

    def __init__(self, *layers: tuple[Mapping[str, Any], str]) -> None:
        self._index: dict[str, tuple[str, Any]] = {}
        for layer, prefix in layers:  # later layers win
            for key, value in layer.items():
                if value is not None:
                    self._index[key.casefold()] = (prefix + key, value)

    def get(self, column: str, *aliases: str) -> tuple[Any, str]:
        """(value, name as sent) of the first present name; (None, column) when absent."""
        for name in (column, *aliases):
            found = self._index.get(name.casefold())
            if found is not None:
                return found[1], found[0]
        return None, column


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be an ApiManagementGatewayLogs JSON object", item)
    if "records" not in item:
        return [EventOutcome(event=decode_columns(_Columns((item, "")), ctx))]
    records = item["records"]
    if not isinstance(records, list):
        raise InvalidField("records", "must be an array of resource-log records", records)
    outcomes = []
    for j, record in enumerate(records):
        raw = item_bytes({"records": [record]})
        try:
            event = decode_record(record, ctx)
        except InvalidField as exc:
            outcomes.append(EventOutcome(error=f"records[{j}].{exc}", sub_index=j, raw=raw))
        except Exception as exc:  # a decoder bug must not reject the other records
            error = (
                f"records[{j}] could not be decoded (internal error {type(exc).__name__}: {exc})"
            )
            outcomes.append(EventOutcome(error=error, sub_index=j, raw=raw))
        else:
            outcomes.append(EventOutcome(event=event, sub_index=j, raw=raw))
    return outcomes


def decode_record(record: Any, ctx: DecoderContext) -> CanonicalEvent:
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
    return decode_columns(_Columns((record, ""), (properties, "properties.")), ctx)


def decode_columns(columns: _Columns, ctx: DecoderContext) -> CanonicalEvent:
    def field(column: str, *aliases: str) -> tuple[Any, str]:
        return columns.get(column, *aliases)

    key, key_name = field("CorrelationId")
    time, time_name = field("TimeGenerated", "time")
    method, method_name = field("Method")
    url, url_name = field("Url")
    api, api_name = field("ApiId")
    status, status_name = field("ResponseCode")
    request_size, request_size_name = field("RequestSize")
    response_size, response_size_name = field("ResponseSize")
    total, total_name = field("TotalTime", "durationMs")
    consumer, consumer_name = field("ApimSubscriptionId")
    headers, headers_name = field("RequestHeaders")
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
        attributes=extras((column, field(column)[0]) for column in EXTRA_COLUMNS),
    )


def _headers_object(headers: Any, name: str) -> Any:
    if isinstance(headers, str) and headers.strip().startswith("{"):
        try:
            return orjson.loads(headers)
        except orjson.JSONDecodeError as exc:
            raise InvalidField(name, f"is a string but not a JSON object ({exc})", headers) from exc
    return headers
