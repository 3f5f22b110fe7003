"""The ingest use case, free of HTTP: auth -> body -> gateway decoders -> Kafka records -> acks.

:class:`IngestService` is what ``POST /v1/ingest`` does, minus aiohttp (``http.py`` reads the
socket and alone chooses status codes). Its outcomes:

* :meth:`IngestService.authenticate` raises :class:`~pipeline.ingest.auth.Unauthenticated`.
* :meth:`IngestService.ingest` returns an :class:`IngestResult` once Kafka acknowledged every
  record, or raises: ``BodyTooLarge`` (nothing published: the plugin splits and retries),
  ``UnsupportedEncoding`` / ``UndecodableBody`` (*after* the raw body was dead-lettered, so
  nothing a plugin sent is lost), ``PublishFailed`` (Kafka down or slow: retry later).

Records (contract §2):

* event -> events topic, key = the idempotency key (UTF-8), value = :func:`encode_event`'s
  bytes: for a batch of plain native events built by the typed fast path
  (:mod:`pipeline.ingest.decoders.fast`), else by the decoders with
  :func:`~pipeline.events.encode_record`; the same bytes either way, no re-encoding.
  Keying by the idempotency key puts every copy of one event on one partition, which is where
  the stream worker keeps the dedup state for that key; dedup is by (tenant, key), a finer key
  within the same partition, so the worker never needs to repartition.
* rejected event -> dead-letter topic, key = integration id, value = the item's raw bytes,
  headers ``kind=event``, ``reason``, ``integration``, ``gateway``, ``index`` (+ ``sub_index``
  for an envelope's record), ``received_at`` (ISO-8601 UTC from the injected clock).
* undecodable body -> dead-letter topic, value = the body exactly as received (still
  compressed), headers ``kind=body``, ``reason``, ``integration``, ``gateway``,
  ``content_encoding``, ``received_at``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pipeline.catalog import Catalog, Integration
from pipeline.events import format_utc
from pipeline.ingest.auth import authenticate
from pipeline.ingest.body import decompress_body, parse_items
from pipeline.ingest.decoders import DecodedItem, DecoderContext, decode_items
from pipeline.ingest.decoders.context import DEFAULT_MAX_EMBEDDED_BYTES
from pipeline.ingest.decoders.fast import fast_records
from pipeline.ingest.errors import BodyTooLarge, IngestError, UndecodableBody, UnsupportedEncoding
from pipeline.ingest.publisher import Headers, OutgoingRecord, Publisher
from pipeline.settings import Settings

Clock = Callable[[], datetime]
Timer = Callable[[], float]

MAX_REASON_CHARS: Final = 1000
"""Rejection reasons are cut to this length in responses and headers (they may quote input)."""
DEAD_LETTER_OVERHEAD_BYTES: Final = 64 * 1024
"""Room for key, headers and record framing on top of the largest dead-lettered value."""
_new_record: Final = tuple.__new__  # an OutgoingRecord per event without NamedTuple's __new__


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Size caps of a request body, as sent and after decompression."""

    max_body_bytes: int
    max_decompressed_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(settings.ingest_max_body_bytes, settings.ingest_max_decompressed_bytes)

    @property
    def dead_letter_record_bytes(self) -> int:
        """Largest dead-letter record: a whole body as sent, or one decompressed item."""
        return max(self.max_body_bytes, self.max_decompressed_bytes) + DEAD_LETTER_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class IngestTopics:
    events: str
    dead_letters: str

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestTopics:
        return cls(settings.topics.events, settings.topics.dead_letters)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """A batch durably in Kafka: counts, per-event errors and where the time went."""

    integration_id: str
    accepted: int
    rejected: int
    errors: list[dict[str, Any]]
    decode_s: float
    publish_s: float
    fast_path: bool = False
    """Decoded by the typed fast path (:mod:`pipeline.ingest.decoders.fast`)."""

    def response(self) -> dict[str, Any]:
        """The 202 body: ``{"accepted": n, "rejected": m, "errors": [...]}``."""
        return {"accepted": self.accepted, "rejected": self.rejected, "errors": self.errors}


