"""HTTP layer of the ingest edge: ``POST /v1/ingest``, ``/healthz``, ``/readyz``, ``/metrics``.

Why aiohttp: it is well kept (aio-libs), asyncio-native, so the server shares one event loop with
the publisher (librdkafka's delivery reports reach it with one thread-safe wake-up per request,
see ``publisher.py``), and its per-request overhead is low (C HTTP parser, no middleware stack
unless asked for). It also lets us read the body as a stream, so the size cap is enforced while
reading, not after buffering.

This module is the only place that chooses status codes (contract §2):

=================================  ======================================================
outcome                            answer
=================================  ======================================================
batch acknowledged by Kafka        202 ``{"accepted", "rejected", "errors": [...]}``
missing / unknown key              401 ``{"error": "unauthorized"}`` (nothing more)
body over a size cap, or more       413 with the limit and a hint to split the batch
events than one request may carry
unsupported ``Content-Encoding``   415 (body dead-lettered first)
undecodable body                   400 with the reason (body dead-lettered first)
body not fully received            400 (nothing published; the plugin retries)
body not received in time          408 (the read timeout; the connection is closed)
too many requests in progress      503 with ``Retry-After``, before the body is read
Kafka error or timeout             503 with ``Retry-After``; never 2xx for unacked data
=================================  ======================================================

Serve the app with :data:`RUNNER_OPTIONS` (``auto_decompress=False``: aiohttp must not gunzip
bodies itself, the bounded decoder in ``body.py`` does; ``access_log=None``: this module writes
one structured line per request instead).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import ClientPayloadError, web

from pipeline.catalog import Integration
from pipeline.ingest.auth import Unauthenticated
from pipeline.ingest.errors import (
    BatchTooLarge,
    BodyTooLarge,
    UndecodableBody,
    UnsupportedEncoding,
)
from pipeline.ingest.metrics import METRICS_CONTENT_TYPE, IngestMetrics, RejectionClass
from pipeline.ingest.publisher import PublishFailed
from pipeline.ingest.service import IngestService
from pipeline.logs import get_logger

log = get_logger("pipeline.ingest.http")

INGEST_PATH: Final = "/v1/ingest"
RETRY_AFTER_S: Final = 5
SUPPORTED_ENCODINGS: Final = ("lz4", "gzip", "identity")
SPLIT_HINT: Final = "split the batch into smaller batches (fewer events per request) and retry"
RUNNER_OPTIONS: Final[dict[str, Any]] = {"auto_decompress": False, "access_log": None}
UNAUTHORIZED_LOG_EVERY_S: Final = 10.0

Readiness = Callable[[], Awaitable[bool]]


def build_app(
    service: IngestService, metrics: IngestMetrics, kafka_ready: Readiness
) -> web.Application:
    """The edge's aiohttp application (serve it with :data:`RUNNER_OPTIONS`)."""
    edge = _Edge(service, metrics, kafka_ready)
    app = web.Application()
    app.router.add_post(INGEST_PATH, edge.ingest)
    app.router.add_get("/healthz", edge.healthz)
    app.router.add_get("/readyz", edge.readyz)
    app.router.add_get("/metrics", edge.metrics_page)
    return app


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


