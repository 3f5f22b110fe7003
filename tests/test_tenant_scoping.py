"""contract §12, end to end through the edge's service and the worker's batch step (both pure,
the example catalog): a key cannot bill a tenant outside its integration's tenants, whether the
tenant is named by a native header, by a canonical event, or by AWS's authorizer context."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.devstack.samples import SampleCall, canonical_event, native_batch
from pipeline.worker.batch import BatchProcessor, ConsumedMessage
from tests.ingest.test_service import KEYS, TOPICS, dev_catalog, make_service

CALL = SampleCall(
    idempotency_key="scope-1",
    timestamp=datetime(2026, 3, 3, 10, tzinfo=UTC),
    api="payments-v1",
    route="/v1/payments",
    method="POST",
    tenant="umbrella",  # apigee-prod may bill globex and acme only
)


def fates(gateway: Any, items: list[Any]) -> tuple[list[str], list[str]]:
    """(rejections at the edge, quarantine reasons at the worker) of one posted batch."""
    service, publisher = make_service()
    integration = service.authenticate(f"Bearer {KEYS[gateway]}")
    result = asyncio.run(service.ingest(integration, orjson.dumps(items), None))
    events = [r for r in publisher.records if r.topic == TOPICS.events]
    processor = BatchProcessor(dev_catalog(), clock=lambda: datetime.now(UTC), window_ms=10**9)
    messages = [ConsumedMessage("events", 0, n, r.value) for n, r in enumerate(events)]
    batch = processor.process(messages, lambda partition, key: None)
    reasons = [dict(q.headers)["reason"].decode() for q in batch.quarantined]
    assert not batch.sink_batch.usage_events  # nothing billed
    return [e["error"] for e in result.errors], reasons


def test_a_native_header_naming_another_tenant_is_quarantined() -> None:
    assert fates("apigee", native_batch("apigee", [CALL])) == ([], ["tenant_not_allowed"])


def test_a_canonical_event_naming_another_tenant_is_quarantined() -> None:
    event = canonical_event(CALL)
    assert fates("apigee", [event]) == ([], ["tenant_not_allowed"])


def test_aws_takes_the_tenant_from_its_context_only_and_only_an_allowed_one() -> None:
    # the authorizer context names umbrella, which aws-prod may not bill
    aws = replace(CALL, api="h7k2p9q4xa", consumer="a1b2c3d4e5")
    assert fates("aws", native_batch("aws", [aws])) == ([], ["tenant_not_allowed"])
    # a canonical event from the AWS key cannot name a tenant at all, even an allowed one
    errors, reasons = fates("aws", [canonical_event(replace(aws, tenant="acme"))])
    assert reasons == [] and len(errors) == 1
    assert "not taken from events of an aws integration" in errors[0]
