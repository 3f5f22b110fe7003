"""Apigee's fast path (contract: :mod:`pipeline.ingest.decoders.fast`; mapping:
:mod:`pipeline.ingest.decoders.apigee`).

Takes the flat object of flow variables the JavaScript callout sends, and only the variables
the general decoder reads, spelled exactly as it spells them: any other key (a variable it
does not know, a re-cased name, ``idempotency_key`` of a canonical event) declines the batch, so
the variables matched in any case (``request.header.X-Tenant-Id`` and the ``Content-Length``
header variables) can only appear under their own spelling. Timestamps as epoch milliseconds
(number or digit string), sizes as numbers or digit strings, unset variables as ``null``; the
``Content-Length`` variables, ``request.path``/``request.uri`` and ``client_id`` are read as
fallbacks exactly as the general decoder reads them. Declines every value the general decoder
would have to convert (a number where text is expected, blanks around a number...) or reject.
"""

from __future__ import annotations

from msgspec import Struct, field
from msgspec.json import Decoder

from pipeline.events.record import record_value
from pipeline.events.timestamps import END_EPOCH_MILLIS, EPOCH, MILLISECOND, MIN_EPOCH_MILLIS
from pipeline.ingest.decoders.apigee import END, EXTRA_VARIABLES, START, TENANT_VARIABLE
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import values
from pipeline.ingest.decoders.fast.values import (
    DECLINE,
    DECLINE_TEXT,
    JsonInt,
    count,
    extras,
    first_text,
    idempotency_key,
)

_Number = str | int | None
_Extra = str | JsonInt | None
_PRODUCT, _REVISION, _ENVIRONMENT, _ORGANIZATION, _FLOW = EXTRA_VARIABLES
_FAST_DIGITS = 18


class _Variables(Struct, gc=False, forbid_unknown_fields=True):
    """The flow variables the general decoder reads (any other key declines)."""

    messageid: str | None = None
    start: _Number = field(name=START, default=None)
    end: _Number = field(name=END, default=None)
    tenant: str | list[str] | None = field(name=TENANT_VARIABLE, default=None)
    api: str | None = field(name="apiproxy.name", default=None)
    basepath: str | None = field(name="proxy.basepath", default=None)
    pathsuffix: str | None = field(name="proxy.pathsuffix", default=None)
    path: str | None = field(name="request.path", default=None)
    uri: str | None = field(name="request.uri", default=None)
    verb: str | None = field(name="request.verb", default=None)
    status: _Number = field(name="response.status.code", default=None)
    request_size: _Number = field(name="client.received.content.length", default=None)
    response_size: _Number = field(name="client.sent.content.length", default=None)
    request_length: str | None = field(name="request.header.Content-Length", default=None)
    response_length: str | None = field(name="response.header.Content-Length", default=None)
    app: str | None = field(name="developer.app.name", default=None)
    client_id: str | None = None
    product: _Extra = field(name=_PRODUCT, default=None)
    revision: _Extra = field(name=_REVISION, default=None)
    environment: _Extra = field(name=_ENVIRONMENT, default=None)
    organization: _Extra = field(name=_ORGANIZATION, default=None)
    flow: _Extra = field(name=_FLOW, default=None)


_BATCH = Decoder(list[_Variables])


def fast_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | None:
    """See :func:`pipeline.ingest.decoders.fast.fast_records`."""
    gateway, integration_id = ctx.gateway, ctx.integration_id
    records = []
    last_extra_values: tuple[str | int | None, ...] = ()
    attributes: dict[str, str] = {}
    for v in _BATCH.decode(data):
        sent = v.start
        if isinstance(sent, str):
            if not (len(sent) <= _FAST_DIGITS and sent.isdigit() and sent.isascii()):
                return None
            start = int(sent)
        elif sent is None:
            return None
        else:
            start = sent
        if not MIN_EPOCH_MILLIS <= start < END_EPOCH_MILLIS:
            return None

        key = idempotency_key(v.messageid)
        if key is None:
            return None

        tenant = v.tenant
        if tenant is None:
            tenant_headers: tuple[str, ...] = ()
        elif type(tenant) is str:
            tenant = tenant.strip()
            tenant_headers = (tenant,) if tenant else ()
        else:
            tenant_headers = tuple(text for one in tenant if (text := one.strip()))

        api = v.api
        api = None if api is None else api.strip() or None

        # proxy.basepath + proxy.pathsuffix, else the path of request.path or request.uri
        basepath = v.basepath
        route: str | None
        if basepath is not None and (basepath := basepath.strip()):
            suffix = v.pathsuffix
            if suffix is None or not (suffix := suffix.strip()):
                route = basepath
            else:
                route = basepath.rstrip("/") + "/" + suffix.lstrip("/")
        else:
            route = values.path(v.path) or values.path(v.uri)
            if route is DECLINE_TEXT:
                return None

        method = values.method(v.verb)
        if method is DECLINE_TEXT:
            return None

        sent = v.status
        if isinstance(sent, str):
            if not (len(sent) <= 3 and sent.isdigit() and sent.isascii()):
                return None
            status: int | None = int(sent)
        else:
            status = sent
        if status is not None and not 100 <= status <= 599:
            return None

        request_bytes = count(v.request_size)
        if request_bytes is None:
            request_bytes = _header_count(v.request_length)
        response_bytes = count(v.response_size)
        if response_bytes is None:
            response_bytes = _header_count(v.response_length)
        if request_bytes == DECLINE or response_bytes == DECLINE:
            return None

        sent = v.end
        if isinstance(sent, str):
            if len(sent) <= _FAST_DIGITS and sent.isdigit() and sent.isascii():
                end: int | None = int(sent)
            elif sent.strip():
                return None
            else:
                end = None  # blank: unset, as null
        else:
            end = sent
        if end is None:
            latency = None
        elif start <= end < END_EPOCH_MILLIS:
            latency = end - start
        else:
            return None

        app = v.app
        consumer = app.strip() if app is not None else None
        if not consumer:
            consumer = first_text(v.client_id)

        # one deployment sends the same attribute values event after event: built once per run
        extra_values = (v.product, v.revision, v.environment, v.organization, v.flow)
        if extra_values != last_extra_values:
            last_extra_values = extra_values
            attributes = extras(tuple(zip(EXTRA_VARIABLES, extra_values, strict=True)))

        value = record_value(
            key,
            tenant_headers,
            gateway,
            integration_id,
            EPOCH + MILLISECOND * start,
            api,
            route,
            method,
            status,
            request_bytes,
            response_bytes,
            latency,
            consumer,
            attributes,
        )
        records.append((key.encode(), value))
    return records


def _header_count(value: str | None) -> int | None:
    """The size from a ``Content-Length`` header variable (read when the size is unset)."""
    if value is None:
        return None
    text = value.strip()
    return count(text) if text else None