class IngestService:
    """One edge's ingest logic; ``publisher`` is Kafka in production, a fake in unit tests."""

    def __init__(
        self,
        catalog: Catalog,
        publisher: Publisher,
        topics: IngestTopics,
        limits: IngestLimits,
        *,
        clock: Clock = utc_now,
        timer: Timer = time.perf_counter,
    ) -> None:
        self.catalog = catalog
        self.topics = topics
        self.limits = limits
        self._publisher = publisher
        self._clock = clock
        self._timer = timer
        self._contexts: dict[str, DecoderContext] = {}

    def authenticate(self, authorization: str | None) -> Integration:
        """The integration owning the ``Authorization`` header's bearer key."""
        return authenticate(self.catalog, authorization)

    def check_declared_length(self, content_length: int | None) -> None:
        """Refuse a body by its ``Content-Length`` before reading it."""
        if content_length is not None and content_length > self.limits.max_body_bytes:
            raise BodyTooLarge(self.limits.max_body_bytes, "compressed", size=content_length)

    async def ingest(
        self, integration: Integration, body: bytes, content_encoding: str | None
    ) -> IngestResult:
        """Decode ``body`` for ``integration`` and publish it; see the module doc for outcomes."""
        started = self._timer()
        received_at = format_utc(self._clock()).encode()
        events_topic = self.topics.events
        context = self._context(integration)
        try:
            data = decompress_body(
                body,
                content_encoding,
                max_compressed=self.limits.max_body_bytes,
                max_decompressed=self.limits.max_decompressed_bytes,
            )
            # A batch of plain native events goes straight to its records (every item accepted,
            # the same bytes the general path gives); anything else is declined and decoded below.
            typed = fast_records(data, context)
            if typed is not None:
                decoded_at = self._timer()
                await self._publisher.publish(
                    [_new_record(OutgoingRecord, (events_topic, *kv, ())) for kv in typed]
                )
                return IngestResult(
                    integration_id=integration.id,
                    accepted=len(typed),
                    rejected=0,
                    errors=[],
                    decode_s=decoded_at - started,
                    publish_s=self._timer() - decoded_at,
                    fast_path=True,
                )
            items = parse_items(data)
        except (UndecodableBody, UnsupportedEncoding) as exc:
            await self._publisher.publish(
                [self._body_dead_letter(integration, body, content_encoding, exc, received_at)]
            )
            raise
        decoded = decode_items(items, context)
        records: list[OutgoingRecord] = []
        errors: list[dict[str, Any]] = []
        for item in decoded:
            record = item.record
            if record is not None:  # validated and encoded by the decoders (EventRecord)
                records.append(
                    _new_record(OutgoingRecord, (events_topic, record.key, record.value, ()))
                )
                continue
            reason = bounded_reason(item.error or "rejected")
            errors.append(_error_entry(item, reason))
            records.append(self._event_dead_letter(integration, item, reason, received_at))
        decoded_at = self._timer()
        await self._publisher.publish(records)
        return IngestResult(
            integration_id=integration.id,
            accepted=len(decoded) - len(errors),
            rejected=len(errors),
            errors=errors,
            decode_s=decoded_at - started,
            publish_s=self._timer() - decoded_at,
        )

    # --- records ------------------------------------------------------------------------------
    def _context(self, integration: Integration) -> DecoderContext:
        ctx = self._contexts.get(integration.id)
        if ctx is None:
            ctx = self._contexts[integration.id] = DecoderContext(
                integration_id=integration.id,
                gateway=integration.gateway,
                api_key_tenants=dict(integration.api_key_tenants),
                max_embedded_bytes=min(
                    DEFAULT_MAX_EMBEDDED_BYTES, self.limits.max_decompressed_bytes
                ),
            )
        return ctx

    def _event_dead_letter(
        self, integration: Integration, item: DecodedItem, reason: str, received_at: bytes
    ) -> OutgoingRecord:
        headers: list[tuple[str, bytes]] = [
            ("kind", b"event"),
            ("reason", header_bytes(reason)),
            ("integration", integration.id.encode()),
            ("gateway", integration.gateway.encode()),
            ("index", str(item.index).encode()),
        ]
        if item.sub_index is not None:
            headers.append(("sub_index", str(item.sub_index).encode()))
        headers.append(("received_at", received_at))
        return OutgoingRecord(
            self.topics.dead_letters, integration.id.encode(), item.raw, tuple(headers)
        )

    def _body_dead_letter(
        self,
        integration: Integration,
        body: bytes,
        content_encoding: str | None,
        exc: IngestError,
        received_at: bytes,
    ) -> OutgoingRecord:
        headers: Headers = (
            ("kind", b"body"),
            ("reason", header_bytes(bounded_reason(str(exc)))),
            ("integration", integration.id.encode()),
            ("gateway", integration.gateway.encode()),
            ("content_encoding", header_bytes(bounded_reason(content_encoding or "identity"))),
            ("received_at", received_at),
        )
        return OutgoingRecord(self.topics.dead_letters, integration.id.encode(), body, headers)


def bounded_reason(text: str) -> str:
    """``text`` cut to :data:`MAX_REASON_CHARS` (with an ellipsis when cut)."""
    if len(text) <= MAX_REASON_CHARS:
        return text
    return text[: MAX_REASON_CHARS - 1] + "…"


def header_bytes(text: str) -> bytes:
    """UTF-8 of a header value; never raises (odd code points become backslash escapes)."""
    return text.encode("utf-8", "backslashreplace")


def _error_entry(item: DecodedItem, reason: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": item.index}
    if item.sub_index is not None:
        entry["sub_index"] = item.sub_index
    entry["error"] = reason
    return entry
