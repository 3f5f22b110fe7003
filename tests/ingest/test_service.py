"""IngestService without HTTP or Kafka: auth, bodies, per-event rejections, dead letters."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lz4.frame
import orjson
import pytest

from pipeline.catalog import Catalog, Integration, load_catalog
from pipeline.devstack.samples import (
    SampleCall,
    aws_envelope,
    canonical_event,
    encode_batch,
    kong_event,
    native_batch,
)
from pipeline.events import GATEWAYS, Gateway, decode_event
from pipeline.ingest.auth import Unauthenticated
from pipeline.ingest.body import item_bytes
from pipeline.ingest.decoders import DecoderContext, decode_items
from pipeline.ingest.errors import (
    BatchTooLarge,
    BodyTooLarge,
    UndecodableBody,
    UnsupportedEncoding,
)
from pipeline.ingest.publisher import OutgoingRecord, PublishFailed
from pipeline.ingest.service import (
    MAX_ERRORS_LISTED,
    MAX_REASON_CHARS,
    IngestLimits,
    IngestResult,
    IngestService,
    IngestTopics,
)

REPO_RULES = Path(__file__).resolve().parents[2] / "rating_rules"
RECEIVED = datetime(2026, 3, 1, 12, 30, 0, 123456, tzinfo=UTC)
TOPICS = IngestTopics(events="t.events", dead_letters="t.dead")
LIMITS = IngestLimits(max_body_bytes=256 * 1024, max_decompressed_bytes=1024 * 1024)
KEYS: dict[Gateway, str] = {gateway: f"dev-{gateway}-prod-key" for gateway in GATEWAYS}


class RecordingPublisher:
    """A publisher that acks at once (or fails on demand) and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[list[OutgoingRecord]] = []
        self.failure: PublishFailed | None = None
        self.ready = True

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        if self.failure is not None:
            raise self.failure
        self.calls.append(list(records))

    async def connected(self) -> bool:
        return self.ready

    @property
    def records(self) -> list[OutgoingRecord]:
        return [record for call in self.calls for record in call]

    def on(self, topic: str) -> list[OutgoingRecord]:
        return [record for record in self.records if record.topic == topic]


def dev_catalog() -> Catalog:
    return load_catalog(REPO_RULES)


def make_service(
    publisher: RecordingPublisher | None = None, limits: IngestLimits = LIMITS
) -> tuple[IngestService, RecordingPublisher]:
    publisher = publisher or RecordingPublisher()
    service = IngestService(dev_catalog(), publisher, TOPICS, limits, clock=lambda: RECEIVED)
    return service, publisher


def calls(n: int, prefix: str = "req") -> list[SampleCall]:
    start = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)
    return [
        SampleCall(
            idempotency_key=f"{prefix}-{i}",
            timestamp=start + timedelta(seconds=i),
            api="payments-svc",
            route="/v1/payments",
            method="POST",
            status=201,
            request_bytes=120 + i,
            response_bytes=900,
            latency_ms=15,
            consumer="shop-app",
            tenant="acme",
        )
        for i in range(n)
    ]


def ingest(service: IngestService, gateway: Gateway, body: bytes, encoding: str | None) -> Any:
    integration = service.authenticate(f"Bearer {KEYS[gateway]}")
    return asyncio.run(service.ingest(integration, body, encoding))


def headers_of(record: OutgoingRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dev-kong-prod-key", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer two words", "malformed"),
        ("Bearer caf\u00e9", "malformed"),
        ("Bearer \udcff", "malformed"),
        ("Bearer dev-kong-prod-kez", "unknown"),
    ],
)
def test_missing_malformed_or_unknown_keys_are_unauthenticated_without_details(
    header: str | None, reason: str
) -> None:
    service, _ = make_service()
    with pytest.raises(Unauthenticated) as refused:
        service.authenticate(header)
    assert refused.value.reason == reason
    assert str(refused.value) == "unauthorized"


def test_each_dev_key_authenticates_its_integration() -> None:
    service, _ = make_service()
    for gateway, key in KEYS.items():
        integration = service.authenticate(f"bearer  {key} ")
        assert (integration.id, integration.gateway) == (f"{gateway}-prod", gateway)


