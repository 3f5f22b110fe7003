"""Prometheus metrics of the stream workers (served on the worker's web port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_IN = Counter("pipeline_worker_events_total", "Events consumed from the events topic")
FATES = Counter(
    "pipeline_worker_event_fates_total",
    "Stream decision per consumed event: first_copy (billed or unmapped), duplicate, quarantined",
    ["decision"],
)
UNMAPPED = Counter("pipeline_worker_unmapped_total", "First copies that matched no product")
QUARANTINED = Counter(
    "pipeline_worker_quarantined_total", "Quarantined events by reason", ["reason"]
)
DEAD_LETTERS = Counter(
    "pipeline_worker_dead_letters_total", "Records that were not canonical events, dead-lettered"
)
METER_PROBLEMS = Counter(
    "pipeline_worker_meter_problems_total",
    "Metric values that could not be read from an event (e.g. a non-numeric attribute)",
    ["product", "metric"],
)
CONSUMER_LAG = Gauge(
    "pipeline_worker_consumer_lag", "Messages not yet processed per partition", ["partition"]
)
KAFKA_RETRIES = Counter(
    "pipeline_worker_kafka_retries_total",
    "Failed Kafka steps after a batch was written (retried; the batch stays uncommitted)",
    ["step"],
)
POISON_RECORDS = Counter(
    "pipeline_worker_poison_records_total",
    "Consumed records whose row ClickHouse refused for good (a value it cannot store), by the "
    "table that refused it: isolated, dead-lettered, never billed",
    ["table"],
)
