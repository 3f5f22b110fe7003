"""The rows of one batch as the sink writes them: each table's columns, and the batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: column order of each table's rows (batch.py builds value tuples in this order)
LOG_COLUMNS = (
    "source_topic",
    "source_partition",
    "source_offset",
    "idempotency_key",
    "integration_id",
    "gateway",
    "tenant_headers",
    "tenant",
    "event_time",
    "disposition",
    "quarantine_reason",
    "quarantine_detail",
    "product",
    "payload",
    "processed_at",
)
USAGE_COLUMNS = (
    "tenant",
    "idempotency_key",
    "gateway",
    "integration_id",
    "tenant_header",
    "event_time",
    "api",
    "route",
    "method",
    "status",
    "request_bytes",
    "response_bytes",
    "latency_ms",
    "consumer",
    "attributes",
    "product",
    "fate",
    "billing_run",
    "source_partition",
    "source_offset",
    "processed_at",
)
ENTRY_COLUMNS = (
    "billing_run",
    "tenant",
    "product",
    "metric",
    "aggregation",
    "idempotency_key",
    "event_time",
    "value",
    "distinct_value",
    "divide_by",
)
COLUMNS = {
    "event_log": LOG_COLUMNS,
    "usage_events": USAGE_COLUMNS,
    "meter_entries": ENTRY_COLUMNS,
}


@dataclass
class SinkBatch:
    """The rows of one batch, per table: value tuples in the order of :data:`COLUMNS`."""

    event_log: list[Sequence[Any]] = field(default_factory=list)
    usage_events: list[Sequence[Any]] = field(default_factory=list)
    meter_entries: list[Sequence[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_log)

    def dicts(self, table: str) -> list[dict[str, Any]]:
        """The rows of ``table`` as column -> value dicts (replays, tests, tools)."""
        columns = COLUMNS[table]
        return [dict(zip(columns, row, strict=True)) for row in getattr(self, table)]
