"""Kafka side of the ingest edge: publish a request's records and wait for every acknowledgement.

One :class:`KafkaPublisher` per edge process drives one librdkafka producer (confluent-kafka,
from :func:`pipeline.kafka.make_confluent_producer`: ``acks=all``, idempotence, lz4).
:meth:`KafkaPublisher.publish` hands every record of a request (events and dead letters alike)
to ``produce()`` in one synchronous loop on the event loop's thread, so concurrent requests
share librdkafka's batches and one request's records stay in order, then waits for *all* their
delivery reports within ``timeout_s``; any error or the timeout raises :class:`PublishFailed`,
which the HTTP layer turns into 503 + ``Retry-After``. Nothing is answered 2xx before Kafka holds
it.

Why librdkafka: batching, compression, the wire protocol and idempotent sequence numbering run in
its C threads, outside the GIL. ``produce()`` costs ~2.5 µs of the loop's CPU per record against
~20 µs for aiokafka's ``send()`` (whose batch API was also tried and dropped: it raced the
idempotent sequence numbering, see the git history).

Threads: a poll thread per producer calls ``poll()``, which runs the delivery callbacks. Each
request has one :class:`_Acks` counter that the poll thread alone counts down (one callback per
record); the last report resolves the request's future with a single
``loop.call_soon_threadsafe`` (not one wake-up per record). ``produce()`` raising ``BufferError``
(librdkafka's queue is full) is back-pressure: the request waits for room, within its timeout.

Partitioning: librdkafka's ``murmur2_random`` partitioner is Kafka's default for keyed records
(murmur2 of the key, as the Java client and aiokafka), so any other producer keyed the same way
(replay tools) lands on the same partition; :func:`pipeline.ingest.partitioner.kafka_partition`
computes it in Python (tests check the broker's partitions against it).

Broker down: while librdkafka reports every broker unreachable (``error_cb``), a request waits
at most ``BROKERS_DOWN_WAIT_S`` for its acks and gets its 503 at once instead of after the full
timeout; the first request that is acknowledged again ends this.

Recovery: librdkafka reconnects by itself after a broker outage; records of a request answered
503 may still be delivered later (the plugin retries, the stream dedups by key). An idempotent
producer can however be left unusable by a *fatal* error (out-of-order sequence, fenced producer
id ...; reported through ``error_cb`` or a delivery report). The publisher then *replaces* its
producer (the old one is flushed with a bound and closed in a background thread), and likewise
after it has been failing without a single success for ``replace_after_s``.

Measured (bench edge phase: 4 clients, 100-event lz4 batches, one edge process, 2 cores shared
with the broker; docs/benchmarks.md): median 16,678 events/s over 15 runs (13,348 - 26,654, most
of them next to another engineer's benchmark), p50 21.0 ms, p99 47.7 ms; 22,160 events/s and p99
30.5 ms in the quietest group. Against aiokafka in interleaved pairs: 11-17 % more events/s, ~20 %
less CPU per event for the process and ~33 % less on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, Protocol

from confluent_kafka import KafkaError, KafkaException

from pipeline.errors import InfrastructureError
from pipeline.kafka import make_confluent_producer
from pipeline.logs import get_logger

log = get_logger(__name__)
LIBRDKAFKA_LOG: Final = logging.getLogger("pipeline.ingest.librdkafka")

Headers = tuple[tuple[str, bytes], ...]
ErrorCallback = Callable[[KafkaError], None]
DeliveryCallback = Callable[[KafkaError | None, Any], None]


class ProducerClient(Protocol):
    """The part of ``confluent_kafka.Producer`` the publisher uses (a double in unit tests)."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        *,
        on_delivery: DeliveryCallback,
        headers: list[tuple[str, bytes]] | None,
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...

    def purge(self) -> None: ...

    def list_topics(self, *, timeout: float) -> Any: ...

    def close(self) -> Any: ...


ProducerFactory = Callable[[ErrorCallback], ProducerClient]
"""A new producer whose librdkafka ``error_cb`` is the given callback."""

RETIRE_TIMEOUT_S: Final = 30.0
"""How long a replaced (or, at shutdown, the last) producer may take to deliver what it holds."""
POLL_INTERVAL_S: Final = 0.1
"""Longest ``poll()`` of the poll thread (it returns at once when a report is ready)."""
QUEUE_FULL_WAIT_S: Final = 0.005
"""Pause before producing again when librdkafka's queue is full (``BufferError``)."""
READINESS_TIMEOUT_S: Final = 5.0
BROKERS_DOWN_WAIT_S: Final = 1.0
"""How long a request waits for its acks while librdkafka reports every broker down: the plugin
gets its 503 at once instead of after the full timeout (its records stay queued and may still
be delivered; the stream dedups the retry). The first successful delivery ends this."""
_TIMEOUT_CODES: Final = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TIMED_OUT_QUEUE,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


