"""The edge against a real Apache Kafka broker: events, dead letters, outages, `ingest`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.catalog import load_catalog
from pipeline.devstack.samples import encode_batch, kong_event, native_batch
from pipeline.events import GATEWAYS, decode_event
from pipeline.ingest.body import item_bytes
from pipeline.ingest.decoders import DecoderContext, decode_items
from pipeline.ingest.partitioner import kafka_partition
from pipeline.ingest.server import EdgeHandle, create_edge, ensure_dead_letter_capacity
from pipeline.kafka import TopicSpec, ensure_topics
from pipeline.settings import Settings, TopicNames
from tests.ingest.test_service import KEYS, RECEIVED, REPO_RULES, calls
from tests.support.stack import private_kafka
from tests.support.topics import consume

pytestmark = pytest.mark.integration

PARTITIONS = 3


def edge_settings(bootstrap: str, name: str, **overrides: Any) -> Settings:
    topics = TopicNames(
        events=f"{name}.events", dead_letters=f"{name}.dead-letters", quarantine=f"{name}.q"
    )
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        topics=topics,
        topic_partitions=PARTITIONS,
        ingest_host="127.0.0.1",
        ingest_port=0,
        rules_dir=REPO_RULES,
        **overrides,
    )


def with_edge(settings: Settings, scenario: Callable[[EdgeHandle], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        assert settings.kafka_bootstrap_servers
        catalog = load_catalog(REPO_RULES)
        edge = await create_edge(
            settings, catalog, settings.kafka_bootstrap_servers, clock=lambda: RECEIVED
        )
        try:
            return await scenario(edge)
        finally:
            await edge.close()

    return asyncio.run(main())


async def post(
    edge: EdgeHandle, body: bytes, key: str, encoding: str | None = "lz4"
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    async with (
        aiohttp.ClientSession() as session,
        session.post(edge.ingest_url, data=body, headers=headers) as response,
    ):
        return response.status, response.headers, await response.json()


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        return {entry[0]: entry[1] for entry in response.resources[0][4]}
    finally:
        await admin.close()


def test_each_gateways_native_batch_comes_out_of_kafka_as_canonical_events(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = edge_settings(kafka_bootstrap, unique_name)
    expected: dict[bytes, Any] = {}

    async def scenario(edge: EdgeHandle) -> list[Any]:
        for gateway in GATEWAYS:
            batch = native_batch(gateway, calls(4, prefix=gateway))
            for item in decode_items(batch, DecoderContext(f"{gateway}-prod", gateway)):
                assert item.event is not None
                expected[item.event.idempotency_key.encode()] = item.event
            status, _, answer = await post(edge, encode_batch(batch, "lz4"), KEYS[gateway])
            assert (status, answer) == (202, {"accepted": 4, "rejected": 0, "errors": []})
        return await consume(kafka_bootstrap, settings.topics.events, len(expected))

    records = with_edge(settings, scenario)
    assert len(records) == len(expected) == 20
    for record in records:
        assert decode_event(record.value) == expected[record.key]
        assert record.partition == kafka_partition(record.key, PARTITIONS)
    assert {decode_event(r.value).gateway for r in records} == set(GATEWAYS)


def test_mixed_batch_is_202_with_exact_errors_and_bad_events_in_the_dead_letter_topic(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = edge_settings(kafka_bootstrap, unique_name)
    good = [kong_event(c) for c in calls(3, prefix="mixed")]
    no_id = kong_event(calls(1, "x")[0])
    del no_id["request"]["id"], no_id["response"]["headers"]["x-kong-request-id"]
    bad_status = kong_event(calls(1, "y")[0])
    bad_status["response"]["status"] = 99
    items = [good[0], no_id, good[1], bad_status, good[2], 42]

    async def scenario(edge: EdgeHandle) -> tuple[Any, list[Any], list[Any]]:
        status, _, answer = await post(edge, encode_batch(items), KEYS["kong"])
        assert status == 202
        events = await consume(kafka_bootstrap, settings.topics.events, 3)
        dead = await consume(kafka_bootstrap, settings.topics.dead_letters, 3)
        return answer, events, dead

    answer, events, dead = with_edge(settings, scenario)
    assert answer["accepted"] == 3 and answer["rejected"] == 3
    assert [e["index"] for e in answer["errors"]] == [1, 3, 5]
    assert answer["errors"][0]["error"].startswith("kong: request.id is missing")
    assert "response.status" in answer["errors"][1]["error"]
    assert answer["errors"][2]["error"].startswith("kong: event must be")
    assert sorted(r.key for r in events) == [b"mixed-0", b"mixed-1", b"mixed-2"]

    dead.sort(key=lambda r: int(dict(r.headers)["index"]))
    assert [r.value for r in dead] == [item_bytes(items[i]) for i in (1, 3, 5)]
    for record, error in zip(dead, answer["errors"], strict=True):
        headers = {name: value.decode() for name, value in record.headers}
        assert record.key == b"kong-prod"
        assert headers == {
            "kind": "event",
            "reason": error["error"],
            "integration": "kong-prod",
            "gateway": "kong",
            "index": str(error["index"]),
            "received_at": "2026-03-01T12:30:00.123456Z",
        }


def test_a_max_size_undecodable_body_is_dead_lettered_byte_for_byte(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = edge_settings(kafka_bootstrap, unique_name)
    body = os.urandom(settings.ingest_max_body_bytes)  # incompressible, exactly at the cap

    async def scenario(edge: EdgeHandle) -> tuple[int, Any, list[Any], dict[str, str]]:
        status, _, answer = await post(edge, body, KEYS["azure"], encoding="gzip")
        dead = await consume(kafka_bootstrap, settings.topics.dead_letters, 1)
        config = await topic_config(kafka_bootstrap, settings.topics.dead_letters)
        return status, answer, dead, config

    status, answer, dead, config = with_edge(settings, scenario)
    assert status == 400 and answer["reason"].startswith("invalid gzip data")
    (record,) = dead
    assert record.value == body
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["kind"] == "body" and headers["integration"] == "azure-prod"
    assert headers["content_encoding"] == "gzip"
    assert int(config["max.message.bytes"]) > settings.ingest_max_decompressed_bytes


def test_an_existing_dead_letter_topic_is_raised_and_keeps_its_other_settings(
    kafka_bootstrap: str, unique_name: str
) -> None:
    async def scenario() -> tuple[str, str, dict[str, str]]:
        await ensure_topics(
            kafka_bootstrap, [TopicSpec(unique_name, 1, config={"retention.ms": "123456789"})]
        )
        raised = await ensure_dead_letter_capacity(kafka_bootstrap, unique_name, 5_000_000)
        # A topic's config is read back eventually after an alter (slow on a fresh broker).
        for _ in range(50):
            if (await topic_config(kafka_bootstrap, unique_name))["max.message.bytes"] == "5000000":
                break
            await asyncio.sleep(0.2)
        again = await ensure_dead_letter_capacity(kafka_bootstrap, unique_name, 5_000_000)
        return raised, again, await topic_config(kafka_bootstrap, unique_name)

    raised, again, config = asyncio.run(scenario())
    assert re.search(r"raised from \d+ to 5000000 bytes", raised)
    assert again.endswith("accepts records up to 5000000 bytes")
    assert config["max.message.bytes"] == "5000000" and config["retention.ms"] == "123456789"


def test_broker_down_is_503_with_retry_after_and_the_same_edge_accepts_again(
    tmp_path: Path, unique_name: str
) -> None:
    launcher = private_kafka(tmp_path)  # ours to stop
    bootstrap = launcher.start().bootstrap_servers
    settings = edge_settings(bootstrap, unique_name, ingest_kafka_timeout_s=2.0)
    accepted_keys: list[bytes] = []

    async def send(edge: EdgeHandle, prefix: str) -> tuple[int, Any]:
        batch = native_batch("kong", calls(5, prefix=prefix))
        status, headers, _ = await post(edge, encode_batch(batch), KEYS["kong"])
        if status == 202:
            accepted_keys.extend(f"{prefix}-{i}".encode() for i in range(5))
        return status, headers

    async def until_accepted(edge: EdgeHandle, prefix: str, within_s: float) -> None:
        deadline, attempt = time.monotonic() + within_s, 0
        while (await send(edge, f"{prefix}-{attempt}"))[0] != 202:
            assert time.monotonic() < deadline, f"no 202 within {within_s} s ({prefix})"
            attempt += 1
            await asyncio.sleep(0.5)

    async def scenario(edge: EdgeHandle) -> list[Any]:
        await until_accepted(edge, "before", 30)  # a new topic may take a moment to lead
        await asyncio.to_thread(launcher.stop)
        for attempt in range(3):
            # a guard against a hang, not a speed check: the answer must come, and be a 503
            async with asyncio.timeout(settings.ingest_kafka_timeout_s + 60):
                status, headers = await send(edge, f"down-{attempt}")
            assert status == 503 and int(headers["Retry-After"]) > 0
        # librdkafka said every broker is down: requests no longer wait the full timeout
        down = edge.metrics.render().decode()
        assert re.search(r"pipeline_ingest_kafka_errors_total\{kind=\"brokers_down\"\} [1-9]", down)
        async with (
            aiohttp.ClientSession() as session,
            session.get(edge.url + "/readyz") as ready,
        ):
            assert ready.status == 503
        await asyncio.to_thread(launcher.start)
        await until_accepted(edge, "after", 90)  # same edge, same publisher object
        assert (await send(edge, "steady"))[0] == 202
        metrics = edge.metrics.render().decode()
        assert re.search(r"pipeline_ingest_kafka_errors_total\{kind=\"\w+\"\} [1-9]", metrics)
        return await consume(bootstrap, settings.topics.events, len(accepted_keys))

    try:
        records = with_edge(settings, scenario)
    finally:
        launcher.stop()
    # Every batch answered 202 is in Kafka (503'd batches may be too: plugins retry, the
    # stream dedups by idempotency key).
    assert set(accepted_keys) <= {r.key for r in records}
    assert len(accepted_keys) >= 15  # before, after, steady


def test_ingest_command_serves_until_sigterm(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PIPELINE_INGEST_PORT": "0",
        "PIPELINE_RULES_DIR": str(REPO_RULES),
        "PIPELINE_TOPIC_EVENTS": f"{unique_name}.events",
        "PIPELINE_TOPIC_DEAD_LETTERS": f"{unique_name}.dead-letters",
        "PIPELINE_TOPIC_QUARANTINE": f"{unique_name}.q",
    }
    code = "from pipeline.ingest.server import run_ingest; from pipeline.settings import "
    code += "load_settings; run_ingest(load_settings())"
    log_file = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log_file.open("w"),
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not (lines and "listening on" in lines[-1]):
            line = process.stdout.readline()
            assert line, f"ingest exited early: {log_file.read_text()}"
            lines.append(line)
        match = re.search(r"listening on (http://[\d.]+:(\d+))", lines[-1])
        assert match and int(match.group(2)) > 0
        body = encode_batch(native_batch("mulesoft", calls(2, prefix="cmd")))
        headers = {"Authorization": f"Bearer {KEYS['mulesoft']}", "Content-Encoding": "lz4"}

        async def once() -> tuple[int, Any]:
            async with (
                aiohttp.ClientSession() as session,
                session.post(match.group(1) + "/v1/ingest", data=body, headers=headers) as r,
            ):
                return r.status, await r.json()

        assert asyncio.run(once()) == (202, {"accepted": 2, "rejected": 0, "errors": []})
        process.send_signal(signal.SIGTERM)
        out = process.stdout.read()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    err = log_file.read_text()
    assert process.returncode == 0, err
    text = "".join(lines) + out
    assert f"connected to Kafka at {kafka_bootstrap}" in text
    assert f"events -> {unique_name}.events" in text
    assert "ingest edge stopped" in text
    assert "dev-mulesoft-prod-key" not in err
    assert "integration=mulesoft-prod" in err and "status=202" in err
