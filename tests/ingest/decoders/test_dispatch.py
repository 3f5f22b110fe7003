"""The dispatcher in pipeline/ingest/decoders/__init__.py."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.devstack import samples
from pipeline.events import GATEWAYS
from pipeline.ingest.decoders import DECODERS, decode_items

from .support import context

CALL = samples.SampleCall(
    idempotency_key="req-1",
    timestamp=datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
    api="payments-svc",
    route="/v1/payments",
    tenant="acme",
)


def test_mixed_batch_keeps_positions_and_raw_bytes() -> None:
    items: list[Any] = [samples.kong_event(CALL), samples.canonical_event(CALL), "garbage", None]
    results = decode_items(items, context("kong"))
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.accepted for r in results] == [True, True, False, False]
    assert [orjson.loads(r.raw) for r in results] == items
    assert results[2].error == (
        "kong: event must be a non-empty Kong log serializer object, got 'garbage'"
    )


def test_a_decoder_bug_becomes_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(item: Any, ctx: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setitem(DECODERS, "kong", broken)
    results = decode_items([{"a": 1}, samples.canonical_event(CALL)], context("kong"))
    assert results[0].error == "kong: internal decoder error (KeyError: 'surprise')"
    assert results[0].raw == b'{"a":1}'
    assert results[1].accepted  # canonical items do not go through the gateway decoder


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["-", "1768471200000", "2026-01-15T10:00:00Z", "DATA_MESSAGE", "GET"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "request",
                    "id",
                    "started_at",
                    "response",
                    "status",
                    "headers",
                    "messageid",
                    "client.received.start.timestamp",
                    "awslogs",
                    "data",
                    "messageType",
                    "logEvents",
                    "message",
                    "records",
                    "properties",
                    "TimeGenerated",
                    "CorrelationId",
                    "Url",
                    "Message ID",
                    "Timestamp",
                    "idempotency_key",
                    "timestamp",
                    "attributes",
                    "size",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(json_values, max_size=4), gateway=st.sampled_from(GATEWAYS))
def test_any_json_never_raises_and_every_result_is_event_or_error(
    items: list[Any], gateway: Any
) -> None:
    results = decode_items(items, context(gateway))
    for result in results:
        assert 0 <= result.index < len(items)
        assert (result.event is None) != (result.error is None)
        assert isinstance(result.raw, bytes)
        if result.error is not None:
            assert result.error.startswith((f"{gateway}: ", "canonical: "))
            assert "internal decoder error" not in result.error, result.error
            assert "internal error" not in result.error, result.error
