from datetime import UTC, datetime

import pytest

from pipeline.events import CanonicalEvent, encode_event
from pipeline.ingest.body import item_bytes
from pipeline.ingest.decoders import DecodedItem, DecoderContext, build_event
from pipeline.ingest.decoders.context import decided_item
from pipeline.ingest.errors import EventRejected, InvalidField

TIMESTAMP = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def test_context_defaults() -> None:
    ctx = DecoderContext(integration_id="aws-prod", gateway="aws")
    assert dict(ctx.api_key_tenants) == {}
    assert ctx.budget.limit == ctx.budget.remaining == 8 * 1024 * 1024
    assert DecoderContext("k", "kong").budget is not ctx.budget  # each context its own


def test_build_event_forces_the_integration_and_converts_model_errors() -> None:
    ctx = DecoderContext(integration_id="kong-prod", gateway="kong")
    event = build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP)
    assert (event.gateway, event.integration_id) == ("kong", "kong-prod")
    with pytest.raises(InvalidField) as caught:
        build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP, latency_ms=-5)
    assert str(caught.value) == (
        "event is invalid: latency_ms: Input should be greater than or equal to 0"
    )


def test_decoded_item_holds_exactly_one_outcome() -> None:
    event = CanonicalEvent(
        idempotency_key="k", gateway="kong", integration_id="i", timestamp=TIMESTAMP
    )
    with pytest.raises(ValueError, match="exactly one"):
        DecodedItem(index=0, raw=b"{}")
    with pytest.raises(ValueError, match="exactly one"):
        DecodedItem(index=0, raw=b"{}", event=event, error="x")
    accepted = DecodedItem(index=0, raw=b"{}", event=event)
    with pytest.raises(ValueError, match="accepted"):
        accepted.rejection()


def test_rejection_carries_its_facts() -> None:
    rejected = DecodedItem(index=3, sub_index=1, raw=b"{}", error="aws: boom")
    error = rejected.rejection()
    assert isinstance(error, EventRejected)
    assert (error.index, error.sub_index, error.reason) == (3, 1, "aws: boom")
    assert error.fields == {"index": 3, "reason": "aws: boom", "sub_index": 1}
    assert str(error) == "event 3.1 rejected: aws: boom"
    assert rejected.error_entry() == {"index": 3, "sub_index": 1, "error": "aws: boom"}


def test_build_event_refuses_integers_no_record_holds_with_its_own_reason() -> None:
    ctx = DecoderContext(integration_id="kong-prod", gateway="kong")
    with pytest.raises(InvalidField) as caught:
        build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP, response_bytes=2**64)
    assert str(caught.value) == (
        "event cannot be encoded for Kafka (response_bytes is larger than "
        "18446744073709551615, the largest whole number an event record holds)"
    )
    largest = build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP, latency_ms=2**64 - 1)
    assert largest.latency_ms == 2**64 - 1


def test_build_event_lets_the_model_normalise_values_not_in_final_form() -> None:
    ctx = DecoderContext(integration_id="kong-prod", gateway="kong")
    record = build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP, method=" post ")
    assert record.method == "POST"
    assert record.value == encode_event(record.to_event())
    with pytest.raises(InvalidField, match="tenant: Extra inputs are not permitted"):
        build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP, tenant="acme")


def test_raw_bytes_are_serialised_only_when_asked_for() -> None:
    item = {"b": [1, 2], "a": None}
    rejected = decided_item(2, None, None, "kong: bad", item)
    assert rejected.raw == item_bytes(item) == b'{"b":[1,2],"a":null}'
    assert rejected.error_entry() == {"index": 2, "error": "kong: bad"}
    ctx = DecoderContext(integration_id="kong-prod", gateway="kong")
    record = build_event(ctx, idempotency_key="k", timestamp=TIMESTAMP)
    accepted = decided_item(0, 1, record, None, item)
    assert accepted.accepted and accepted.record is record and accepted.sub_index == 1
    assert accepted.event == record.to_event()
    assert accepted.raw == item_bytes(item)
