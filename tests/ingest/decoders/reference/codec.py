"""Reference copy of ``encode_event`` (see the package doc), printing times with the old
``format_utc``."""

from __future__ import annotations

import orjson

from pipeline.events import CanonicalEvent
from tests.ingest.decoders.reference.timestamps import format_utc


def encode_event(event: CanonicalEvent) -> bytes:
    """The Kafka record value of ``event`` (compact JSON, UTF-8)."""
    return orjson.dumps(
        {
            "idempotency_key": event.idempotency_key,
            "tenant_headers": event.tenant_headers,
            "gateway": event.gateway,
            "integration_id": event.integration_id,
            "timestamp": format_utc(event.timestamp),
            "api": event.api,
            "route": event.route,
            "method": event.method,
            "status": event.status,
            "request_bytes": event.request_bytes,
            "response_bytes": event.response_bytes,
            "latency_ms": event.latency_ms,
            "consumer": event.consumer,
            "attributes": event.attributes,
        }
    )