# --- accepted batches ------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_native_batch_becomes_event_records_keyed_by_idempotency_key(gateway: Gateway) -> None:
    service, publisher = make_service()
    batch = native_batch(gateway, calls(5, prefix=gateway))
    result = ingest(service, gateway, encode_batch(batch, "lz4"), "lz4")

    assert result == IngestResult(
        f"{gateway}-prod", 5, 0, [], result.decode_s, result.publish_s, fast_path=True
    )
    assert result.response() == {"accepted": 5, "rejected": 0, "errors": []}
    assert len(publisher.calls) == 1  # one publish (one wait for acks) per request
    expected = decode_items(batch, DecoderContext(f"{gateway}-prod", gateway, {}))
    events = publisher.on(TOPICS.events)
    assert [decode_event(r.value) for r in events] == [item.event for item in expected]
    assert [r.key for r in events] == [f"{gateway}-{i}".encode() for i in range(5)]
    assert all(r.headers == () for r in events)


def test_gzip_identity_and_ndjson_bodies_are_accepted() -> None:
    service, publisher = make_service()
    items = native_batch("kong", calls(3))
    ndjson = b"\n".join(orjson.dumps(item) for item in items)
    for body, encoding in (
        (gzip.compress(orjson.dumps(items)), "gzip"),
        (orjson.dumps(items), None),
        (ndjson, "identity"),
        (lz4.frame.compress(ndjson), "LZ4"),
    ):
        assert ingest(service, "kong", body, encoding).accepted == 3
    assert len(publisher.on(TOPICS.events)) == 12


def test_canonical_event_is_accepted_for_any_gateway_but_keeps_the_integrations_gateway() -> None:
    service, publisher = make_service()
    event = canonical_event(calls(1)[0]) | {"gateway": "apigee", "integration_id": "apigee-prod"}
    result = ingest(service, "kong", orjson.dumps([event]), None)
    assert result.accepted == 1
    stored = decode_event(publisher.on(TOPICS.events)[0].value)
    assert (stored.gateway, stored.integration_id) == ("kong", "kong-prod")


def test_a_kong_key_cannot_post_another_gateways_native_payload() -> None:
    service, publisher = make_service()
    apigee = native_batch("apigee", calls(2))
    result = ingest(service, "kong", orjson.dumps(apigee), None)
    assert (result.accepted, result.rejected) == (0, 2)
    assert all(e["error"].startswith("kong: ") for e in result.errors)
    assert publisher.on(TOPICS.events) == []


def test_empty_batch_and_aws_control_message_are_accepted_with_nothing_to_publish() -> None:
    service, publisher = make_service()
    assert ingest(service, "kong", b"[]", None).response() == {
        "accepted": 0,
        "rejected": 0,
        "errors": [],
    }
    control = {"messageType": "CONTROL_MESSAGE", "logEvents": []}
    assert ingest(service, "aws", orjson.dumps(control), None).accepted == 0
    assert publisher.on(TOPICS.events) == [] and publisher.on(TOPICS.dead_letters) == []


# --- rejected events -------------------------------------------------------------------------


def test_mixed_batch_rejects_bad_events_individually_and_dead_letters_their_raw_bytes() -> None:
    service, publisher = make_service()
    good = [kong_event(c) for c in calls(3)]
    bad_time = kong_event(calls(1, "bad")[0]) | {"started_at": "yesterday"}
    items = [good[0], bad_time, good[1], ["not", "an", "object"], good[2]]
    result = ingest(service, "kong", encode_batch(items, "lz4"), "lz4")

    assert (result.accepted, result.rejected) == (3, 2)
    assert [e["index"] for e in result.errors] == [1, 3]
    assert result.errors[0]["error"].startswith("kong: started_at")
    assert "yesterday" in result.errors[0]["error"]
    assert result.errors[1]["error"].startswith("kong: event must be")
    assert [r.key for r in publisher.on(TOPICS.events)] == [b"req-0", b"req-1", b"req-2"]

    dead = publisher.on(TOPICS.dead_letters)
    assert [r.value for r in dead] == [item_bytes(bad_time), item_bytes(items[3])]
    assert all(r.key == b"kong-prod" for r in dead)
    assert headers_of(dead[0]) == {
        "kind": "event",
        "reason": result.errors[0]["error"],
        "integration": "kong-prod",
        "gateway": "kong",
        "index": "1",
        "received_at": "2026-03-01T12:30:00.123456Z",
    }
    assert headers_of(dead[1])["index"] == "3"


def test_a_bad_record_inside_an_aws_envelope_has_a_sub_index() -> None:
    service, publisher = make_service()
    envelope = aws_envelope(calls(3))
    envelope["logEvents"][1]["message"] = '{"requestTimeEpoch": "soon"}'
    result = ingest(service, "aws", orjson.dumps([envelope]), None)
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.errors[0]["index"] == 0 and result.errors[0]["sub_index"] == 1
    assert list(result.errors[0]) == ["index", "sub_index", "error"]
    (dead,) = publisher.on(TOPICS.dead_letters)
    assert headers_of(dead)["index"] == "0" and headers_of(dead)["sub_index"] == "1"
    assert b"soon" in dead.value


