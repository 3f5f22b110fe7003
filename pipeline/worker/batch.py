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
from typing import NamedTuple

from pipeline.catalog import Catalog
from pipeline.errors import PipelineError
from pipeline.events import EventFields
from pipeline.events.errors import MalformedEvent
from pipeline.metering import Metering
from pipeline.metering.dedup import BatchDedup, Decision, FirstCopy, dedup_key, epoch_ms
from pipeline.metering.meters import METER_INTEGER_DIGITS, ONE, MeterEntry, fits_meter_value
from pipeline.metering.tenancy import TenantResolution
from pipeline.worker import metrics
from pipeline.worker.records import decode_record
from pipeline.worker.sink import SinkBatch

LIVE_RUN = "live"


class OffsetGap(PipelineError):
    """A partition's messages arrived with a hole: a message was skipped.

    Observed with Faust's stream on Apache Kafka 4.1 during a rebalance (contract §11): it handed
    over offsets 519 and 521 of one partition in one batch, 520 never, and committing 521 would
    have lost 520 for good. The worker now reads whole fetches from aiokafka itself, but the
    check stays as a guard: the events topic is neither compacted nor transactional, so its
    offsets are contiguous and any hole is a skip. The worker must not write or commit the
    batch and must restart from the last committed offset (exit code 75, see app.py).
    """


#: (partition of the message, dedup key bytes) -> stored FirstCopy bytes or None (the dedup state
#: is kept per partition of the events topic, beside its changelog partition)
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
    #: (partition, offset) of the consumed message it stands for (quarantine records: the
    #: worker drops the record of an event ClickHouse refused, which is dead-lettered instead)
    source: tuple[int, int] | None = None


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
        """Decide every message in order and build the batch's rows (the worker's hot path:
        one loop with the rows built inline, no dict or helper call per row)."""
        if self.check_offsets:
            self.check_contiguous(messages)
        now = self.clock()
        now_ms = epoch_ms(now)
        processed_at = _ch_time(now)
        billing_run = self.billing_run
        assess = self.metering.assess
        result = BatchResult()
        partition = 0

        in_flight = self.in_flight

        def read_state(key: str) -> FirstCopy | None:
            pending = in_flight.get(key)
            if pending is not None:
                return pending
            raw = lookup(partition, key.encode())
            return None if raw is None else FirstCopy.decode(raw)

        dedup = BatchDedup(read_state, now_ms, self.window_ms)
        decide = dedup.decide
        first_index: dict[str, int] = {}
        log_row = result.sink_batch.event_log.append
        usage_row = result.sink_batch.usage_events.append
        entry_rows = result.sink_batch.meter_entries
        entry_row = entry_rows.append
        last_offsets = result.last_offsets
        reasons: dict[str, int] = {}
        dead = quarantined = duplicates = first_copies = unmapped = 0
        for current, message in enumerate(messages):
            topic, partition, offset, value = message  # read_state reads `partition`
            last_offsets[partition] = offset
            try:
                if value is None:
                    raise MalformedEvent("record has no value")
                fields, stamp = decode_record(value)  # types and column ranges (records.py)
                payload = value.decode()  # also the bytes of fields the decoder skipped
            except MalformedEvent as exc:
                result.dead_letters.append(_dead_letter(message, str(exc)))
                dead += 1
                continue
            except UnicodeDecodeError as exc:
                result.dead_letters.append(
                    _dead_letter(message, f"the record is not UTF-8 ({exc})")
                )
                dead += 1
                continue
            assessment = assess(fields)
            tenant = assessment.tenant.tenant_id
            event_time = _event_time(stamp, fields["timestamp"])
            key_text = fields["idempotency_key"]
            integration = fields["integration_id"]
            gateway = fields["gateway"]
            headers = fields["tenant_headers"]
            if tenant is None:
                reason = self._quarantine(result, message, fields, assessment.tenant)
                log_row(
                    (topic, partition, offset, key_text, integration, gateway, headers, None,
                     event_time, "quarantined", reason, assessment.tenant.detail, None,
                     payload, processed_at)
                )  # fmt: skip
                reasons[reason] = reasons.get(reason, 0) + 1
                quarantined += 1
                continue
            key = dedup_key(tenant, key_text)
            decision = decide(key, partition, offset, epoch_ms(fields["timestamp"]))
            product = assessment.product_id
            if decision is Decision.DUPLICATE:
                log_row(
                    (topic, partition, offset, key_text, integration, gateway, headers, tenant,
                     event_time, "duplicate", "", "", product, payload, processed_at)
                )  # fmt: skip
                duplicates += 1
                continue
            # Meter entries go first, straight into the batch: a value that does not fit
            # Decimal(38, 9) takes the event's entries back out and dead-letters the event, as
            # if it had never been decided (a later copy of its key may be the first copy).
            start = len(entry_rows)
            misfit: MeterEntry | None = None
            problems = False
            for entry in assessment.entries:
                if type(entry) is MeterEntry:
                    amount = entry.value
                    text = None if amount is None else _amount_text(amount)
                    # An integer of up to 29 digits always fits: no call for those (~0.15 us
                    # per sum entry on the bench records, all integers).
                    if (
                        text is not None
                        and (len(text) > METER_INTEGER_DIGITS or "." in text)
                        and not fits_meter_value(text)
                    ):
                        misfit = entry
                        break
                    entry_row(
                        (billing_run, tenant, product, entry.metric_id, entry.aggregation,
                         key_text, event_time, text, entry.distinct_value,
                         _divisor_text(entry.divide_by))
                    )  # fmt: skip
                else:
                    problems = True
            if misfit is not None:
                del entry_rows[start:]
                if decision is Decision.NEW:
                    del dedup.updates[key]
                result.dead_letters.append(_dead_letter(message, _misfit(product, misfit)))
                dead += 1
                continue
            if decision is Decision.NEW:
                first_index[key] = current
            # Rows are value tuples in the column order of sink.COLUMNS.
            log_row(
                (topic, partition, offset, key_text, integration, gateway, headers, tenant,
                 event_time, "first_copy", "", "", product, payload, processed_at)
            )  # fmt: skip
            usage_row(
                (tenant, key_text, gateway, integration, headers[0] if headers else None,
                 event_time, fields["api"], fields["route"], fields["method"], fields["status"],
                 fields["request_bytes"], fields["response_bytes"], fields["latency_ms"],
                 fields["consumer"], fields["attributes"], product,
                 "unmapped" if product is None else "billed", billing_run, partition, offset,
                 processed_at)
            )  # fmt: skip
            if product is None:
                unmapped += 1
            if problems:
                for entry in assessment.entries:
                    if type(entry) is not MeterEntry:
                        metrics.METER_PROBLEMS.labels(product=product, metric=entry.metric_id).inc()
            first_copies += 1
        result.new_first_copies = [
            (first_index[key], key.encode(), first.encode()) for key, first in dedup.updates.items()
        ]
        in_flight.update(dedup.updates)
        result.settles = tuple(dedup.updates)
        counts = {
            "dead_letter": dead,
            "quarantined": quarantined,
            "duplicate": duplicates,
            "first_copy": first_copies,
        }
        result.decisions = {decision: count for decision, count in counts.items() if count}
        _count(len(messages), result.decisions, reasons, unmapped)
        return result

    @staticmethod
    def _quarantine(
        result: BatchResult,
        message: ConsumedMessage,
        fields: EventFields,
        resolution: TenantResolution,
    ) -> str:
        """Queue the quarantine topic's record; returns the reason code."""
        reason = str(resolution.reason)
        result.quarantined.append(
            OutRecord(
                key=fields["idempotency_key"].encode(),
                value=message.value or b"",
                headers=[
                    ("reason", reason.encode()),
                    ("detail", resolution.detail.encode()),
                    ("integration", fields["integration_id"].encode()),
                ],
                source=(message.partition, message.offset),
            )
        )
        return reason


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
    """A record the batch step refused (not an event, or a value its rows cannot hold)."""
    return dead_letter(message, "record", f"stream worker: {reason}")


