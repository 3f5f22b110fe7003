"""A canonical event validated and encoded in one step (the ingest edge's hot path).

:func:`encode_record` returns what ``CanonicalEvent(**fields)`` followed by :func:`encode_event`
returns (the same field values, the same record bytes, the same ``ValidationError`` for anything
invalid) at a fraction of the cost, because it skips pydantic whenever the values are already in
their final form: exact ``str``/``int``/``tuple``/``dict`` types, a UTC ``datetime`` in range, an
upper-case method, in-range numbers. That is always the case for what the gateway decoders
produce. Anything else (a lower-case method, a list of headers, an out-of-range value, a
missing field) is handed to the model itself, which normalises it or raises: pydantic stays the
definition of a valid event, and the fast path only recognises values it would accept unchanged
(a property test compares both on generated values).

An :class:`EventRecord` carries the validated values (read it like a ``CanonicalEvent``) and the
Kafka record's ``key`` (the idempotency key, UTF-8) and ``value`` (``encode_event``'s bytes);
:meth:`EventRecord.to_event` builds the pydantic model when one is needed (tests, tools).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import orjson

from pipeline.events.codec import encode_event
from pipeline.events.model import (
    EVENT_FIELDS,
    GATEWAYS,
    MAX_EVENT_INTEGER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_STATUS,
    MIN_STATUS,
    CanonicalEvent,
    Gateway,
)
from pipeline.events.timestamps import EARLIEST_YEAR, LATEST_YEAR, format_utc

_FIELD_NAMES: Final = frozenset(EVENT_FIELDS)
_GATEWAY_NAMES: Final = frozenset(GATEWAYS)
_REQUIRED: Final = frozenset(("idempotency_key", "gateway", "integration_id", "timestamp"))
_MAX: Final = MAX_EVENT_INTEGER
_FIRST: Final = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
_END: Final = datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC)


NO_ATTRIBUTES: Final[Any] = object()
"""``attributes`` argument of :func:`final_form_record` when the caller gave none."""
_NO_ATTRIBUTES: Final = NO_ATTRIBUTES
_new_record: Final = tuple.__new__  # skips NamedTuple's Python-level __new__


class EventRecord(NamedTuple):
    """A valid canonical event (the model's field values) and its Kafka record."""

    idempotency_key: str
    tenant_headers: tuple[str, ...]
    gateway: Gateway
    integration_id: str
    timestamp: datetime
    api: str | None
    route: str | None
    method: str | None
    status: int | None
    request_bytes: int | None
    response_bytes: int | None
    latency_ms: int | None
    consumer: str | None
    attributes: dict[str, str]
    key: bytes
    """The Kafka record key: the idempotency key, UTF-8."""
    value: bytes
    """The Kafka record value: exactly ``encode_event(self.to_event())``."""

    def to_event(self) -> CanonicalEvent:
        """The pydantic model of these values (validated again; not for the hot path)."""
        fields: dict[str, Any] = dict(zip(EVENT_FIELDS, self, strict=False))
        return CanonicalEvent(**fields)

    @classmethod
    def of(cls, event: CanonicalEvent) -> EventRecord:
        """The record of an already validated model."""
        value = encode_event(event)
        return cls(
            event.idempotency_key,
            event.tenant_headers,
            event.gateway,
            event.integration_id,
            event.timestamp,
            event.api,
            event.route,
            event.method,
            event.status,
            event.request_bytes,
            event.response_bytes,
            event.latency_ms,
            event.consumer,
            event.attributes,
            event.idempotency_key.encode(),
            value,
        )


# Integration ids and methods already seen in final form (exact str, not blank; an upper-case
# ASCII method): checked once, then recognised by a set lookup. Bounded: a flood of odd values
# only stops the learning, never the checking.
_KNOWN_IDS: set[str] = set()
_KNOWN_METHODS: set[str] = set()
_KNOWN_LIMIT: Final = 256


def _learn(integration_id: Any, method: Any) -> bool:
    """Remember ``integration_id`` / ``method`` if they are in final form and new; True if any."""
    learned = False
    if (
        type(integration_id) is str
        and integration_id not in _KNOWN_IDS
        and integration_id.strip()
        and len(_KNOWN_IDS) < _KNOWN_LIMIT
    ):
        _KNOWN_IDS.add(integration_id)
        learned = True
    if (
        type(method) is str
        and method not in _KNOWN_METHODS
        and method.isupper()
        and method.isascii()
        and method.replace("-", "").isalpha()
        and len(_KNOWN_METHODS) < _KNOWN_LIMIT
    ):
        _KNOWN_METHODS.add(method)
        learned = True
    return learned


def encode_record(fields: Mapping[str, Any]) -> EventRecord:
    """Validate ``fields`` (``CanonicalEvent``'s keyword arguments) and encode them for Kafka.

    Raises what ``CanonicalEvent(**fields)`` raises (``pydantic.ValidationError``) and what
    :func:`encode_event` raises (``TypeError``/``ValueError`` from orjson).
    """
    record = None
    if _FIELD_NAMES.issuperset(fields) and _REQUIRED.issubset(fields):
        get = fields.get
        record = final_form_record(
            get("idempotency_key"),
            get("tenant_headers", ()),
            get("gateway"),
            get("integration_id"),
            get("timestamp"),
            get("api"),
            get("route"),
            get("method"),
            get("status"),
            get("request_bytes"),
            get("response_bytes"),
            get("latency_ms"),
            get("consumer"),
            get("attributes", _NO_ATTRIBUTES),
        )
    return record if record is not None else EventRecord.of(CanonicalEvent(**fields))


def final_form_record(
    idempotency_key: Any,
    tenant_headers: Any,
    gateway: Any,
    integration_id: Any,
    timestamp: Any,
    api: Any,
    route: Any,
    method: Any,
    status: Any,
    request_bytes: Any,
    response_bytes: Any,
    latency_ms: Any,
    consumer: Any,
    attributes: Any,
) -> EventRecord | None:
    """The record of these values if the model would accept every one of them unchanged.

    ``None`` means "ask the model" (``encode_record`` does): a value in another form, or an
    invalid one. ``attributes`` may be :data:`NO_ATTRIBUTES` (not given: ``{}``).
    Raises only what orjson raises for strings it cannot write (``TypeError``).
    """
    # A value check fails on the first sight of a valid integration id or method (they are
    # learned at run time): learn it and check again; nothing new to learn -> ask the model.
    while not (
        type(idempotency_key) is str
        and len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        and idempotency_key.strip()
        and type(integration_id) is str
        and integration_id in _KNOWN_IDS
        and type(gateway) is str
        and gateway in _GATEWAY_NAMES
        and type(timestamp) is datetime
        and timestamp.tzinfo is UTC
        and _FIRST <= timestamp < _END
        and type(tenant_headers) is tuple
        and (api is None or type(api) is str)
        and (route is None or type(route) is str)
        and (consumer is None or type(consumer) is str)
        and (method is None or (type(method) is str and method in _KNOWN_METHODS))
        and (status is None or (type(status) is int and MIN_STATUS <= status <= MAX_STATUS))
        and (request_bytes is None or (type(request_bytes) is int and 0 <= request_bytes <= _MAX))
        and (
            response_bytes is None or (type(response_bytes) is int and 0 <= response_bytes <= _MAX)
        )
        and (latency_ms is None or (type(latency_ms) is int and 0 <= latency_ms <= _MAX))
    ):
        if not _learn(integration_id, method):
            return None
    for header in tenant_headers:
        if type(header) is not str:
            return None
    if attributes is _NO_ATTRIBUTES:
        attributes = {}
    elif type(attributes) is not dict:
        return None
    for name, text in attributes.items():
        if type(name) is not str or type(text) is not str:
            return None
    value = record_value(
        idempotency_key,
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
        latency_ms,
        consumer,
        attributes,
    )
    return _new_record(
        EventRecord,
        (
            idempotency_key,
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
            latency_ms,
            consumer,
            attributes,
            idempotency_key.encode(),
            value,
        ),
    )


def record_value(
    idempotency_key: str,
    tenant_headers: tuple[str, ...],
    gateway: Gateway,
    integration_id: str,
    timestamp: datetime,
    api: str | None,
    route: str | None,
    method: str | None,
    status: int | None,
    request_bytes: int | None,
    response_bytes: int | None,
    latency_ms: int | None,
    consumer: str | None,
    attributes: dict[str, str],
) -> bytes:
    """The Kafka record value (``encode_event``'s bytes) of values already in final form.

    No checks: :func:`final_form_record` checks before it calls this, and the typed fast paths
    (``pipeline.ingest.decoders.fast``) only pass values they built in final form. Raises only
    what orjson raises for strings it cannot write (``TypeError``).
    """
    return orjson.dumps(
        {
            "idempotency_key": idempotency_key,
            "tenant_headers": tenant_headers,
            "gateway": gateway,
            "integration_id": integration_id,
            # orjson prints a UTC datetime as format_utc does, except that it drops a zero fraction
            "timestamp": timestamp if timestamp.microsecond else format_utc(timestamp),
            "api": api,
            "route": route,
            "method": method,
            "status": status,
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "latency_ms": latency_ms,
            "consumer": consumer,
            "attributes": attributes,
        },
        option=orjson.OPT_UTC_Z,
    )
