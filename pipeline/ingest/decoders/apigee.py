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
from datetime import datetime
from typing import Any

from pipeline.events import EventRecord
from pipeline.events.timestamps import EPOCH, MILLISECOND
from pipeline.ingest.decoders.context import DecoderContext, EventOutcome, build_event
from pipeline.ingest.decoders.fields import (
    as_count,
    as_key,
    as_method,
    as_status,
    as_text,
    epoch_millis_int,
    epoch_millis_time,
    extras,
    flat_header_values,
    url_path,
)
from pipeline.ingest.errors import InvalidField

TENANT_VARIABLE = "request.header.X-Tenant-Id"
START = "client.received.start.timestamp"
END = "client.sent.end.timestamp"
EXTRA_VARIABLES = (
    "apiproduct.name",
    "apiproxy.revision",
    "environment.name",
    "organization.name",
    "current.flow.name",
)


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    return [EventOutcome(decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> EventRecord:
    # Fields are validated in this order (the first bad one names the rejection); a value in the
    # form the callout sends takes the inline fast path, anything else the shared reader.
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be a non-empty object of Apigee flow variables", item)
    v: dict[str, Any] = item
    get = v.get
    start_value = get(START)
    start_millis = epoch_millis_int(start_value)
    if start_millis is not None:
        started = EPOCH + MILLISECOND * start_millis
    else:
        started = epoch_millis_time(start_value, START)
    key = as_key(get("messageid"), "messageid")
    tenant_headers = flat_header_values(v, TENANT_VARIABLE)
    value = get("apiproxy.name")
    api = (value.strip() or None) if type(value) is str else as_text(value, "apiproxy.name")
    route = _route(v)
    method = as_method(get("request.verb"), "request.verb")
    status = get("response.status.code")
    if type(status) is not int or not 100 <= status <= 599:
        status = as_status(status, "response.status.code")
    request_bytes = _size(v, "client.received.content.length", "request.header.Content-Length")
    response_bytes = _size(v, "client.sent.content.length", "response.header.Content-Length")
    latency = _latency(v, started, start_millis)
    value = get("developer.app.name")
    consumer = (value.strip() or None) if type(value) is str else None
    if consumer is None:
        consumer = as_text(value, "developer.app.name") or as_text(get("client_id"), "client_id")
    return build_event(
        ctx,
        idempotency_key=key,
        tenant_headers=tenant_headers,
        timestamp=started,
        api=api,
        route=route,
        method=method,
        status=status,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        latency_ms=latency,
        consumer=consumer,
        attributes=extras(zip(EXTRA_VARIABLES, map(get, EXTRA_VARIABLES), strict=True)),
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


def _latency(v: Mapping[str, Any], started: datetime, start_millis: int | None) -> int | None:
    end_value = v.get(END)
    if as_text(end_value, END) is None:
        return None
    end_millis = epoch_millis_int(end_value)
    if start_millis is not None and end_millis is not None:  # whole milliseconds: no datetimes
        if end_millis < start_millis:
            raise InvalidField(END, f"is before {START}", end_value)
        return end_millis - start_millis
    ended = epoch_millis_time(end_value, END)
    if ended < started:
        raise InvalidField(END, f"is before {START}", end_value)
    return (ended - started) // MILLISECOND
