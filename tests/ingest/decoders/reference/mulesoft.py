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

from pipeline.events import CanonicalEvent
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
    return [EventOutcome(event=decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> CanonicalEvent:
    if not isinstance(item, dict) or not item:
        raise InvalidField("event", "must be a non-empty Anypoint analytics event object", item)
    e: dict[str, Any] = item
    return build_event(
        ctx,
        idempotency_key=as_key(e.get("Message ID"), "Message ID"),
        tenant_headers=header_values(e.get("headers"), TENANT_HEADER, "headers"),
        timestamp=iso_time(e.get("Timestamp"), "Timestamp"),
        api=as_text(e.get("API ID"), "API ID"),
        route=url_path(e.get("Resource Path"), "Resource Path"),
        method=as_method(e.get("Verb"), "Verb"),
        status=as_status(e.get("Status Code"), "Status Code"),
        request_bytes=as_count(e.get("Request Size"), "Request Size", unknown=UNKNOWN_SIZE),
        response_bytes=as_count(e.get("Response Size"), "Response Size", unknown=UNKNOWN_SIZE),
        latency_ms=as_latency(e.get("Response Time"), "Response Time"),
        consumer=as_text(e.get("Application"), "Application"),
        attributes=extras((name, e.get(name)) for name in EXTRA_FIELDS),
    )
