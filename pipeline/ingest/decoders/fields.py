"""Field readers shared by the gateway decoders.

Each reader takes the raw JSON value and the field's public name (for the message) and either
returns the converted value (``None`` when absent) or raises :class:`InvalidField` with a
precise reason. Accepted everywhere: numbers sent as strings, surrounding blanks, ``null`` and
``""`` for absent values (plus gateway-specific markers such as AWS's ``-``).

Speed: the edge reads a dozen fields per event, so each reader first tries the forms plugins
actually send (an exact ``str``, a non-negative ``int``, a short ASCII digit string) and returns
at once; every other value, and every rejection, goes through the general code after it, which
defines the behaviour and the messages (property tests compare both paths).
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
from pipeline.events.timestamps import (
    END_EPOCH_MILLIS,
    EPOCH,
    MILLISECOND,
    MIN_EPOCH_MILLIS,
    from_epoch_millis,
    parse_iso8601,
)
from pipeline.ingest.errors import InvalidField

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_METHOD = re.compile(r"[A-Za-z][A-Za-z-]{0,31}")
_SIMPLE_URL = re.compile(r"https?://[^/?#\[\]]*(?=[/?#]|$)([^?#]*)")
NO_MARKERS: Final[tuple[str, ...]] = ()
_FAST_DIGITS: Final = 18
"""Digit strings up to this length are read with ``int()`` directly (always below 2**63)."""
_SHAPE_CACHE_SIZE: Final = 1024
_SHAPE_MAX_KEYS: Final = 64


def _short_int(text: str) -> int | None:
    """``int(text)`` for a short ASCII digit string (no sign, no blanks), else ``None``."""
    if len(text) <= _FAST_DIGITS and text.isdigit() and text.isascii():
        return int(text)
    return None


def as_object(value: Any, label: str) -> Mapping[str, Any]:
    """A JSON object, or ``{}`` when absent (``null``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField(label, "must be a JSON object", value)
    return value


def as_text(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str | None:
    """A trimmed string (numbers become their decimal text); ``None`` when blank or absent."""
    if type(value) is str:
        text = value.strip()
        return text if text and text not in absent else None
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
    if type(value) is str:
        key = value.strip()
        if key and key not in absent and len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            return key
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
    if type(value) is int:
        if value >= 0 and value not in unknown:
            return value
    elif type(value) is str:
        count = _short_int(value.strip())
        if count is not None and count not in unknown:
            return count
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
    if type(value) is int:
        if value >= 0 and value not in unknown:
            return value
    elif type(value) is str:
        millis = _short_int(value.strip())
        if millis is not None and millis not in unknown:
            return millis
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
    if type(value) is int:
        if 100 <= value <= 599:
            return value
    elif type(value) is str:
        code = _short_int(value.strip())
        if code is not None and 100 <= code <= 599:
            return code
    what = "an HTTP status code (100..599)"
    status = as_count(value, label, absent=absent, what=what)
    if status is None or (status == 0 and zero_is_unknown):
        return None
    if not 100 <= status <= 599:
        raise InvalidField(label, f"must be {what}", value)
    return status


def as_method(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str | None:
    """An HTTP method, upper-cased."""
    if type(value) is str:
        word = value.strip()
        if len(word) <= 32 and word.isalpha() and word.isascii() and word not in absent:
            return word.upper()
    text = as_text(value, label, absent=absent)
    if text is None:
        return None
    if not _METHOD.fullmatch(text):
        raise InvalidField(label, "must be an HTTP method like GET or POST", value)
    return text.upper()


def epoch_millis_int(value: Any) -> int | None:
    """Whole epoch milliseconds in the valid range (an ``int`` or ASCII digits), else ``None``.

    When it is not None, :func:`epoch_millis_time` gives ``EPOCH + MILLISECOND * result``.
    """
    if type(value) is int:
        millis: int = value
    elif type(value) is str:
        parsed = _short_int(value.strip())
        if parsed is None:
            return None
        millis = parsed
    else:
        return None
    return millis if MIN_EPOCH_MILLIS <= millis < END_EPOCH_MILLIS else None


def epoch_millis_time(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> datetime:
    """A required request time in epoch milliseconds (number or numeric string)."""
    if type(value) is int:
        if MIN_EPOCH_MILLIS <= value < END_EPOCH_MILLIS:
            return EPOCH + MILLISECOND * value  # from_epoch_millis's own fast path, inlined
    elif type(value) is str:
        millis = _short_int(value.strip())
        if millis is not None and MIN_EPOCH_MILLIS <= millis < END_EPOCH_MILLIS:
            return EPOCH + MILLISECOND * millis
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
    if type(value) is str and value.strip():
        try:
            return parse_iso8601(value)
        except InvalidTimestamp as exc:
            raise InvalidField(label, exc.problem, value) from exc
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
    values: list[str] = []
    for key in matching_keys(headers, name.casefold()):
        value = headers[key]
        if type(value) is str:
            text = value.strip()
            if text:
                values.append(text)
        else:
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


_MATCHING_KEYS: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}


def matching_keys(item: Mapping[str, Any], wanted: str) -> tuple[str, ...]:
    """The keys of ``item`` equal to ``wanted`` in any case (``wanted`` already casefolded).

    Remembered per key layout ("shape") of the object: plugins send the same keys event after
    event, so the case-insensitive scan runs once per shape, not once per event.
    """
    if len(item) > _SHAPE_MAX_KEYS:
        return tuple(key for key in item if key.casefold() == wanted)
    shape = (wanted, tuple(item))
    found = _MATCHING_KEYS.get(shape)
    if found is None:
        found = tuple(key for key in item if key.casefold() == wanted)
        if len(_MATCHING_KEYS) >= _SHAPE_CACHE_SIZE:
            _MATCHING_KEYS.clear()
        _MATCHING_KEYS[shape] = found
    return found


def flat_header_values(
    item: Mapping[str, Any], key: str, label_prefix: str = ""
) -> tuple[str, ...]:
    """Values of a header kept as a flat key (Apigee ``request.header.X-Tenant-Id``), any case."""
    values: list[str] = []
    for name in matching_keys(item, key.casefold()):
        value = item[name]
        if type(value) is str:
            text = value.strip()
            if text:
                values.append(text)
        else:
            values.extend(_header_strings(value, f"{label_prefix}{name}"))
    return tuple(values)


def url_path(value: Any, label: str, *, absent: tuple[str, ...] = NO_MARKERS) -> str | None:
    """The path of a URL or of a path with a query string (``/a/b?x=1`` -> ``/a/b``)."""
    text = as_text(value, label, absent=absent)
    if text is None:
        return None
    if "://" in text:
        simple = _SIMPLE_URL.match(text) if text.isascii() and text.isprintable() else None
        if simple is not None:  # what urlsplit gives for a plain http(s) URL, without its work
            return simple[1] or "/"
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
        kind = type(value)
        if kind is str:
            if value:
                out[name] = value
            continue
        if kind is int:
            out[name] = str(value)
            continue
        if value is None:
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
