"""Reference copy (see the package doc): types shared by the decoders and their dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from pydantic import ValidationError

from pipeline.events import CanonicalEvent, describe_validation_error
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.errors import EventRejected, InvalidField

DEFAULT_MAX_EMBEDDED_BYTES: Final = 8 * 1024 * 1024
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """One decoder result: an event or the reason it was rejected (without gateway prefix).

    ``sub_index`` and ``raw`` are set by envelope decoders (AWS, Azure records) for each
    expanded record; otherwise the dispatcher uses the item's position and bytes.
    """

    event: CanonicalEvent | None = None
    error: str | None = None
    sub_index: int | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class DecodedItem:
    """The fate of one event of a batch, with the bytes to dead-letter if it was rejected."""

    index: int
    raw: bytes
    event: CanonicalEvent | None = None
    error: str | None = None
    sub_index: int | None = None

    def __post_init__(self) -> None:
        if (self.event is None) == (self.error is None):
            raise ValueError("a DecodedItem holds exactly one of event and error")

    @property
    def accepted(self) -> bool:
        return self.event is not None

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


Decoder = Callable[[Any, DecoderContext], list[EventOutcome]]


def build_event(ctx: DecoderContext, **values: Any) -> CanonicalEvent:
    """An event of ``ctx``'s integration; model violations become :class:`InvalidField`."""
    try:
        return CanonicalEvent(gateway=ctx.gateway, integration_id=ctx.integration_id, **values)
    except ValidationError as exc:
        raise InvalidField("event", f"is invalid: {describe_validation_error(exc)}") from exc
