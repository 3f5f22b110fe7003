"""The ingest bench with tiny numbers against the real broker: result structure, not timings."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.catalog import load_catalog
from pipeline.devstack.bench import build_bodies, dev_plugins
from pipeline.devstack.bench.http_client import KeepAliveConnection, post_request
from pipeline.devstack.bench.ingest import IngestBenchResult, _drive, run_ingest_bench
from pipeline.errors import ConfigError
from pipeline.events import GATEWAYS
from pipeline.ingest.body import decode_body
from pipeline.ingest.decoders import DecoderContext, decode_items
from pipeline.settings import Settings
from tests.devstack.bench.test_http_client import ScriptedServer, answer, drop, send
from tests.ingest.test_service import REPO_RULES


def settings() -> Settings:
    return Settings(rules_dir=REPO_RULES)


def test_bench_bodies_are_realistic_batches_every_gateway_decodes_cleanly() -> None:
    catalog = load_catalog(REPO_RULES)
    plugins = dev_plugins(catalog)
    assert sorted(p.integration.gateway for p in plugins) == sorted(GATEWAYS)
    bodies = build_bodies(catalog, plugins, count=10, batch_size=20, run="r1", seed=3)
    assert bodies == build_bodies(catalog, plugins, count=10, batch_size=20, run="r1", seed=3)
    keys = set()
    for plugin, body in bodies:
        items = decode_body(body, "lz4", max_compressed=1 << 20, max_decompressed=1 << 22)
        integration = plugin.integration
        ctx = DecoderContext(integration.id, integration.gateway, integration.api_key_tenants)
        decoded = decode_items(items, ctx)
        assert len(decoded) == 20 and all(d.event is not None for d in decoded), decoded
        keys.update(d.event.idempotency_key for d in decoded if d.event)
    assert len(keys) == 200  # unique idempotency keys across the pool


def test_bench_refuses_nonsense_sizes() -> None:
    with pytest.raises(ConfigError):
        run_ingest_bench(settings(), "127.0.0.1:1", clients=0)


def test_drive_reports_latency_status_and_accepted_per_request() -> None:
    server = ScriptedServer(
        [
            send(answer(202, b'{"accepted":100,"rejected":0}')),
            send(answer(401, b'{"error":"unauthorized"}')),
            drop,  # no HTTP answer: status 0, that poster reconnects
            send(answer(202, b'{"accepted":7,"rejected":93}')),
            send(answer(202, b'{"accepted":3,"rejected":0}')),
        ]
    )
    progress: list[int] = []
    connections: list[KeepAliveConnection] = []

    async def main() -> list[tuple[float, int, int]]:
        target = await server.start()
        connections.extend(KeepAliveConnection(target) for _ in range(2))
        requests = [post_request(target, b"%d" % n, {}) for n in range(5)]
        try:
            return await asyncio.wait_for(_drive(connections, requests, progress.append), 10)
        finally:
            for connection in connections:
                await connection.close()
            await server.stop()

    outcomes = asyncio.run(main())
    assert sorted((status, accepted) for _, status, accepted in outcomes) == [
        (0, 0), (202, 3), (202, 7), (202, 100), (401, 0),
    ]  # fmt: skip
    assert all(ms > 0 for ms, _, _ in outcomes)
    assert len(progress) == 5 and progress == sorted(progress) and progress[-1] == 110
    assert sorted(body for _, _, body in server.requests) == [b"0", b"1", b"2", b"3", b"4"]
    # kept alive: one connection per poster, plus one if the dropped poster posted again
    assert server.connections == sum(c.connects for c in connections) in (2, 3)


def _check(result: IngestBenchResult, batches: int, batch_size: int) -> None:
    assert result.plan.batches == batches and result.plan.batch_size == batch_size
    assert result.events_sent == batches * batch_size
    assert result.events_accepted == result.events_sent and result.failed_batches == 0
    assert result.duration_s > 0 and result.events_per_s > 0
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert set(result.stage_ms) == {"read", "decode", "publish"}
    assert all(ms >= 0 for ms in result.stage_ms.values())
    text = result.summary()
    assert "events/s" in text and "p99" in text and "edge time per batch" in text


async def _bench_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith("bench-ingest-")]
    finally:
        await admin.close()


@pytest.mark.integration
def test_in_process_bench_reports_throughput_latency_and_stages(kafka_bootstrap: str) -> None:
    before = set(asyncio.run(_bench_topics(kafka_bootstrap)))
    result = run_ingest_bench(
        settings(), kafka_bootstrap, clients=2, batches=6, batch_size=5, warmup_batches=1,
        in_process=True,
    )  # fmt: skip
    _check(result, 6, 5)
    assert result.plan.in_process and result.profile == []
    assert result.edge_peak_rss_mb == []  # the edge is the bench process: no process of its own
    assert set(asyncio.run(_bench_topics(kafka_bootstrap))) <= before  # its topics are deleted


@pytest.mark.integration
def test_subprocess_bench_with_two_edges_and_a_profile(kafka_bootstrap: str) -> None:
    accepted: list[int] = []
    result = run_ingest_bench(
        settings(), kafka_bootstrap, clients=3, batches=8, batch_size=10, warmup_batches=2,
        edge_processes=2, profile=True, progress=accepted.append,
    )  # fmt: skip
    _check(result, 8, 10)
    assert result.plan.edge_processes == 2 and not result.plan.in_process
    # one peak per edge process, each a whole Python process (not the bench's own memory)
    assert len(result.edge_peak_rss_mb) == 2 and all(mb > 20 for mb in result.edge_peak_rss_mb)
    assert "peak RSS per edge process" in result.summary()
    # progress after every measured batch, warm-up left out
    assert len(accepted) == 8 and accepted[-1] == 80 and accepted == sorted(accepted)
    split, *top = result.profile
    assert split.startswith("CPU ") and "gateway decoders" in split and "producer send" in split
    assert 0 < len(top) <= 15 and all(" own " in line for line in top)
    assert "edge profile" in result.summary()
