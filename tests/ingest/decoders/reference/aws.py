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
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from pipeline.events import CanonicalEvent
from pipeline.ingest.body import gunzip_bounded, item_bytes
from pipeline.ingest.errors import BodyTooLarge, InvalidField, UndecodableBody
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
    url_path,
)

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
        raw = item_bytes({**head, "logEvents": [log_event]})
        try:
            event = decode_log_event(log_event, envelope, ctx)
        except InvalidField as exc:
            outcomes.append(EventOutcome(error=f"logEvents[{j}].{exc}", sub_index=j, raw=raw))
        except Exception as exc:  # a decoder bug must not reject the envelope's other events
            error = (
                f"logEvents[{j}] could not be decoded (internal error {type(exc).__name__}: {exc})"
            )
            outcomes.append(EventOutcome(error=error, sub_index=j, raw=raw))
        else:
            outcomes.append(EventOutcome(event=event, sub_index=j, raw=raw))
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
        # The one change since it was frozen: the cap per item is now what the request's
        # shared decompression budget has left (the field it read was replaced by the budget).
        decoded = orjson.loads(gunzip_bounded(compressed, ctx.budget.remaining))
    except BodyTooLarge as exc:
        raise InvalidField("awslogs.data", f"decompresses to more than {exc.limit} bytes") from exc
    except UndecodableBody as exc:
        raise InvalidField("awslogs.data", f"is not gzip data ({exc.reason})") from exc
    except orjson.JSONDecodeError as exc:
        raise InvalidField("awslogs.data", f"does not hold JSON ({exc})") from exc
    if not isinstance(decoded, dict) or "messageType" not in decoded:
        raise InvalidField("awslogs.data", "does not hold a CloudWatch Logs envelope", decoded)
    return decoded


def decode_log_event(
    log_event: Any, envelope: Mapping[str, Any], ctx: DecoderContext
) -> CanonicalEvent:
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

    def get(name: str) -> Any:
        return _lookup(line, name)

    if as_text(get("requestTimeEpoch"), "message.requestTimeEpoch", absent=ABSENT) is not None:
        timestamp = epoch_millis_time(get("requestTimeEpoch"), "message.requestTimeEpoch")
    else:
        timestamp = epoch_millis_time(entry.get("timestamp"), "timestamp")
    api_key_id = as_text(get("identity.apiKeyId"), "message.identity.apiKeyId", absent=ABSENT)
    key_field = (
        "extendedRequestId"
        if as_text(get("extendedRequestId"), "message.extendedRequestId", absent=ABSENT)
        else "requestId"
    )
    return build_event(
        ctx,
        idempotency_key=as_key(get(key_field), f"message.{key_field}", absent=ABSENT),
        tenant_headers=_tenant(get("authorizer.tenantId"), api_key_id, ctx),
        timestamp=timestamp,
        api=as_text(get("apiId"), "message.apiId", absent=ABSENT),
        route=_route(get),
        method=as_method(get("httpMethod"), "message.httpMethod", absent=ABSENT),
        status=as_status(get("status"), "message.status", absent=ABSENT),
        request_bytes=None,  # API Gateway has no $context variable for the request size
        response_bytes=as_count(get("responseLength"), "message.responseLength", absent=ABSENT),
        latency_ms=(
            as_latency(get("responseLatency"), "message.responseLatency", absent=ABSENT)
            if as_text(get("responseLatency"), "message.responseLatency", absent=ABSENT)
            else as_latency(get("integrationLatency"), "message.integrationLatency", absent=ABSENT)
        ),
        consumer=api_key_id
        or as_text(get("authorizer.principalId"), "message.authorizer.principalId", absent=ABSENT),
        attributes=extras(
            (name, value)
            for name, value in (
                ("stage", get("stage")),
                ("integrationLatency", get("integrationLatency")),
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


def _route(get: Callable[[str], Any]) -> str | None:
    template = as_text(get("resourcePath"), "message.resourcePath", absent=ABSENT)
    if template is not None:
        return template
    route_key = as_text(get("routeKey"), "message.routeKey", absent=ABSENT)
    if route_key is not None and route_key != "$default":
        return route_key.split(" ", 1)[-1]
    return url_path(get("path"), "message.path", absent=ABSENT)