def test_very_long_reasons_are_cut_in_the_response_and_the_header() -> None:
    service, publisher = make_service()
    event = canonical_event(calls(1)[0]) | {"x" * 5000: 1}
    result = ingest(service, "kong", orjson.dumps([event]), None)
    reason = result.errors[0]["error"]
    assert len(reason) == MAX_REASON_CHARS and reason.endswith("…")
    assert headers_of(publisher.on(TOPICS.dead_letters)[0])["reason"] == reason


# --- refused bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "encoding", "error"),
    [
        (b"\x04\x22\x4d\x18garbage", "lz4", UndecodableBody),
        (b"{not json", None, UndecodableBody),
        (b'"a string"', None, UndecodableBody),
        (b"[" * 2000, None, UndecodableBody),  # beyond orjson's 1024 levels, and unbalanced
        (b"[]", "br", UnsupportedEncoding),
    ],
)
def test_undecodable_bodies_are_dead_lettered_as_received_then_refused(
    body: bytes, encoding: str | None, error: type[Exception]
) -> None:
    service, publisher = make_service()
    with pytest.raises(error):
        ingest(service, "apigee", body, encoding)
    ((dead,),) = publisher.calls
    assert dead.topic == TOPICS.dead_letters and dead.value == body and dead.key == b"apigee-prod"
    headers = headers_of(dead)
    assert headers["kind"] == "body" and headers["gateway"] == "apigee"
    assert headers["content_encoding"] == (encoding or "identity")
    assert headers["received_at"] == "2026-03-01T12:30:00.123456Z"
    assert headers["reason"]


def test_oversized_bodies_are_refused_before_or_after_decompression_and_not_published() -> None:
    service, publisher = make_service(limits=IngestLimits(2048, 4096))
    with pytest.raises(BodyTooLarge) as declared:
        service.check_declared_length(4000)
    assert declared.value.stage == "compressed" and declared.value.size == 4000
    service.check_declared_length(2048)
    service.check_declared_length(None)
    with pytest.raises(BodyTooLarge, match="split the batch") as bomb:
        ingest(service, "kong", lz4.frame.compress(b"[" + b" " * 100_000 + b"]"), "lz4")
    assert bomb.value.stage == "decompressed"
    with pytest.raises(BodyTooLarge):
        ingest(service, "kong", b" " * 3000, None)
    assert publisher.calls == []


def test_kafka_failure_propagates_and_nothing_counts_as_accepted() -> None:
    publisher = RecordingPublisher()
    publisher.failure = PublishFailed("broker down", timed_out=True, records=3)
    service, _ = make_service(publisher)
    with pytest.raises(PublishFailed):
        ingest(service, "kong", orjson.dumps(native_batch("kong", calls(3))), None)
    with pytest.raises(PublishFailed):  # an undecodable body that cannot be dead-lettered: 503
        ingest(service, "kong", b"{oops", None)


def test_integration_context_is_cached_per_integration() -> None:
    service, _ = make_service()
    aws: Integration = service.authenticate(f"Bearer {KEYS['aws']}")
    first = service._context(aws)
    assert service._context(aws) is first
    assert dict(first.api_key_tenants) == dict(aws.api_key_tenants)


def test_an_event_the_codec_cannot_encode_is_rejected_not_a_crash() -> None:
    service, publisher = make_service()
    huge = kong_event(calls(1, "huge")[0])
    huge["response"]["size"] = 2**64  # accepted by the decoder, beyond what orjson writes
    items = [huge, kong_event(calls(1)[0])]
    result = ingest(service, "kong", json.dumps(items).encode(), None)
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.errors[0]["index"] == 0
    assert result.errors[0]["error"].startswith("kong: event cannot be encoded for Kafka")
    assert [r.key for r in publisher.on(TOPICS.events)] == [b"req-0"]
    assert len(publisher.on(TOPICS.dead_letters)) == 1


# --- bounded work per request (hostile input) --------------------------------------------------


def test_nested_gzip_of_all_items_shares_the_requests_decompression_budget() -> None:
    """One 43.7 KB AWS item used to give 39,746 events: every item's gzip data inflated on its
    own. Now the body and all nested data draw from one cap, and past it nothing is published."""
    from pipeline.devstack.samples import aws_subscription

    item = aws_subscription(calls(200))
    inner = len(orjson.dumps(aws_envelope(calls(200))))
    body = orjson.dumps([item, item])
    roomy = IngestLimits(256 * 1024, len(body) + 2 * inner)
    service, publisher = make_service(limits=roomy)
    assert ingest(service, "aws", body, None).accepted == 400
    tight = IngestLimits(256 * 1024, len(body) + 2 * inner - 1)
    service, publisher = make_service(limits=tight)
    with pytest.raises(BodyTooLarge) as caught:
        ingest(service, "aws", body, None)
    assert caught.value.stage == "decompressed" and publisher.calls == []


