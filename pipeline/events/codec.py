"""The Kafka record of a canonical event: compact JSON via orjson.

Wire form: one JSON object with the fields of :data:`EVENT_FIELDS` in that order, nulls
written out, ``tenant_headers`` as an array and ``timestamp`` as ``2026-01-15T10:00:00.123456Z``
(always UTC, always 6 fraction digits). ``encode_event`` and ``decode_event`` round-trip exactly.

Two ways back:

* :func:`decode_event` validates with the model (use it for anything that did not come from
  our own edge: replays of archived records, tools, tests).
* :func:`decode_event_fields` is the stream worker's hot path: it trusts that the edge
  validated the event before producing it and only parses JSON and the timestamp (no pydantic),
  returning a plain :class:`EventFields` dict. It still raises :class:`MalformedEvent` instead of
  ``KeyError``/``ValueError`` when a record is not shaped like ours, so a poisoned record can be
  dead-lettered rather than crash the worker, but it does not check ranges or types in depth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

import orjson
from pydantic import ValidationError

from pipeline.events.errors import MalformedEvent
from pipeline.events.model import EVENT_FIELDS, CanonicalEvent, Gateway
from pipeline.events.timestamps import format_utc


class EventFields(TypedDict):
    """A canonical event as a plain dict (hot path of the stream worker)."""

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


def encode_event(event: CanonicalEvent) -> bytes:
    """The Kafka record value of ``event`` (compact JSON, UTF-8)."""
    return orjson.dumps(
        {
            "idempotency_key": event.idempotency_key,
            "tenant_headers": event.tenant_headers,
            "gateway": event.gateway,
            "integration_id": event.integration_id,
            "timestamp": format_utc(event.timestamp),
            "api": event.api,
            "route": event.route,
            "method": event.method,
            "status": event.status,
            "request_bytes": event.request_bytes,
            "response_bytes": event.response_bytes,
            "latency_ms": event.latency_ms,
            "consumer": event.consumer,
            "attributes": event.attributes,
        }
    )


def decode_event(data: bytes) -> CanonicalEvent:
    """Parse and fully validate a record written by :func:`encode_event`."""
    try:
        return CanonicalEvent.model_validate(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"invalid JSON ({exc})") from exc
    except ValidationError as exc:
        raise MalformedEvent(describe_validation_error(exc)) from exc


def decode_event_fields(data: bytes) -> EventFields:
    """Parse a record written by :func:`encode_event` without model validation (see module doc)."""
    return decode_event_record(data)[0]


def decode_event_record(data: bytes) -> tuple[EventFields, str]:
    """:func:`decode_event_fields` and the record's timestamp text as it was sent.

    The parsed JSON object itself becomes the fields (``tenant_headers`` and ``timestamp``
    converted in place; a key the record has beyond ours stays): no second dict per event.
    """
    try:
        obj: Any = orjson.loads(data)
        if type(obj) is not dict:
            raise TypeError(f"a JSON {type(obj).__name__}, not an object")
        if not obj.keys() >= _REQUIRED_KEYS:
            missing = next(name for name in EVENT_FIELDS if name not in obj)
            raise MalformedEvent(f"field {missing!r} is missing")
        stamp = obj["timestamp"]
        moment = obj["timestamp"] = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError(f"timestamp {stamp!r} has no UTC offset")
        obj["tenant_headers"] = tuple(obj["tenant_headers"])
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"invalid JSON ({exc})") from exc
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"record is not shaped like an encoded event ({exc})") from exc
    return cast(EventFields, obj), stamp


_REQUIRED_KEYS = frozenset(EVENT_FIELDS)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field and what was wrong, e.g. ``status: must be <= 599``."""
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "event"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        parts.append(f"{location}: {message}")
    return "; ".join(parts)
