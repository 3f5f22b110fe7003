"""How a worker stops: within a grace period, whatever it is waiting on.

Kubernetes sends SIGTERM and SIGKILLs the pod ``terminationGracePeriodSeconds`` later (30 s by
default). A worker that is SIGKILLed loses nothing (everything uncommitted is re-read), but it
leaves its consumer group only when its session times out, and its log ends mid-sentence.
Before this module a worker waiting on ClickHouse or Kafka ignored SIGTERM for a long time:
its loop waited for the finisher's queue without looking at the stop, the drain waited 30 s,
then the finisher another 30 s, and an insert stuck in the HTTP client held the interpreter's
exit for up to 300 s (the client's send_receive_timeout; executor threads are joined at exit).

Now every wait on the stop path is bounded by what remains of :data:`STOP_GRACE_S` from the
stop request: in-flight batches may be finished and committed until :data:`EXIT_RESERVE_S`
is left; then the sink is told to stop, and leaving the group, stopping the producer and the
web server each get a bounded share of the rest. A worker that stops with batches unwritten
or uncommitted says so and exits with :data:`EXIT_UNFINISHED` (they are re-read from the last
committed offsets). As a last resort, armed by the signal handler of the worker process, a
watchdog thread ends the process at the end of the grace whatever the event loop is doing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

log = logging.getLogger(__name__)

#: from the stop request (SIGTERM) to the exit of the process: below Kubernetes' default
#: termination grace of 30 s, so the pod is never SIGKILLed for being slow to stop
STOP_GRACE_S: Final = 20.0
#: kept from the grace for what follows the drain: leaving the group, the producer, the exit
EXIT_RESERVE_S: Final = 5.0
#: leaving the consumer group (a LeaveGroup request: milliseconds when the broker is up)
CONSUMER_STOP_S: Final = 2.5
#: flushing and closing the producer (nothing is pending once the finisher has stopped)
PRODUCER_STOP_S: Final = 1.0
#: the watchdog fires this long before the grace ends, so that its own exit fits in it
WATCHDOG_LEAD_S: Final = 0.5
#: exit code of a worker that stopped with batches unwritten or uncommitted (EX_UNAVAILABLE:
#: ClickHouse or Kafka did not let it finish). Its batches are re-read; nothing is lost. Not 75,
#: which asks the dev supervisor for a restart (the offset-gap guard).
EXIT_UNFINISHED: Final = 69

T = TypeVar("T")


class StopClock:
    """The deadline of a stop: set once, at the first stop request."""

    def __init__(
        self, grace_s: float = STOP_GRACE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace_s = grace_s
        self._clock = clock
        self.deadline: float | None = None

    @property
    def started(self) -> bool:
        return self.deadline is not None

    def start(self) -> None:
        if self.deadline is None:
            self.deadline = self._clock() + self.grace_s

    def remaining(self, reserve: float = 0.0) -> float:
        """Seconds left before the deadline minus ``reserve`` (never negative)."""
        if self.deadline is None:
            return self.grace_s - reserve
        return max(self.deadline - reserve - self._clock(), 0.0)


async def bounded(step: Awaitable[T], seconds: float, what: str) -> bool:
    """Await ``step`` for at most ``seconds``; False (logged) when it timed out or failed."""
    try:
        await asyncio.wait_for(step, max(seconds, 0.0))
    except TimeoutError:
        log.warning("stopping: %s did not finish within %.1f s; going on without it", what, seconds)
        return False
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are cancelled ourselves
        # aiokafka's consumer.stop() re-raises the CancelledError of the fetch tasks it
        # cancels when the broker is down (seen in the Kafka-down stop test): not ours
        log.warning("stopping: %s was cancelled inside; going on", what)
        return False
    except Exception as exc:
        log.warning("stopping: %s failed (%s); going on", what, exc)
        return False
    return True


class Watchdog:
    """Ends the process :data:`STOP_GRACE_S` after the stop request, minus its lead, if it has
    not exited by then (an await that ignores cancellation, a blocking call on the loop)."""

    def __init__(self, describe: Callable[[], str], grace_s: float = STOP_GRACE_S) -> None:
        self._describe = describe
        self._grace_s = grace_s
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(max(self._grace_s - WATCHDOG_LEAD_S, 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        log.error(
            "the stop grace of %.0f s is over: exiting now with code %d; %s",
            self._grace_s,
            EXIT_UNFINISHED,
            self._describe(),
        )
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_UNFINISHED)


class Stoppable(Protocol):
    def request_stop(self) -> None: ...

    def unfinished(self) -> str: ...


def install_stop_signals(worker: Stoppable, *, watchdog: bool = True) -> None:
    """SIGINT and SIGTERM stop the worker within its grace; with ``watchdog`` (the worker
    process) the process ends at the end of the grace whatever it is still waiting on."""
    loop = asyncio.get_running_loop()
    guard = Watchdog(worker.unfinished) if watchdog else None

    def stop() -> None:
        worker.request_stop()
        if guard is not None:
            guard.arm()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
