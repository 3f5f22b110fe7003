"""MuleSoft's fast path (contract: :mod:`pipeline.ingest.decoders.fast`; mapping:
:mod:`pipeline.ingest.decoders.mulesoft`).

Takes what the Anypoint plugin sends: a flat event whose keys are all known (the plugin's and
``Violated Policy Name``), ``Message ID``, ``Timestamp`` as an ISO-8601 string (read by
``parse_iso8601``, as the general decoder reads it), ``API ID`` and ``API Version ID`` as a
string or a number, sizes and ``Response Time`` as numbers (``-1`` = unknown), ``Status Code``
as a number, header values as strings or arrays of strings.

Declines an unknown key (a canonical event, a name in another case, a field the plugin does not
send: nothing outside the typed fields is skipped unchecked), a size, latency or status sent as
a string, an integer orjson would read as a float (beyond 64 bits), a URL as ``Resource Path``
and every value the general decoder would have to convert or reject.
"""

from __future__ import annotations

from typing import Final

from msgspec import Struct, field
from msgspec.json import Decoder

from pipeline.events import MAX_EVENT_INTEGER, InvalidTimestamp
from pipeline.events.record import record_value
from pipeline.events.timestamps import parse_iso8601
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import values
from pipeline.ingest.decoders.fast.values import DECLINE_TEXT, extras, header_texts, idempotency_key
from pipeline.ingest.decoders.mulesoft import EXTRA_FIELDS, TENANT_HEADER, UNKNOWN_SIZE

_Text = str | None
_TextOrNumber = str | int | None
_Number = int | None

_MIN_JSON_INT: Final = -(2**63)
_MAX_JSON_INT: Final = 2**64 - 1
"""orjson (the general path) reads integers in this range as ``int``, larger ones as ``float``."""
(_UNKNOWN,) = UNKNOWN_SIZE
_UNKNOWN_LATENCY: Final = -1
"""``as_latency``'s default ``unknown`` marker (the general decoder does not override it)."""


class _Event(Struct, gc=False, forbid_unknown_fields=True):
    message_id: _Text = field(default=None, name="Message ID")
    timestamp: _Text = field(default=None, name="Timestamp")
    api_id: _TextOrNumber = field(default=None, name="API ID")
    resource_path: _Text = field(default=None, name="Resource Path")
    verb: _Text = field(default=None, name="Verb")
    status: _Number = field(default=None, name="Status Code")
    request_size: _Number = field(default=None, name="Request Size")
    response_size: _Number = field(default=None, name="Response Size")
    response_time: _Number = field(default=None, name="Response Time")
    application: _Text = field(default=None, name="Application")
    headers: dict[str, str | list[str]] | None = None
    # attributes (EXTRA_FIELDS)
    api_version_id: _TextOrNumber = field(default=None, name="API Version ID")
    api_name: _Text = field(default=None, name="API Name")
    api_version_name: _Text = field(default=None, name="API Version Name")
    application_name: _Text = field(default=None, name="Application Name")
    request_outcome: _Text = field(default=None, name="Request Outcome")
    violated_policy_name: _Text = field(default=None, name="Violated Policy Name")
    # sent by the plugin, not read: declared so that it is checked, not skipped
    client_ip: _Text = field(default=None, name="Client IP")


_BATCH = Decoder(list[_Event])
_WANTED = TENANT_HEADER.casefold()

# Attribute values seen before, each with what it gives (bounded: a flood of odd values starts
# the remembering over): plugins send the same few (the APIs' names and versions, the
# application's name) event after event, interleaved.
_KNOWN_LIMIT: Final = 1024
_ATTRIBUTES: dict[tuple[str | int | None, ...], dict[str, str]] = {}
"""The attribute values as sent (EXTRA_FIELDS' order) -> :func:`values.extras` of them. The
dicts are shared by the records that use them: ``record_value`` only reads them."""


def fast_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | None:
    """See :func:`pipeline.ingest.decoders.fast.fast_records`."""
    gateway, integration_id = ctx.gateway, ctx.integration_id
    records = []
    for event in _BATCH.decode(data):
        key = idempotency_key(event.message_id)
        if key is None:
            return None

        tenant_headers = header_texts(event.headers, _WANTED)

        sent = event.timestamp
        if sent is None:
            return None
        try:
            timestamp = parse_iso8601(sent)
        except InvalidTimestamp:
            return None

        api_id = event.api_id
        if isinstance(api_id, int):
            if not _MIN_JSON_INT <= api_id <= _MAX_JSON_INT:
                return None
            api: str | None = str(api_id)
        else:
            api = None if api_id is None else api_id.strip() or None

        route = values.path(event.resource_path)
        if route is DECLINE_TEXT:
            return None

        method = values.method(event.verb)
        if method is DECLINE_TEXT:
            return None

        status = event.status
        if status is not None and not 100 <= status <= 599:
            return None
        request_bytes = event.request_size
        if request_bytes is not None and not 0 <= request_bytes <= MAX_EVENT_INTEGER:
            if request_bytes != _UNKNOWN:
                return None
            request_bytes = None
        response_bytes = event.response_size
        if response_bytes is not None and not 0 <= response_bytes <= MAX_EVENT_INTEGER:
            if response_bytes != _UNKNOWN:
                return None
            response_bytes = None
        latency = event.response_time
        if latency is not None and not 0 <= latency <= MAX_EVENT_INTEGER:
            if latency != _UNKNOWN_LATENCY:
                return None
            latency = None

        consumer = event.application
        if consumer is not None:
            consumer = consumer.strip() or None

        version_id = event.api_version_id
        if type(version_id) is int and not _MIN_JSON_INT <= version_id <= _MAX_JSON_INT:
            return None
        sent_extras = (
            version_id,
            event.api_name,
            event.api_version_name,
            event.application_name,
            event.request_outcome,
            event.violated_policy_name,
        )
        attributes = _ATTRIBUTES.get(sent_extras)
        if attributes is None:
            attributes = extras(tuple(zip(EXTRA_FIELDS, sent_extras, strict=True)))
            if len(_ATTRIBUTES) >= _KNOWN_LIMIT:
                _ATTRIBUTES.clear()
            _ATTRIBUTES[sent_extras] = attributes

        value = record_value(
            key,
            tenant_headers,
            gateway,
            integration_id,
            timestamp,
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
