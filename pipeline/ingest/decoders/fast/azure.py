"""Azure's fast path (contract: :mod:`pipeline.ingest.decoders.fast`; mapping:
:mod:`pipeline.ingest.decoders.azure`).

Takes the flat form an outbound policy posts: ApiManagementGatewayLogs columns under their exact
PascalCase names (``time`` / ``durationMs`` accepted as the general decoder's aliases),
``TimeGenerated`` as ``YYYY-MM-DDTHH:MM:SS[.digits]Z`` in 2000..2100, sizes, status and total
time as numbers or ASCII digit strings (``ResponseCode`` 0 and ``TotalTime`` -1 are unknown),
``RequestHeaders`` as an object of string (or string array) values or as a JSON string of one,
extras as strings or whole numbers. Every object key must be one of the columns the general
decoder knows, spelt exactly so (a Struct with ``forbid_unknown_fields``): the general decoder
matches names in any case and lets the last non-null of several spellings win, so any other
spelling, any other key, a ``records`` (resource-log) item and a canonical event are declined.
Also declined: a value the general decoder would have to convert (a number as the key, a float,
a blank string where a number is read...) or might reject.
"""

from __future__ import annotations

from typing import Final

import orjson
from msgspec import Struct
from msgspec.json import Decoder

from pipeline.events import MAX_EVENT_INTEGER, InvalidTimestamp
from pipeline.events.record import record_value
from pipeline.events.timestamps import parse_iso8601
from pipeline.ingest.decoders.azure import TENANT_HEADER
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import values
from pipeline.ingest.decoders.fast.values import (
    DECLINE,
    DECLINE_TEXT,
    JsonInt,
    count,
    extras,
    header_texts,
    idempotency_key,
)
from pipeline.ingest.decoders.fields import header_values, matching_keys, url_path

_Number = int | str | None
_Extra = str | JsonInt | None
_Headers = dict[str, str | list[str]] | str | None


class _Columns(Struct, gc=False, forbid_unknown_fields=True):
    """Every column :data:`pipeline.ingest.decoders.azure.LOOKUPS` reads, spelt exactly."""

    CorrelationId: str | None = None
    TimeGenerated: str | None = None
    time: str | None = None
    Method: str | None = None
    Url: str | None = None
    ApiId: str | None = None
    ResponseCode: _Number = None
    RequestSize: _Number = None
    ResponseSize: _Number = None
    TotalTime: _Number = None
    durationMs: _Number = None
    ApimSubscriptionId: str | None = None
    RequestHeaders: _Headers = None
    OperationId: _Extra = None
    ProductId: _Extra = None
    ApiRevision: _Extra = None
    UserId: _Extra = None
    Region: _Extra = None
    BackendResponseCode: _Extra = None
    Cache: _Extra = None


_BATCH = Decoder(list[_Columns])
_WANTED = TENANT_HEADER.casefold()
_ROUTES: dict[str, str | None] = {}
"""``url_path`` of the URLs seen (plugins send the same few routes over and over)."""
_ROUTES_LIMIT: Final = 1024
_ROUTES_MAX_URL: Final = 1024


def fast_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | None:
    """See :func:`pipeline.ingest.decoders.fast.fast_records`."""
    gateway, integration_id = ctx.gateway, ctx.integration_id
    routes = _ROUTES
    records = []
    for item in _BATCH.decode(data):
        key = idempotency_key(item.CorrelationId)
        if key is None:
            return None

        text = item.TimeGenerated
        if text is None:
            text = item.time
            if text is None:
                return None
        try:
            moment = parse_iso8601(text)
        except InvalidTimestamp:
            return None

        url = item.Url
        if url is None:
            route = None
        else:
            route = routes.get(url, DECLINE_TEXT)
            if route is DECLINE_TEXT:
                route = url_path(url, "Url")  # raises (declines) on a URL it rejects
                if len(url) <= _ROUTES_MAX_URL:
                    if len(routes) >= _ROUTES_LIMIT:
                        routes.clear()
                    routes[url] = route

        api = item.ApiId
        if api is not None:
            api = api.strip() or None

        method = values.method(item.Method)
        if method is DECLINE_TEXT:
            return None

        status = item.ResponseCode
        if isinstance(status, str):
            status = count(status)  # DECLINE (-1) unless ASCII digits
        if status is not None:
            if status == 0:  # the client went away before a response: unknown
                status = None
            elif not 100 <= status <= 599:
                return None

        request_bytes = item.RequestSize
        if type(request_bytes) is not int or not 0 <= request_bytes <= MAX_EVENT_INTEGER:
            request_bytes = count(request_bytes)
            if request_bytes == DECLINE:
                return None
        response_bytes = item.ResponseSize
        if type(response_bytes) is not int or not 0 <= response_bytes <= MAX_EVENT_INTEGER:
            response_bytes = count(response_bytes)
            if response_bytes == DECLINE:
                return None

        total = item.TotalTime
        if total is None:
            total = item.durationMs
        if type(total) is int and 0 <= total <= MAX_EVENT_INTEGER:
            latency = total
        elif total == -1:  # unknown
            latency = None
        else:
            latency = count(total)
            if latency == DECLINE:
                return None

        consumer = item.ApimSubscriptionId
        if consumer is not None:
            consumer = consumer.strip() or None

        headers = item.RequestHeaders
        if isinstance(headers, str):
            if not headers.strip().startswith("{"):
                return None  # the general decoder rejects it
            tenant_headers = header_values(orjson.loads(headers), TENANT_HEADER, "RequestHeaders")
        elif headers:
            names = matching_keys(headers, _WANTED)
            if not names:
                tenant_headers = ()
            elif len(names) == 1 and type(sent := headers[names[0]]) is str:
                tenant_headers = (text,) if (text := sent.strip()) else ()
            else:
                tenant_headers = header_texts(headers, _WANTED)
        else:
            tenant_headers = ()

        operation, product = item.OperationId, item.ProductId
        if (
            type(operation) is str
            and type(product) is str
            and operation
            and product
            and item.ApiRevision is None
            and item.UserId is None
            and item.Region is None
            and item.BackendResponseCode is None
            and item.Cache is None
        ):
            attributes = {"OperationId": operation, "ProductId": product}
        else:
            attributes = extras(
                (
                    ("OperationId", operation),
                    ("ProductId", product),
                    ("ApiRevision", item.ApiRevision),
                    ("UserId", item.UserId),
                    ("Region", item.Region),
                    ("BackendResponseCode", item.BackendResponseCode),
                    ("Cache", item.Cache),
                )
            )

        value = record_value(
            key,
            tenant_headers,
            gateway,
            integration_id,
            moment,
            api,
            route,
            method,
            status,
            request_bytes,
            response_bytes,
            latency,
            consumer,
            attributes,
        )
        records.append((key.encode(), value))
    return records
