"""Canonical events posted directly by a plugin (contract §4), accepted for every gateway.

An item "looks canonical" when it is an object with both ``idempotency_key`` and ``timestamp``.
Field by field it may use the same lenient forms as native payloads (numbers as strings,
blank = absent) and:

* ``timestamp``: ISO-8601 with UTC offset, or epoch milliseconds (number or string)
* ``tenant_header`` (contract §4; a string or an array of strings) or ``tenant_headers`` (array)
* ``attributes``: an object of scalar values (numbers and booleans become text, nulls dropped)
* ``gateway`` / ``integration_id`` may be present but are replaced by the integration's own
  (an integration cannot report as another one). Any other field is rejected by name.
* an ``aws`` integration's canonical events carry no tenant header (contract §12): the caller
  controls that value, so it would let an AWS key name any tenant it is allowed to bill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pipeline.events import EVENT_FIELDS, EventRecord
from pipeline.ingest.decoders.context import DecoderContext, EventOutcome, build_event
from pipeline.ingest.decoders.fields import (
    as_count,
    as_key,
    as_latency,
    as_method,
    as_status,
    as_text,
    epoch_millis_time,
    iso_time,
)
from pipeline.ingest.errors import InvalidField

ALLOWED_FIELDS = frozenset((*EVENT_FIELDS, "tenant_header"))
#: contract §12: AWS events take their tenant only from the authorizer context or the key map
AWS_TENANT_HINT = (
    "is not taken from events of an aws integration: their tenant comes from the Lambda "
    "authorizer context (authorizer.tenantId) or the integration's api_key_tenants map; post "
    "the CloudWatch access-log form, or omit tenant_header"
)
_EPOCH_MILLIS = re.compile(r"\s*[+-]?\d+(?:\.\d+)?\s*")


def looks_canonical(item: Any) -> bool:
    return isinstance(item, dict) and "idempotency_key" in item and "timestamp" in item


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    return [EventOutcome(record=decode_event(item, ctx))]


def decode_event(item: Any, ctx: DecoderContext) -> EventRecord:
    if not isinstance(item, dict):
        raise InvalidField("event", "must be a JSON object", item)
    e: dict[str, Any] = item
    unknown = [] if ALLOWED_FIELDS.issuperset(e) else sorted(set(e) - ALLOWED_FIELDS)
    if unknown:
        raise InvalidField(
            unknown[0],
            "is not a canonical event field (put extra values under 'attributes'; allowed: "
            + ", ".join(sorted(ALLOWED_FIELDS))
            + ")",
        )
    record = build_event(
        ctx,
        idempotency_key=as_key(e.get("idempotency_key"), "idempotency_key"),
        tenant_headers=(tenant_headers := _tenant_headers(e)),  # in the reference's order
        timestamp=_timestamp(e.get("timestamp")),
        api=as_text(e.get("api"), "api"),
        route=as_text(e.get("route"), "route"),
        method=as_method(e.get("method"), "method"),
        status=as_status(e.get("status"), "status"),
        request_bytes=as_count(e.get("request_bytes"), "request_bytes"),
        response_bytes=as_count(e.get("response_bytes"), "response_bytes"),
        latency_ms=as_latency(e.get("latency_ms"), "latency_ms", unknown=()),
        consumer=as_text(e.get("consumer"), "consumer"),
        attributes=_attributes(e.get("attributes")),
    )
    if tenant_headers and ctx.gateway == "aws":
        raise InvalidField("tenant_header", AWS_TENANT_HINT)
    return record


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_millis_time(value, "timestamp")
    if isinstance(value, str) and _EPOCH_MILLIS.fullmatch(value):
        return epoch_millis_time(value, "timestamp")
    return iso_time(value, "timestamp")


def _tenant_headers(e: Mapping[str, Any]) -> tuple[str, ...]:
    single, several = e.get("tenant_header"), e.get("tenant_headers")
    if single is not None and several is not None:
        raise InvalidField("tenant_header", "and tenant_headers must not both be set")
    name, value = ("tenant_headers", several) if several is not None else ("tenant_header", single)
    values = value if isinstance(value, list) else [value]
    out = []
    for position, entry in enumerate(values):
        label = f"{name}[{position}]" if isinstance(value, list) else name
        if isinstance(entry, int | float) and not isinstance(entry, bool):
            raise InvalidField(label, "must be a string", entry)
        text = as_text(entry, label)
        if text is not None:
            out.append(text)
    return tuple(out)


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField("attributes", "must be a JSON object of names to scalar values", value)
    out: dict[str, str] = {}
    for name, entry in value.items():
        if entry is None:
            continue
        if isinstance(entry, bool):
            out[name] = "true" if entry else "false"
        elif isinstance(entry, str):
            out[name] = entry
        elif isinstance(entry, int | float):
            out[name] = str(entry)
        else:
            raise InvalidField(f"attributes.{name}", "must be a string, number or boolean", entry)
    return out
