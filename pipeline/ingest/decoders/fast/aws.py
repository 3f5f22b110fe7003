"""AWS's fast path (contract: :mod:`pipeline.ingest.decoders.fast`; mapping:
:mod:`pipeline.ingest.decoders.aws`).

Takes what a subscription delivers and the metering plugin posts: items
``{"awslogs": {"data": base64(gzip(envelope))}}`` (decoded within the request's decompression
budget, ``ctx.budget``, as in the general path) or the decoded envelope itself; ``DATA_MESSAGE``
envelopes expand into their log events in order, ``CONTROL_MESSAGE`` envelopes into none. Each
log event's ``message`` is a JSON access-log line (a string, or the object itself) of
``$context`` values: strings (``-`` for absent), or whole numbers for the time, status, size
and latencies; the identity and authorizer values as flat keys (``"identity.apiKeyId"``) or
nested objects.

The general decoder reads every name exactly (no other case), so fields it does not read are
skipped here too: an access-log format may log more ``$context`` values. The gzip data is
checked to be UTF-8 first, as the edge checks the body (msgspec does not check the strings it
skips). Declines an item that looks canonical and every value the general readers would
convert (padded or signed digits, fractions, URLs in ``path``...) or reject.
"""

from __future__ import annotations

import base64

from msgspec import UNSET, Raw, Struct, UnsetType, field
from msgspec.json import Decoder

from pipeline.events import MAX_IDEMPOTENCY_KEY_LENGTH
from pipeline.events.record import record_value
from pipeline.events.timestamps import END_EPOCH_MILLIS, EPOCH, MILLISECOND, MIN_EPOCH_MILLIS
from pipeline.ingest.decoders.aws import ABSENT, CONTROL_MESSAGE, DATA_MESSAGE
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import values
from pipeline.ingest.decoders.fast.values import (
    DECLINE,
    DECLINE_TEXT,
    JsonInt,
    count,
    extras,
    invalid_utf8,
)

_Number = str | int | None
_Flat = str | None | UnsetType
"""A flat ``"a.b"`` key: UNSET when absent (then the nested ``a.b`` is read), None when null."""


class _Identity(Struct, gc=False):
    apiKeyId: str | None = None


class _Authorizer(Struct, gc=False):
    tenantId: str | None = None
    principalId: str | None = None


class _Line(Struct, gc=False):
    requestId: str | None = None
    extendedRequestId: str | None = None
    requestTimeEpoch: _Number = None
    httpMethod: str | None = None
    resourcePath: str | None = None
    routeKey: str | None = None
    path: str | None = None
    status: _Number = None
    responseLength: _Number = None
    responseLatency: _Number = None
    integrationLatency: str | JsonInt | None = None  # also an attribute: as text
    apiId: str | None = None
    stage: str | None = None
    api_key_id: _Flat = field(name="identity.apiKeyId", default=UNSET)
    tenant_id: _Flat = field(name="authorizer.tenantId", default=UNSET)
    principal_id: _Flat = field(name="authorizer.principalId", default=UNSET)
    identity: _Identity | None = None
    authorizer: _Authorizer | None = None


class _LogEvent(Struct, gc=False):
    message: str | _Line
    timestamp: JsonInt | None = None  # orjson reads a larger one as a float


class _AwsLogs(Struct, gc=False):
    data: str


class _Envelope(Struct, gc=False):
    """An item (``awslogs`` set: a subscription's delivery) or a decoded envelope."""

    awslogs: _AwsLogs | UnsetType = UNSET
    messageType: str | UnsetType = UNSET
    logGroup: str | None = None
    logEvents: list[_LogEvent] | None = None
    # present in a canonical event: such an item is decoded as one by the general path
    idempotency_key: Raw = Raw()
    timestamp: Raw = Raw()


_BATCH = Decoder(list[_Envelope])
_ENVELOPE = Decoder(_Envelope)
_LINE = Decoder(_Line)
_ABSENT_TEXTS = ("", *ABSENT)
(_MARKER,) = ABSENT


def fast_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | None:
    """See :func:`pipeline.ingest.decoders.fast.fast_records`."""
    records: list[tuple[bytes, bytes]] = []
    for item in _BATCH.decode(data):
        if item.idempotency_key and item.timestamp:
            return None
        envelope = item
        if item.awslogs is not UNSET:
            embedded = item.awslogs.data
            if not embedded:
                return None
            compressed = base64.b64decode(embedded, validate=True)
            decompressed = ctx.budget.gunzip(compressed)  # BodyTooLarge: the request's 413
            if invalid_utf8(decompressed):
                return None
            envelope = _ENVELOPE.decode(decompressed)
        message_type = envelope.messageType
        if message_type is UNSET:
            return None
        message_type = message_type.strip()
        if message_type == CONTROL_MESSAGE:
            continue
        if message_type != DATA_MESSAGE or not _add_records(envelope, ctx, records):
            return None
    return records


