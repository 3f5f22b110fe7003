"""The ingest use case, free of HTTP: auth -> body -> gateway decoders -> Kafka records -> acks.

:class:`IngestService` is what ``POST /v1/ingest`` does, minus aiohttp (``http.py`` reads the
socket and alone chooses status codes). Its outcomes:

* :meth:`IngestService.authenticate` raises :class:`~pipeline.ingest.auth.Unauthenticated`.
* :meth:`IngestService.ingest` returns an :class:`IngestResult` once Kafka acknowledged every
  record, or raises: ``BodyTooLarge`` / ``BatchTooLarge`` (nothing published: the plugin splits
  and retries),
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from pipeline.catalog import Catalog, Integration
from pipeline.events import format_utc
from pipeline.ingest.auth import authenticate
from pipeline.ingest.body import DecompressionBudget, decompress_body
from pipeline.ingest.checks import RecordChecks
from pipeline.ingest.decoders import DecodedItem, DecoderContext, decode_items
from pipeline.ingest.decoders.fast import fast_records
from pipeline.ingest.errors import (
    BatchTooLarge,
    BodyTooLarge,
    IngestError,
    UndecodableBody,
    UnsupportedEncoding,
)
from pipeline.ingest.items import DEFAULT_MAX_ITEMS, parse_items
from pipeline.ingest.publisher import Headers, OutgoingRecord, Publisher
from pipeline.settings import Settings

Clock = Callable[[], datetime]
Timer = Callable[[], float]

MAX_REASON_CHARS: Final = 1000
"""Rejection reasons are cut to this length in responses and headers (they may quote input)."""
MAX_EVENT_RECORD_BYTES: Final = 256 * 1024
"""An event record larger than this is that event's rejection (a usage event is ~1 KB; the
broker refuses records over the events topic's ``max.message.bytes``, 1 MiB by default, and a
refused record used to fail its whole batch with 503 on every retry of the plugin)."""
MAX_ERRORS_LISTED: Final = 100
"""Rejections listed in a 202 (a plugin sends ~100 events; 80,000 bad items made an 8 MB answer)."""
DEAD_LETTER_OVERHEAD_BYTES: Final = 64 * 1024
"""Room for key, headers and record framing on top of the largest dead-lettered value."""
_new_record: Final = tuple.__new__  # an OutgoingRecord per event without NamedTuple's __new__


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Caps on one request: body size as sent and after every decompression stage, events."""

    max_body_bytes: int
    max_decompressed_bytes: int
    max_events: int = DEFAULT_MAX_ITEMS
    max_concurrent_requests: int = 32
    body_timeout_s: float = 30.0
    max_event_record_bytes: int = MAX_EVENT_RECORD_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            settings.ingest_max_body_bytes,
            settings.ingest_max_decompressed_bytes,
            settings.ingest_max_events,
            settings.ingest_max_concurrent_requests,
            settings.ingest_body_timeout_s,
        )

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
        """The 202 body: ``{"accepted": n, "rejected": m, "errors": [...]}``; the first
        :data:`MAX_ERRORS_LISTED` errors (``errors_not_listed`` counts the others, every one
        of them is on the dead-letter topic with its reason)."""
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors[:MAX_ERRORS_LISTED],
        }
        if len(self.errors) > MAX_ERRORS_LISTED:
            body["errors_not_listed"] = len(self.errors) - MAX_ERRORS_LISTED
        return body


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
        self._checks = RecordChecks(catalog, limits.max_event_record_bytes)

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
        base = self._context(integration)
        limits = self.limits
        try:
            data = decompress_body(
                body,
                content_encoding,
                max_compressed=limits.max_body_bytes,
                max_decompressed=limits.max_decompressed_bytes,
            )
            # A batch of plain native events goes straight to its records (every item accepted,
            # the same bytes the general path gives); anything else is declined and decoded below.
            # Each attempt decompresses nested data (AWS) within what the body left of the cap.
            context = _with_budget(base, limits.max_decompressed_bytes, len(data))
            typed = fast_records(data, context)
            if typed is not None and len(typed) > limits.max_events:
                raise BatchTooLarge("events", limits.max_events, len(typed))
            problem = self._checks.problem
            if typed is not None and any(problem(value) is not None for _, value in typed):
                typed = None  # the general path rejects such an event by its position
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
            items = parse_items(data, max_items=limits.max_events)
        except (UndecodableBody, UnsupportedEncoding) as exc:
            await self._publisher.publish(
                [self._body_dead_letter(integration, body, content_encoding, exc, received_at)]
            )
            raise
        decoded = decode_items(items, _with_budget(base, limits.max_decompressed_bytes, len(data)))
        if len(decoded) > limits.max_events:  # envelopes expanded into more events than allowed
            raise BatchTooLarge("events", limits.max_events, len(decoded))
        records: list[OutgoingRecord] = []
        errors: list[dict[str, Any]] = []
        problem = self._checks.problem
        for item in decoded:
            record = item.record
            if record is not None:  # validated and encoded by the decoders (EventRecord)
                refused = problem(record.value)
                if refused is None:
                    records.append(
                        _new_record(OutgoingRecord, (events_topic, record.key, record.value, ()))
                    )
                    continue
                item = DecodedItem(
                    item.index, record.value, error=refused, sub_index=item.sub_index
                )
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


def _with_budget(context: DecoderContext, limit: int, spent: int) -> DecoderContext:
    """The integration's context with a decompression budget of its own for one decode pass:
    ``limit`` for the whole request, of which the body took ``spent``."""
    budget = DecompressionBudget(limit)
    budget.spend(spent)
    return replace(context, budget=budget)


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
