"""AWS API Gateway: CloudWatch Logs subscription envelopes of JSON access logs.

An item is ``{"awslogs": {"data": base64(gzip(json))}}`` (what a subscription delivers) or the
decoded envelope ``{"messageType", "logGroup", "logStream", "logEvents": [...]}``. A
``CONTROL_MESSAGE`` yields nothing. Each ``logEvents[j]`` becomes one outcome with
``sub_index = j`` and, as raw bytes, a decoded envelope holding only that log event (so a
dead letter can be re-posted as is).

``logEvents[j].message`` is a JSON access-log line of ``$context`` values, all strings, ``-``
for absent. Keys may be flat (``"identity.apiKeyId"``) or nested (``{"identity": {...}}``):

* key: ``extendedRequestId``, else ``requestId``
* timestamp: ``requestTimeEpoch`` (ms), else the log event's ``timestamp`` (ms)
* tenant: ``authorizer.tenantId``, else ``ctx.api_key_tenants[identity.apiKeyId]``, else none
* api ``apiId``; route ``resourcePath`` (REST template), else the path of ``routeKey`` (HTTP
  APIs, ``GET /pets/{id}``), else ``path`` without query
* method ``httpMethod``, status ``status``, response size ``responseLength`` (API Gateway logs
  no request size: ``request_bytes`` is always null), latency ``responseLatency`` (else
  ``integrationLatency``)
* consumer: ``identity.apiKeyId``, else ``authorizer.principalId``
* attributes: ``stage``, ``integrationLatency``, ``logGroup``
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from pipeline.events import EventRecord
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
    url_path,
)
from pipeline.ingest.errors import InvalidField, UndecodableBody

ABSENT = ("-",)
DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"
_ENVELOPE_HINT = (
    'must be a CloudWatch Logs subscription envelope ({"awslogs": {"data": "<base64 gzip>"}} '
    'or {"messageType": ..., "logEvents": [...]})'
)


def decode(item: Any, ctx: DecoderContext) -> list[EventOutcome]:
    envelope = _envelope(item, ctx)
    message_type = as_text(envelope.get("messageType"), "messageType")
    if message_type == CONTROL_MESSAGE:
        return []
    if message_type != DATA_MESSAGE:
        raise InvalidField(
            "messageType",
            f"must be {DATA_MESSAGE} or {CONTROL_MESSAGE}",
            envelope.get("messageType"),
        )
    log_events = envelope.get("logEvents")
    if not isinstance(log_events, list):
        raise InvalidField("logEvents", "must be an array of log events", log_events)
    head = {key: value for key, value in envelope.items() if key != "logEvents"}
    outcomes = []
    for j, log_event in enumerate(log_events):
        raw_item = {**head, "logEvents": [log_event]}
        try:
            event = decode_log_event(log_event, envelope, ctx)
        except InvalidField as exc:
            outcomes.append(
                EventOutcome(error=f"logEvents[{j}].{exc}", sub_index=j, raw_item=raw_item)
            )
        except Exception as exc:  # a decoder bug must not reject the envelope's other events
            error = (
                f"logEvents[{j}] could not be decoded (internal error {type(exc).__name__}: {exc})"
            )
            outcomes.append(EventOutcome(error=error, sub_index=j, raw_item=raw_item))
        else:
            outcomes.append(EventOutcome(record=event, sub_index=j, raw_item=raw_item))
    return outcomes


def _envelope(item: Any, ctx: DecoderContext) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise InvalidField("event", _ENVELOPE_HINT, item)
    if "awslogs" not in item:
        if "messageType" not in item:
            raise InvalidField("event", _ENVELOPE_HINT, item)
        return item
    data = as_object(item["awslogs"], "awslogs").get("data")
    if not isinstance(data, str) or not data:
        raise InvalidField("awslogs.data", "must be a base64 string of gzip-compressed JSON", data)
    try:
        compressed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidField("awslogs.data", f"is not valid base64 ({exc})") from exc
    try:
        decoded = orjson.loads(ctx.budget.gunzip(compressed))  # BodyTooLarge: the request's 413
    except UndecodableBody as exc:
        raise InvalidField("awslogs.data", f"is not gzip data ({exc.reason})") from exc
    except orjson.JSONDecodeError as exc:
        raise InvalidField("awslogs.data", f"does not hold JSON ({exc})") from exc
    if not isinstance(decoded, dict) or "messageType" not in decoded:
        raise InvalidField("awslogs.data", "does not hold a CloudWatch Logs envelope", decoded)
    return decoded


def decode_log_event(
    log_event: Any, envelope: Mapping[str, Any], ctx: DecoderContext
) -> EventRecord:
    """One ``logEvents[j]`` entry -> event (field names in reasons are relative to it)."""
    if not isinstance(log_event, dict):
        raise InvalidField(
            "entry", "must be a JSON object with id, timestamp and message", log_event
        )
    entry: dict[str, Any] = log_event
    message = entry.get("message")
    if isinstance(message, str):
        try:
            line = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise InvalidField(
                "message", f"is not a JSON access-log line ({exc})", message
            ) from exc
    else:
        line = message
    if not isinstance(line, dict):
        raise InvalidField("message", "must be a JSON access-log object", line)

    # Each value is read once (the flat key, else nested objects; see _lookup). Validation keeps
    # its order (the first bad field names the rejection).
    value = _lookup(line, "requestTimeEpoch")
    if as_text(value, "message.requestTimeEpoch", absent=ABSENT) is not None:
        timestamp = epoch_millis_time(value, "message.requestTimeEpoch")
    else:
        timestamp = epoch_millis_time(entry.get("timestamp"), "timestamp")
    value = _lookup(line, "identity.apiKeyId")
    api_key_id = as_text(value, "message.identity.apiKeyId", absent=ABSENT)
    value = _lookup(line, "extendedRequestId")
    if as_text(value, "message.extendedRequestId", absent=ABSENT):
        key = as_key(value, "message.extendedRequestId", absent=ABSENT)
    else:
        value = _lookup(line, "requestId")
        key = as_key(value, "message.requestId", absent=ABSENT)
    value = _lookup(line, "authorizer.tenantId")
    tenant_headers = _tenant(value, api_key_id, ctx)
    value = _lookup(line, "apiId")
    api = as_text(value, "message.apiId", absent=ABSENT)
    route = _route(line)
    value = _lookup(line, "httpMethod")
    method = as_method(value, "message.httpMethod", absent=ABSENT)
    value = _lookup(line, "status")
    status = as_status(value, "message.status", absent=ABSENT)
    value = _lookup(line, "responseLength")
    response_bytes = as_count(value, "message.responseLength", absent=ABSENT)
    integration_latency = _lookup(line, "integrationLatency")
    value = _lookup(line, "responseLatency")
    if as_text(value, "message.responseLatency", absent=ABSENT):
        latency = as_latency(value, "message.responseLatency", absent=ABSENT)
    else:
        latency = as_latency(integration_latency, "message.integrationLatency", absent=ABSENT)
    consumer = api_key_id
    if not consumer:
        value = _lookup(line, "authorizer.principalId")
        consumer = as_text(value, "message.authorizer.principalId", absent=ABSENT)
    stage = _lookup(line, "stage")
    return build_event(
        ctx,
        idempotency_key=key,
        tenant_headers=tenant_headers,
        timestamp=timestamp,
        api=api,
        route=route,
        method=method,
        status=status,
        request_bytes=None,  # API Gateway has no $context variable for the request size
        response_bytes=response_bytes,
        latency_ms=latency,
        consumer=consumer,
        attributes=extras(
            (name, value)
            for name, value in (
                ("stage", stage),
                ("integrationLatency", integration_latency),
                ("logGroup", envelope.get("logGroup")),
            )
            if value not in ABSENT
        ),
    )


def _lookup(line: Mapping[str, Any], name: str) -> Any:
    """``line["a.b"]`` if present, else ``line["a"]["b"]`` (access-log keys are user-chosen)."""
    if name in line:
        return line[name]
    head, _, rest = name.partition(".")
    inner = line.get(head)
    if rest and isinstance(inner, dict):
        return _lookup(inner, rest)
    return None


def _tenant(authorizer_tenant: Any, api_key_id: str | None, ctx: DecoderContext) -> tuple[str, ...]:
    tenant = as_text(authorizer_tenant, "message.authorizer.tenantId", absent=ABSENT)
    if tenant is not None:
        return (tenant,)
    if api_key_id is not None and api_key_id in ctx.api_key_tenants:
        return (ctx.api_key_tenants[api_key_id],)
    return ()


def _route(line: Mapping[str, Any]) -> str | None:
    template = as_text(_lookup(line, "resourcePath"), "message.resourcePath", absent=ABSENT)
    if template is not None:
        return template
    route_key = as_text(_lookup(line, "routeKey"), "message.routeKey", absent=ABSENT)
    if route_key is not None and route_key != "$default":
        return route_key.split(" ", 1)[-1]
    return url_path(_lookup(line, "path"), "message.path", absent=ABSENT)
