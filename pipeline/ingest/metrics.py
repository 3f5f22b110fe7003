"""Prometheus metrics of the ingest edge, served at ``GET /metrics``.

Each edge owns its :class:`IngestMetrics` with a private registry (several edges can live in one
process: tests, ``dev``). Labels have bounded values only: integration ids come from the
catalog, reason classes and stages are fixed sets, status codes are the few the edge answers.
Per-event rejection *messages* are never labels (they contain client data).
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

RejectionClass = Literal["invalid_event", "undecodable_body", "unsupported_encoding", "saturated"]
Stage = Literal["read", "decode", "publish"]

LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SIZE_BUCKETS: Final = tuple(float(1 << shift) for shift in range(8, 28, 2))  # 256 B .. 32 MiB

METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class IngestMetrics:
    """Counters and histograms of one edge; also the publisher's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pipeline_ingest_requests_total",
            "Ingest requests by HTTP status",
            ["status"],
            registry=r,
        )
        self.accepted = Counter(
            "pipeline_ingest_events_accepted_total",
            "Events acknowledged by Kafka on the events topic",
            ["integration"],
            registry=r,
        )
        self.decoded_batches = Counter(
            "pipeline_ingest_batches_decoded_total",
            "Accepted batches by decoder path: typed (the fast path took every item) or general "
            "(declined: other shapes, rejected events); mostly general means a plugin sends "
            "values in a form the fast path does not take (correct, but slower)",
            ["integration", "path"],
            registry=r,
        )
        self.rejected = Counter(
            "pipeline_ingest_rejected_total",
            "Dead-lettered events (invalid_event) and whole bodies (undecodable_body, "
            "unsupported_encoding)",
            ["integration", "reason_class"],
            registry=r,
        )
        self.latency = Histogram(
            "pipeline_ingest_request_seconds",
            "Time from request start to response, all outcomes",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "pipeline_ingest_stage_seconds",
            "Time per request stage: read (body from the socket), decode (decompress, parse, "
            "gateway decoders, encode records), publish (send and wait for every Kafka ack)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.body_bytes = Histogram(
            "pipeline_ingest_body_bytes",
            "Request body size as sent (compressed)",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.kafka_errors = Counter(
            "pipeline_ingest_kafka_errors_total",
            "Failed publishes by kind (timeout, brokers_down, or the Kafka error's name)",
            ["kind"],
            registry=r,
        )
        self.producer_replacements = Counter(
            "pipeline_ingest_producer_replacements_total",
            "Kafka producers replaced after a fatal error or a long outage",
            registry=r,
        )

    # --- PublisherObserver -------------------------------------------------------------------
    def kafka_error(self, kind: str) -> None:
        self.kafka_errors.labels(kind).inc()

    def producer_replaced(self) -> None:
        self.producer_replacements.inc()

    def stage_totals(self) -> dict[str, tuple[float, float]]:
        """Per stage: (seconds spent, requests observed) so far."""
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for family in self.stage.collect():
            for sample in family.samples:
                stage = sample.labels.get("stage", "")
                if sample.name.endswith("_sum"):
                    sums[stage] = sample.value
                elif sample.name.endswith("_count"):
                    counts[stage] = sample.value
        return {stage: (sums.get(stage, 0.0), count) for stage, count in counts.items()}

    # --- exposition ---------------------------------------------------------------------------
    def render(self) -> bytes:
        """The text exposition format of every metric of this edge."""
        return generate_latest(self.registry)
