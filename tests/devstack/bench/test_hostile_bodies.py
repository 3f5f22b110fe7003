"""The attack campaign's bodies: each class gets the answer its table promises from the edge's
own service (fake publisher), and the worker's poison records are what a worker must refuse."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from pipeline.devstack.bench.hostile_bodies import WEIGHTS, HostileBodies, worker_poison_records
from pipeline.ingest.auth import Unauthenticated
from pipeline.ingest.errors import BatchTooLarge, BodyTooLarge, IngestError, UndecodableBody
from pipeline.ingest.service import IngestLimits
from tests.ingest.test_service import TOPICS, make_service

#: what the edge answers each class (a 202 may carry rejections)
EXPECTED: dict[str, type[Exception] | str] = {
    "valid": "202 all accepted",
    "item_flood": BatchTooLarge,
    "value_flood": BatchTooLarge,
    "decompression_bomb": BodyTooLarge,
    "nested_gzip": BodyTooLarge,
    "many_frames": UndecodableBody,
    "bad_items": "202 some rejected",
    "bad_ndjson": "202 some rejected",
    "poison_value": "202 some rejected",
    "wrong_types": "202 some rejected",
    "oversized_event": "202 some rejected",
    "tenant_spoof": "202",
    "garbage": IngestError,
    "unauthenticated": Unauthenticated,
}


def outcome(attack: Any) -> Any:
    service, publisher = make_service(limits=IngestLimits(4 << 20, 16 << 20))
    integration = service.authenticate(None if attack.key is None else f"Bearer {attack.key}")
    return asyncio.run(service.ingest(integration, attack.body, attack.encoding)), publisher


def test_every_class_is_in_the_table_and_gets_its_answer() -> None:
    assert set(EXPECTED) == set(WEIGHTS)
    source = HostileBodies(3, max_events=10_000, run="t")
    for kind, expected in EXPECTED.items():
        for _ in range(3):
            attack = source._makers[kind]()
            assert attack.kind == kind
            if isinstance(expected, type):
                with pytest.raises(expected):
                    outcome(attack)
                continue
            result, publisher = outcome(attack)
            if expected == "202 all accepted":
                assert result.rejected == 0 and result.accepted > 0, kind
            elif expected == "202 some rejected":
                assert result.rejected > 0, kind
                dead = [r for r in publisher.records if r.topic == TOPICS.dead_letters]
                assert len(dead) == result.rejected


def test_the_mix_follows_the_weights_and_is_reproducible() -> None:
    source = HostileBodies(1, max_events=100, run="a")
    replay = HostileBodies(1, max_events=100, run="a")
    first = [source.next().kind for _ in range(2000)]
    again = [replay.next().kind for _ in range(2000)]
    assert first == again
    share = first.count("valid") / len(first)
    assert abs(share - WEIGHTS["valid"] / sum(WEIGHTS.values())) < 0.05


def test_records_past_the_edge_cover_every_breaker() -> None:
    """Each record breaks the canonical record in one way (the campaign checks the worker
    dead-letters every one of them and keeps its partitions moving)."""
    records = worker_poison_records(600, 1, "t")
    assert len({key for key, _ in records}) == 600
    kinds = set()
    for _key, value in records:
        if value is None or not value.startswith(b"{"):
            kinds.add("not an object" if value else "no value")
            continue
        document = orjson.loads(value)
        assert document["idempotency_key"] == _key.decode()
        kinds.add(
            next(k for k in ("tenant_headers", "status", "request_bytes", "latency_ms",
                             "attributes", "timestamp", "gateway")
                 if document[k] != BASE[k])
        )  # fmt: skip
    assert kinds == {
        "no value", "not an object", "tenant_headers", "status", "request_bytes", "latency_ms",
        "attributes", "timestamp", "gateway",
    }  # fmt: skip


BASE = {
    "tenant_headers": ["acme"],
    "status": 200,
    "request_bytes": 10,
    "latency_ms": 10,
    "attributes": {},
    "timestamp": "2026-05-02T10:00:00.000000Z",
    "gateway": "kong",
}
