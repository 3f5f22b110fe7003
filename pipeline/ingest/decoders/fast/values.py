"""Value checks shared by the fast paths: each returns the value in final form or declines.

A fast path only takes values the general field readers (:mod:`pipeline.ingest.decoders.fields`)
would return unchanged or convert trivially; :data:`DECLINE` (-1, never a valid size or
latency) tells the caller to decline the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

from msgspec import Meta

from pipeline.events import MAX_EVENT_INTEGER, MAX_IDEMPOTENCY_KEY_LENGTH
from pipeline.ingest.decoders.fields import matching_keys

DECLINE: Final = -1
JsonInt = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
"""An integer both parsers read as ``int`` (orjson reads one beyond 64 bits as a float, msgspec
as an int); msgspec checks the range in C. For values used as text (attributes)."""
_FAST_DIGITS: Final = 18


def idempotency_key(value: str | None) -> str | None:
    """The key as ``as_key`` reads a string (trimmed, 1..512 characters); ``None``: decline."""
    if value is None:
        return None
    key = value.strip()
    return key if key and len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH else None


def count(value: str | int | None) -> int | None:
    """A size or latency sent as a number or an ASCII digit string; ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) <= _FAST_DIGITS and value.isdigit() and value.isascii():
            return int(value)
        return DECLINE
    return value if 0 <= value <= MAX_EVENT_INTEGER else DECLINE


def first_text(*candidates: str | None) -> str | None:
    """The first candidate that is not blank, trimmed (``as_text(a) or as_text(b) ...``)."""
    for candidate in candidates:
        if candidate is not None and (text := candidate.strip()):
            return text
    return None


def header_texts(headers: Mapping[str, str | list[str]] | None, wanted: str) -> tuple[str, ...]:
    """Every trimmed non-empty value of header ``wanted`` (casefolded), in any case, in order."""
    if not headers:
        return ()
    found: list[str] = []
    for name in matching_keys(headers, wanted):
        sent = headers[name]
        for text in (sent,) if type(sent) is str else sent:
            if text := text.strip():
                found.append(text)
    return tuple(found)


def method(value: str | None) -> str | None:
    """An HTTP method sent as plain ASCII letters, upper-cased; :data:`DECLINE_TEXT` otherwise."""
    if value is None:
        return None
    if len(value) <= 32 and value.isalpha() and value.isascii():
        return value.upper()
    return DECLINE_TEXT


DECLINE_TEXT: Final = "\x00decline"
"""What :func:`method` returns for a value the fast path does not take."""


def path(value: str | None) -> str | None:
    """``url_path`` of a path with an optional query or fragment (trimmed; ``None`` when
    blank); :data:`DECLINE_TEXT` for a URL with a scheme, whose parsing the fast paths leave
    to the general path."""
    if value is None:
        return None
    text = value.strip()
    if "://" in text:
        return DECLINE_TEXT
    return text.split("?", 1)[0].split("#", 1)[0] or None


def extras(pairs: tuple[tuple[str, str | int | None], ...]) -> dict[str, str]:
    """Attributes as :func:`~pipeline.ingest.decoders.fields.extras` gives them for strings
    (kept as sent when not empty) and whole numbers (their decimal text; type them
    :data:`JsonInt`)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if type(value) is str:
            if value:
                out[name] = value
        elif value is not None:
            out[name] = str(value)
    return out


def invalid_utf8(data: bytes) -> bool:
    """True if ``data`` is not UTF-8: msgspec does not check the strings it skips, orjson (the
    general path) refuses the whole document."""
    if data.isascii():
        return False
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False
