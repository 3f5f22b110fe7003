"""Kong: the log-phase serializer object the http-log plugin sends (batches are JSON arrays).

Mapping (Kong public field names):

* key: ``request.id`` (Kong >= 3.5), else response header ``x-kong-request-id``
* timestamp: ``started_at`` (epoch ms)
* tenant: ``request.headers["x-tenant-id"]`` (any case; an array when repeated)
* api: ``service.name`` (else ``service.id``); route: the route's only path when it has exactly
  one non-regex path (a template-like prefix), else the request path (``request.uri`` without
  query, else the path of ``request.url``)
* method ``request.method``, status ``response.status``, sizes ``request.size`` /
  ``response.size``, latency ``latencies.request``
* consumer: ``consumer.username``, else ``consumer.id``, else ``authenticated_entity.id``
* attributes: ``route.name``, ``latencies.kong``, ``latencies.proxy``, ``workspace_name``,
  ``upstream_status``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.events import MAX_IDEMPOTENCY_KEY_LENGTH, EventRecord
from pipeline.ingest.decoders.context import DecoderContext, EventOutcome, build_event
from pipeline.ingest.decoders.fields import (
    as_count,
    as_key,
    as_latency,
    as_method,
    as_object,
    as_status,
    as_text,
    epoch_millis_time,
    extras,
    header_values,
    url_path,
)
from pipeline.ingest.errors import InvalidField

REQUEST_ID_HEADER = "x-kong-request-id"
TENANT_HEADER = "x-tenant-id"
_OBJECTS = (
    "request",
    "response",
    "service",
    "route",
    "consumer",
    "authenticated_entity",
    "latencies",
)
"""The log's objects the decoder reads (each a JSON object or absent), in validation order."""


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    return [EventOutcome(decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> EventRecord:
    # Fields are validated in a fixed order (the first bad one names the rejection). Each value
    # in the form Kong sends takes an inline fast path; anything else goes to the shared reader,
    # which gives the same result or the rejection.
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be a non-empty Kong log serializer object", item)
    get = item.get
    request, response, service, route, consumer, entity, latencies = (
        as_object(get(name), name) for name in _OBJECTS
    )

    value = request.get("id")
    key = value.strip() if type(value) is str else ""
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        key = _request_id(request, response)
    tenant_headers = header_values(request.get("headers"), TENANT_HEADER, "request.headers")
    timestamp = epoch_millis_time(get("started_at"), "started_at")
    value = service.get("name")
    api = value.strip() if type(value) is str else None
    if not api:
        api = as_text(value, "service.name") or as_text(service.get("id"), "service.id")
    path = _route(route, request)
    value = request.get("method")
    if type(value) is str and len(value) <= 32 and value.isalpha() and value.isascii():
        method: str | None = value.upper()
    else:
        method = as_method(value, "request.method")
    status = response.get("status")
    if type(status) is not int or not 100 <= status <= 599:
        status = as_status(status, "response.status")
    request_bytes = _size(request.get("size"), "request.size")
    response_bytes = _size(response.get("size"), "response.size")
    latency = latencies.get("request")
    if type(latency) is not int or latency < 0:
        latency = as_latency(latency, "latencies.request")
    value = consumer.get("username")
    who = value.strip() if type(value) is str else None
    if not who:
        who = (
            as_text(value, "consumer.username")
            or as_text(consumer.get("id"), "consumer.id")
            or as_text(entity.get("id"), "authenticated_entity.id")
        )
    return build_event(
        ctx,
        idempotency_key=key,
        tenant_headers=tenant_headers,
        timestamp=timestamp,
        api=api,
        route=path,
        method=method,
        status=status,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        latency_ms=latency,
        consumer=who,
        attributes=extras(
            (
                ("route.name", route.get("name")),
                ("latencies.kong", latencies.get("kong")),
                ("latencies.proxy", latencies.get("proxy")),
                ("workspace_name", get("workspace_name")),
                ("upstream_status", get("upstream_status")),
            )
        ),
    )


def _size(value: Any, label: str) -> int | None:
    """``request.size`` / ``response.size``: nginx sends them as digit strings."""
    if type(value) is str and len(value) <= 18 and value.isdigit() and value.isascii():
        return int(value)
    return as_count(value, label)


def _request_id(request: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    if as_text(request.get("id"), "request.id") is not None:
        return as_key(request.get("id"), "request.id")
    ids = header_values(response.get("headers"), REQUEST_ID_HEADER, "response.headers")
    if ids:
        return as_key(ids[0], f"response.headers[{REQUEST_ID_HEADER!r}]")
    raise InvalidField(
        "request.id",
        f"is missing (logged by Kong >= 3.5; older Kong: send the {REQUEST_ID_HEADER} header)",
    )


def _route(route: Mapping[str, Any], request: Mapping[str, Any]) -> str | None:
    paths = route.get("paths")
    if isinstance(paths, list) and len(paths) == 1:
        path = as_text(paths[0], "route.paths[0]")
        if path is not None and not path.startswith("~"):
            return path
    return url_path(request.get("uri"), "request.uri") or url_path(
        request.get("url"), "request.url"
    )