def _add_records(
    envelope: _Envelope, ctx: DecoderContext, records: list[tuple[bytes, bytes]]
) -> bool:
    """Append the records of a ``DATA_MESSAGE`` envelope's log events; False: decline."""
    log_events = envelope.logEvents
    if log_events is None:
        return False
    gateway, integration_id, tenants = ctx.gateway, ctx.integration_id, ctx.api_key_tenants
    log_group = envelope.logGroup
    if log_group == _MARKER:
        log_group = None
    decode_line = _LINE.decode
    append = records.append
    for log_event in log_events:
        message = log_event.message
        line = decode_line(message) if isinstance(message, str) else message
        value = line.requestTimeEpoch
        millis = count(value)
        if millis is None or (millis == DECLINE and _absent(value) is None):
            millis = log_event.timestamp  # the log event's time when the line logs none
        if millis is None or not MIN_EPOCH_MILLIS <= millis < END_EPOCH_MILLIS:
            return False

        key = _text(line.extendedRequestId) or _text(line.requestId)
        if key is None or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            return False

        flat = line.api_key_id
        if flat is UNSET:
            flat = None if line.identity is None else line.identity.apiKeyId
        api_key_id = _text(flat)
        flat = line.tenant_id
        if flat is UNSET:
            flat = None if line.authorizer is None else line.authorizer.tenantId
        tenant = _text(flat)
        if tenant is not None:
            tenant_headers: tuple[str, ...] = (tenant,)
        elif api_key_id is not None and api_key_id in tenants:
            tenant = tenants[api_key_id]
            if type(tenant) is not str:
                return False
            tenant_headers = (tenant,)
        else:
            tenant_headers = ()

        route = _text(line.resourcePath)
        if route is None:
            route = _other_route(line)
            if route is DECLINE_TEXT:
                return False

        method = values.method(line.httpMethod)
        if method is DECLINE_TEXT:
            method = _padded_method(line.httpMethod)
            if method is DECLINE_TEXT:
                return False

        status = count(line.status)
        if status == DECLINE:
            status = _absent(line.status)
        if status is not None and not 100 <= status <= 599:
            return False
        response_bytes = count(line.responseLength)
        if response_bytes == DECLINE:
            response_bytes = _absent(line.responseLength)
            if response_bytes == DECLINE:
                return False
        latency = count(line.responseLatency)
        if latency == DECLINE:
            latency = _absent(line.responseLatency)
        integration_latency = line.integrationLatency
        if latency is None:
            latency = count(integration_latency)
            if latency == DECLINE:
                latency = _absent(integration_latency)
        if latency == DECLINE:
            return False
        if integration_latency == _MARKER:
            integration_latency = None

        consumer = api_key_id
        if consumer is None:
            flat = line.principal_id
            if flat is UNSET:
                flat = None if line.authorizer is None else line.authorizer.principalId
            consumer = _text(flat)
        stage = line.stage

        record = record_value(
            key,
            tenant_headers,
            gateway,
            integration_id,
            EPOCH + MILLISECOND * millis,
            _text(line.apiId),
            route,
            method,
            status,
            None,  # API Gateway logs no request size
            response_bytes,
            latency,
            consumer,
            extras(
                (
                    ("stage", None if stage == _MARKER else stage),
                    ("integrationLatency", integration_latency),
                    ("logGroup", log_group),
                )
            ),
        )
        append((key.encode(), record))
    return True


def _text(value: str | None) -> str | None:
    """``as_text`` of a string with AWS's ``-`` for absent: trimmed, None when blank or ``-``."""
    if value is None:
        return None
    text = value.strip()
    return text if text and text != _MARKER else None


def _absent(value: str | int | None) -> int | None:
    """None for a blank or ``-`` number (absent), :data:`DECLINE` for anything else."""
    return None if type(value) is str and value.strip() in _ABSENT_TEXTS else DECLINE


def _padded_method(value: str | None) -> str | None:
    """A method :func:`values.method` declined: None when absent, else as the stripped text."""
    text = _text(value)
    return None if text is None else values.method(text)


def _other_route(line: _Line) -> str | None:
    """The route without a ``resourcePath``: the path of ``routeKey``, else ``path`` (no URL)."""
    route_key = _text(line.routeKey)
    if route_key is not None and route_key != "$default":
        return route_key.split(" ", 1)[-1]
    return values.path(_text(line.path))
