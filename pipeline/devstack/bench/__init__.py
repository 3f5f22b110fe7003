"""Benchmarks of the pipeline's stages on real infrastructure (``python -m pipeline bench``).

This module holds what every bench needs: realistic plugin traffic. :func:`build_bodies` makes
lz4 request bodies of native payloads for every gateway in the catalog (the API ids, routes and
tenants its rules know), each body one integration's batch as its plugin would post it, with
unique idempotency keys; :func:`dev_plugins` pairs each integration with its development key.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.catalog import Catalog, Integration
from pipeline.devstack.samples import SampleCall, encode_batch, native_batch
from pipeline.errors import ConfigError

_METHODS = ("GET", "GET", "GET", "POST", "POST", "PUT", "DELETE")
_STATUSES = (200,) * 14 + (201, 204, 404, 429, 500, 503)


@dataclass(frozen=True)
class Plugin:
    """One gateway deployment of the catalog and its development key."""

    integration: Integration
    key: str


def dev_plugins(catalog: Catalog) -> list[Plugin]:
    """Integrations whose development key (``dev-<id>-key``) the catalog accepts."""
    plugins = [
        Plugin(integration, f"dev-{integration.id}-key")
        for integration in catalog.integrations
        if catalog.integration_for_api_key(f"dev-{integration.id}-key") is integration
    ]
    if not plugins:
        raise ConfigError(
            "the bench needs the development keys of rating_rules/integrations.yaml "
            "(dev-<integration id>-key); none matches the catalog's key digests"
        )
    return plugins


def build_bodies(
    catalog: Catalog, plugins: list[Plugin], count: int, batch_size: int, run: str, seed: int
) -> list[tuple[Plugin, bytes]]:
    """``count`` lz4 request bodies with unique idempotency keys, rotating over the plugins."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    bodies = []
    for number in range(count):
        plugin = plugins[number % len(plugins)]
        calls = [
            _call(catalog, plugin.integration, rng, f"bench-{run}-{number}-{i}", start)
            for i in range(batch_size)
        ]
        bodies.append((plugin, encode_batch(native_batch(plugin.integration.gateway, calls))))
    return bodies


def _call(
    catalog: Catalog, integration: Integration, rng: random.Random, key: str, start: datetime
) -> SampleCall:
    rules = [r for p in catalog.products for r in p.match if r.gateway == integration.gateway]
    rule = rng.choice(rules) if rules else None
    route = (rule.route or "/v1/items").replace("*", "/item") if rule else "/v1/items"
    tenant = catalog.tenant(
        rng.choice(integration.listed_tenants or [t.id for t in catalog.tenants])
    )
    if integration.gateway == "aws" and integration.api_key_tenants:
        consumer = rng.choice(sorted(integration.api_key_tenants))
    else:
        consumer = f"app-{rng.randrange(40)}"
    return SampleCall(
        idempotency_key=key,
        timestamp=start + timedelta(milliseconds=rng.randrange(3_600_000)),
        api=rule.api if rule else "bench-api",
        route=route,
        method=rule.method if rule and rule.method else rng.choice(_METHODS),
        status=rng.choice(_STATUSES),
        request_bytes=rng.randrange(80, 4000),
        response_bytes=rng.randrange(100, 200_000),
        latency_ms=rng.randrange(2, 900),
        consumer=consumer,
        tenant=rng.choice([tenant.id, *tenant.aliases]) if tenant else None,
        attributes={"tokens": str(rng.randrange(10, 4000))} if rng.random() < 0.3 else {},
    )
