"""One batch of consumed messages -> decisions and rows. No Kafka or ClickHouse here.

The worker loop (app.py) hands over the batch's messages and a way to read the dedup state; this
module decodes, unifies the tenant, deduplicates, matches and meters each message, in partition
order, and returns everything the agent must write, in the order it must write it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pipeline.catalog import Catalog
from pipeline.errors import PipelineError
from pipeline.events import EventFields
from pipeline.events.codec import decode_event_fields
from pipeline.events.errors import MalformedEvent
from pipeline.metering import Metering
from pipeline.metering.dedup import BatchDedup, Decision, FirstCopy, dedup_key, epoch_ms
from pipeline.metering.meters import MeterEntry
from pipeline.worker import metrics
from pipeline.worker.sink import SinkBatch

LIVE_RUN = "live"


class OffsetGap(PipelineError):
    """A partition's messages arrived with a hole: a message was skipped.

    Observed with Faust's stream on Apache Kafka 4.1 during a rebalance (SPEC 11): it handed
    over offsets 519 and 521 of one partition in one batch, 520 never, and committing 521 would
    have lost 520 for good. The worker now reads whole fetches from aiokafka itself, but the
    check stays as a guard: the events topic is neither compacted nor transactional, so its
    offsets are contiguous and any hole is a skip. The worker must not write or commit the
    batch and must restart from the last committed offset (exit code 75, see app.py).
    """


#: (index of the message in the batch, dedup key bytes) -> stored FirstCopy bytes or None
StateLookup = Callable[[int, bytes], bytes | None]


class ConsumedMessage(NamedTuple):
    """One consumed record (a NamedTuple: built once per event on the hot path)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True)
class OutRecord:
    """A record for a Kafka topic (quarantine or dead letters)."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class BatchResult:
    sink_batch: SinkBatch = field(default_factory=SinkBatch)
    quarantined: list[OutRecord] = field(default_factory=list)
    dead_letters: list[OutRecord] = field(default_factory=list)
    #: (index of the message that made it first, dedup key, FirstCopy bytes): store after writing
    new_first_copies: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    #: partition -> last offset in this batch
    last_offsets: dict[int, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    #: dedup keys this batch put in flight; cleared once its state is stored
    settles: tuple[str, ...] = ()


class BatchProcessor:
    """Turns batches into rows; also remembers the processed position per partition (lag)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Callable[[], datetime],
        window_ms: int,
        billing_run: str = LIVE_RUN,
        check_offsets: bool = True,
    ) -> None:
        """``check_offsets``: the live stream's gap check (see OffsetGap). Off for replays,
        which read a month's slice of each partition from the event log."""
        self.metering = Metering(catalog)
        self.clock = clock
        self.window_ms = window_ms
        self.billing_run = billing_run
        self.check_offsets = check_offsets
        self._positions: dict[int, int] = {}
        #: partition -> next offset expected from the stream (gap detection)
        self._delivered: dict[int, int] = {}
        #: first copies decided by batches still being written (not yet in the durable state)
        self.in_flight: dict[str, FirstCopy] = {}

    def note_processed(self, partition: int, offset: int) -> None:
        self._positions[partition] = offset + 1

    def processed_position(self, partition: int) -> int | None:
        return self._positions.get(partition)

    def settled(self, result: BatchResult) -> None:
        """The batch's first copies are in the durable state now: stop holding them."""
        for key in result.settles:
            self.in_flight.pop(key, None)

    def check_contiguous(self, messages: Sequence[ConsumedMessage]) -> None:
        """Raise OffsetGap when an offset of a partition was skipped, within the batch or since
        the previous batch of that partition (going back is fine: a redelivery)."""
        expected = dict(self._delivered)
        for message in messages:
            want = expected.get(message.partition)
            if want is not None and message.offset > want:
                raise OffsetGap(
                    f"partition {message.partition}: offsets {want}..{message.offset - 1} were "
                    f"never delivered (got {message.offset} after {want - 1})",
                    partition=message.partition,
                    first_missing=want,
                    next_delivered=message.offset,
                )
            expected[message.partition] = message.offset + 1
        self._delivered = expected

    def forget_partitions(self, partitions: Sequence[int]) -> None:
        """A rebalance moved these partitions: their next offset is whatever was committed."""
        for partition in partitions:
            self._delivered.pop(partition, None)

    def process(self, messages: Sequence[ConsumedMessage], lookup: StateLookup) -> BatchResult:
        if self.check_offsets:
            self.check_contiguous(messages)
        now = self.clock()
        now_ms = epoch_ms(now)
        processed_at = _ch_time(now)
        result = BatchResult()
        current = 0

        in_flight = self.in_flight

        def read_state(key: str) -> FirstCopy | None:
            pending = in_flight.get(key)
            if pending is not None:
                return pending
            raw = lookup(current, key.encode())
            return None if raw is None else FirstCopy.decode(raw)

        dedup = BatchDedup(read_state, now_ms, self.window_ms)
        first_index: dict[str, int] = {}
        rows = result.sink_batch
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        unmapped = 0
        for current, message in enumerate(messages):  # read_state reads `current`
            result.last_offsets[message.partition] = message.offset
            try:
                if message.value is None:
                    raise MalformedEvent("record has no value")
                fields = decode_event_fields(message.value)
            except MalformedEvent as exc:
                result.dead_letters.append(_dead_letter(message, str(exc)))
                counts["dead_letter"] = counts.get("dead_letter", 0) + 1
                continue
            assessment = self.metering.assess(fields)
            resolution = assessment.tenant
            payload = message.value.decode()
            event_time = _ch_time(fields["timestamp"])
            if resolution.tenant_id is None:
                reason = str(resolution.reason)
                rows.event_log.append(
                    _log_row(
                        message,
                        fields,
                        None,
                        "quarantined",
                        None,
                        payload,
                        event_time,
                        processed_at,
                        reason,
                        resolution.detail,
                    )
                )
                result.quarantined.append(
                    OutRecord(
                        key=fields["idempotency_key"].encode(),
                        value=message.value,
                        headers=[
                            ("reason", reason.encode()),
                            ("detail", resolution.detail.encode()),
                            ("integration", fields["integration_id"].encode()),
                        ],
                    )
                )
                reasons[reason] = reasons.get(reason, 0) + 1
                counts["quarantined"] = counts.get("quarantined", 0) + 1
                continue
            tenant = resolution.tenant_id
            key = dedup_key(tenant, fields["idempotency_key"])
            decision = dedup.decide(
                key, message.partition, message.offset, epoch_ms(fields["timestamp"])
            )
            product = assessment.product_id
            if decision is Decision.DUPLICATE:
                rows.event_log.append(
                    _log_row(
                        message,
                        fields,
                        tenant,
                        "duplicate",
                        product,
                        payload,
                        event_time,
                        processed_at,
                    )
                )
                counts["duplicate"] = counts.get("duplicate", 0) + 1
                continue
            if decision is Decision.NEW:
                first_index[key] = current
            rows.event_log.append(
                _log_row(
                    message,
                    fields,
                    tenant,
                    "first_copy",
                    product,
                    payload,
                    event_time,
                    processed_at,
                )
            )
            rows.usage_events.append(
                _usage_row(
                    message, fields, tenant, product, self.billing_run, event_time, processed_at
                )
            )
            if product is None:
                unmapped += 1
            for entry in assessment.entries:
                if isinstance(entry, MeterEntry):
                    rows.meter_entries.append(
                        _entry_row(entry, fields, tenant, product, self.billing_run, event_time)
                    )
                else:
                    metrics.METER_PROBLEMS.labels(product=product, metric=entry.metric_id).inc()
            counts["first_copy"] = counts.get("first_copy", 0) + 1
        result.new_first_copies = [
            (first_index[key], key.encode(), first.encode()) for key, first in dedup.updates.items()
        ]
        in_flight.update(dedup.updates)
        result.settles = tuple(dedup.updates)
        result.decisions = counts
        _count(len(messages), counts, reasons, unmapped)
        return result


