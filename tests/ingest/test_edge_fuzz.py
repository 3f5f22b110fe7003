"""Hostile input through the real HTTP stack (aiohttp test client, acking fake publisher).

Whatever arrives, the edge answers a 4xx with a reason or 202 with per-event errors: never 5xx,
never an exception; and what it published matches what it answered.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lz4.frame
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.devstack.samples import encode_batch, native_batch
from pipeline.events import GATEWAYS, Gateway
from pipeline.ingest.http import RUNNER_OPTIONS, build_app
from pipeline.ingest.metrics import IngestMetrics
from pipeline.ingest.service import IngestLimits
from tests.ingest.test_service import KEYS, TOPICS, RecordingPublisher, calls, make_service

LIMITS = IngestLimits(max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024)
ANSWERS = {202, 400, 413, 415}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class FuzzEdge:
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]
    publisher: RecordingPublisher


@pytest.fixture(scope="module")
def fuzz_edge() -> Iterator[FuzzEdge]:
    loop = asyncio.new_event_loop()
    service, publisher = make_service(limits=LIMITS)

    async def start() -> TestClient[Any, Any]:
        server = TestServer(build_app(service, IngestMetrics(), publisher.connected))
        await server.start_server(**RUNNER_OPTIONS)
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        return client

    client = loop.run_until_complete(start())
    yield FuzzEdge(loop, client, publisher)
    loop.run_until_complete(client.close())
    loop.close()


def post_and_check(
    edge: FuzzEdge, body: bytes, encoding: str | None, gateway: Gateway = "kong"
) -> tuple[int, Any]:
    """Post, then assert the edge's contract for any input; returns (status, JSON answer)."""
    headers = {"Authorization": f"Bearer {KEYS[gateway]}"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    before = len(edge.publisher.records)

    async def go() -> tuple[int, Any]:
        response = await edge.client.post("/v1/ingest", data=body, headers=headers)
        return response.status, await response.json()

    status, answer = edge.loop.run_until_complete(go())
    assert status in ANSWERS, (status, answer)
    published = edge.publisher.records[before:]
    if status == 202:
        assert set(answer) == {"accepted", "rejected", "errors"}
        assert answer["rejected"] == len(answer["errors"])
        for error in answer["errors"]:
            assert isinstance(error["index"], int) and error["index"] >= 0
            assert isinstance(error["error"], str) and error["error"]
        assert sum(r.topic == TOPICS.events for r in published) == answer["accepted"]
        assert sum(r.topic == TOPICS.dead_letters for r in published) == answer["rejected"]
    else:
        assert isinstance(answer["error"], str) and answer["error"]
        if status in (400, 415):  # the body as received is kept in the dead-letter topic
            assert [(r.topic, r.value) for r in published] == [(TOPICS.dead_letters, body)]
        else:
            assert published == []
    return status, answer


def encode(raw: bytes, encoding: str | None) -> bytes:
    if encoding == "lz4":
        return bytes(lz4.frame.compress(raw))
    if encoding == "gzip":
        return gzip.compress(raw)
    return raw


ENCODINGS = st.sampled_from([None, "lz4", "gzip", "identity"])
HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
ANY_ENCODING = (
    ENCODINGS | st.sampled_from(["br", "deflate", "LZ4", " gzip ", "lz4, gzip"]) | HEADER_TEXT
)
HUGE_NUMBERS = st.sampled_from(
    ["1" + "0" * 400, "1e400", "-1e400", "18446744073709551616", "-9223372036854775809",
     "1e-400", "0.1e1", "-0", "123456789012345678901234567890.5"]
)  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=25,
)


@FUZZ
@given(body=st.binary(max_size=3000), encoding=ANY_ENCODING)
def test_random_bytes_with_any_encoding(fuzz_edge: FuzzEdge, body: bytes, encoding: str) -> None:
    post_and_check(fuzz_edge, body, encoding)


