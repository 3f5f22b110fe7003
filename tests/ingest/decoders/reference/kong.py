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

from pipeline.events import CanonicalEvent
from pipeline.ingest.errors import InvalidField
from tests.ingest.decoders.reference.context import DecoderContext, EventOutcome, build_event
from tests.ingest.decoders.reference.fields import (
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

REQUEST_ID_HEADER = "x-kong-request-id"
TENANT_HEADER = "x-tenant-id"


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    return [EventOutcome(event=decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> CanonicalEvent:
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be a non-empty Kong log serializer object", item)
    event: dict[str, Any] = item
    request = as_object(event.get("request"), "request")
    response = as_object(event.get("response"), "response")
    service = as_object(event.get("service"), "service")
    route = as_object(event.get("route"), "route")
    consumer = as_object(event.get("consumer"), "consumer")
    entity = as_object(event.get("authenticated_entity"), "authenticated_entity")
    latencies = as_object(event.get("latencies"), "latencies")

    return build_event(
        ctx,
        idempotency_key=_request_id(request, response),
        tenant_headers=header_values(request.get("headers"), TENANT_HEADER, "request.headers"),
        timestamp=epoch_millis_time(event.get("started_at"), "started_at"),
        api=as_text(service.get("name"), "service.name")
        or as_text(service.get("id"), "service.id"),
        route=_route(route, request),
        method=as_method(request.get("method"), "request.method"),
        status=as_status(response.get("status"), "response.status"),
        request_bytes=as_count(request.get("size"), "request.size"),
        response_bytes=as_count(response.get("size"), "response.size"),
        latency_ms=as_latency(latencies.get("request"), "latencies.request"),
        consumer=(
            as_text(consumer.get("username"), "consumer.username")
            or as_text(consumer.get("id"), "consumer.id")
            or as_text(entity.get("id"), "authenticated_entity.id")
        ),
        attributes=extras(
            [
                ("route.name", route.get("name")),
                ("latencies.kong", latencies.get("kong")),
                ("latencies.proxy", latencies.get("proxy")),
                ("workspace_name", event.get("workspace_name")),
                ("upstream_status", event.get("upstream_status")),
            ]
        ),
    )


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