class OutgoingRecord(NamedTuple):
    """One Kafka record to publish: events and dead letters use the same shape (immutable)."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers = ()


class PublishFailed(InfrastructureError):
    """Kafka did not acknowledge every record of a request in time (or refused one)."""

    def __init__(self, cause: str, *, timed_out: bool, records: int) -> None:
        what = "did not acknowledge in time" if timed_out else "refused or failed"
        super().__init__(
            f"Kafka {what} ({cause}); {records} record(s) not confirmed, retry later",
            cause=cause,
            timed_out=timed_out,
            records=records,
        )
        self.cause = cause
        self.timed_out = timed_out


class Publisher(Protocol):
    """What the ingest service needs from Kafka (a fake in unit tests)."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Return only once every record is acknowledged; else raise :class:`PublishFailed`."""

    async def connected(self) -> bool:
        """Whether the broker answers right now (readiness)."""


class PublisherObserver(Protocol):
    """Receives the publisher's failures and producer replacements (metrics, logs)."""

    def kafka_error(self, kind: str) -> None: ...

    def producer_replaced(self) -> None: ...


class _NoObserver:
    def kafka_error(self, kind: str) -> None:
        return None

    def producer_replaced(self) -> None:
        return None


class _Acks:
    """One request's outstanding delivery reports; called by the poll thread once per record."""

    __slots__ = ("_loop", "_producer", "error", "future", "pending")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        records: int,
        producer: _PolledProducer | None = None,
    ) -> None:
        self._loop = loop
        self._producer = producer
        self.future: asyncio.Future[KafkaError | None] = loop.create_future()
        self.pending = records
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.pending -= 1
        if self.pending == 0:
            if self.error is None and self._producer is not None:
                self._producer.brokers_down = False  # Kafka answered: it is reachable again
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_settle, self.future, self.error)