def _count(consumed: int, counts: dict[str, int], reasons: dict[str, int], unmapped: int) -> None:
    """Prometheus counters, once per batch (per event they cost more than deciding it)."""
    metrics.EVENTS_IN.inc(consumed)
    if dead := counts.get("dead_letter"):
        metrics.DEAD_LETTERS.inc(dead)
    for decision in ("first_copy", "duplicate"):
        if count := counts.get(decision):
            metrics.FATES.labels(decision=decision).inc(count)
    for reason, count in reasons.items():
        metrics.QUARANTINED.labels(reason=reason).inc(count)
    if unmapped:
        metrics.UNMAPPED.inc(unmapped)


def _dead_letter(message: ConsumedMessage, reason: str) -> OutRecord:
    return OutRecord(
        key=None,
        value=message.value or b"",
        headers=[
            ("reason", f"stream worker: {reason}".encode()),
            ("source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
        ],
    )


# Rows are value tuples in the column order of sink.COLUMNS (no dict per row: hot path).


def _log_row(
    message: ConsumedMessage,
    fields: EventFields,
    tenant: str | None,
    disposition: str,
    product: str | None,
    payload: str,
    event_time: str,
    processed_at: str,
    reason: str = "",
    detail: str = "",
) -> tuple[Any, ...]:
    return (
        message.topic,
        message.partition,
        message.offset,
        fields["idempotency_key"],
        fields["integration_id"],
        fields["gateway"],
        fields["tenant_headers"],
        tenant,
        event_time,
        disposition,
        reason,
        detail,
        product,
        payload,
        processed_at,
    )


def _usage_row(
    message: ConsumedMessage,
    fields: EventFields,
    tenant: str,
    product: str | None,
    billing_run: str,
    event_time: str,
    processed_at: str,
) -> tuple[Any, ...]:
    headers = fields["tenant_headers"]
    return (
        tenant,
        fields["idempotency_key"],
        fields["gateway"],
        fields["integration_id"],
        headers[0] if headers else None,
        event_time,
        fields["api"],
        fields["route"],
        fields["method"],
        fields["status"],
        fields["request_bytes"],
        fields["response_bytes"],
        fields["latency_ms"],
        fields["consumer"],
        fields["attributes"],
        product,
        "unmapped" if product is None else "billed",
        billing_run,
        message.partition,
        message.offset,
        processed_at,
    )


def _entry_row(
    entry: MeterEntry,
    fields: EventFields,
    tenant: str,
    product: str | None,
    billing_run: str,
    event_time: str,
) -> tuple[Any, ...]:
    value = entry.value
    return (
        billing_run,
        tenant,
        product,
        entry.metric_id,
        entry.aggregation,
        fields["idempotency_key"],
        event_time,
        None if value is None else format(value, "f"),
        entry.distinct_value,
        _decimal_text(entry.divide_by),
    )


@functools.lru_cache(maxsize=256)
def _decimal_text(value: Decimal) -> str:
    """Metric divisors are a handful of constants: format each once."""
    return format(value, "f")


def _ch_time(moment: datetime) -> str:
    """UTC time as ClickHouse reads it fastest. Rows are encoded once per event here rather
    than through the store codec's per-value callback (the worker's hot path)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "microseconds")[:26]  # without the "+00:00"
