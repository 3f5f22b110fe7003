"""Deliberate errors of the ingest edge. The HTTP layer maps them to status codes:
``BodyTooLarge`` and ``BatchTooLarge`` -> 413, ``UnsupportedEncoding`` -> 415,
``UndecodableBody`` -> 400 (and a dead letter with the raw body); ``EventRejected`` is one
event's rejection inside a 202.
"""

from __future__ import annotations

import reprlib
from typing import Any, Literal

from pipeline.errors import PipelineError

SizeStage = Literal["compressed", "decompressed"]

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlevel = 2
_short.maxdict = 4
_short.maxlist = 4


def short_repr(value: Any) -> str:
    """A bounded, readable rendering of a bad value for an error message."""
    return _short.repr(value)


class IngestError(PipelineError):
    """Root of the ingest edge's errors."""


class BodyTooLarge(IngestError):
    """The body exceeds a size cap, before or after decompression."""

    def __init__(self, limit: int, stage: SizeStage, size: int | None = None) -> None:
        actual = f" ({size} bytes)" if size is not None else ""
        super().__init__(
            f"request body exceeds the {limit}-byte limit {_STAGE_TEXT[stage]}{actual}; "
            "split the batch into smaller batches and retry",
            limit=limit,
            stage=stage,
            size=size,
        )
        self.limit = limit
        self.stage: SizeStage = stage
        self.size = size


_STAGE_TEXT: dict[SizeStage, str] = {
    "compressed": "as sent (compressed)",
    "decompressed": "after decompression",
}


class BatchTooLarge(IngestError):
    """The body holds more events (or JSON values) than one request may: 413, split it."""

    def __init__(self, what: str, limit: int, count: int, *, counted_as: str = "") -> None:
        how = f" ({counted_as})" if counted_as else ""
        super().__init__(
            f"request body holds {count} {what}{how}, more than the {limit} one request may "
            "carry; split the batch into smaller batches and retry",
            what=what,
            limit=limit,
            count=count,
        )
        self.what = what
        self.limit = limit
        self.count = count


class UndecodableBody(IngestError):
    """The body is not valid lz4/gzip, not JSON, not an object/array, or has a bad NDJSON line."""

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        super().__init__(f"request body could not be decoded: {reason}", reason=reason, line=line)
        self.reason = reason
        self.line = line


class UnsupportedEncoding(IngestError):
    """A ``Content-Encoding`` other than lz4 (frame), gzip or identity."""

    def __init__(self, encoding: str) -> None:
        super().__init__(
            f"Content-Encoding {encoding!r} is not supported; "
            "send 'lz4' (lz4 frame format), 'gzip' or no encoding",
            encoding=encoding,
        )
        self.encoding = encoding


class EventRejected(IngestError):
    """One event of a batch was rejected; the others are unaffected."""

    def __init__(self, index: int, reason: str, sub_index: int | None = None) -> None:
        where = f"event {index}" if sub_index is None else f"event {index}.{sub_index}"
        super().__init__(
            f"{where} rejected: {reason}", index=index, reason=reason, sub_index=sub_index
        )
        self.index = index
        self.reason = reason
        self.sub_index = sub_index


class InvalidField(IngestError):
    """Raised inside a decoder for one bad field; becomes the event's rejection reason.

    ``str()`` reads like ``started_at must be epoch milliseconds, got 'abc'``; the decoder
    dispatcher prefixes the gateway name.
    """

    _NO_VALUE: Any = object()

    def __init__(self, field: str, problem: str, value: Any = _NO_VALUE) -> None:
        got = "" if value is InvalidField._NO_VALUE else f", got {short_repr(value)}"
        super().__init__(f"{field} {problem}{got}", field=field, problem=problem)
        self.field = field
        self.problem = problem
