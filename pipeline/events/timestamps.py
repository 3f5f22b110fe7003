"""Request times: parse the forms gateways send, check them, print them one way.

Every event time is a UTC-aware ``datetime`` with microsecond precision between the years
2000 and 2100 (anything outside is a unit mistake, e.g. epoch seconds sent as milliseconds).
Finer fractions (Azure sends 7 digits, some clocks 9) are truncated to microseconds, never
rounded, so that a time never moves into the next second, hour or billing period.

Speed: the ingest edge parses and prints a time for every event, so the common forms (integer
milliseconds, ASCII digit strings, ``YYYY-MM-DDTHH:MM:SS[.fff...]Z``) take fast paths that give
exactly what the general parsers give (property-tested); anything else, and every error, goes
through the general code below, which defines the behaviour and the messages.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

import orjson

from pipeline.events.errors import InvalidTimestamp

EARLIEST_YEAR = 2000
LATEST_YEAR = 2100

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
MIN_EPOCH_MILLIS = int((datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) * 1000
"""Epoch milliseconds of the first valid instant; ``EPOCH + MILLISECOND * n`` is exact."""
END_EPOCH_MILLIS = int((datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) * 1000
"""Epoch milliseconds just past the last valid instant."""
_EPOCH, _MIN_MS, _END_MS, _MILLISECOND = EPOCH, MIN_EPOCH_MILLIS, END_EPOCH_MILLIS, MILLISECOND
_FAST_DIGITS = 18
"""Digit strings up to this length are read with ``int()`` directly (longer ones: Decimal)."""
_FIRST_YEAR_START = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
_LAST_YEAR_END = datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC)

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
    fast = _parse_utc_z(text)
    return fast if fast is not None else _parse_iso8601(text)


def _parse_utc_z(text: str) -> datetime | None:
    """Fast path for ``YYYY-MM-DDTHH:MM:SS[.digits]Z`` (ASCII, no blanks) in 2000..2100, else None.

    ``datetime.fromisoformat`` (3.11+) reads exactly this form: ASCII digits only in the digit
    positions, fractions truncated to microseconds, ``Z`` as ``timezone.utc`` (which is ``UTC``).
    """
    length = len(text)
    if (
        length < 20
        or text[-1] != "Z"
        or text[10] != "T"
        or text[4] != "-"
        or text[7] != "-"
        or text[13] != ":"
        or text[16] != ":"
        or not text.isascii()
    ):
        return None
    if length != 20 and (length < 22 or text[19] != "." or not text[20:-1].isdigit()):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if _FIRST_YEAR_START <= moment < _LAST_YEAR_END else None


def _parse_iso8601(text: str) -> datetime:
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
    millis: int | None = None
    if type(value) is int:
        millis = value
    elif type(value) is str:
        text = value.strip()
        if len(text) <= _FAST_DIGITS and text.isdigit() and text.isascii():
            millis = int(text)
    if millis is not None and _MIN_MS <= millis < _END_MS:
        return _EPOCH + _MILLISECOND * millis  # exact: timedelta * int is integer arithmetic
    return _from_epoch_millis(value)


def _from_epoch_millis(value: int | float | str | Decimal) -> datetime:
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
    if utc.microsecond and type(utc) is datetime:
        # orjson prints an aware UTC datetime with a non-zero fraction in exactly this form
        return orjson.dumps(utc, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )
