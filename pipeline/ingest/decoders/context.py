"""Types shared by the gateway decoders and their dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from pydantic import ValidationError

from pipeline.events import (
    MAX_EVENT_INTEGER,
    CanonicalEvent,
    EventRecord,
    Gateway,
    describe_validation_error,
    encode_record,
)
from pipeline.events.record import NO_ATTRIBUTES, final_form_record
from pipeline.ingest.body import DecompressionBudget, item_bytes
from pipeline.ingest.errors import EventRejected, InvalidField

DEFAULT_MAX_EMBEDDED_BYTES: Final = 8 * 1024 * 1024
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DecoderContext:
    """What a decoder knows about the integration that posted the batch."""

    integration_id: str
    gateway: Gateway
    api_key_tenants: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """AWS only: ``identity.apiKeyId`` -> tenant, used when no authorizer tenant is logged."""
    budget: DecompressionBudget = field(
        default_factory=lambda: DecompressionBudget(DEFAULT_MAX_EMBEDDED_BYTES)
    )
    """What the request may still decompress inside its items (AWS ``awslogs.data``); the
    edge gives every request a context with its own budget (what the body left of the cap)."""


class EventOutcome(NamedTuple):
    """One decoder result: a validated event record or the reason it was rejected (without
    gateway prefix).

    ``sub_index`` and ``raw_item`` are set by envelope decoders (AWS, Azure records) for each
    expanded record; otherwise the dispatcher uses the item's position and the item itself.
    ``raw_item`` is the JSON value to dead-letter (serialised only when its bytes are needed).
    """

    record: EventRecord | None = None
    error: str | None = None
    sub_index: int | None = None
    raw_item: Any = None


_NO_ITEM: Any = object()


class DecodedItem:
    """The fate of one event of a batch, with the bytes to dead-letter if it was rejected.

    Built from ``raw`` bytes or from the JSON ``item`` whose compact JSON they are (serialised on
    first use: accepted events never need them; the item must not change meanwhile). An accepted
    item holds its :class:`~pipeline.events.EventRecord` (what is published); :attr:`event`, the
    pydantic model, is built from it on first use. Treat instances as immutable.
    """

    __slots__ = ("_event", "_item", "_raw", "error", "index", "record", "sub_index")

    def __init__(
        self,
        index: int,
        raw: bytes | None = None,
        event: CanonicalEvent | None = None,
        error: str | None = None,
        sub_index: int | None = None,
        *,
        record: EventRecord | None = None,
        item: Any = _NO_ITEM,
    ) -> None:
        if event is not None and record is None:
            record = EventRecord.of(event)
        if (record is None) == (error is None) or (event is not None and error is not None):
            raise ValueError("a DecodedItem holds exactly one of event and error")
        if raw is None and item is _NO_ITEM:
            raise ValueError("a DecodedItem needs its raw bytes or the item they come from")
        self.index = index
        self.sub_index = sub_index
        self.record = record
        self.error = error
        self._raw = raw
        self._item = item
        self._event = event

    @property
    def raw(self) -> bytes:
        """The item's bytes for the dead-letter topic (compact JSON of the item)."""
        raw = self._raw
        if raw is None:
            raw = self._raw = item_bytes(self._item)
            self._item = _NO_ITEM
        return raw

    @property
    def event(self) -> CanonicalEvent | None:
        """The accepted event as the pydantic model (None when rejected)."""
        if self._event is None and self.record is not None:
            self._event = self.record.to_event()
        return self._event

    @property
    def accepted(self) -> bool:
        return self.record is not None

    def rejection(self) -> EventRejected:
        """This item's rejection as an error object (only for rejected items)."""
        if self.error is None:
            raise ValueError(f"item {self.index} was accepted, not rejected")
        return EventRejected(self.index, self.error, self.sub_index)

    def error_entry(self) -> dict[str, Any]:
        """The entry for the 202 response's ``errors`` list."""
        entry: dict[str, Any] = {"index": self.index}
        if self.sub_index is not None:
            entry["sub_index"] = self.sub_index
        entry["error"] = self.error
        return entry

    def __repr__(self) -> str:
        outcome = f"error={self.error!r}" if self.error is not None else f"record={self.record!r}"
        return f"DecodedItem(index={self.index}, sub_index={self.sub_index}, {outcome})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecodedItem):
            return NotImplemented
        return (self.index, self.sub_index, self.record, self.error, self.raw) == (
            other.index,
            other.sub_index,
            other.record,
            other.error,
            other.raw,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable caches inside; equal means same fate


_new_item = object.__new__


def decided_item(
    index: int, sub_index: int | None, record: EventRecord | None, error: str | None, item: Any
) -> DecodedItem:
    """A :class:`DecodedItem` holding ``record`` (accepted) or ``error`` (rejected), without the
    constructor's checks (the batch loop's fast constructor; ``item`` is the JSON value whose
    compact JSON is the raw bytes)."""
    decoded: DecodedItem = _new_item(DecodedItem)
    decoded.index = index
    decoded.sub_index = sub_index
    decoded.record = record
    decoded.error = error
    decoded._raw = None
    decoded._item = item
    decoded._event = None
    return decoded


Decoder = Callable[[Any, DecoderContext], list[EventOutcome]]
_NOT_GIVEN: Any = object()


def build_event(
    ctx: DecoderContext,
    *,
    idempotency_key: Any = _NOT_GIVEN,
    tenant_headers: Any = (),
    timestamp: Any = _NOT_GIVEN,
    api: Any = None,
    route: Any = None,
    method: Any = None,
    status: Any = None,
    request_bytes: Any = None,
    response_bytes: Any = None,
    latency_ms: Any = None,
    consumer: Any = None,
    attributes: Any = NO_ATTRIBUTES,
    **others: Any,
) -> EventRecord:
    """The validated record of an event of ``ctx``'s integration (its gateway and id are forced).

    Values are ``CanonicalEvent``'s fields. Model violations become :class:`InvalidField`
    (``event is invalid: <field>: <why>``), and so do values no Kafka record can hold
    (``event cannot be encoded for Kafka (...)``).
    """
    try:
        record = None
        if not others and idempotency_key is not _NOT_GIVEN and timestamp is not _NOT_GIVEN:
            record = final_form_record(
                idempotency_key,
                tenant_headers,
                ctx.gateway,
                ctx.integration_id,
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
        if record is not None:
            return record
        # not in final form: the model decides (normalises, or explains what is wrong)
        given = {
            "idempotency_key": idempotency_key,
            "tenant_headers": tenant_headers,
            "timestamp": timestamp,
            "api": api,
            "route": route,
            "method": method,
            "status": status,
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "latency_ms": latency_ms,
            "consumer": consumer,
            "attributes": attributes,
            **others,
        }
        fields = {name: value for name, value in given.items() if value is not _NOT_GIVEN}
        if attributes is NO_ATTRIBUTES:
            del fields["attributes"]
        for name in ("request_bytes", "response_bytes", "latency_ms"):
            number = fields.get(name)
            if type(number) is int and number > MAX_EVENT_INTEGER:
                raise InvalidField(
                    "event",
                    f"cannot be encoded for Kafka ({name} is larger than {MAX_EVENT_INTEGER}, "
                    "the largest whole number an event record holds)",
                )
        fields["gateway"] = ctx.gateway
        fields["integration_id"] = ctx.integration_id
        return encode_record(fields)
    except ValidationError as exc:
        raise InvalidField("event", f"is invalid: {describe_validation_error(exc)}") from exc
    except (TypeError, ValueError) as exc:  # orjson: e.g. a string it cannot write as UTF-8
        raise InvalidField("event", f"cannot be encoded for Kafka ({exc})") from exc
