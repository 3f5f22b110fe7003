"""The HTTP edge through aiohttp's test client, with a publisher that acks at once (no broker)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import lz4.frame
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.devstack.samples import encode_batch, kong_event, native_batch
from pipeline.errors import InfrastructureError
from pipeline.ingest.http import RETRY_AFTER_S, RUNNER_OPTIONS, SPLIT_HINT, build_app
from pipeline.ingest.metrics import IngestMetrics
from pipeline.ingest.publisher import PublishFailed
from pipeline.ingest.server import create_edge
from pipeline.ingest.service import IngestLimits
from pipeline.logs import configure_logging, get_logger
from pipeline.settings import Settings
from tests.ingest.test_service import (
    LIMITS,
    REPO_RULES,
    TOPICS,
    RecordingPublisher,
    calls,
    dev_catalog,
    make_service,
)

KONG = {"Authorization": "Bearer dev-kong-prod-key"}
LZ4 = {**KONG, "Content-Encoding": "lz4"}

Edge = tuple[TestClient[Any, Any], IngestMetrics, RecordingPublisher]


@contextlib.asynccontextmanager
async def edge(
    publisher: RecordingPublisher | None = None, limits: IngestLimits = LIMITS
) -> AsyncIterator[Edge]:
    service, publisher = make_service(publisher, limits)
    metrics = IngestMetrics()
    server = TestServer(build_app(service, metrics, publisher.connected))
    await server.start_server(**RUNNER_OPTIONS)  # as in production: no auto-decompression
    async with TestClient(server) as client:
        yield client, metrics, publisher


def run(scenario: Callable[[Edge], Awaitable[None]], **edge_args: Any) -> None:
    async def main() -> None:
        async with edge(**edge_args) as e:
            await scenario(e)

    asyncio.run(main())


def test_a_batch_is_answered_202_with_counts_and_per_index_errors() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        items = [*native_batch("kong", calls(2)), {"started_at": 1}]
        response = await client.post("/v1/ingest", data=encode_batch(items), headers=LZ4)
        assert response.status == 202
        assert response.content_type == "application/json"
        body = await response.json()
        assert body["accepted"] == 2 and body["rejected"] == 1
        assert [e["index"] for e in body["errors"]] == [2]
        assert body["errors"][0]["error"].startswith("kong: ")
        assert len(publisher.on(TOPICS.events)) == 2 and len(publisher.on(TOPICS.dead_letters)) == 1

    run(scenario)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Token dev-kong-prod-key"}],
)
def test_unknown_or_missing_key_is_401_with_no_details(headers: dict[str, str]) -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        response = await client.post("/v1/ingest", data=b"[]", headers=headers)
        assert response.status == 401
        assert await response.read() == b'{"error":"unauthorized"}'
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert publisher.calls == []

    run(scenario)


def test_gzip_bodies_reach_the_bounded_decoder_untouched() -> None:
    async def scenario(e: Edge) -> None:
        client, _, _ = e
        body = gzip.compress(orjson.dumps(native_batch("kong", calls(3))))
        headers = {**KONG, "Content-Encoding": "gzip"}
        response = await client.post("/v1/ingest", data=body, headers=headers)
        assert response.status == 202 and (await response.json())["accepted"] == 3

    run(scenario)


def test_content_length_over_the_cap_is_413_with_a_hint_to_split() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        response = await client.post("/v1/ingest", data=b" " * 5000, headers=KONG)
        assert response.status == 413
        body = await response.json()
        assert body["limit_bytes"] == 2048 and body["stage"] == "compressed"
        assert body["hint"] == SPLIT_HINT and "2048-byte limit" in body["error"]
        assert publisher.calls == []

    run(scenario, limits=IngestLimits(2048, 8192))


def test_a_chunked_body_is_cut_off_at_the_cap() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        response = await client.post("/v1/ingest", data=chunks(), headers=KONG)
        assert response.status == 413
        assert (await response.json())["stage"] == "compressed"
        assert publisher.calls == []

    run(scenario, limits=IngestLimits(2048, 8192))


@pytest.mark.parametrize("encoding", ["lz4", "gzip"])
def test_a_decompression_bomb_is_413_after_decompression(encoding: str) -> None:
    bomb = b"[" + b" " * 5_000_000 + b"]"
    data = lz4.frame.compress(bomb) if encoding == "lz4" else gzip.compress(bomb)

    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        headers = {**KONG, "Content-Encoding": encoding}
        response = await client.post("/v1/ingest", data=data, headers=headers)
        assert response.status == 413
        body = await response.json()
        assert body["stage"] == "decompressed" and body["hint"] == SPLIT_HINT
        assert publisher.calls == []

    run(scenario)


def test_unsupported_encoding_is_415_and_the_body_is_dead_lettered() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        headers = {**KONG, "Content-Encoding": "br"}
        response = await client.post("/v1/ingest", data=b"\x8b\x00", headers=headers)
        assert response.status == 415
        body = await response.json()
        assert "'br' is not supported" in body["error"]
        assert body["supported"] == ["lz4", "gzip", "identity"]
        assert [r.value for r in publisher.on(TOPICS.dead_letters)] == [b"\x8b\x00"]

    run(scenario)


def test_undecodable_body_is_400_with_the_reason_and_dead_lettered() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        response = await client.post("/v1/ingest", data=b"\x04\x22\x4d\x18junk", headers=LZ4)
        assert response.status == 400
        body = await response.json()
        assert body["reason"].startswith("invalid lz4 frame data")
        assert body["error"].startswith("request body could not be decoded")
        assert [r.value for r in publisher.on(TOPICS.dead_letters)] == [b"\x04\x22\x4d\x18junk"]

    run(scenario)


def test_kafka_trouble_is_503_with_retry_after() -> None:
    publisher = RecordingPublisher()
    publisher.failure = PublishFailed("no acknowledgement within 10 s", timed_out=True, records=2)

    async def scenario(e: Edge) -> None:
        client, metrics, _ = e
        for body in (orjson.dumps(native_batch("kong", calls(2))), b"{broken"):
            response = await client.post("/v1/ingest", data=body, headers=KONG)
            assert response.status == 503
            assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
            assert (await response.json())["retry_after_s"] == RETRY_AFTER_S
        assert "pipeline_ingest_events_accepted_total{" not in metrics.render().decode()

    run(scenario, publisher=publisher)


def test_a_body_cut_short_by_the_client_publishes_nothing_and_the_edge_keeps_serving() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        host, port = client.server.host, client.server.port
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-kong-prod-key\r\n"
            b"Content-Length: 1000\r\n\r\n[{"
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.1)
        assert publisher.calls == []
        response = await client.post("/v1/ingest", data=b"[]", headers=KONG)
        assert response.status == 202

    run(scenario)


def test_healthz_and_readyz() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {
            "ready": True,
            "catalog_integrations": 5,
            "kafka_connected": True,
        }
        publisher.ready = False
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503 and (await not_ready.json())["kafka_connected"] is False
        assert (await client.get("/healthz")).status == 200  # alive, just not ready

    run(scenario)


def test_metrics_count_requests_events_rejections_latency_and_bytes() -> None:
    async def scenario(e: Edge) -> None:
        client, _, _ = e
        items = [*native_batch("kong", calls(3)), {"nope": True}]
        await client.post("/v1/ingest", data=orjson.dumps(items), headers=KONG)
        await client.post("/v1/ingest", data=b"{bad", headers=KONG)
        await client.post("/v1/ingest", data=b"[]", headers={"Authorization": "Bearer x"})
        plain = native_batch("kong", calls(2, prefix="plain"))
        await client.post("/v1/ingest", data=orjson.dumps(plain), headers=KONG)
        page = await client.get("/metrics")
        assert page.status == 200 and page.content_type == "text/plain"
        text = await page.text()
        expected = [
            'pipeline_ingest_requests_total{status="202"} 2.0',
            'pipeline_ingest_requests_total{status="400"} 1.0',
            'pipeline_ingest_requests_total{status="401"} 1.0',
            'pipeline_ingest_events_accepted_total{integration="kong-prod"} 5.0',
            'batches_decoded_total{integration="kong-prod",path="general"} 1.0',
            'batches_decoded_total{integration="kong-prod",path="typed"} 1.0',
            'rejected_total{integration="kong-prod",reason_class="invalid_event"} 1.0',
            'rejected_total{integration="kong-prod",reason_class="undecodable_body"} 1.0',
            "pipeline_ingest_request_seconds_count 4.0",
            "pipeline_ingest_body_bytes_count 3.0",
            'pipeline_ingest_stage_seconds_count{stage="publish"} 2.0',
            "pipeline_ingest_kafka_errors_total",
        ]
        for line in expected:
            assert line in text, line

    run(scenario)


def test_one_structured_log_line_per_request_without_the_key() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)

    async def scenario(e: Edge) -> None:
        client, _, _ = e
        items = [kong_event(calls(1)[0]), {"x": 1}]
        await client.post("/v1/ingest", data=orjson.dumps(items), headers=KONG)
        await client.post("/v1/ingest", data=b"[]", headers={"Authorization": "Bearer secret-x"})

    try:
        run(scenario)
    finally:
        configure_logging("WARNING")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "ingest"]
    assert len(requests) == 2
    accepted, refused = requests
    assert {k: accepted[k] for k in ("integration", "status", "accepted", "rejected")} == {
        "integration": "kong-prod",
        "status": 202,
        "accepted": 1,
        "rejected": 1,
    }
    assert accepted["ms"] >= 0 and accepted["level"] == "info" and accepted["timestamp"]
    assert refused["status"] == 401 and refused["integration"] is None
    assert refused["auth_failure"] == "unknown"
    assert "dev-kong-prod-key" not in stream.getvalue() and "secret-x" not in stream.getvalue()


def test_credential_fields_are_redacted_whoever_logs_them() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        get_logger("test").info("oops", authorization="Bearer dev-kong-prod-key", api_key="k")
    finally:
        configure_logging("WARNING")
    line = orjson.loads(stream.getvalue().splitlines()[0])
    assert line["authorization"] == "[redacted]" and line["api_key"] == "[redacted]"


def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")


def test_create_edge_explains_an_unreachable_broker() -> None:
    settings = Settings(rules_dir=REPO_RULES, ingest_port=0)
    with pytest.raises(InfrastructureError, match="is the broker running"):
        asyncio.run(create_edge(settings, dev_catalog(), "127.0.0.1:1"))


# --- bounded work per request (hostile input) --------------------------------------------------


class GatedPublisher(RecordingPublisher):
    """Holds every publish until the gate opens: requests stay in progress meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0
        self.two_waiting = asyncio.Event()

    async def publish(self, records: Any) -> None:
        self.waiting += 1
        if self.waiting == 2:
            self.two_waiting.set()
        await self.gate.wait()
        await super().publish(records)


