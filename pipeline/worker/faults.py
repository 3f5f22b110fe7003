"""TEST-ONLY fault injection for the crash tests (``PIPELINE_WORKER_CRASH_AT``)."""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


class CrashPoint:
    """``PIPELINE_WORKER_CRASH_AT=<point>:<batch>``: the process SIGKILLs itself at that point
    of that batch (1-based), like a power cut. Off by default. Points: ``after_sink``,
    ``after_state``, ``after_commit`` (see the order of side effects in sink.py)."""

    def __init__(self, point: str | None, batch: int) -> None:
        self.point = point
        self.batch = batch
        self.batches = 0

    @classmethod
    def parse(cls, spec: str | None) -> CrashPoint:
        if not spec:
            return cls(None, 0)
        point, _, number = spec.partition(":")
        return cls(point, int(number))

    def maybe(self, point: str) -> None:
        if self.point == point and self.batches + 1 == self.batch:
            log.warning("fault injection: SIGKILL at %s of batch %d", point, self.batch)
            os.kill(os.getpid(), signal.SIGKILL)
