"""Sample traffic from all five gateways, as their plugins send it (dev, tests, bench).

Deterministic for a seed. Calls spread over the example catalog (``rating_rules/``): every
tenant under its id and its aliases in varied case and whitespace, AWS tenants through the
authorizer or the API-key map, header-less events for integrations with a default tenant, some
unknown tenants (quarantined), some unmatched APIs (unmapped) and per-call delivery counts
(plugin retries: 1 to 3 copies).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.devstack.samples import SampleCall, native_batch
from pipeline.events import CanonicalEvent, Gateway
from pipeline.ingest.decoders import DecoderContext, decode_items

GATEWAYS: tuple[Gateway, ...] = ("kong", "apigee", "aws", "azure", "mulesoft")

#: integration id and development key per gateway (rating_rules/integrations.yaml)
INTEGRATIONS: dict[Gateway, tuple[str, str]] = {
    "kong": ("kong-prod", "dev-kong-prod-key"),
    "apigee": ("apigee-prod", "dev-apigee-prod-key"),
    "aws": ("aws-prod", "dev-aws-prod-key"),
    "azure": ("azure-prod", "dev-azure-prod-key"),
    "mulesoft": ("mulesoft-prod", "dev-mulesoft-prod-key"),
}
AWS_KEY_TENANTS = {"a1b2c3d4e5": "acme", "k9x8w7v6u5": "initech", "q1w2e3r4t5": "globex"}

# (product api per gateway, route, method)
_APIS: dict[str, dict[Gateway, tuple[str, str, str]]] = {
    "payments": {
        "kong": ("payments-svc", "/v1/payments", "POST"),
        "apigee": ("payments-v1", "/v1/payments", "POST"),
        "aws": ("h7k2p9q4xa", "/v1/payments/{id}", "GET"),
        "azure": ("payments-api", "/v1/payments", "POST"),
        "mulesoft": ("16183421", "/v1/payments", "GET"),
    },
    "search": {
        "kong": ("search-svc", "/v2/search", "GET"),
        "apigee": ("search-v2", "/v2/search", "GET"),
        "aws": ("q3w8e5r2ty", "/search", "POST"),
        "azure": ("search-api", "/v2/search", "GET"),
        "mulesoft": ("16183500", "/v2/search", "GET"),
    },
    "ai-completions": {
        "kong": ("llm-gateway", "/v1/completions", "POST"),
        "apigee": ("llm-v1", "/v1/completions", "POST"),
        "aws": ("h7k2p9q4xa", "/v1/completions", "POST"),
        "azure": ("openai-proxy", "/v1/completions", "POST"),
        "mulesoft": ("16183777", "/v1/completions", "POST"),
    },
    "unmapped": {gw: (f"legacy-{gw}", "/internal/health", "GET") for gw in GATEWAYS},
}

# Header values per tenant: id and aliases, in the variants plugins really send.
_HEADERS = {
    "acme": ["acme", "ACME", " acme ", "ACME-LEGACY", "acme-legacy", "acme_eu", "Acme_EU"],
    "globex": ["globex", "Globex-Corp", "GLOBEX_US", " globex"],
    "initech": ["initech", "INITECH-KK", "Initech"],
    "umbrella": ["umbrella", "umbrella-eu", "UMBRELLA"],
}
# Tenants each integration may report (allowed_tenants in the example catalog).
_TENANTS_OF: dict[Gateway, list[str]] = {
    "kong": ["acme", "globex", "initech", "umbrella"],
    "apigee": ["globex", "acme"],
    "aws": ["acme", "initech", "globex"],
    "azure": ["umbrella", "acme", "initech"],
    "mulesoft": ["initech", "acme", "umbrella"],
}
_AWS_KEY_OF = {tenant: key for key, tenant in AWS_KEY_TENANTS.items()}


@dataclass(frozen=True)
class SampleDelivery:
    gateway: Gateway
    call: SampleCall
    copies: int


def sample_deliveries(
    count: int,
    *,
    seed: int = 7,
    start: datetime = datetime(2026, 3, 1, tzinfo=UTC),
    spread: timedelta = timedelta(days=28),
    max_copies: int = 3,
    quarantine_share: float = 0.02,
    unmapped_share: float = 0.03,
    key_prefix: str = "req",
) -> list[SampleDelivery]:
    """``count`` distinct calls over all gateways, each with 1..max_copies deliveries."""
    rng = random.Random(seed)
    out: list[SampleDelivery] = []
    for i in range(count):
        gateway = GATEWAYS[i % len(GATEWAYS)]
        roll = rng.random()
        product = rng.choice(["payments", "payments", "search", "ai-completions"])
        if roll < unmapped_share:
            product = "unmapped"
        tenant_header: str | None
        consumer: str | None = f"app-{rng.randint(1, 12)}"
        tenant = rng.choice(_TENANTS_OF[gateway])
        tenant_header = rng.choice(_HEADERS[tenant])
        if roll > 1 - quarantine_share:
            tenant_header = f"unknown-{rng.randint(1, 3)}"
        elif gateway == "aws" and rng.random() < 0.5:
            tenant_header, consumer = None, _AWS_KEY_OF[tenant]  # tenant from the api-key map
        elif gateway in ("apigee", "mulesoft") and rng.random() < 0.1:
            tenant_header = None  # the integration's default tenant
        api, route, method = _APIS[product][gateway]
        attributes = {"tokens": str(rng.randint(10, 4000))} if product == "ai-completions" else {}
        call = SampleCall(
            idempotency_key=f"{key_prefix}-{gateway}-{i:08d}",
            timestamp=start + spread * rng.random(),
            api=api,
            route=route,
            method=method,
            status=rng.choice([200, 200, 200, 201, 204, 404, 429, 500, 503]),
            request_bytes=rng.randint(80, 4000),
            response_bytes=rng.randint(100, 2_000_000),
            latency_ms=rng.randint(2, 900),
            consumer=consumer,
            tenant=tenant_header,
            attributes=attributes,
        )
        out.append(SampleDelivery(gateway, call, rng.randint(1, max_copies)))
    return out


def decoder_context(gateway: Gateway) -> DecoderContext:
    integration_id, _key = INTEGRATIONS[gateway]
    return DecoderContext(
        integration_id=integration_id,
        gateway=gateway,
        api_key_tenants=AWS_KEY_TENANTS if gateway == "aws" else {},
    )


def canonical(delivery: SampleDelivery) -> CanonicalEvent:
    """The canonical event the edge makes of this delivery (through the real decoder)."""
    items = native_batch(delivery.gateway, [delivery.call])
    [decoded] = decode_items(items, decoder_context(delivery.gateway))
    if decoded.event is None:
        raise ValueError(f"sample did not decode: {decoded.error}")
    return decoded.event


def shuffled_copies(
    deliveries: Sequence[SampleDelivery], *, seed: int = 11
) -> Iterator[tuple[SampleDelivery, CanonicalEvent]]:
    """Every copy of every delivery, in a shuffled order (retries arrive late and interleaved)."""
    copies = [(d, canonical(d)) for d in deliveries for _ in range(d.copies)]
    random.Random(seed).shuffle(copies)
    yield from copies
