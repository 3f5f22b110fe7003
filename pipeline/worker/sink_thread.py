"""The one thread that writes batches to ClickHouse, in order, without holding the process.

It was a one-thread ThreadPoolExecutor. Python joins those threads at interpreter exit
(``concurrent.futures`` registers an exit hook), so a worker whose insert was stuck in the
HTTP client, which waits up to clickhouse-connect's ``send_receive_timeout`` (300 s here), did
not exit on SIGTERM until the insert gave up. This thread is a daemon: the process exits
whatever the thread is waiting on, and the unwritten batch stays uncommitted (re-read later).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")


class SinkThread(Generic[Job, Result]):
    """Runs ``write(job)`` for each submitted job, one at a time, in submission order."""

    def __init__(self, write: Callable[[Job], Result], name: str = "clickhouse-sink") -> None:
        self._write = write
        self._jobs: queue.SimpleQueue[
            tuple[Job, asyncio.AbstractEventLoop, asyncio.Future[Result]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._busy = threading.Event()

    @property
    def busy(self) -> bool:
        """A job is being written right now (an insert may be in flight)."""
        return self._busy.is_set()

    def submit(self, job: Job) -> asyncio.Future[Result]:
        """Queue ``job``; its result (or exception) arrives in the returned future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        future.add_done_callback(_retrieve)
        if not self._thread.is_alive():
            self._thread.start()
        self._jobs.put((job, loop, future))
        return future

    def close(self) -> None:
        """No more jobs: the thread ends after the ones queued (it never holds the exit)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, loop, future = item
            self._busy.set()
            try:
                result = self._write(job)
            except BaseException as exc:
                _deliver(loop, future, None, exc)
            else:
                _deliver(loop, future, result, None)
            finally:
                self._busy.clear()


def _deliver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Result],
    result: Result | None,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():  # cancelled by a stopping worker
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: the worker is gone, nobody waits for this
        log.info("sink thread finished a batch after the worker stopped (%s)", error or "written")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an exception as seen: a stopping worker may leave a failed write unawaited."""
    if not future.cancelled():
        future.exception()
