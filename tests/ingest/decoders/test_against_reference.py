"""The optimised decoders against the frozen reference copy (``reference/``: the decoders, field
readers and timestamp parsers as they were when every event went through pydantic and
``encode_event``).

On generated native payloads, mutated payloads and arbitrary JSON, both must give the same
results item by item: positions, raw bytes, rejection reasons word for word, and for accepted
events a Kafka record byte-identical to ``encode_event`` of the reference event. The one
deliberate differences: a size or latency beyond 2**64 - 1 (which the reference model accepted
and the encoder then failed on) is now refused with its own reason; a canonical event posted by
an aws integration with a tenant header is refused (contract §12: AWS tenants come from the
authorizer context or the key map).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.devstack import samples
from pipeline.events import GATEWAYS, MAX_EVENT_INTEGER, Gateway
from pipeline.ingest.decoders import DecodedItem, decode_items
from pipeline.ingest.decoders.canonical import AWS_TENANT_HINT
from pipeline.ingest.decoders.context import DecoderContext
from tests.ingest.decoders import reference
from tests.ingest.decoders.reference.codec import encode_event as reference_encode_event
from tests.ingest.decoders.test_dispatch import json_values

CHECKS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BEYOND_64_BITS = re.compile(
    r"event is invalid: (request_bytes|response_bytes|latency_ms): "
    rf"Input should be less than or equal to {MAX_EVENT_INTEGER}.*$"
)


def context(gateway: Gateway) -> DecoderContext:
    tenants = {"a1b2c3d4e5": "acme", "k9x8w7v6u5": "initech"} if gateway == "aws" else {}
    return DecoderContext(f"{gateway}-prod", gateway, tenants)


def expected_error(reference_error: str) -> str:
    """The reference's reason, except for integers no record holds (see the module doc)."""
    return BEYOND_64_BITS.sub(
        lambda m: (
            f"event cannot be encoded for Kafka ({m[1]} is larger than {MAX_EVENT_INTEGER}, "
            "the largest whole number an event record holds)"
        ),
        reference_error,
    )


def assert_same(items: list[Any], gateway: Gateway) -> list[DecodedItem]:
    ctx = context(gateway)
    expected = reference.decode_items(items, ctx)
    actual = decode_items(items, ctx)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert (got.index, got.sub_index) == (want.index, want.sub_index)
        assert got.raw == want.raw
        if want.event is None:
            assert want.error is not None
            assert got.error == expected_error(want.error)
            assert got.record is None
        elif gateway == "aws" and want.event.tenant_headers and got.error is not None:
            # deliberate (contract §12): an aws integration's canonical events name no tenant
            assert got.error == f"canonical: tenant_header {AWS_TENANT_HINT}"
        else:
            assert got.record is not None, got.error
            assert got.record.value == reference_encode_event(want.event)
            assert got.record.key == want.event.idempotency_key.encode()
            assert got.event == want.event
    return actual


# --- generated calls, as each gateway's plugin sends them -------------------------------------

