"""Dedup keys, first-copy records, decisions, and exactness under redelivery and crashes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import PipelineError
from pipeline.metering import (
    DEFAULT_WINDOW_MS,
    BatchDedup,
    Decision,
    DedupStateCorrupt,
    FirstCopy,
    classify,
    decide_batch,
    dedup_key,
    epoch_ms,
    is_expired,
    split_dedup_key,
)

NOW = 1_780_000_000_000
DAY = 86_400_000


def test_dedup_key_is_unambiguous_for_separators_in_tenant_or_key() -> None:
    assert dedup_key("a:b", "c") != dedup_key("a", "b:c")
    assert dedup_key("ab", "") != dedup_key("a", "b")
    assert dedup_key("acme", "req-1") == "4:acme:req-1"


@given(st.text(), st.text(), st.text(), st.text())
def test_dedup_key_is_injective(t1: str, k1: str, t2: str, k2: str) -> None:
    assert (dedup_key(t1, k1) == dedup_key(t2, k2)) == ((t1, k1) == (t2, k2))
    assert split_dedup_key(dedup_key(t1, k1)) == (t1, k1)


@pytest.mark.parametrize("bad", ["", "acme", "x:acme:k", "9:acme:k", "4:acmek", "-1::k"])
def test_split_dedup_key_rejects_other_text(bad: str) -> None:
    with pytest.raises(DedupStateCorrupt) as info:
        split_dedup_key(bad)
    assert isinstance(info.value, PipelineError)
    assert info.value.fields["key"] == bad


@given(
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
)
def test_first_copy_round_trips_in_29_bytes(p: int, o: int, e: int, s: int) -> None:
    first = FirstCopy(p, o, e, s)
    data = first.encode()
    assert len(data) == 29
    assert FirstCopy.decode(data) == first


@pytest.mark.parametrize("data", [b"", b"\x01" * 28, b"\x01" * 30, b"\x02" + bytes(28)])
def test_first_copy_decode_rejects_other_bytes(data: bytes) -> None:
    with pytest.raises(DedupStateCorrupt, match="not a FirstCopy record"):
        FirstCopy.decode(data)


def test_classify() -> None:
    first = FirstCopy(partition=3, offset=100, event_ms=1, seen_at_ms=2)
    assert classify(None, 3, 100) is Decision.NEW
    assert classify(first, 3, 100) is Decision.REDELIVERY
    assert classify(first, 3, 101) is Decision.DUPLICATE
    assert classify(first, 3, 99) is Decision.DUPLICATE
    assert classify(first, 4, 100) is Decision.DUPLICATE
    assert [d.value for d in Decision] == ["new", "redelivery", "duplicate"]


def test_is_expired_counts_from_first_seen() -> None:
    first = FirstCopy(0, 0, event_ms=0, seen_at_ms=NOW)
    assert not is_expired(first, NOW + DEFAULT_WINDOW_MS, DEFAULT_WINDOW_MS)
    assert is_expired(first, NOW + DEFAULT_WINDOW_MS + 1, DEFAULT_WINDOW_MS)
    assert DEFAULT_WINDOW_MS == 35 * DAY


def test_epoch_ms() -> None:
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 999_999, tzinfo=UTC)) == 1999
    moment = datetime(2026, 1, 15, 10, 0, 0, 123_456, tzinfo=UTC)
    assert epoch_ms(moment) == 1_768_471_200_123
    assert epoch_ms(moment + timedelta(microseconds=544)) == 1_768_471_200_124


def test_batch_first_copy_in_batch_wins_and_only_new_is_stored() -> None:
    stored = {"k-old": FirstCopy(0, 5, 10, NOW - DAY)}
    batch = BatchDedup(stored.get, NOW)
    decisions = batch.decide_all(
        [("k1", 0, 10, 1), ("k-old", 0, 11, 2), ("k1", 0, 12, 3), ("k2", 1, 7, 4), ("k1", 1, 8, 5)]
    )
    assert decisions == [
        Decision.NEW,
        Decision.DUPLICATE,
        Decision.DUPLICATE,
        Decision.NEW,
        Decision.DUPLICATE,
    ]
    assert batch.updates == {"k1": FirstCopy(0, 10, 1, NOW), "k2": FirstCopy(1, 7, 4, NOW)}
    assert stored == {"k-old": FirstCopy(0, 5, 10, NOW - DAY)}  # the caller stores later


def test_batch_redelivery_of_the_first_copy_is_processed_not_duplicated() -> None:
    stored = {"k": FirstCopy(2, 40, 1, NOW - 1000)}
    decisions, updates = decide_batch(stored.get, [("k", 2, 40, 1), ("k", 2, 41, 1)], NOW)
    assert decisions == [Decision.REDELIVERY, Decision.DUPLICATE]
    assert updates == {}


def test_batch_treats_expired_first_copy_as_absent() -> None:
    window = 10 * DAY
    stored = {"k": FirstCopy(0, 1, 1, NOW - window - 1), "fresh": FirstCopy(0, 2, 1, NOW - window)}
    decisions, updates = decide_batch(
        stored.get, [("k", 0, 90, 5), ("fresh", 0, 91, 5), ("k", 0, 92, 5)], NOW, window
    )
    assert decisions == [Decision.NEW, Decision.DUPLICATE, Decision.DUPLICATE]
    assert updates == {"k": FirstCopy(0, 90, 5, NOW)}


def test_tenants_never_suppress_each_other() -> None:
    decisions, _ = decide_batch(
        {}.get, [(dedup_key("acme", "r1"), 0, 1, 0), (dedup_key("globex", "r1"), 0, 2, 0)], NOW
    )
    assert decisions == [Decision.NEW, Decision.NEW]


# --- exactness under redelivery and crashes ---------------------------------------------------


@dataclass(frozen=True)
class Message:
    key: str
    partition: int
    offset: int


@st.composite
def logs(draw: st.DrawFn) -> list[Message]:
    """Copies of some keys on up to 3 partitions, any order, interleaved across partitions."""
    tenants = ("acme", "globex")
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(tenants), st.text(alphabet="ab:", min_size=1, max_size=3)),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    partitions = draw(st.integers(1, 3))
    per_partition: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for tenant, idem in keys:
        copies = draw(st.integers(1, 4))
        partition = draw(st.integers(0, partitions - 1))  # all copies of a key: one partition
        per_partition[partition] += [dedup_key(tenant, idem)] * copies
    queues: dict[int, list[Message]] = {}
    for partition, keys_here in per_partition.items():
        order = draw(st.permutations(keys_here))
        offset = draw(st.integers(0, 1000))
        queue = []
        for key in order:
            queue.append(Message(key, partition, offset))
            offset += draw(st.integers(1, 3))  # strictly increasing, gaps allowed
        queues[partition] = queue
    log: list[Message] = []
    while any(queues.values()):
        partition = draw(st.sampled_from([p for p, q in queues.items() if q]))
        log.append(queues[partition].pop(0))
    return log


Outcome = str  # "ok" | "uncommitted" (state stored, offsets not) | "crash" (state lost, rewind)


@settings(max_examples=300, deadline=None)
@given(logs(), st.data())
def test_exactly_one_winner_per_key_under_crashes_and_redelivery(
    log: list[Message], data: st.DataObject
) -> None:
    state: dict[str, FirstCopy] = {}
    committed = 0  # position in the log up to which offsets are committed
    position = 0
    final: dict[tuple[int, int], Decision] = {}  # (partition, offset) -> last decision
    crashes = 0
    now = NOW
    while position < len(log):
        size = data.draw(st.integers(1, 5), label="batch size")
        outcome: Outcome = data.draw(
            st.sampled_from(["ok", "uncommitted", "crash"] if crashes < 6 else ["ok"]),
            label="outcome",
        )
        batch = log[position : position + size]
        dedup = BatchDedup(state.get, now, window_ms=DEFAULT_WINDOW_MS)
        decisions = dedup.decide_all((m.key, m.partition, m.offset, 0) for m in batch)
        now += 1000
        for message, decision in zip(batch, decisions, strict=True):
            final[(message.partition, message.offset)] = decision
        if outcome == "crash":  # the output may have been written, but state updates are lost
            crashes += 1
            position = committed  # Kafka redelivers everything after the committed offsets
            continue
        state.update(dedup.updates)  # only after the batch's output is written
        position += len(batch)
        if outcome == "ok":
            committed = position
        elif data.draw(st.booleans(), label="crash after uncommitted batch") and crashes < 6:
            crashes += 1
            position = committed  # state kept, offsets not: REDELIVERY territory

    copies = Counter(m.key for m in log)
    winners: dict[str, list[Message]] = {}
    for message in log:
        if final[(message.partition, message.offset)] in (Decision.NEW, Decision.REDELIVERY):
            winners.setdefault(message.key, []).append(message)
    assert set(winners) == set(copies)
    for key, won in winners.items():
        assert len(won) == 1, f"{key} won {len(won)} times"
        lowest = min(m.offset for m in log if m.key == key)
        assert won[0].offset == lowest
        assert state[key] == FirstCopy(won[0].partition, won[0].offset, 0, state[key].seen_at_ms)
    duplicates = sum(1 for d in final.values() if d is Decision.DUPLICATE)
    assert duplicates == len(log) - len(copies)
