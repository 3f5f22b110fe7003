"""MuleSoft: Anypoint analytics events (field names with spaces) plus a ``headers`` object.

* key ``Message ID``; timestamp ``Timestamp`` (ISO-8601); tenant ``headers["x-tenant-id"]``
* api ``API ID`` (a number or string); route ``Resource Path`` (query string dropped)
* method ``Verb``, status ``Status Code``, sizes ``Request Size`` / ``Response Size`` (``-1`` =
  unknown), latency ``Response Time``, consumer ``Application`` (the client application)
* attributes: ``API Version ID``, ``API Name``, ``API Version Name``, ``Application Name``,
  ``Request Outcome``, ``Violated Policy Name``
"""

from __future__ import annotations

from typing import Any

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

TENANT_HEADER = "x-tenant-id"
UNKNOWN_SIZE = (-1,)
EXTRA_FIELDS = (
    "API Version ID",
    "API Name",
    "API Version Name",
    "Application Name",
    "Request Outcome",
    "Violated Policy Name",
)


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    return [EventOutcome(decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> EventRecord:
    # Fields are validated in this order (the first bad one names the rejection); a value in the
    # form Anypoint sends takes the inline fast path, anything else the shared reader.
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be a non-empty Anypoint analytics event object", item)
    get = item.get
    key = as_key(get("Message ID"), "Message ID")
    tenant_headers = header_values(get("headers"), TENANT_HEADER, "headers")
    timestamp = iso_time(get("Timestamp"), "Timestamp")
    value = get("API ID")
    api = (value.strip() or None) if type(value) is str else as_text(value, "API ID")
    route = url_path(get("Resource Path"), "Resource Path")
    method = as_method(get("Verb"), "Verb")
    status = get("Status Code")
    if type(status) is not int or not 100 <= status <= 599:
        status = as_status(status, "Status Code")
    request_bytes = get("Request Size")
    if type(request_bytes) is not int or request_bytes < 0:
        request_bytes = as_count(request_bytes, "Request Size", unknown=UNKNOWN_SIZE)
    response_bytes = get("Response Size")
    if type(response_bytes) is not int or response_bytes < 0:
        response_bytes = as_count(response_bytes, "Response Size", unknown=UNKNOWN_SIZE)
    latency = get("Response Time")
    if type(latency) is not int or latency < 0:
        latency = as_latency(latency, "Response Time")
    value = get("Application")
    consumer = (value.strip() or None) if type(value) is str else as_text(value, "Application")
    return build_event(
        ctx,
        idempotency_key=key,
        tenant_headers=tenant_headers,
        timestamp=timestamp,
        api=api,
        route=route,
        method=method,
        status=status,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        latency_ms=latency,
        consumer=consumer,
        attributes=extras(zip(EXTRA_FIELDS, map(get, EXTRA_FIELDS), strict=True)),
    )