texts = st.text(max_size=16) | st.sampled_from(["", " ", " padded ", "-", "caf\u00e9", "\u0661"])
counts = (
    st.none()
    | st.integers(min_value=0, max_value=10**7)
    | st.integers(min_value=-2, max_value=2**70)
    | st.sampled_from([MAX_EVENT_INTEGER, MAX_EVENT_INTEGER + 1, 2**64 + 10**6])
)
calls = st.builds(
    samples.SampleCall,
    idempotency_key=texts | st.text(min_size=510, max_size=514),
    timestamp=st.datetimes(
        min_value=datetime(1999, 12, 31),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2101, 1, 1, 2),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
    | st.just(datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
    api=texts,
    route=texts | st.sampled_from(["/v1/a", "/v1/{id}", "https://h.example/a?b=1", "~/re"]),
    method=st.sampled_from(["GET", "post", "M-SEARCH", " PUT ", "G3T", "", "-"]),
    status=st.integers(min_value=-1, max_value=700),
    request_bytes=counts,
    response_bytes=counts,
    latency_ms=counts,
    consumer=st.none() | texts,
    tenant=st.none() | texts,
    attributes=st.dictionaries(texts, texts, max_size=2),
)


def as_received(items: list[Any]) -> list[Any] | None:
    """The items as the edge parses them (orjson), or None if orjson would refuse the body."""
    try:
        parsed: list[Any] = orjson.loads(json.dumps(items))
    except orjson.JSONDecodeError:
        return None
    return parsed


@CHECKS
@given(gateway=st.sampled_from(GATEWAYS), batch=st.lists(calls, min_size=1, max_size=3))
def test_native_batches(gateway: Gateway, batch: list[samples.SampleCall]) -> None:
    items = as_received(samples.native_batch(gateway, batch))
    if items is not None:
        assert_same(items, gateway)


@CHECKS
@given(gateway=st.sampled_from(GATEWAYS), batch=st.lists(calls, min_size=1, max_size=3))
def test_canonical_events_posted_directly(
    gateway: Gateway, batch: list[samples.SampleCall]
) -> None:
    items = as_received([samples.canonical_event(call) for call in batch])
    if items is not None:
        assert_same(items, gateway)


# --- one field replaced anywhere in a realistic payload --------------------------------------

odd_values = json_values | st.sampled_from(
    [
        "12", " 12 ", "12.5", "12.49", "-1", "1e3", "0x10", "\u0661\u0662", "-", "", "  ", "201",
        "1768471200123", "1768471200.5", "2026-01-15T10:00:00.1234567Z", "2026-01-15T10:00:00Z",
        "2026-01-15 10:00:00+02:00", "2026-13-01T00:00:00Z", "https://h.example/x?y#z",
        "http://[::1]/p", "/a/b?c", "GET", "get", "M-SEARCH", "$default", "GET /pets/{id}",
        1768471200123, 12.5, -1, 0, 2**63, 1e300, True, None, [], {}, ["a", " b "], {"x": 1},
    ]
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for position, child in enumerate(value):
            found.append((*prefix, position))
            found.extend(_paths(child, (*prefix, position)))
    return found


def with_values_replaced(item: Any, data: st.DataObject) -> Any:
    """``item`` with one to three values anywhere replaced by :data:`odd_values` (in place)."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(item)
        if paths:
            value = copy.deepcopy(data.draw(odd_values))  # sampled constants must stay intact
            _replace(item, data.draw(st.sampled_from(paths)), value)
    return item


def _replace(root: Any, path: tuple[Any, ...], value: Any) -> None:
    node = root
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


@CHECKS
@given(
    gateway=st.sampled_from(GATEWAYS),
    call=calls,
    form=st.sampled_from(["native", "canonical", "decoded envelope", "records"]),
    data=st.data(),
)
def test_payloads_with_one_value_replaced(
    gateway: Gateway, call: samples.SampleCall, form: str, data: st.DataObject
) -> None:
    item = with_values_replaced(_payload(gateway, call, form), data)
    items = as_received([item])
    if items is not None:
        assert_same(items, gateway)


def _payload(gateway: Gateway, call: samples.SampleCall, form: str) -> Any:
    if form == "canonical":
        return samples.canonical_event(call)
    if gateway == "aws":
        # messages as parsed objects, so that replacements reach inside the access-log line
        envelope = samples.aws_envelope([call])
        for log_event in envelope["logEvents"]:
            log_event["message"] = orjson.loads(log_event["message"])
        return envelope
    if gateway == "azure" and form == "records":
        return samples.azure_resource_log([call])
    return samples.native_batch(gateway, [call])[0]


# --- column and header names in any case (Azure, Apigee, header objects) ---------------------


@st.composite
def recased(draw: st.DrawFn, item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with some keys re-cased, some duplicated under another case, some nulled."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        choice = draw(st.sampled_from(["keep", "keep", "lower", "upper", "twice", "null"]))
        if choice == "lower":
            out[key.lower()] = value
        elif choice == "upper":
            out[key.upper()] = value
        elif choice == "twice":
            out[key] = value
            out[key.swapcase()] = copy.deepcopy(draw(odd_values))
        elif choice == "null":
            out[key] = None
            out[key.lower() + " "] = value
        else:
            out[key] = value
        if isinstance(value, dict) and draw(st.booleans()):
            out[key] = draw(recased(value))
    return out


@CHECKS
@given(
    gateway=st.sampled_from(["azure", "apigee", "kong", "mulesoft"]),
    call=calls,
    records=st.booleans(),
    data=st.data(),
)
def test_names_in_any_case(
    gateway: Gateway, call: samples.SampleCall, records: bool, data: st.DataObject
) -> None:
    if gateway == "azure" and records:
        log = samples.azure_resource_log([call])
        record = data.draw(recased(log["records"][0]))
        if isinstance(record.get("properties"), dict):
            record["properties"] = data.draw(recased(record["properties"]))
        item: Any = {"records": [record, log["records"][0]]}
    else:
        item = data.draw(recased(samples.native_batch(gateway, [call])[0]))
    items = as_received([item])
    if items is not None:
        assert_same(items, gateway)


@CHECKS
@given(gateway=st.sampled_from(GATEWAYS), items=st.lists(json_values, max_size=4))
def test_arbitrary_json(gateway: Gateway, items: list[Any]) -> None:
    received = as_received(items)
    if received is not None:
        assert_same(received, gateway)


def test_aws_subscription_envelopes_and_control_messages() -> None:
    batch = [
        samples.SampleCall(
            idempotency_key=f"aws-{i}",
            timestamp=datetime(2026, 2, 1, tzinfo=UTC) + timedelta(milliseconds=i),
            api="h7k2p9q4xa",
            route="/v1/payments/{id}",
            latency_ms=i,
            consumer="a1b2c3d4e5",
        )
        for i in range(5)
    ]
    items = [samples.aws_subscription(batch), samples.aws_control_message()]
    results = assert_same(items, "aws")
    assert [r.sub_index for r in results] == [0, 1, 2, 3, 4]


def test_integers_beyond_64_bits_have_their_own_reason() -> None:
    call = samples.SampleCall(
        idempotency_key="big",
        timestamp=datetime(2026, 1, 15, tzinfo=UTC),
        api="a",
        route="/a",
        response_bytes=2**64,
    )
    (result,) = assert_same([samples.mulesoft_event(call)], "mulesoft")
    assert result.error == (
        "mulesoft: event cannot be encoded for Kafka (response_bytes is larger than "
        "18446744073709551615, the largest whole number an event record holds)"
    )
