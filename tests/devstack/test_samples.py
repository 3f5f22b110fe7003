from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.devstack import samples
from pipeline.devstack.samples import SampleCall
from pipeline.events import GATEWAYS, CanonicalEvent
from pipeline.ingest.body import decode_body
from pipeline.ingest.decoders import decode_items
from tests.ingest.decoders.support import context

CALL = SampleCall(
    idempotency_key="req-7f3a",
    timestamp=datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC),
    api="payments-svc",
    route="/v1/payments",
    method="POST",
    status=201,
    request_bytes=512,
    response_bytes=2048,
    latency_ms=35,
    consumer="mobile-app",
    tenant="acme",
)


def decoded(gateway: Any, items: list[Any], **kwargs: Any) -> list[CanonicalEvent]:
    results = decode_items(items, context(gateway, **kwargs))
    assert all(r.accepted for r in results), [r.error for r in results]
    return [r.event for r in results if r.event is not None]


def assert_matches(
    event: CanonicalEvent, call: SampleCall, gateway: str, *, native: bool = True
) -> None:
    assert event.gateway == gateway
    assert event.idempotency_key == call.idempotency_key
    assert event.tenant_headers == (() if call.tenant is None else (call.tenant,))
    assert event.timestamp == call.timestamp
    assert event.api == call.api
    assert event.route == call.route
    assert event.method == call.method
    assert event.status == call.status
    # API Gateway access logs have no request size variable
    assert event.request_bytes == (None if native and gateway == "aws" else call.request_bytes)
    assert event.response_bytes == call.response_bytes
    assert event.latency_ms == call.latency_ms
    assert event.consumer == call.consumer


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_native_batch_decodes_back_to_the_call(gateway: Any) -> None:
    other = replace(CALL, idempotency_key="req-8b4c", status=503, tenant=None, consumer=None)
    events = decoded(gateway, samples.native_batch(gateway, [CALL, other]))
    assert len(events) == 2
    assert_matches(events[0], CALL, gateway)
    assert_matches(events[1], other, gateway)


def test_aws_sample_is_a_real_subscription_envelope() -> None:
    (item,) = samples.native_batch("aws", [CALL])
    assert set(item) == {"awslogs"}
    assert set(item["awslogs"]) == {"data"}
    envelope = samples.aws_envelope([CALL])
    assert envelope["messageType"] == "DATA_MESSAGE"
    line = orjson.loads(envelope["logEvents"][0]["message"])
    assert all(isinstance(value, str) for value in line.values())
    assert decoded("aws", [envelope]) == decoded("aws", [item])
    assert decode_items([samples.aws_control_message()], context("aws")) == []


def test_aws_tenant_can_come_from_the_api_key_map() -> None:
    call = replace(CALL, tenant=None, consumer="key-1")
    (event,) = decoded(
        "aws", samples.native_batch("aws", [call]), api_key_tenants={"key-1": "acme"}
    )
    assert event.tenant_headers == ("acme",)


def test_azure_sample_uses_pascal_case_and_seven_fraction_digits() -> None:
    item = samples.azure_event(
        replace(CALL, timestamp=CALL.timestamp + timedelta(microseconds=456))
    )
    assert item["TimeGenerated"] == "2026-01-15T10:00:00.1234560Z"
    assert {"CorrelationId", "ApiId", "ApimSubscriptionId", "RequestHeaders"} <= set(item)
    (event,) = decoded("azure", [item])
    assert event.timestamp.microsecond == 123456


def test_azure_resource_log_sample_matches_the_flat_form() -> None:
    log = samples.azure_resource_log([CALL, CALL])
    events = decoded("azure", [log])
    assert len(events) == 2
    assert_matches(events[0], CALL, "azure")


def test_canonical_sample_is_accepted_by_every_gateway() -> None:
    for gateway in GATEWAYS:
        # an aws integration's canonical events name no tenant (contract §12)
        call = replace(CALL, tenant=None) if gateway == "aws" else CALL
        (event,) = decoded(gateway, [samples.canonical_event(call)])
        assert_matches(event, call, gateway, native=False)


def test_mulesoft_sample_sends_minus_one_for_unknown_sizes() -> None:
    item = samples.mulesoft_event(replace(CALL, request_bytes=None, response_bytes=None))
    assert (item["Request Size"], item["Response Size"]) == (-1, -1)


@pytest.mark.parametrize("encoding", ["lz4", "gzip", "identity"])
def test_encoded_batch_is_a_post_body(encoding: Any) -> None:
    body = samples.encode_batch(samples.native_batch("kong", [CALL]), encoding)
    items = decode_body(body, encoding, max_compressed=1 << 20, max_decompressed=1 << 20)
    (event,) = decoded("kong", items)
    assert_matches(event, CALL, "kong")


def test_samples_are_deterministic() -> None:
    for gateway in GATEWAYS:
        first = samples.encode_batch(samples.native_batch(gateway, [CALL]), "identity")
        assert first == samples.encode_batch(samples.native_batch(gateway, [CALL]), "identity")


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=16)
calls = st.builds(
    SampleCall,
    idempotency_key=names,
    timestamp=st.integers(min_value=946684800000, max_value=4133894400000).map(  # < 2100-12-31
        lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    ),
    api=names,
    route=st.lists(names | st.just("{id}"), min_size=0, max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    status=st.integers(min_value=100, max_value=599),
    request_bytes=st.none() | st.integers(min_value=0, max_value=2**40),
    response_bytes=st.none() | st.integers(min_value=0, max_value=2**40),
    latency_ms=st.none() | st.integers(min_value=0, max_value=600_000),
    consumer=st.none() | names,
    tenant=st.none() | names,
)


@settings(max_examples=60, deadline=None)
@given(call=calls, gateway=st.sampled_from(GATEWAYS))
def test_every_sample_round_trips(call: SampleCall, gateway: Any) -> None:
    (event,) = decoded(gateway, samples.native_batch(gateway, [call]))
    assert_matches(event, call, gateway)