def dead_letter(
    message: ConsumedMessage, kind: str, reason: str, extra: Sequence[tuple[str, bytes]] = ()
) -> OutRecord:
    """The dead-letter record of a consumed message: its value as it was, headers ``kind``
    (``record``: refused by the batch step; ``poison``: refused by ClickHouse), ``reason``
    (cut to 1000 characters: it may quote the input) and ``source`` (topic/partition/offset)."""
    return OutRecord(
        key=None,
        value=message.value or b"",
        headers=[
            ("kind", kind.encode()),
            ("reason", _bounded(reason).encode()),
            ("source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
            *extra,
        ],
    )


def _bounded(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _misfit(product: str | None, entry: MeterEntry) -> str:
    return (
        f"the value {_amount_text(entry.value or ONE)} of metric {product}/{entry.metric_id} "
        "does not fit meter_entries.value Decimal(38, 9) (at most 29 integer and 9 "
        "fractional digits)"
    )


def _amount_text(value: Decimal) -> str:
    """A decimal as ClickHouse parses it exactly (plain digits, never an exponent)."""
    return "1" if value is ONE else format(value, "f")  # every count entry shares ONE


@functools.lru_cache(maxsize=256)
def _divisor_text(value: Decimal) -> str:
    """Metric divisors are a handful of constants: format each once."""
    return format(value, "f")


def _event_time(stamp: str, moment: datetime) -> str:
    """The event time for ClickHouse, cut from the record's own text when it has the edge's
    form ``2026-01-15T10:00:00.123456Z`` (formatting the datetime costs ~10x more)."""
    if len(stamp) == 27 and stamp[26] == "Z" and stamp[10] == "T" and stamp[19] == ".":
        return f"{stamp[:10]} {stamp[11:26]}"
    return _ch_time(moment)


def _ch_time(moment: datetime) -> str:
    """UTC time as ClickHouse reads it fastest. Rows are encoded once per event here rather
    than through the store codec's per-value callback (the worker's hot path)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "microseconds")[:26]  # without the "+00:00"