@FUZZ
@given(
    items=st.lists(JSON, max_size=8),
    form=st.sampled_from(["array", "object", "ndjson"]),
    encoding=ENCODINGS,
    gateway=st.sampled_from(GATEWAYS),
)
def test_random_json_in_every_body_form(
    fuzz_edge: FuzzEdge, items: list[Any], form: str, encoding: str | None, gateway: Gateway
) -> None:
    if form == "array":
        raw = json.dumps(items).encode()
    elif form == "object":
        raw = json.dumps({"events": items}).encode()
    else:
        raw = b"\n".join(json.dumps(item).encode() for item in items)
    post_and_check(fuzz_edge, encode(raw, encoding), encoding, gateway)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))


@FUZZ
@given(gateway=st.sampled_from(GATEWAYS), data=st.data())
def test_native_payloads_with_one_field_replaced(
    fuzz_edge: FuzzEdge, gateway: Gateway, data: st.DataObject
) -> None:
    items = native_batch(gateway, calls(3, prefix=f"fuzz-{gateway}"))
    target = data.draw(st.integers(0, len(items) - 1))
    paths = list(_paths(items[target]))
    path = data.draw(st.sampled_from(paths))
    node = items[target]
    for key in path[:-1]:
        node = node[key]
    replacement = data.draw(JSON | HUGE_NUMBERS.map(lambda n: _Raw(n)))
    node[path[-1]] = "__RAW__" if isinstance(replacement, _Raw) else replacement
    raw = json.dumps(items).encode()
    if isinstance(replacement, _Raw):
        raw = raw.replace(b'"__RAW__"', replacement.text.encode())
    status, answer = post_and_check(fuzz_edge, encode(raw, "lz4"), "lz4", gateway)
    if status == 202 and gateway != "aws":
        # the untouched events are accepted whatever happened to their neighbour
        assert answer["accepted"] >= len(items) - 1


@dataclass(frozen=True)
class _Raw:
    text: str


@FUZZ
@given(
    gateway=st.sampled_from(GATEWAYS),
    encoding=st.sampled_from(["lz4", "gzip"]),
    cut=st.floats(min_value=0.0, max_value=0.999),
)
def test_truncated_compressed_bodies(
    fuzz_edge: FuzzEdge, gateway: Gateway, encoding: str, cut: float
) -> None:
    body = encode_batch(native_batch(gateway, calls(4)), encoding)  # type: ignore[arg-type]
    status, answer = post_and_check(fuzz_edge, body[: int(len(body) * cut)], encoding, gateway)
    assert status == 400 and answer["reason"]


@FUZZ
@given(depth=st.integers(min_value=1, max_value=3000), kind=st.sampled_from("[{"))
def test_deeply_nested_json(fuzz_edge: FuzzEdge, depth: int, kind: str) -> None:
    raw = ("[" * depth + "]" * depth) if kind == "[" else ('{"a":' * depth + "1" + "}" * depth)
    status, _ = post_and_check(fuzz_edge, raw.encode(), None)
    assert status in (202, 400)


@settings(max_examples=20, deadline=None)
@given(
    encoding=st.sampled_from(["lz4", "gzip"]),
    size=st.integers(min_value=LIMITS.max_decompressed_bytes + 1, max_value=8_000_000),
    filler=st.sampled_from([b" ", b"0", b"[]"]),
)
def test_decompression_bombs_are_413(
    fuzz_edge: FuzzEdge, encoding: str, size: int, filler: bytes
) -> None:
    bomb = encode(filler * (size // len(filler) + 1), encoding)
    assert len(bomb) <= LIMITS.max_body_bytes  # small on the wire, huge once inflated
    status, answer = post_and_check(fuzz_edge, bomb, encoding)
    assert status == 413 and answer["stage"] == "decompressed"


def test_the_fuzzed_edge_still_accepts_a_clean_batch(fuzz_edge: FuzzEdge) -> None:
    for gateway in GATEWAYS:
        body = encode_batch(native_batch(gateway, calls(3, prefix=f"clean-{gateway}")))
        status, answer = post_and_check(fuzz_edge, body, "lz4", gateway)
        assert (status, answer["accepted"], answer["rejected"]) == (202, 3, 0)
