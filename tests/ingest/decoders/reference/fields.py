"""Field readers shared by the gateway decoders.

Each reader takes the raw JSON value and the field's public name (for the message) and either
returns the converted value (``None`` when absent) or raises :class:`InvalidField` with a
precise reason. Accepted everywhere: numbers sent as strings, surrounding blanks, ``null`` and
``""`` for absent values (plus gateway-specific markers such as AWS's ``-``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from pipeline.events import MAX_IDEMPOTENCY_KEY_LENGTH, InvalidTimestamp
from pipeline.ingest.errors import InvalidField
from tests.ingest.decoders.reference.timestamps import from_epoch_millis, parse_iso8601

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_METHOD = re.compile(r"[A-Za-z][A-Za-z-]{0,31}")
NO_MARKERS: Final[tuple[str, ...]] = ()


def as_object(value: Any, label: str) -> Mapping[str, Any]:
    """A JSON object, or ``{}`` when absent (``null``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField(label, "must be a JSON object", value)
    return value


def as_text(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str | None:
    """A trimmed string (numbers become their decimal text); ``None`` when blank or absent."""
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise InvalidField(label, "must be a string", value)
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise InvalidField(label, "must be a string", value)
    text = value.strip()
    if not text or text in absent:
        return None
    return text


def require_text(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str:
    text = as_text(value, label, absent=absent)
    if text is None:
        raise InvalidField(label, "is missing")
    return text


def as_key(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str:
    """The idempotency key (the request's correlation ID)."""
    key = require_text(value, label, absent=absent)
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidField(label, f"is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters", key)
    return key


def _as_decimal(value: Any, label: str, what: str, absent: tuple[str, ...]) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidField(label, f"must be {what}", value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidField(label, f"must be {what}", value)
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not text or text in absent:
            return None
        if _NUMBER.fullmatch(text):
            return Decimal(text)
    raise InvalidField(label, f"must be {what}", value)


def as_count(
    value: Any,
    label: str,
    *,
    unknown: tuple[int, ...] = (),
    absent: tuple[str, ...] = NO_MARKERS,
    what: str = "a whole number of bytes",
) -> int | None:
    """A non-negative whole number; values in ``unknown`` (e.g. MuleSoft's ``-1``) become None."""
    number = _as_decimal(value, label, what, absent)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise InvalidField(label, f"must be {what}", value)
    count = int(number)
    if count in unknown:
        return None
    if count < 0:
        raise InvalidField(label, f"must be {what} (>= 0)", value)
    return count


def as_latency(
    value: Any,
    label: str,
    *,
    unknown: tuple[int, ...] = (-1,),
    absent: tuple[str, ...] = NO_MARKERS,
) -> int | None:
    """Milliseconds, fractions rounded half-up; ``-1`` means unknown."""
    number = _as_decimal(value, label, "a number of milliseconds", absent)
    if number is None:
        return None
    millis = int(number.to_integral_value(rounding=ROUND_HALF_UP))
    if millis in unknown and number == millis:
        return None
    if millis < 0:
        raise InvalidField(label, "must be a number of milliseconds (>= 0)", value)
    return millis


def as_status(
    value: Any, label: str, *, zero_is_unknown: bool = False, absent: tuple[str, ...] = NO_MARKERS
) -> int | None:
    """An HTTP status code 100..599."""
    what = "an HTTP status code (100..599)"
    status = as_count(value, label, absent=absent, what=what)
    if status is None or (status == 0 and zero_is_unknown):
        return None
    if not 100 <= status <= 599:
        raise InvalidField(label, f"must be {what}", value)
    return status


def as_method(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str | None:
    """An HTTP method, upper-cased."""
    text = as_text(value, label, absent=absent)
    if text is None:
        return None
    if not _METHOD.fullmatch(text):
        raise InvalidField(label, "must be an HTTP method like GET or POST", value)
    return text.upper()


def epoch_millis_time(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> datetime:
    """A required request time in epoch milliseconds (number or numeric string)."""
    if value is None or (isinstance(value, str) and (not value.strip() or value.strip() in absent)):
        raise InvalidField(label, "is missing (the request time in epoch milliseconds)")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidField(label, "must be epoch milliseconds", value)
    try:
        return from_epoch_millis(value)
    except InvalidTimestamp as exc:
        raise InvalidField(label, exc.problem, value) from exc


def iso_time(value: Any, label: str) -> datetime:
    """A required ISO-8601 request time with UTC offset (fractions beyond µs truncated)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidField(label, "is missing (the request time, ISO-8601)")
    if not isinstance(value, str):
        raise InvalidField(label, "must be an ISO-8601 string", value)
    try:
        return parse_iso8601(value)
    except InvalidTimestamp as exc:
        raise InvalidField(label, exc.problem, value) from exc


def header_values(headers: Any, name: str, label: str) -> tuple[str, ...]:
    """Every trimmed, non-empty value of header ``name`` (any case, repeated or array values).

    Comma-joined values are kept as one value: splitting is the stream stage's decision.
    """
    if headers is None:
        return ()
    if not isinstance(headers, dict):
        raise InvalidField(label, "must be a JSON object of header names to values", headers)
    wanted = name.casefold()
    values: list[str] = []
    for key, value in headers.items():
        if key.casefold() == wanted:
            values.extend(_header_strings(value, f"{label}[{key!r}]"))
    return tuple(values)


def _header_strings(value: Any, label: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = as_text(item, label)
        if text is not None:
            out.append(text)
    return out


def flat_header_values(
    item: Mapping[str, Any], key: str, label_prefix: str = ""
) -> tuple[str, ...]:
    """Values of a header kept as a flat key (Apigee ``request.header.X-Tenant-Id``), any case."""
    wanted = key.casefold()
    values: list[str] = []
    for name, value in item.items():
        if name.casefold() == wanted:
            values.extend(_header_strings(value, f"{label_prefix}{name}"))
    return tuple(values)


def url_path(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str | None:
    """The path of a URL or of a path with a query string (``/a/b?x=1`` -> ``/a/b``)."""
    text = as_text(value, label, absent=absent)
    if text is None:
        return None
    if "://" in text:
        try:
            path = urlsplit(text).path
        except ValueError as exc:
            raise InvalidField(label, "must be a URL", value) from exc
        return path or "/"
    return text.split("?", 1)[0].split("#", 1)[0] or None


def extras(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Gateway-specific extras as attributes: scalars as text, objects as compact JSON."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, int | float):
            out[name] = str(value)
        else:
            try:
                out[name] = orjson.dumps(value).decode()
            except orjson.JSONEncodeError:
                continue
    return out
