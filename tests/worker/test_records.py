"""Hostile records in the batch step: every field checked against what its rows need, a bad
record dead-lettered with a precise reason, never an exception out of the batch step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events import CanonicalEvent
from pipeline.events.codec import encode_event
from pipeline.events.errors import MalformedEvent
from pipeline.metering.dedup import dedup_key
from pipeline.metering.meters import fits_meter_value as amount_fits
from pipeline.worker.batch import BatchProcessor, ConsumedMessage
from pipeline.worker.records import decode_record
from tests.support.builders import example_catalog, make_event

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
WINDOW_MS = 35 * 24 * 3600 * 1000


def good(**overrides: Any) -> dict[str, Any]:
    """A valid record as the edge encodes it, as a JSON-ready dict."""
    fields: dict[str, Any] = orjson.loads(encode_event(CanonicalEvent.model_validate(make_event())))
    fields.update(overrides)
    return fields


#: stands for a JSON integer beyond 64 bits (orjson cannot write one; it reads it as a float)
BIG = "<31 digits>"


def raw(**overrides: Any) -> bytes:
    return orjson.dumps(good(**overrides)).replace(f'"{BIG}"'.encode(), b"1" + b"0" * 30)


CATALOG = example_catalog()


def process(*values: bytes) -> Any:
    processor = BatchProcessor(CATALOG, clock=lambda: NOW, window_ms=WINDOW_MS)
    messages = [ConsumedMessage("usage.events", 0, n, v) for n, v in enumerate(values)]
    return processor.process(messages, lambda _p, _k: None)


HOSTILE = [
    ({"tenant_headers": [1]}, "tenant_headers[0]: expected `str`, got `int` (its column: Array("),
    ({"tenant_headers": "acme"}, "tenant_headers: expected `array`, got `str`"),
    ({"tenant_headers": {"a": "b"}}, "tenant_headers: expected `array`, got `object`"),
    ({"status": "abc"}, "status: expected `int | null`, got `str` (its column: Nullable(UInt16))"),
    ({"status": 70000}, "status: expected `int` <= 65535 (its column: Nullable(UInt16))"),
    ({"status": -1}, "status: expected `int` >= 0"),
    ({"status": True}, "status: expected `int | null`, got `bool`"),
    ({"status": 200.5}, "status: expected `int | null`, got `float`"),
    ({"request_bytes": -5}, "request_bytes: expected `int` >= 0 (its column: Nullable(UInt64))"),
    ({"response_bytes": BIG}, "response_bytes: 1" + "0" * 30 + " does not fit UInt64"),
    ({"latency_ms": "12"}, "latency_ms: expected `int | null`, got `str`"),
    ({"idempotency_key": 7}, "idempotency_key: expected `str`, got `int`"),
    ({"gateway": None}, "gateway: expected `str`, got `null`"),
    ({"integration_id": ["kong-prod"]}, "integration_id: expected `str`, got `array`"),
    ({"consumer": 12}, "consumer: expected `str | null`, got `int`"),
    ({"route": {"x": 1}}, "route: expected `str | null`, got `object`"),
    ({"attributes": {"tokens": 12}}, "attributes[]: expected `str`, got `int` (its column: Map("),
    ({"attributes": ["tokens"]}, "attributes: expected `object`, got `array`"),
    ({"timestamp": 1767225600000}, "timestamp: expected `str`, got `int`"),
    ({"timestamp": "yesterday"}, "timestamp 'yesterday' is not ISO-8601"),
    ({"timestamp": "2026-01-15T10:00:00"}, "timestamp '2026-01-15T10:00:00' has no UTC offset"),
    ({"timestamp": "1899-12-31T23:59:59.000000Z"}, "outside ClickHouse's DateTime64 range"),
    ({"timestamp": "2300-01-01T00:00:00.000000Z"}, "outside ClickHouse's DateTime64 range"),
]


@pytest.mark.parametrize(("overrides", "reason"), HOSTILE)
def test_a_hostile_field_is_dead_lettered_with_its_reason(
    overrides: dict[str, Any], reason: str
) -> None:
    value = raw(**{"idempotency_key": "bad", **overrides})
    result = process(raw(idempotency_key="before"), value, raw(idempotency_key="after"))
    [letter] = result.dead_letters
    headers = dict(letter.headers)
    assert reason in headers["reason"].decode()
    assert headers["kind"] == b"record"
    assert headers["source"] == b"usage.events/0/1"
    assert letter.value == value
    # the good records around it are decided as usual; the bad one leaves no row anywhere
    assert [r["source_offset"] for r in result.sink_batch.dicts("event_log")] == [0, 2]
    assert result.decisions == {"first_copy": 2, "dead_letter": 1}


def test_records_that_are_not_event_objects_are_dead_lettered() -> None:
    for value, reason in [
        (b"[1, 2]", "Expected `object`, got `array`"),
        (b"{not json", "invalid JSON"),
        (
            orjson.dumps({k: v for k, v in good().items() if k != "api"}),
            "missing required field `api`",
        ),
        (raw(extra="\u00e9").replace("\u00e9".encode(), b"\xff"), "the record is not UTF-8"),
    ]:
        [letter] = process(value).dead_letters
        assert reason in dict(letter.headers)["reason"].decode()


def test_the_edges_own_records_and_extremes_that_fit_pass() -> None:
    fields, stamp = decode_record(
        raw(status=65535, request_bytes=2**64 - 1, tenant_headers=[], attributes={"a": "1"})
    )
    assert fields["tenant_headers"] == ()
    assert fields["timestamp"].tzinfo is not None and stamp.endswith("Z")
    decode_record(raw(timestamp="2299-12-31T23:59:59.999999Z", status=None, consumer=None))


@pytest.mark.parametrize(
    ("tokens", "fits"),
    [
        ("1" * 29, True),
        ("1" * 30, False),
        ("1" * 33, False),
        ("0.123456789", True),
        ("0.1234567891", False),
        ("1.5000000000", True),  # trailing zeros do not count
        ("00000000000000000000000000000001", True),
    ],
)
def test_a_meter_value_that_does_not_fit_decimal_38_9_dead_letters_the_event(
    tokens: str, fits: bool
) -> None:
    """ai-completions sums attributes.tokens (rating_rules/products.yaml)."""
    p = BatchProcessor(CATALOG, clock=lambda: NOW, window_ms=WINDOW_MS)
    llm = {"api": "llm-gateway", "idempotency_key": "k"}
    result = p.process(
        [
            ConsumedMessage("usage.events", 0, 0, raw(**llm, attributes={"tokens": tokens})),
            # a later copy of the same key, with a value that fits
            ConsumedMessage("usage.events", 0, 1, raw(**llm, attributes={"tokens": "12"})),
        ],
        lambda _p, _k: None,
    )
    log = [(r["source_offset"], r["disposition"]) for r in result.sink_batch.dicts("event_log")]
    if fits:
        assert log == [(0, "first_copy"), (1, "duplicate")]
        assert not result.dead_letters
        return
    [letter] = result.dead_letters
    assert "metric ai-completions/tokens does not fit meter_entries.value Decimal(38, 9)" in (
        dict(letter.headers)["reason"].decode()
    )
    # the refused copy was never the first copy: the later copy of its key is, and is billed
    assert log == [(1, "first_copy")]
    assert [i for i, _k, _v in result.new_first_copies] == [1]
    assert dedup_key("acme", "k") in p.in_flight


def test_amount_fits_is_exact_at_the_bounds() -> None:
    assert amount_fits("9" * 29 + "." + "9" * 9)
    assert not amount_fits("1" + "0" * 29)
    assert amount_fits("-" + "9" * 29)
    assert not amount_fits("0." + "0" * 9 + "1")


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(good())), _JSON)
def test_any_value_in_any_field_never_raises_out_of_the_batch_step(name: str, value: Any) -> None:
    result = process(raw(**{name: value}))
    assert len(result.dead_letters) + len(result.sink_batch.event_log) == 1


@given(st.binary(max_size=64))
def test_any_bytes_never_raise_out_of_the_batch_step(value: bytes) -> None:
    result = process(value)
    assert len(result.dead_letters) + len(result.sink_batch.event_log) == 1


def test_decode_record_raises_only_malformed_event() -> None:
    with pytest.raises(MalformedEvent, match="not a valid canonical event"):
        decode_record(raw(status="x"))
