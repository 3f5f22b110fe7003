"""Errors of replay jobs and the event-log report."""

from __future__ import annotations

from pipeline.errors import PipelineError


class ReplayError(PipelineError):
    """A replay (or event-log question) could not be done as asked; the message says why."""


class ReplayMismatch(ReplayError):
    """The meters written for a replay run differ from what the replay computed in memory.

    The run is then NOT registered, so billing keeps using the previous run.
    """
