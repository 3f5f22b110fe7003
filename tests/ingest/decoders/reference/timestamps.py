"""Request times: parse the forms gateways send, check them, print them one way.

Every event time is a UTC-aware ``datetime`` with microsecond precision between the years
2000 and 2100 (anything outside is a unit mistake, e.g. epoch seconds sent as milliseconds).
Finer fractions (Azure sends 7 digits, some clocks 9) are truncated to microseconds, never
rounded, so that a time never moves into the next second, hour or billing period.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from pipeline.events.errors import InvalidTimestamp

EARLIEST_YEAR = 2000
LATEST_YEAR = 2100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS = int((datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * 1000
_END_MS = int((datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) * 1000

_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_DECIMAL = re.compile(r"[+-]?\d+(?:\.\d+)?")


def ensure_utc(value: datetime) -> datetime:
    """``value`` converted to UTC; naive values and years outside 2000..2100 are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestamp("must carry a time zone (UTC); naive date-times are ambiguous")
    utc = value.astimezone(UTC)
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise InvalidTimestamp(
            f"year {utc.year} is outside {EARLIEST_YEAR}..{LATEST_YEAR}; check the unit and clock"
        )
    return utc


def parse_iso8601(text: str) -> datetime:
    """``2026-01-15T10:00:00.1234567Z`` (any fraction length, ``Z`` or ``±hh:mm``) -> UTC."""
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise InvalidTimestamp(
            "must be ISO-8601 like 2026-01-15T10:00:00.123Z (date, time and UTC offset)"
        )
    offset_text = match["offset"]
    if offset_text is None:
        raise InvalidTimestamp(
            "must include a UTC offset ('Z' or +hh:mm); naive times are ambiguous"
        )
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    try:
        naive = datetime.fromisoformat(
            f"{match['date']}T{match['hour']}:{match['minute']}:{match['second'] or '00'}"
        )
        tz = _parse_offset(offset_text)
    except ValueError as exc:
        raise InvalidTimestamp(f"is not a real date and time ({exc})") from exc
    return ensure_utc(naive.replace(microsecond=int(fraction), tzinfo=tz))


def _parse_offset(text: str) -> timezone:
    if text in ("Z", "z"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} out of range")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def from_epoch_millis(value: int | float | str | Decimal) -> datetime:
    """Epoch milliseconds (number or numeric string, fractions truncated to µs) -> UTC."""
    if isinstance(value, bool):
        raise InvalidTimestamp("must be epoch milliseconds, not a boolean")
    if isinstance(value, int):
        millis = Decimal(value)
    elif isinstance(value, Decimal):
        millis = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidTimestamp("must be a finite number of epoch milliseconds")
        millis = Decimal(repr(value))
    else:
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise InvalidTimestamp("must be epoch milliseconds")
        try:
            millis = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise InvalidTimestamp("must be epoch milliseconds") from exc
    if not _MIN_MS <= millis < _END_MS:
        hint = ""
        if _MIN_MS <= millis * 1000 < _END_MS:
            hint = " (looks like epoch seconds)"
        raise InvalidTimestamp(
            f"must be epoch milliseconds between the years {EARLIEST_YEAR} and {LATEST_YEAR}{hint}"
        )
    micros = int(millis * 1000)  # int() truncates toward zero; millis is positive here
    return _EPOCH + timedelta(microseconds=micros)


def format_utc(value: datetime) -> str:
    """The one printed form: ``2026-01-15T10:00:00.123456Z`` (always 6 digits, always ``Z``)."""
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )
