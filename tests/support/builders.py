"""Small builders for tests: catalogs from YAML text and canonical event dicts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.catalog import Catalog, load_catalog, parse_rules
from pipeline.events import EventFields

RULES_DIR = Path(__file__).resolve().parents[2] / "rating_rules"


def example_catalog() -> Catalog:
    """The example catalog shipped in rating_rules/."""
    return load_catalog(RULES_DIR)


def catalog_from_yaml(text: str, source: str = "test.yaml") -> Catalog:
    return Catalog.from_rules(parse_rules(text, source))


def key_sha256(name: str) -> str:
    """A distinct api_key_sha256 per integration name."""
    return hashlib.sha256(name.encode()).hexdigest()


def make_event(**overrides: Any) -> EventFields:
    """A valid canonical event dict (kong, payments-svc, tenant acme) with ``overrides``."""
    event: dict[str, Any] = {
        "idempotency_key": "req-1",
        "tenant_headers": ("acme",),
        "gateway": "kong",
        "integration_id": "kong-prod",
        "timestamp": datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
        "api": "payments-svc",
        "route": "/v1/payments",
        "method": "POST",
        "status": 200,
        "request_bytes": 120,
        "response_bytes": 2048,
        "latency_ms": 35,
        "consumer": "app-1",
        "attributes": {},
    }
    unknown = set(overrides) - set(event)
    if unknown:
        raise TypeError(f"not event fields: {sorted(unknown)}")
    event.update(overrides)
    return event  # type: ignore[return-value]
