"""Errors of the canonical event model and its Kafka codec."""

from __future__ import annotations

from pipeline.errors import PipelineError


class MalformedEvent(PipelineError):
    """Bytes or values that are not a valid canonical event; ``reason`` says which field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a valid canonical event: {reason}", reason=reason)
        self.reason = reason


class InvalidTimestamp(PipelineError):
    """A timestamp that cannot be the UTC request time of a usage event."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem, problem=problem)
        self.problem = problem