def _settle(future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
    if not future.done():  # a request that timed out no longer waits
        future.set_result(error)


class _PolledProducer:
    """A librdkafka producer and the daemon thread that polls it (delivery reports, errors)."""

    def __init__(self, factory: ProducerFactory) -> None:
        self.fatal: KafkaError | None = None
        #: librdkafka said every broker is down; cleared by the next successful request
        self.brokers_down = False
        self.client = factory(self._on_error)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._thread.start()

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb`` (poll thread): connection trouble, or a fatal error.

        Connection trouble repeats at every reconnect attempt and librdkafka logs it itself
        (once per state change): debug only here.
        """
        if error.fatal():
            self.fatal = error
            log.warning("kafka producer failed fatally", error=_describe(error))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True
            log.warning("every kafka broker is unreachable", error=_describe(error))
        else:
            log.debug("kafka producer error", error=_describe(error))

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                self.client.poll(POLL_INTERVAL_S)
            except Exception:  # a callback must not end the thread that serves all requests
                log.exception("kafka producer poll failed")

    def close(self, timeout_s: float) -> int:
        """Blocking: deliver what is queued within ``timeout_s``, fail the rest, close.

        Returns the number of records that were not delivered.
        """
        self._stopping.set()
        self._thread.join()
        left = 0
        try:
            left = self.client.flush(timeout_s)
            if left:
                log.warning("kafka producer closed with undelivered records", records=left)
                self.client.purge()  # their requests get an error report instead of waiting
                self.client.poll(0)
            self.client.close()
        except Exception:
            log.exception("closing the kafka producer failed")
        return left


class KafkaPublisher:
    """The edge's producer: publish-and-wait with timeout, replacement after fatal errors."""

    def __init__(
        self,
        factory: ProducerFactory,
        *,
        timeout_s: float,
        replace_after_s: float | None = None,
        observer: PublisherObserver | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        brokers_down_wait_s: float = BROKERS_DOWN_WAIT_S,
    ) -> None:
        self._factory = factory
        self._timeout_s = timeout_s
        self._brokers_down_wait_s = min(brokers_down_wait_s, timeout_s)
        self._replace_after_s = replace_after_s if replace_after_s is not None else 2 * timeout_s
        self._observer: PublisherObserver = observer or _NoObserver()
        self._monotonic = monotonic
        self._producer: _PolledProducer | None = None
        self._replace_requested = False
        self._failing_since: float | None = None
        self._retiring: set[asyncio.Future[int]] = set()
        self.replacements = 0

    @classmethod
    def for_bootstrap(
        cls,
        bootstrap: str,
        *,
        timeout_s: float,
        max_request_size: int,
        observer: PublisherObserver | None = None,
    ) -> KafkaPublisher:
        """A publisher whose producers come from :func:`make_confluent_producer`."""

        def factory(on_error: ErrorCallback) -> ProducerClient:
            return make_confluent_producer(  # type: ignore[return-value]
                bootstrap,
                error_cb=on_error,
                logger=LIBRDKAFKA_LOG,  # its log lines join ours (served by poll())
                **{"message.max.bytes": max_request_size},
            )

        return cls(factory, timeout_s=timeout_s, observer=observer)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the first producer; raises :class:`PublishFailed` if Kafka cannot be reached."""
        try:
            producer = self._current_producer()
            await asyncio.to_thread(producer.client.list_topics, timeout=self._timeout_s)
        except KafkaException as exc:
            await self.stop()
            raise PublishFailed(_describe(exc.args[0]), timed_out=False, records=0) from exc

    async def stop(self) -> None:
        """Deliver what is pending (bounded) and close every producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            self._retire(producer)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    # --- publishing ------------------------------------------------------------------------
    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        if not records:
            return
        producer = self._current_producer()
        acks = _Acks(asyncio.get_running_loop(), len(records), producer)
        down = producer.brokers_down
        timeout_s = self._brokers_down_wait_s if down else self._timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await _send_all(producer.client, records, acks)
                error = await acks.future
        except TimeoutError:
            self._failed(producer, None, brokers_down=down)
            unreachable = " (every Kafka broker is unreachable)" if down else ""
            raise PublishFailed(
                f"no acknowledgement within {timeout_s:g} s{unreachable}",
                timed_out=True,
                records=len(records),
            ) from None
        except KafkaException as exc:  # produce() refused a record (too large, fatal state ...)
            refused: KafkaError = exc.args[0]
            self._failed(producer, refused)
            raise PublishFailed(_describe(refused), timed_out=False, records=len(records)) from exc
        if error is not None:
            self._failed(producer, error)
            raise PublishFailed(
                _describe(error), timed_out=error.code() in _TIMEOUT_CODES, records=len(records)
            )
        self._failing_since = None

    async def connected(self) -> bool:
        producer = self._current_producer()
        timeout = min(self._timeout_s, READINESS_TIMEOUT_S)
        try:
            await asyncio.to_thread(producer.client.list_topics, timeout=timeout)
        except KafkaException:
            return False
        return True

    # --- producer replacement ----------------------------------------------------------------
    def _failed(
        self, producer: _PolledProducer, error: KafkaError | None, *, brokers_down: bool = False
    ) -> None:
        """Count a failed request; ``error`` None (or a librdkafka timeout) is a timeout."""
        timed_out = error is None or error.code() in _TIMEOUT_CODES
        kind = "timeout" if timed_out or error is None else error.name()
        if brokers_down:
            kind = "brokers_down"
        self._observer.kafka_error(kind)
        if self._failing_since is None:
            self._failing_since = self._monotonic()
        fatal = (error is not None and error.fatal()) or producer.fatal is not None
        if fatal and producer is self._producer:
            self._replace_requested = True
        log.warning(
            "kafka publish failed",
            kind=kind,
            error=_describe(error) if error is not None else "no acknowledgement in time",
        )

    def _needs_replacement(self, producer: _PolledProducer) -> bool:
        if self._replace_requested or producer.fatal is not None:
            return True
        since = self._failing_since
        return since is not None and self._monotonic() - since >= self._replace_after_s

    def _current_producer(self) -> _PolledProducer:
        """The producer to use, replacing one that is broken (building one does not block)."""
        producer = self._producer
        if producer is not None and not self._needs_replacement(producer):
            return producer
        if producer is not None:
            self._retire(producer)
            self.replacements += 1
            self._observer.producer_replaced()
            log.warning(
                "replacing the kafka producer",
                replacements=self.replacements,
                fatal=_describe(producer.fatal) if producer.fatal is not None else None,
            )
        self._producer = fresh = _PolledProducer(self._factory)
        self._replace_requested = False
        self._failing_since = None
        return fresh

    def _retire(self, producer: _PolledProducer) -> None:
        """Close ``producer`` in a thread of its own (a flush may take ``RETIRE_TIMEOUT_S``;
        the default executor stays free for readiness checks)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()

        def close() -> None:
            left = producer.close(RETIRE_TIMEOUT_S)
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(_settle_count, done, left)

        self._retiring.add(done)
        done.add_done_callback(self._retiring.discard)
        threading.Thread(target=close, name="kafka-producer-close", daemon=True).start()


def _settle_count(future: asyncio.Future[int], count: int) -> None:
    if not future.done():
        future.set_result(count)


async def _send_all(client: ProducerClient, records: Sequence[OutgoingRecord], acks: _Acks) -> None:
    """Hand every record to librdkafka in order; a full queue makes the request wait for room."""
    sent = _produce_from(client, records, 0, acks)
    while sent < len(records):  # BufferError: librdkafka's queue is full (back-pressure)
        await asyncio.sleep(QUEUE_FULL_WAIT_S)
        sent = _produce_from(client, records, sent, acks)


def _produce_from(
    client: ProducerClient, records: Sequence[OutgoingRecord], start: int, acks: _Acks
) -> int:
    """Produce ``records[start:]``; the index of the first one the full queue refused (or all)."""
    produce = client.produce
    index = start
    try:
        for index in range(start, len(records)):
            topic, key, value, headers = records[index]
            produce(topic, value, key, on_delivery=acks, headers=list(headers) if headers else None)
    except BufferError:
        return index
    return len(records)


def _describe(error: KafkaError) -> str:
    text = error.str()
    return f"{error.name()}: {text}" if text else error.name()
