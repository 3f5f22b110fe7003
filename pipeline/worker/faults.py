"""TEST-ONLY fault injection for the crash tests (``PIPELINE_WORKER_CRASH_AT``)."""

from __future__ import annotations

import logging
import os
import signal
from typing import Final

log = logging.getLogger(__name__)

#: every step of a batch's side effects where a crash can be injected, in their order (the
#: crash matrix in sink.py says what each leads to)
POINTS: Final = (
    "during_sink:event_log",
    "during_sink:usage_events",
    "during_sink:meter_entries",
    "after_sink",
    "after_outputs",
    "after_changelog",
    "after_state",
    "after_commit",
)
#: the pattern ``worker_crash_at`` must accept (pipeline/settings.py)
SPEC_PATTERN: Final = (
    r"^(during_sink:(event_log|usage_events|meter_entries)|after_sink|after_outputs"
    r"|after_changelog|after_state|after_commit):[0-9]+$"
)


class CrashPoint:
    """``PIPELINE_WORKER_CRASH_AT=<point>:<batch>``: the process SIGKILLs itself at that point
    of that batch (1-based), like a power cut. Off by default. Points: :data:`POINTS`."""

    def __init__(self, point: str | None, batch: int) -> None:
        if point is not None and point not in POINTS:
            raise ValueError(f"unknown crash point {point!r}; known: {', '.join(POINTS)}")
        self.point = point
        self.batch = batch
        #: batches the worker has finished (committed): numbers its points
        self.batches = 0

    @classmethod
    def parse(cls, spec: str | None) -> CrashPoint:
        if not spec:
            return cls(None, 0)
        point, _, number = spec.rpartition(":")
        return cls(point, int(number))

    def maybe(self, point: str, batch: int | None = None) -> None:
        """Crash here if ``point`` of the batch numbered ``batch`` (default: the one after the
        last finished) is the chosen one. The sink, a batch ahead of the finisher while they
        pipeline, numbers its own batches."""
        number = self.batches + 1 if batch is None else batch
        if self.point == point and number == self.batch:
            log.warning("fault injection: SIGKILL at %s of batch %d", point, self.batch)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
