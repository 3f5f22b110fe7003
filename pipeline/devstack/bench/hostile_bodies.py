"""Hostile request bodies for the attack campaign (``python -m pipeline bench --hostile``).

Every class of the hostile-input review and a few more, each as a generator of one request
(:class:`Attack`: the key, the body, its encoding, what the edge should answer). Bodies are made
one at a time (a campaign of 100,000 is never held in memory) and are deterministic for a seed.
Good batches are mixed in so that real traffic flows through the worker while it is attacked.

The classes, with the answer the edge gives today:

=====================  =================================================================  =====
class                  what                                                               want
=====================  =================================================================  =====
valid                  a plugin's plain native batch (5-60 events)                        202
item_flood             lz4 of more ``{}`` items than a request may carry                  413
value_flood            a small lz4 body of ~1.6M JSON values                              413
decompression_bomb     lz4 of 64 MiB of spaces                                            413
nested_gzip            AWS items whose gzip data together exceed the request's budget     413
many_frames            100 concatenated gzip members                                      400
bad_items              an array with NaN / 1e400 / bad UTF-8 / a lone surrogate / 300
                       levels in one item, next to good events                            202
bad_ndjson             NDJSON with broken and non-object lines among good ones            202
poison_value           canonical events whose summed attribute has 33 digits              202
wrong_types            canonical events with wrong types in every field                   202
oversized_event        a canonical event with a 300 KB attribute                          202
tenant_spoof           canonical events naming tenants the key may not bill; an AWS key   202
                       naming a tenant in a canonical event
garbage                random bytes under any Content-Encoding                            4xx
unauthenticated        no key or a wrong key                                              401
=====================  =================================================================  =====

Slow bodies (a stalled upload) and requests past the concurrency limit are driven by the runner
(:mod:`pipeline.devstack.bench.hostile`), which also produces records that bypass the edge
(:func:`worker_poison_records`) to attack the worker's record checks.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import lz4.frame
import orjson

from pipeline.devstack.samples import SampleCall, canonical_event, native_batch
from pipeline.devstack.traffic import INTEGRATIONS
from pipeline.events import GATEWAYS, Gateway

#: share of each class in a campaign (valid traffic keeps flowing through the attack)
WEIGHTS: Final[dict[str, int]] = {
    "valid": 30,
    "item_flood": 3,
    "value_flood": 3,
    "decompression_bomb": 1,
    "nested_gzip": 2,
    "many_frames": 4,
    "bad_items": 10,
    "bad_ndjson": 6,
    "poison_value": 6,
    "wrong_types": 8,
    "oversized_event": 2,
    "tenant_spoof": 8,
    "garbage": 10,
    "unauthenticated": 7,
}
_APIS: Final[dict[Gateway, str]] = {
    "kong": "payments-svc",
    "apigee": "payments-v1",
    "aws": "h7k2p9q4xa",
    "azure": "payments-api",
    "mulesoft": "16183421",
}
_TENANTS: Final[dict[Gateway, str]] = {
    "kong": "acme",
    "apigee": "globex",
    "aws": "acme",
    "azure": "umbrella",
    "mulesoft": "initech",
}


@dataclass(frozen=True)
class Attack:
    """One request of the campaign."""

    kind: str
    key: str | None
    body: bytes
    encoding: str | None = None


class HostileBodies:
    """Deterministic requests of every class, in the proportions of :data:`WEIGHTS`."""

    def __init__(self, seed: int, *, max_events: int, run: str) -> None:
        self.rng = random.Random(seed)
        self.max_events = max_events
        self.run = run
        self._serial = 0
        self._kinds = list(WEIGHTS)
        self._weights = list(WEIGHTS.values())
        self._makers: dict[str, Callable[[], Attack]] = {
            kind: getattr(self, f"_{kind}") for kind in WEIGHTS
        }
        # built once: the costly-to-make constant bodies
        self._flood = lz4.frame.compress(orjson.dumps([{}] * (max_events + 1)))
        self._values = lz4.frame.compress(b"[" + b"1," * 1_600_000 + b"1]")
        self._bomb = lz4.frame.compress(b" " * (64 * 1024 * 1024))
        self._nested = self._nested_gzip_body()

    def __iter__(self) -> Iterator[Attack]:
        while True:
            yield self.next()

    def next(self) -> Attack:
        (kind,) = self.rng.choices(self._kinds, self._weights)
        return self._makers[kind]()

    # --- helpers -------------------------------------------------------------------------

    def _key(self) -> str:
        self._serial += 1
        return f"hostile-{self.run}-{self._serial}"

    def _calls(self, gateway: Gateway, count: int) -> list[SampleCall]:
        start = datetime(2026, 5, 1, tzinfo=UTC)
        return [
            SampleCall(
                idempotency_key=self._key(),
                timestamp=start + timedelta(seconds=self.rng.randrange(2_000_000)),
                api=_APIS[gateway],
                route="/v1/payments",
                method="POST",
                status=200,
                request_bytes=self.rng.randrange(100, 5000),
                response_bytes=self.rng.randrange(100, 50_000),
                latency_ms=self.rng.randrange(1, 500),
                consumer=f"app-{self.rng.randrange(20)}",
                tenant=_TENANTS[gateway],
            )
            for _ in range(count)
        ]

    def _gateway(self) -> Gateway:
        return self.rng.choice(GATEWAYS)

    def _canonical(self, gateway: Gateway, **changes: Any) -> dict[str, Any]:
        (call,) = self._calls(gateway, 1)
        event = canonical_event(call)
        event.update(changes)
        return event

    # --- the classes ----------------------------------------------------------------------

    def _valid(self) -> Attack:
        gateway = self._gateway()
        items = native_batch(gateway, self._calls(gateway, self.rng.randrange(5, 61)))
        body = lz4.frame.compress(orjson.dumps(items))
        return Attack("valid", INTEGRATIONS[gateway][1], body, "lz4")

    def _item_flood(self) -> Attack:
        return Attack("item_flood", INTEGRATIONS["kong"][1], self._flood, "lz4")

    def _value_flood(self) -> Attack:
        return Attack("value_flood", INTEGRATIONS["apigee"][1], self._values, "lz4")

    def _decompression_bomb(self) -> Attack:
        return Attack("decompression_bomb", INTEGRATIONS["azure"][1], self._bomb, "lz4")

    def _nested_gzip_body(self) -> bytes:
        inner = base64.b64encode(gzip.compress(b" " * (4 * 1024 * 1024), mtime=0)).decode()
        return orjson.dumps([{"awslogs": {"data": inner}}] * 6)

    def _nested_gzip(self) -> Attack:
        return Attack("nested_gzip", INTEGRATIONS["aws"][1], self._nested)

    def _many_frames(self) -> Attack:
        members = b"".join(gzip.compress(b" ", mtime=0) for _ in range(100))
        return Attack("many_frames", INTEGRATIONS["kong"][1], members, "gzip")

    def _bad_items(self) -> Attack:
        gateway = self._gateway()
        if gateway == "aws":
            gateway = "kong"
        good = [orjson.dumps(item) for item in native_batch(gateway, self._calls(gateway, 4))]
        too_deep = b"[" * 300 + b"]" * 300
        bad = self.rng.choice(
            [b'{"n": NaN}', b'{"n": 1e400}', b'{"s": "\xff\xfe"}', b'{"s": "\\ud800"}', too_deep]
        )
        body = b"[" + b",".join([*good[:2], bad, *good[2:]]) + b"]"
        return Attack("bad_items", INTEGRATIONS[gateway][1], body)

    def _bad_ndjson(self) -> Attack:
        lines = [orjson.dumps(self._canonical("kong")) for _ in range(4)]
        lines.insert(2, b'{"idempotency_key": "x", "timestamp": ')
        lines.insert(4, b"[1, 2, 3]")
        return Attack("bad_ndjson", INTEGRATIONS["kong"][1], b"\n".join(lines) + b"\n")

    def _poison_value(self) -> Attack:
        events = [self._canonical("kong") for _ in range(3)]
        events[1]["api"] = "llm-gateway"
        events[1]["attributes"] = {"tokens": "9" * 33}  # used to stall a partition
        return Attack("poison_value", INTEGRATIONS["kong"][1], orjson.dumps(events))

    def _wrong_types(self) -> Attack:
        field, value = self.rng.choice(
            [
                ("status", "abc"),
                ("status", 70000),
                ("tenant_header", [1]),
                ("tenant_header", {"a": 1}),
                ("request_bytes", -5),
                ("latency_ms", 2**70),
                ("attributes", {"deep": {"x": 1}}),
                ("attributes", [1, 2]),
                ("timestamp", "yesterday"),
                ("timestamp", 10**18),
                ("idempotency_key", "k" * 5000),
                ("method", 12),
            ]
        )
        events = [self._canonical("mulesoft"), self._canonical("mulesoft", **{field: value})]
        body = json.dumps(events).encode()  # json, not orjson: it writes ints past 64 bits
        return Attack("wrong_types", INTEGRATIONS["mulesoft"][1], body)

    def _oversized_event(self) -> Attack:
        event = self._canonical("azure", attributes={"blob": "x" * 300_000})
        return Attack("oversized_event", INTEGRATIONS["azure"][1], orjson.dumps([event]))

    def _tenant_spoof(self) -> Attack:
        if self.rng.random() < 0.5:  # apigee-prod may bill globex and acme only
            events = [self._canonical("apigee", tenant_header="umbrella") for _ in range(3)]
            return Attack("tenant_spoof", INTEGRATIONS["apigee"][1], orjson.dumps(events))
        events = [self._canonical("aws", tenant_header="umbrella")]  # AWS: never from the event
        return Attack("tenant_spoof", INTEGRATIONS["aws"][1], orjson.dumps(events))

    def _garbage(self) -> Attack:
        raw = self.rng.randbytes(self.rng.randrange(1, 4096))
        encoding = self.rng.choice(["lz4", "gzip", None, "br", "identity"])
        return Attack("garbage", INTEGRATIONS["kong"][1], raw, encoding)

    def _unauthenticated(self) -> Attack:
        key = self.rng.choice([None, "", "dev-kong-prod-key-x", "x" * 10_000])
        return Attack("unauthenticated", key, orjson.dumps([self._canonical("kong")]))


def worker_poison_records(count: int, seed: int, run: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) records that bypass the edge, straight to the events topic: every shape a
    worker must dead-letter instead of crashing or stalling on."""
    rng = random.Random(seed)
    base = {
        "idempotency_key": "",
        "tenant_headers": ["acme"],
        "gateway": "kong",
        "integration_id": "kong-prod",
        "timestamp": "2026-05-02T10:00:00.000000Z",
        "api": "llm-gateway",
        "route": "/v1/completions",
        "method": "POST",
        "status": 200,
        "request_bytes": 10,
        "response_bytes": 10,
        "latency_ms": 10,
        "consumer": "app-1",
        "attributes": {},
    }
    breakers: list[dict[str, Any] | bytes | None] = [
        {"tenant_headers": [1]},
        {"tenant_headers": "acme"},
        {"status": "abc"},
        {"status": 70000},
        {"request_bytes": -1},
        {"latency_ms": 2**70},
        {"attributes": {"tokens": "9" * 33}},
        {"attributes": {"tokens": 5}},
        {"timestamp": "not a time"},
        {"timestamp": "2026-05-02T10:00:00"},
        {"gateway": 7},
        b"not json at all",
        b"\xff\xfe\x00",
        b"[]",
        None,
    ]
    records: list[tuple[bytes, bytes | None]] = []
    for number in range(count):
        key = f"poison-{run}-{number}"
        breaker = breakers[rng.randrange(len(breakers))]
        if breaker is None or isinstance(breaker, bytes):
            records.append((key.encode(), breaker))
            continue
        record = {**base, "idempotency_key": key, **breaker}
        records.append((key.encode(), json.dumps(record).encode()))  # json: ints past 64 bits
    return records
