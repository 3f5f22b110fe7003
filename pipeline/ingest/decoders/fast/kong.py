"""Kong's fast path (contract: :mod:`pipeline.ingest.decoders.fast`; mapping:
:mod:`pipeline.ingest.decoders.kong`).

Takes what the http-log plugin sends: ``request.id``, ``started_at`` as epoch milliseconds,
``service.name``, the route's single path (or ``request.uri`` without a scheme), sizes as digit
strings or numbers, header values as strings or arrays of strings. Declines an older Kong
without ``request.id``, a regex route without ``request.uri``, and every value the general
decoder would have to convert or reject.
"""

from __future__ import annotations

from msgspec import Raw, Struct
from msgspec.json import Decoder

from pipeline.events import MAX_EVENT_INTEGER
from pipeline.events.record import record_value
from pipeline.events.timestamps import END_EPOCH_MILLIS, EPOCH, MILLISECOND, MIN_EPOCH_MILLIS
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import values
from pipeline.ingest.decoders.fast.values import (
    DECLINE,
    DECLINE_TEXT,
    JsonInt,
    count,
    extras,
    first_text,
    header_texts,
    idempotency_key,
)
from pipeline.ingest.decoders.kong import TENANT_HEADER

_Size = str | int | None
_Extra = str | JsonInt | None


class _Request(Struct, gc=False):
    id: str | None = None
    method: str | None = None
    headers: dict[str, str | list[str]] | None = None
    size: _Size = None
    uri: str | None = None


class _Response(Struct, gc=False):
    status: int | None = None
    size: _Size = None


class _Service(Struct, gc=False):
    name: str | None = None


class _Route(Struct, gc=False):
    name: _Extra = None
    paths: list[str] | None = None


class _Consumer(Struct, gc=False):
    username: str | None = None
    id: str | None = None


class _Entity(Struct, gc=False):
    id: str | None = None


class _Latencies(Struct, gc=False):
    request: int | None = None
    kong: _Extra = None
    proxy: _Extra = None


class _Log(Struct, gc=False):
    request: _Request | None = None
    response: _Response | None = None
    service: _Service | None = None
    route: _Route | None = None
    consumer: _Consumer | None = None
    authenticated_entity: _Entity | None = None
    latencies: _Latencies | None = None
    started_at: int | None = None
    workspace_name: _Extra = None
    upstream_status: _Extra = None
    # present in a canonical event: such an item is decoded as one by the general path
    idempotency_key: Raw = Raw()
    timestamp: Raw = Raw()


_BATCH = Decoder(list[_Log])
_WANTED = TENANT_HEADER.casefold()
_NO_REQUEST = _Request()
_NO_RESPONSE = _Response()
_NO_ROUTE = _Route()
_NO_LATENCIES = _Latencies()
_NO_CONSUMER = _Consumer()


def fast_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | None:
    """See :func:`pipeline.ingest.decoders.fast.fast_records`."""
    gateway, integration_id = ctx.gateway, ctx.integration_id
    records = []
    for log in _BATCH.decode(data):
        if log.idempotency_key or log.timestamp:
            return None
        request = log.request or _NO_REQUEST
        response = log.response or _NO_RESPONSE
        route = log.route or _NO_ROUTE
        latencies = log.latencies or _NO_LATENCIES

        key = idempotency_key(request.id)
        if key is None:
            return None

        tenant_headers = header_texts(request.headers, _WANTED)

        millis = log.started_at
        if millis is None or not MIN_EPOCH_MILLIS <= millis < END_EPOCH_MILLIS:
            return None

        service = log.service
        api = None if service is None or service.name is None else service.name.strip()
        if not api:
            return None

        path = _route_path(route, request)
        if path is None:
            return None

        method = values.method(request.method)
        if method is DECLINE_TEXT:
            return None

        status = response.status
        if status is not None and not 100 <= status <= 599:
            return None
        request_bytes = count(request.size)
        response_bytes = count(response.size)
        if request_bytes == DECLINE or response_bytes == DECLINE:
            return None
        latency = latencies.request
        if latency is not None and not 0 <= latency <= MAX_EVENT_INTEGER:
            return None

        consumer = log.consumer or _NO_CONSUMER
        entity = log.authenticated_entity
        who = first_text(consumer.username, consumer.id, None if entity is None else entity.id)
        attributes = extras(
            (
                ("route.name", route.name),
                ("latencies.kong", latencies.kong),
                ("latencies.proxy", latencies.proxy),
                ("workspace_name", log.workspace_name),
                ("upstream_status", log.upstream_status),
            )
        )

        value = record_value(
            key,
            tenant_headers,
            gateway,
            integration_id,
            EPOCH + MILLISECOND * millis,
            api,
            path,
            method,
            status,
            request_bytes,
            response_bytes,
            latency,
            who,
            attributes,
        )
        records.append((key.encode(), value))
    return records


def _route_path(route: _Route, request: _Request) -> str | None:
    """The route's single non-regex path, else the path of a scheme-less ``request.uri``."""
    paths = route.paths
    if paths is not None and len(paths) == 1:
        path = paths[0].strip()
        if path and not path.startswith("~"):
            return path
    uri = values.path(request.uri)
    return None if uri is DECLINE_TEXT else uri
