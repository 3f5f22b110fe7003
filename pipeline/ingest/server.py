"""Run the ingest edge: topics, producer, aiohttp site, graceful shutdown.

* :func:`create_edge` starts an edge inside the running event loop and returns an
  :class:`EdgeHandle` (tests, ``python -m pipeline dev``, the bench). Port 0 picks a free port;
  the handle reports the real one.
* :func:`run_ingest` is ``python -m pipeline ingest``: load the catalog, find Kafka, serve until
  SIGINT/SIGTERM, then stop accepting, finish in-flight requests and flush the producer.

Startup makes sure the dead-letter topic accepts the largest record the edge may write there (a
whole body as sent, or one decompressed item): the topic is created with ``max.message.bytes``
to match, and an existing topic with a smaller limit is raised to it (other dynamic settings of
the topic are kept).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from pipeline.catalog import Catalog, load_catalog
from pipeline.errors import InfrastructureError
from pipeline.ingest.http import INGEST_PATH, RUNNER_OPTIONS, build_app
from pipeline.ingest.metrics import IngestMetrics
from pipeline.ingest.publisher import KafkaPublisher
from pipeline.ingest.service import Clock, IngestLimits, IngestService, IngestTopics, utc_now
from pipeline.kafka import TopicSpec, ensure_topics, pipeline_topics, resolve_bootstrap
from pipeline.logs import configure_logging, get_logger
from pipeline.runtime import tune_gc_for_throughput
from pipeline.settings import Settings

log = get_logger(__name__)

Say = Callable[[str], None]

MAX_MESSAGE_BYTES: Final = "max.message.bytes"
SHUTDOWN_TIMEOUT_S: Final = 30.0
_DYNAMIC_TOPIC_CONFIG: Final = 1  # DescribeConfigs config_source of a per-topic override
_UNKNOWN_TOPIC: Final = 3  # UNKNOWN_TOPIC_OR_PARTITION: a new topic is not visible everywhere yet
DESCRIBE_ATTEMPTS: Final = 40


def _say(message: str) -> None:
    print(message, flush=True)


@dataclass
class EdgeHandle:
    """A running edge. ``await close()`` stops it gracefully (idempotent)."""

    host: str
    port: int
    bootstrap: str
    topics: IngestTopics
    service: IngestService
    metrics: IngestMetrics
    publisher: KafkaPublisher
    dead_letter_capacity: str
    _runner: web.AppRunner = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ingest_url(self) -> str:
        return self.url + INGEST_PATH

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish, then flush and close the producer."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._runner.cleanup()
        finally:
            await self.publisher.stop()


def dead_letter_topic_config(settings: Settings) -> dict[str, str]:
    """Topic config the dead-letter topic needs (use it wherever that topic is created)."""
    return {MAX_MESSAGE_BYTES: str(IngestLimits.from_settings(settings).dead_letter_record_bytes)}


def edge_topic_specs(settings: Settings) -> list[TopicSpec]:
    """:func:`pipeline_topics` with the dead-letter topic sized for whole bodies."""
    specs: list[TopicSpec] = []
    for spec in pipeline_topics(settings):
        if spec.name == settings.topics.dead_letters:
            config = {**(spec.config or {}), **dead_letter_topic_config(settings)}
            spec = TopicSpec(spec.name, spec.partitions, spec.replication_factor, config)
        specs.append(spec)
    return specs


async def ensure_dead_letter_capacity(bootstrap: str, topic: str, needed: int) -> str:
    """Make ``topic`` accept records of ``needed`` bytes; returns what was found or done."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        entries = await _describe_topic(admin, topic)
        current = int(entries.get(MAX_MESSAGE_BYTES, ("0", 0))[0])
        if current >= needed:
            return f"{topic} accepts records up to {current} bytes"
        # AlterConfigs replaces all per-topic overrides: resend the existing ones with ours.
        overrides = {
            name: value
            for name, (value, source) in entries.items()
            if source == _DYNAMIC_TOPIC_CONFIG
        }
        overrides[MAX_MESSAGE_BYTES] = str(needed)
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, overrides)]
        )
        for response in responses:
            for error_code, error_message, _, name in response.resources:
                if error_code:
                    raise InfrastructureError(
                        f"could not raise {MAX_MESSAGE_BYTES} of topic {name} to {needed} "
                        f"(error {error_code}: {error_message}); set it with kafka-configs",
                        topic=name,
                        needed=needed,
                    )
        return f"{topic}: {MAX_MESSAGE_BYTES} raised from {current} to {needed} bytes"
    finally:
        await admin.close()


