"""Poison records: rows ClickHouse refuses for good, told apart from failures worth retrying.

A failed insert is one of three things (:func:`classify`):

* ``REFUSED``: the engine refused a *value* of the rows (it cannot parse it, it does not fit
  the column's type, a constraint does not hold, it is too large). Retrying the same rows can
  never succeed, and retrying them forever stalls the partition for every tenant. The sink
  splits the rows to find the offending events and isolates them (sink.py).
* ``RETRY``: the server is away or busy (connection refused or reset, timeouts, memory limit,
  too many parts, read-only replica, ...), or the failure has no ClickHouse code at all: the
  same rows will be accepted later. Held and retried with backoff.
* ``HELD``: a problem of the statement or the server, not of a row (unknown table, database
  or column: the schema is behind the code; access denied; syntax): it refuses every row, so
  isolating rows would dead-letter the whole stream. Held and retried like ``RETRY``, logged
  as an error for an operator to fix. Unknown codes are held too: only known row-level codes
  may cost an event its billing.

ClickHouse's numeric codes (``errorCodeToName``, checked against the 26.9 engine) come from the
``code`` field of :class:`~pipeline.errors.StoreError` (the store takes it from
clickhouse-connect, or from the ``Code: NNN`` of the message).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from typing import Any, Final

from pipeline.errors import StoreError
from pipeline.worker.rows import ENTRY_COLUMNS, LOG_COLUMNS, USAGE_COLUMNS, SinkBatch

#: event_log.quarantine_reason of an event ClickHouse refused
REFUSED_REASON: Final = "clickhouse_refused"


class Verdict(StrEnum):
    REFUSED = "refused"
    RETRY = "retry"
    HELD = "held"


#: codes a row's values cause: the rows are split and the offending events isolated
ROW_CODES: Final[dict[int, str]] = {
    6: "CANNOT_PARSE_TEXT",
    25: "CANNOT_PARSE_ESCAPE_SEQUENCE",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH",
    69: "ARGUMENT_OUT_OF_BOUND",  # e.g. "Decimal value is too big"
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    128: "TOO_LARGE_ARRAY_SIZE",
    130: "CANNOT_READ_ARRAY_FROM_TEXT",
    131: "TOO_LARGE_STRING_SIZE",
    190: "SIZES_OF_ARRAYS_DONT_MATCH",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    376: "CANNOT_PARSE_UUID",
    395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    407: "DECIMAL_OVERFLOW",
    467: "CANNOT_PARSE_BOOL",
    469: "VIOLATED_CONSTRAINT",
}
#: codes of a statement or server problem that no row causes: held, logged as errors
HELD_CODES: Final[dict[int, str]] = {
    10: "NOT_FOUND_COLUMN_IN_BLOCK",
    16: "NO_SUCH_COLUMN_IN_TABLE",  # the insert's column list is fixed: the schema is behind
    47: "UNKNOWN_IDENTIFIER",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    81: "UNKNOWN_DATABASE",
    115: "UNKNOWN_SETTING",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
}
#: codes of a server that is busy or away for a while (retried; listed to name them in logs)
RETRY_CODES: Final[dict[int, str]] = {
    3: "UNEXPECTED_END_OF_FILE",
    23: "CANNOT_READ_FROM_ISTREAM",
    24: "CANNOT_WRITE_TO_OSTREAM",
    32: "ATTEMPT_TO_READ_AFTER_EOF",
    33: "CANNOT_READ_ALL_DATA",
    159: "TIMEOUT_EXCEEDED",
    160: "TOO_SLOW",
    164: "READONLY",
    173: "CANNOT_ALLOCATE_MEMORY",
    201: "QUOTA_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    225: "NO_ZOOKEEPER",
    236: "ABORTED",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE",
    252: "TOO_MANY_PARTS",
    285: "TOO_FEW_LIVE_REPLICAS",
    319: "UNKNOWN_STATUS_OF_INSERT",
    394: "QUERY_WAS_CANCELLED",
    425: "SYSTEM_ERROR",
    439: "CANNOT_SCHEDULE_TASK",
    999: "KEEPER_EXCEPTION",
}


def classify(error: StoreError) -> Verdict:
    """What to do about a failed insert (see the module doc)."""
    code = error.fields.get("code")
    if isinstance(code, int):
        if code in ROW_CODES:
            return Verdict.REFUSED
        return Verdict.HELD if code in HELD_CODES or code not in RETRY_CODES else Verdict.RETRY
    if error.fields.get("table") and isinstance(error.__cause__, TypeError):
        # The store's encoder refused a value before sending (codec.plan_columns_insert):
        # a row's value, as the engine's parse errors are.
        return Verdict.REFUSED
    if error.fields.get("table") and isinstance(error.__cause__, ValueError):
        return Verdict.HELD  # a row of the wrong width or a bad column name: a bug
    return Verdict.RETRY  # connection refused or reset, timeouts: no code, the server is away


def code_name(code: object) -> str:
    if not isinstance(code, int):
        return "no code"
    name = ROW_CODES.get(code) or HELD_CODES.get(code) or RETRY_CODES.get(code) or "?"
    return f"code {code} {name}"


_PREFIX = re.compile(r"^.*?server response: ", re.DOTALL)
_TRAILERS = re.compile(r"(\s*\((for url [^)]*|version [^)]*(\([^)]*\))?[^)]*)\))+\s*$")


def engine_message(error: StoreError, limit: int = 1000) -> str:
    """The engine's own words (``Code: 469. DB::Exception: Constraint ...``), without the
    client's prefix, the server version or the URL, cut to ``limit`` characters."""
    text = _TRAILERS.sub("", _PREFIX.sub("", str(error), count=1)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Refusal:
    """An event whose row the engine refused for good: never written again, dead-lettered."""

    partition: int
    offset: int
    table: str
    code: int | None
    message: str

    @property
    def detail(self) -> str:
        """For ``event_log.quarantine_detail``: which table refused it and the engine's words."""
        return f"{self.table} refused it ({code_name(self.code)}): {self.message}"


#: the owning event of a row, as (partition, offset) of its consumed message
Owner = Callable[[Sequence[Any]], Hashable]


def split_point(rows: Sequence[Sequence[Any]], owner: Owner) -> int | None:
    """Where to cut ``rows`` in two at an event boundary near the middle, or None when they
    are all one event's rows (then that event is the poison).

    An event's rows in one table are contiguous (the batch step appends them together), and
    one event's rows go in one insert: ClickHouse parses and checks the whole block before it
    writes a part, so a refused insert wrote none of them and no event is half written.
    """
    middle = len(rows) // 2
    for index in chain(range(max(middle, 1), len(rows)), range(middle - 1, 0, -1)):
        if owner(rows[index]) != owner(rows[index - 1]):
            return index
    return None


_LOG = {name: number for number, name in enumerate(LOG_COLUMNS)}
_USAGE = {name: number for number, name in enumerate(USAGE_COLUMNS)}
_ENTRY = {name: number for number, name in enumerate(ENTRY_COLUMNS)}


class Owners:
    """The event, (partition, offset), that each row of a batch belongs to."""

    def __init__(self, batch: SinkBatch) -> None:
        self._batch = batch
        self._entry_events: dict[tuple[Any, Any, Any], tuple[int, int]] | None = None

    @staticmethod
    def log(row: Sequence[Any]) -> tuple[int, int]:
        return row[1], row[2]

    @staticmethod
    def usage(row: Sequence[Any]) -> tuple[int, int]:
        return row[_USAGE["source_partition"]], row[_USAGE["source_offset"]]

    @staticmethod
    def entry_key(row: Sequence[Any]) -> tuple[Any, Any, Any]:
        return row[_ENTRY["billing_run"]], row[_ENTRY["tenant"]], row[_ENTRY["idempotency_key"]]

    def entry(self, row: Sequence[Any]) -> tuple[int, int] | None:
        """A meter entry's event: the usage_events row of the same (run, tenant, key)."""
        if self._entry_events is None:
            billing_run, tenant, key = (
                _USAGE[c] for c in ("billing_run", "tenant", "idempotency_key")
            )
            self._entry_events = {
                (usage[billing_run], usage[tenant], usage[key]): self.usage(usage)
                for usage in self._batch.usage_events
            }
        return self._entry_events.get(self.entry_key(row))

    def event(self, table: str, row: Sequence[Any]) -> tuple[int, int] | None:
        if table == "event_log":
            return self.log(row)
        if table == "usage_events":
            return self.usage(row)
        return self.entry(row)

    def grouping(self, table: str) -> Owner:
        """What keeps an event's rows together when rows are cut in two."""
        return {"event_log": self.log, "usage_events": self.usage}.get(table, self.entry_key)


def refusal(event: tuple[int, int], table: str, error: StoreError) -> Refusal:
    code = error.fields.get("code")
    return Refusal(
        event[0], event[1], table, code if isinstance(code, int) else None, engine_message(error)
    )


def events_of(refusals: list[Refusal]) -> set[tuple[int, int]]:
    return {(refusal.partition, refusal.offset) for refusal in refusals}


def dead_letter_row(row: Sequence[Any], refusal: Refusal) -> tuple[Any, ...]:
    out = list(row)
    out[_LOG["disposition"]] = "dead_letter"
    out[_LOG["quarantine_reason"]] = REFUSED_REASON
    out[_LOG["quarantine_detail"]] = refusal.detail
    return tuple(out)


def minimal_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """An event_log row with only the coordinates, the disposition and the detail (time: when
    it was processed): for an event whose own values the engine refuses in event_log."""
    out: list[Any] = [None] * len(LOG_COLUMNS)
    for name in ("source_topic", "source_partition", "source_offset", "disposition",
                 "quarantine_reason", "quarantine_detail", "processed_at"):  # fmt: skip
        out[_LOG[name]] = row[_LOG[name]]
    out[_LOG["event_time"]] = row[_LOG["processed_at"]]
    for name in ("idempotency_key", "integration_id", "gateway", "payload"):
        out[_LOG[name]] = ""
    out[_LOG["tenant_headers"]] = []
    return tuple(out)


def unbilled_row(row: Sequence[Any]) -> tuple[Any, ...]:
    out = list(row)
    out[_USAGE["fate"]] = "dead_letter"
    out[_USAGE["product"]] = None
    return tuple(out)