def test_requests_beyond_the_concurrency_limit_get_503_before_their_body_is_read() -> None:
    publisher = GatedPublisher()
    body = orjson.dumps(native_batch("kong", calls(2)))

    async def scenario(e: Edge) -> None:
        client, _metrics, _ = e
        held = [asyncio.create_task(client.post("/v1/ingest", data=body, headers=KONG))]
        held.append(asyncio.create_task(client.post("/v1/ingest", data=body, headers=KONG)))
        await publisher.two_waiting.wait()  # both are in progress, waiting for their acks
        busy = await client.post("/v1/ingest", data=body, headers=KONG)
        assert busy.status == 503 and busy.headers["Retry-After"] == str(RETRY_AFTER_S)
        assert "busy" in (await busy.json())["error"]
        publisher.gate.set()
        assert [(await task).status for task in held] == [202, 202]
        after = await client.post("/v1/ingest", data=body, headers=KONG)
        assert after.status == 202  # the slots are free again

    run(scenario, publisher=publisher, limits=IngestLimits(256 * 1024, 1024 * 1024, 10_000, 2))
    assert len(publisher.calls) == 3


def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(
            b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-kong-prod-key\r\n"
            b"Content-Length: 1000\r\n\r\n[{"  # then nothing: a stalled client
        )
        await writer.drain()
        # (aiohttp then lingers up to 10 s draining the socket before it closes it)
        answer = await asyncio.wait_for(reader.readuntil(b'"}'), timeout=30)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"not received within 0.3 s" in answer
        assert publisher.calls == []

    run(scenario, limits=IngestLimits(256 * 1024, 1024 * 1024, body_timeout_s=0.3))


def test_too_many_events_is_a_413_with_the_count_and_the_limit() -> None:
    async def scenario(e: Edge) -> None:
        client, _, publisher = e
        response = await client.post(
            "/v1/ingest", data=orjson.dumps(native_batch("kong", calls(11))), headers=KONG
        )
        assert response.status == 413
        body = await response.json()
        assert (body["limit"], body["count"], body["of"]) == (10, 11, "events")
        assert body["hint"] == SPLIT_HINT and publisher.calls == []

    run(scenario, limits=IngestLimits(256 * 1024, 1024 * 1024, max_events=10))


def test_a_flood_of_unauthenticated_requests_logs_one_line_per_interval() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)

    async def scenario(e: Edge) -> None:
        client, _metrics, _ = e
        for _ in range(50):
            response = await client.post("/v1/ingest", data=b"[]", headers={"Authorization": "x"})
            assert response.status == 401

    try:
        run(scenario)
    finally:
        configure_logging("WARNING")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    refused = [line for line in lines if line.get("status") == 401]
    assert len(refused) == 1 and refused[0]["also_refused_since_last"] == 0