def test_more_events_than_a_request_may_carry_is_a_413_before_publishing() -> None:
    limits = IngestLimits(256 * 1024, 1024 * 1024, max_events=50)
    service, publisher = make_service(limits=limits)
    assert ingest(service, "kong", orjson.dumps(native_batch("kong", calls(50))), None)
    for body in (
        orjson.dumps(native_batch("kong", calls(51))),  # fast path
        orjson.dumps([{}] * 51),  # general path
        orjson.dumps(native_batch("aws", calls(51))),  # one envelope, 51 events
    ):
        publisher.calls.clear()
        with pytest.raises(BatchTooLarge, match="51 events"):
            ingest(service, "aws" if b"awslogs" in body else "kong", body, None)
        assert publisher.calls == []


def test_the_202_lists_at_most_a_hundred_rejections_and_counts_the_rest() -> None:
    service, publisher = make_service()
    result = ingest(service, "kong", orjson.dumps([{"bad": n} for n in range(250)]), None)
    body = result.response()
    assert body["rejected"] == 250 and len(body["errors"]) == MAX_ERRORS_LISTED
    assert body["errors_not_listed"] == 150
    assert sum(1 for r in publisher.calls[0] if r.topic == TOPICS.dead_letters) == 250


def test_one_unparsable_item_is_rejected_and_its_neighbours_accepted() -> None:
    service, publisher = make_service()
    good = [orjson.dumps(event) for event in native_batch("kong", calls(2))]
    body = b"[" + good[0] + b', {"request": NaN}, ' + good[1] + b"]"
    result = ingest(service, "kong", body, None)
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.errors[0]["index"] == 1 and "not valid JSON" in result.errors[0]["error"]
    [dead] = [r for r in publisher.calls[0] if r.topic == TOPICS.dead_letters]
    assert dead.value == b'{"request": NaN}'  # the item's bytes as sent


def test_an_event_too_large_for_the_broker_is_that_events_rejection_not_a_503_forever() -> None:
    limits = IngestLimits(256 * 1024, 1024 * 1024, max_event_record_bytes=4096)
    service, publisher = make_service(limits=limits)
    huge = dict(canonical_event(calls(1, "huge")[0]), attributes={"blob": "b" * 5000})
    result = ingest(service, "kong", orjson.dumps([*native_batch("kong", calls(2)), huge]), None)
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.errors[0]["index"] == 2
    assert "bytes, more than the 4096 an event may be" in result.errors[0]["error"]
    [dead] = [r for r in publisher.calls[0] if r.topic == TOPICS.dead_letters]
    assert b"b" * 5000 in dead.value
    # a plain batch the fast path would take goes by the general path, event by event
    tiny = IngestLimits(256 * 1024, 1024 * 1024, max_event_record_bytes=100)
    service, publisher = make_service(limits=tiny)
    result = ingest(service, "kong", orjson.dumps(native_batch("kong", calls(3))), None)
    assert (result.accepted, result.rejected, result.fast_path) == (0, 3, False)


@pytest.mark.parametrize(
    ("tokens", "accepted"),
    [
        ("1" * 29, True),
        ("1" * 30, False),  # a 33-digit value stalled a partition in ClickHouse's retry loop
        ("12.123456789", True),
        ("12.1234567891", False),
        ("1e28", True),
        ("1e29", False),
        ("not-a-number-" + "9" * 40, True),  # not a number: the metering skips it, counted
    ],
)
def test_a_summed_attribute_must_fit_a_meter_value(tokens: str, accepted: bool) -> None:
    """ai-completions sums attributes.tokens (rating_rules/products.yaml): its value must fit
    meter_entries.value, Decimal(38, 9), before the event leaves the edge."""
    service, _publisher = make_service()
    event = dict(canonical_event(calls(1)[0]), attributes={"tokens": tokens, "note": "1" * 40})
    result = ingest(service, "kong", orjson.dumps([event]), None)
    assert (result.accepted, result.rejected) == ((1, 0) if accepted else (0, 1))
    if not accepted:
        assert result.errors[0]["error"].startswith("attributes.tokens = ")
        assert "Decimal(38, 9)" in result.errors[0]["error"]
