"""The pieces of a bounded stop: the sink's own daemon thread, the stop clock, bounded waits,
crash points. (The stop itself, on real processes: test_worker_stop.py.)"""

from __future__ import annotations

import asyncio
import threading

import pytest

from pipeline.worker.faults import POINTS, SPEC_PATTERN, CrashPoint
from pipeline.worker.sink_thread import SinkThread
from pipeline.worker.stopping import STOP_GRACE_S, StopClock, bounded


def test_the_sink_thread_writes_in_order_hands_back_errors_and_never_holds_the_exit() -> None:
    release = threading.Event()

    def write(job: int) -> int:
        if job == 0:
            release.wait()
        if job == 2:
            raise ValueError("refused")
        return job * 10

    thread: SinkThread[int, int] = SinkThread(write)

    async def main() -> list[object]:
        futures = [thread.submit(job) for job in range(4)]
        assert thread._thread.daemon  # an insert stuck in the HTTP client cannot hold the exit
        release.set()
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:2] == [0, 10] and isinstance(results[2], ValueError) and results[3] == 30
    thread.close()


def test_a_write_finishing_after_its_loop_closed_is_dropped_quietly() -> None:
    release = threading.Event()
    done = threading.Event()

    def write(job: int) -> int:
        release.wait()
        done.set()
        return job

    thread: SinkThread[int, int] = SinkThread(write)

    async def main() -> None:
        future = thread.submit(1)
        future.cancel()  # the stopping worker gave up on it

    asyncio.run(main())
    release.set()
    assert done.wait(10)
    thread.close()


def test_the_stop_clock_counts_down_from_the_first_request() -> None:
    now = [100.0]
    clock = StopClock(clock=lambda: now[0])
    assert not clock.started and clock.remaining(5) == STOP_GRACE_S - 5
    clock.start()
    now[0] = 112.0
    clock.start()  # a second SIGTERM does not extend the grace
    assert clock.remaining() == STOP_GRACE_S - 12
    assert clock.remaining(10) == 0.0


def test_bounded_waits_give_up_instead_of_hanging() -> None:
    async def main() -> tuple[bool, bool]:
        never = asyncio.Event()
        return await bounded(never.wait(), 0.05, "never"), await bounded(asyncio.sleep(0), 1, "x")

    assert asyncio.run(main()) == (False, True)


def test_every_crash_point_parses_and_unknown_ones_are_refused() -> None:
    import re

    for point in POINTS:
        spec = f"{point}:3"
        assert re.fullmatch(SPEC_PATTERN, spec)
        crash = CrashPoint.parse(spec)
        assert (crash.point, crash.batch) == (point, 3)
    with pytest.raises(ValueError, match="unknown crash point"):
        CrashPoint.parse("during_sink:nope:1")


def test_a_step_cancelled_inside_is_a_failed_step_not_our_cancellation() -> None:
    """aiokafka's consumer.stop() with the broker down re-raises its fetch task's
    CancelledError: the stop goes on (seen in the Kafka-down stop test)."""

    async def stops_badly() -> None:
        inner = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        inner.cancel()
        await inner

    async def main() -> bool:
        return await bounded(stops_badly(), 5, "consumer.stop()")

    assert asyncio.run(main()) is False