class _Edge:
    def __init__(self, service: IngestService, metrics: IngestMetrics, kafka_ready: Readiness):
        self.service = service
        self.metrics = metrics
        self.kafka_ready = kafka_ready
        self.in_progress = 0
        self.unauthorized = _SampledLog(UNAUTHORIZED_LOG_EVERY_S)

    async def ingest(self, request: web.Request) -> web.Response:
        limits = self.service.limits
        if self.in_progress >= limits.max_concurrent_requests:
            # Saturated: refuse before reading anything (each request may hold a whole body).
            self.metrics.requests.labels("503").inc()
            self.metrics.rejected.labels("unknown", "saturated").inc()
            response = json_response(
                503,
                {"error": "the edge is busy; the batch was not accepted, retry it",
                 "retry_after_s": RETRY_AFTER_S},
                {"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
            response.force_close()
            return response
        self.in_progress += 1
        try:
            return await self._ingest(request)
        finally:
            self.in_progress -= 1

    async def _ingest(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        integration: Integration | None = None
        fields: dict[str, Any] = {}
        limits = self.service.limits
        try:
            integration = self.service.authenticate(request.headers.get("Authorization"))
            self.service.check_declared_length(request.content_length)
            try:
                async with asyncio.timeout(limits.body_timeout_s):
                    body = await read_body(request, limits.max_body_bytes)
            except TimeoutError:
                raise BodyTimedOut(limits.body_timeout_s) from None
            read_s = time.perf_counter() - started
            self.metrics.stage.labels("read").observe(read_s)
            self.metrics.body_bytes.observe(len(body))
            fields["bytes"] = len(body)
            result = await self.service.ingest(
                integration, body, request.headers.get("Content-Encoding")
            )
            self.metrics.stage.labels("decode").observe(result.decode_s)
            self.metrics.stage.labels("publish").observe(result.publish_s)
            self.metrics.accepted.labels(integration.id).inc(result.accepted)
            self.metrics.decoded_batches.labels(
                integration.id, "typed" if result.fast_path else "general"
            ).inc()
            if result.rejected:
                self.metrics.rejected.labels(integration.id, "invalid_event").inc(result.rejected)
            fields.update(accepted=result.accepted, rejected=result.rejected)
            response = json_response(202, result.response())
        except Unauthenticated as exc:
            fields["auth_failure"] = exc.reason
            response = json_response(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        except BodyTooLarge as exc:
            fields["error"] = exc.message
            response = json_response(
                413,
                {
                    "error": exc.message,
                    "limit_bytes": exc.limit,
                    "stage": exc.stage,
                    "hint": SPLIT_HINT,
                },
            )
            if exc.stage == "compressed":
                response.force_close()  # the rest of the body is not read
        except BatchTooLarge as exc:
            fields["error"] = exc.message
            response = json_response(
                413,
                {"error": exc.message, "limit": exc.limit, "count": exc.count, "of": exc.what,
                 "hint": SPLIT_HINT},
            )  # fmt: skip
        except BodyTimedOut as exc:
            fields["error"] = str(exc)
            response = json_response(408, {"error": str(exc)})
            response.force_close()
        except UnsupportedEncoding as exc:
            fields["error"] = exc.message
            self._count_rejected_body(integration, "unsupported_encoding")
            response = json_response(415, {"error": exc.message, "supported": SUPPORTED_ENCODINGS})
        except UndecodableBody as exc:
            fields["error"] = exc.message
            self._count_rejected_body(integration, "undecodable_body")
            response = json_response(400, {"error": exc.message, "reason": exc.reason})
        except BodyNotReceived as exc:
            fields["error"] = str(exc)
            response = json_response(400, {"error": str(exc)})
            response.force_close()
        except PublishFailed as exc:
            fields["error"] = exc.message
            response = json_response(
                503,
                {"error": "Kafka is unavailable or slow; the batch was not accepted, retry it",
                 "retry_after_s": RETRY_AFTER_S},
                {"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
        except Exception:
            log.exception("ingest request failed unexpectedly", integration=_id(integration))
            response = json_response(500, {"error": "internal error; the batch was not accepted"})
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(str(response.status)).inc()
        self.metrics.latency.observe(elapsed)
        if response.status == 401:
            # Anyone can send requests without a key: one line per interval, with a count,
            # so that a flood of them cannot fill the logs (the metric counts every one).
            suppressed = self.unauthorized.due()
            if suppressed is not None:
                log.info(
                    "ingest", integration=None, status=401, also_refused_since_last=suppressed,
                    **fields,
                )  # fmt: skip
            return response
        log.info(
            "ingest",
            integration=_id(integration),
            status=response.status,
            ms=round(elapsed * 1000, 2),
            **fields,
        )
        return response

    def _count_rejected_body(self, integration: Integration | None, reason: RejectionClass) -> None:
        self.metrics.rejected.labels(_id(integration) or "unknown", reason).inc()

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        integrations = len(self.service.catalog.integrations)
        kafka = await self.kafka_ready()
        ready = kafka and integrations > 0
        payload = {"ready": ready, "catalog_integrations": integrations, "kafka_connected": kafka}
        return json_response(200 if ready else 503, payload)

    async def metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response


class BodyNotReceived(Exception):
    """The connection broke or the chunked framing was invalid before the body's end."""


class BodyTimedOut(Exception):
    """The body did not arrive within the read timeout (a slow or stalled client)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"the request body was not received within {timeout_s:g} s; "
            "nothing was accepted, send it again"
        )


class _SampledLog:
    """At most one log line per ``every_s``: :meth:`due` returns how many occurrences were not
    logged since the last line (0 or more) when a line is due, else None."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.last: float | None = None
        self.skipped = 0

    def due(self) -> int | None:
        now = self.clock()
        if self.last is not None and now - self.last < self.every_s:
            self.skipped += 1
            return None
        skipped, self.skipped, self.last = self.skipped, 0, now
        return skipped


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body as sent, refusing more than ``limit`` bytes while reading."""
    stream = request.content
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await stream.readany():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit, "compressed", size=request.content_length)
            chunks.append(chunk)
    except (web.RequestPayloadError, ClientPayloadError, ConnectionError) as exc:
        raise BodyNotReceived(f"the request body was not received completely ({exc})") from exc
    return b"".join(chunks)


def _id(integration: Integration | None) -> str | None:
    return None if integration is None else integration.id
