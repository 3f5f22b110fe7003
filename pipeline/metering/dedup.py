"""Dedup by (canonical tenant, idempotency key) with exact handling of Kafka redelivery.

The worker consumes each partition in order. For every event that has a canonical tenant it
looks up the *first copy* of its dedup key (partition and offset of the message that won) in
its durable state and :func:`classify` decides:

* ``NEW``: no first copy: this message wins.
* ``REDELIVERY``: the first copy *is this message* (same partition and offset): Kafka
  delivered it again after a crash or rebalance, before its offset was committed. It is
  processed again exactly like ``NEW`` (all writes are idempotent by key), never counted as a
  duplicate. This is what OpenMeter #5118 got wrong (contract §11).
* ``DUPLICATE``: another message won; this copy is counted and not billed.

State is written only *after* the batch's output is durably written: if the worker dies in
between, the batch is redelivered and decided again from the old state, with the same result.
:class:`BatchDedup` keeps the batch's pending first copies so that two copies inside one batch
are decided correctly (the first one wins) before the state is updated.

Window: a first copy older than the dedup window (by the time it was *seen*, not by the event
time, so that a plugin spilling to disk for days is still deduplicated) is treated as absent;
the idempotent-by-key ClickHouse table then keeps billing exact for such late copies.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, NamedTuple

from pipeline.errors import PipelineError

DAY_MS: Final = 86_400_000
DEFAULT_WINDOW_MS: Final = 35 * DAY_MS


class Decision(StrEnum):
    """What to do with one consumed message. Values are stable (metrics labels, logs)."""

    NEW = "new"
    REDELIVERY = "redelivery"
    DUPLICATE = "duplicate"


class DedupStateCorrupt(PipelineError):
    """Bytes in the dedup state store are not an encoded :class:`FirstCopy`."""


def dedup_key(tenant_id: str, idempotency_key: str) -> str:
    """One string for (tenant, key): ``<len(tenant)>:<tenant>:<key>``.

    The length prefix makes it unambiguous whatever characters the tenant or the key contain,
    so a key of one tenant can never collide with another tenant's key.
    """
    return f"{len(tenant_id)}:{tenant_id}:{idempotency_key}"


def split_dedup_key(key: str) -> tuple[str, str]:
    """(tenant id, idempotency key) back from :func:`dedup_key` (for logs and tools)."""
    length_text, sep, rest = key.partition(":")
    if not sep or not length_text.isdigit() or rest[int(length_text) : int(length_text) + 1] != ":":
        raise DedupStateCorrupt(f"{key!r} is not a dedup key made by dedup_key()", key=key)
    length = int(length_text)
    return rest[:length], rest[length + 1 :]


_FORMAT_VERSION: Final = 1
_RECORD: Final = struct.Struct(">BIqqq")  # version, partition, offset, event ms, seen-at ms


class FirstCopy(NamedTuple):
    """The message that won a dedup key, as stored in the worker's state table (immutable)."""

    partition: int
    offset: int
    event_ms: int  # the event's timestamp, epoch milliseconds
    seen_at_ms: int  # when the worker first processed it, epoch milliseconds

    def encode(self) -> bytes:
        """29 bytes: format version, then the four numbers big-endian."""
        return _RECORD.pack(
            _FORMAT_VERSION, self.partition, self.offset, self.event_ms, self.seen_at_ms
        )

    @classmethod
    def decode(cls, data: bytes) -> FirstCopy:
        if len(data) != _RECORD.size or data[0] != _FORMAT_VERSION:
            raise DedupStateCorrupt(
                f"dedup state value is not a FirstCopy record (expected {_RECORD.size} bytes "
                f"starting with version {_FORMAT_VERSION}, got {len(data)} bytes: {data[:8]!r})",
                length=len(data),
            )
        _, partition, offset, event_ms, seen_at_ms = _RECORD.unpack(data)
        return cls(partition, offset, event_ms, seen_at_ms)


def classify(first: FirstCopy | None, partition: int, offset: int) -> Decision:
    """NEW, REDELIVERY or DUPLICATE for the message at (partition, offset); see module doc."""
    if first is None:
        return Decision.NEW
    if first.partition == partition and first.offset == offset:
        return Decision.REDELIVERY
    return Decision.DUPLICATE


def is_expired(first: FirstCopy, now_ms: int, window_ms: int) -> bool:
    """Whether ``first`` was seen more than ``window_ms`` before ``now_ms`` (then: absent)."""
    return now_ms - first.seen_at_ms > window_ms


#: tuple.__new__ builds a NamedTuple without its Python-level __new__ (once per new event).
_new = tuple.__new__

#: Reads the durable dedup state: dedup key -> the stored first copy, or None.
Lookup = Callable[[str], FirstCopy | None]


class BatchDedup:
    """Decides the messages of one batch in order, on top of the stored state.

    ``lookup`` reads the durable state (key -> FirstCopy or None). After the batch's output
    has been written, store :attr:`updates` (only then: see module doc). Use one instance per
    batch.
    """

    __slots__ = ("_lookup", "_now_ms", "_window_ms", "updates")

    def __init__(self, lookup: Lookup, now_ms: int, window_ms: int = DEFAULT_WINDOW_MS) -> None:
        self._lookup = lookup
        self._now_ms = now_ms
        self._window_ms = window_ms
        #: key -> first copy decided in this batch (NEW messages only); store after writing.
        self.updates: dict[str, FirstCopy] = {}

    def decide(self, key: str, partition: int, offset: int, event_ms: int) -> Decision:
        first = self.updates.get(key)
        if first is None:
            first = self._lookup(key)
            if first is not None and self._now_ms - first.seen_at_ms > self._window_ms:
                first = None
        if first is None:
            self.updates[key] = _new(FirstCopy, (partition, offset, event_ms, self._now_ms))
            return Decision.NEW
        if first.partition == partition and first.offset == offset:
            return Decision.REDELIVERY
        return Decision.DUPLICATE

    def decide_all(self, messages: Iterable[tuple[str, int, int, int]]) -> list[Decision]:
        """:meth:`decide` for each (key, partition, offset, event ms), in order."""
        decide = self.decide
        return [
            decide(key, partition, offset, event_ms)
            for key, partition, offset, event_ms in messages
        ]


def decide_batch(
    lookup: Lookup,
    messages: Iterable[tuple[str, int, int, int]],
    now_ms: int,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> tuple[list[Decision], dict[str, FirstCopy]]:
    """One-call form of :class:`BatchDedup`: (decisions in order, first copies to store)."""
    batch = BatchDedup(lookup, now_ms, window_ms)
    return batch.decide_all(messages), batch.updates


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def epoch_ms(timestamp: datetime) -> int:
    """A UTC-aware time as whole epoch milliseconds (sub-millisecond part dropped)."""
    return (timestamp - _EPOCH) // _MILLISECOND