async def _describe_topic(admin: AIOKafkaAdminClient, topic: str) -> dict[str, tuple[str, int]]:
    """Config name -> (value, source) of ``topic``, waiting for a just-created topic to appear."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    for attempt in range(DESCRIBE_ATTEMPTS):
        for response in await admin.describe_configs([resource]):
            for error_code, error_message, _, name, entries in response.resources:
                if name != topic:
                    continue
                if not error_code:
                    return {entry[0]: (entry[1], entry[3]) for entry in entries}
                if error_code != _UNKNOWN_TOPIC or attempt == DESCRIBE_ATTEMPTS - 1:
                    raise InfrastructureError(
                        f"could not read the config of topic {topic} "
                        f"(error {error_code}: {error_message or 'no message'})",
                        topic=topic,
                    )
        await asyncio.sleep(0.25)
    raise InfrastructureError(f"the broker did not describe topic {topic}", topic=topic)


async def create_edge(
    settings: Settings,
    catalog: Catalog,
    bootstrap: str,
    clock: Clock = utc_now,
    *,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
) -> EdgeHandle:
    """Ensure topics, start the producer and serve the edge on ``host:port`` (default: settings).

    Raises :class:`~pipeline.errors.InfrastructureError` when Kafka cannot be reached.
    """
    limits = IngestLimits.from_settings(settings)
    topics = IngestTopics.from_settings(settings)
    metrics = IngestMetrics()
    try:
        await ensure_topics(bootstrap, edge_topic_specs(settings))
        capacity = await ensure_dead_letter_capacity(
            bootstrap, topics.dead_letters, limits.dead_letter_record_bytes
        )
    except (KafkaError, OSError) as exc:
        raise InfrastructureError(
            f"cannot prepare the ingest topics on Kafka at {bootstrap} ({exc!r}); is the broker "
            "running? (python -m pipeline kafka start, or set PIPELINE_KAFKA_BOOTSTRAP_SERVERS)",
            bootstrap=bootstrap,
        ) from exc
    publisher = KafkaPublisher.for_bootstrap(
        bootstrap,
        timeout_s=settings.ingest_kafka_timeout_s,
        max_request_size=limits.dead_letter_record_bytes,
        observer=metrics,
    )
    await publisher.start()
    service = IngestService(catalog, publisher, topics, limits, clock=clock)
    runner = web.AppRunner(
        build_app(service, metrics, publisher.connected),
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        **RUNNER_OPTIONS,
    )
    try:
        await runner.setup()
        bind_host = settings.ingest_host if host is None else host
        bind_port = settings.ingest_port if port is None else port
        site = web.TCPSite(runner, bind_host, bind_port, reuse_port=reuse_port or None)
        await site.start()
    except BaseException:
        await runner.cleanup()
        await publisher.stop()
        raise
    real_host, real_port = runner.addresses[0][:2]
    return EdgeHandle(
        host=str(real_host),
        port=int(real_port),
        bootstrap=bootstrap,
        topics=topics,
        service=service,
        metrics=metrics,
        publisher=publisher,
        dead_letter_capacity=capacity,
        _runner=runner,
    )


def run_ingest(
    settings: Settings,
    *,
    say: Say = _say,
    log_level: str = "INFO",
    log_json: bool = False,
) -> None:
    """Serve the edge until SIGINT/SIGTERM (``python -m pipeline ingest``)."""
    configure_logging(log_level, json=log_json)
    catalog = load_catalog(settings.rules_dir)
    bootstrap = resolve_bootstrap(settings)
    tune_gc_for_throughput()
    asyncio.run(_serve(settings, catalog, bootstrap, say))


async def _serve(settings: Settings, catalog: Catalog, bootstrap: str, say: Say) -> None:
    edge = await create_edge(settings, catalog, bootstrap)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    integrations = ", ".join(f"{i.id} ({i.gateway})" for i in catalog.integrations)
    say(f"ingest edge listening on {edge.url} (POST {INGEST_PATH}; GET /healthz /readyz /metrics)")
    say(
        f"connected to Kafka at {bootstrap}: events -> {edge.topics.events}, "
        f"dead letters -> {edge.topics.dead_letters} ({edge.dead_letter_capacity})"
    )
    say(f"catalog from {settings.rules_dir}: {integrations}")
    say("press Ctrl-C (or send SIGTERM) to stop")
    try:
        await stop.wait()
    finally:
        say("stopping: refusing new connections, finishing requests, flushing Kafka ...")
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await edge.close()
        say("ingest edge stopped")
