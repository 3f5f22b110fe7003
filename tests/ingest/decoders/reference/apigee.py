"""Apigee: a flat object of flow variables sent by a JavaScript callout (PostClientFlow).

Mapping (Apigee flow variable names; unset variables arrive as ``null``):

* key: ``messageid``; timestamp: ``client.received.start.timestamp`` (epoch ms, number or string)
* tenant: ``request.header.X-Tenant-Id`` (variable name matched in any case; array if repeated)
* api: ``apiproxy.name``; route: ``proxy.basepath`` + ``proxy.pathsuffix``, else
  ``request.path``, else the path of ``request.uri``
* method ``request.verb``, status ``response.status.code``
* sizes: ``client.received.content.length`` / ``client.sent.content.length``, else the
  ``request.header.Content-Length`` / ``response.header.Content-Length`` variables
* latency: ``client.sent.end.timestamp`` - ``client.received.start.timestamp`` when both are set
* consumer: ``developer.app.name``, else ``client_id``
* attributes: ``apiproduct.name``, ``apiproxy.revision``, ``environment.name``,
  ``organization.name``, ``current.flow.name``
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pipeline.events import CanonicalEvent
from pipeline.ingest.errors import InvalidField
from tests.ingest.decoders.reference.context import DecoderContext, EventOutcome, build_event
from tests.ingest.decoders.reference.fields import (
    as_count,
    as_key,
    as_method,
    as_status,
    as_text,
    epoch_millis_time,
    extras,
    flat_header_values,
    url_path,
)

TENANT_VARIABLE = "request.header.X-Tenant-Id"
START = "client.received.start.timestamp"
END = "client.sent.end.timestamp"
_MILLISECOND = timedelta(milliseconds=1)
EXTRA_VARIABLES = (
    "apiproduct.name",
    "apiproxy.revision",
    "environment.name",
    "organization.name",
    "current.flow.name",
)


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    return [EventOutcome(event=decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> CanonicalEvent:
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be a non-empty object of Apigee flow variables", item)
    v: dict[str, Any] = item
    started = epoch_millis_time(v.get(START), START)
    return build_event(
        ctx,
        idempotency_key=as_key(v.get("messageid"), "messageid"),
        tenant_headers=flat_header_values(v, TENANT_VARIABLE),
        timestamp=started,
        api=as_text(v.get("apiproxy.name"), "apiproxy.name"),
        route=_route(v),
        method=as_method(v.get("request.verb"), "request.verb"),
        status=as_status(v.get("response.status.code"), "response.status.code"),
        request_bytes=_size(v, "client.received.content.length", "request.header.Content-Length"),
        response_bytes=_size(v, "client.sent.content.length", "response.header.Content-Length"),
        latency_ms=_latency(v, started),
        consumer=(
            as_text(v.get("developer.app.name"), "developer.app.name")
            or as_text(v.get("client_id"), "client_id")
        ),
        attributes=extras((name, v.get(name)) for name in EXTRA_VARIABLES),
    )


def _route(v: Mapping[str, Any]) -> str | None:
    basepath = as_text(v.get("proxy.basepath"), "proxy.basepath")
    if basepath is not None:
        suffix = as_text(v.get("proxy.pathsuffix"), "proxy.pathsuffix") or ""
        if not suffix:
            return basepath
        return basepath.rstrip("/") + "/" + suffix.lstrip("/")
    return url_path(v.get("request.path"), "request.path") or url_path(
        v.get("request.uri"), "request.uri"
    )


def _size(v: Mapping[str, Any], variable: str, header_variable: str) -> int | None:
    size = as_count(v.get(variable), variable)
    if size is None:
        lengths = flat_header_values(v, header_variable)
        if lengths:
            size = as_count(lengths[0], header_variable)
    return size


def _latency(v: Mapping[str, Any], started: datetime) -> int | None:
    if as_text(v.get(END), END) is None:
        return None
    ended = epoch_millis_time(v.get(END), END)
    if ended < started:
        raise InvalidField(END, f"is before {START}", v.get(END))
    return (ended - started) // _MILLISECOND
