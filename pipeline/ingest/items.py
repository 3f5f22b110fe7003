"""A decompressed body -> its items: a JSON array, one object, or NDJSON. Bounded work.

* **Bounded before parsing**: an upper bound of the JSON values a body holds (one per ``,`` or
  ``:`` plus one) is counted in C before anything is built; past :data:`MAX_JSON_VALUES` the body
  is refused with :class:`~pipeline.ingest.errors.BatchTooLarge` (413: split it), so a small body
  of millions of ``{}`` never becomes millions of Python objects. After parsing, more than
  ``max_items`` items is the same refusal.
* **One bad item is that item's rejection** where the body can still be split safely: an NDJSON
  line that is not JSON, or not an object, becomes an :class:`UnparsedItem` (rejected, with its
  own bytes dead-lettered) and the other lines go on; a JSON array that does not parse as a
  whole (a NaN, an invalid UTF-8 byte, a lone surrogate, a number out of range in one event) is
  split into its top-level items by a string-aware scan, each parsed on its own. Only a body
  that cannot be split (not an array, or more than :data:`MAX_SPLIT_TOKENS` tokens to scan) is
  refused as a whole (400, the body dead-lettered).
* An item nested deeper than the 254 levels orjson can serialise is an :class:`UnparsedItem` too
  (its dead letter must be serialisable), with its original bytes when the body is an array.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from pipeline.ingest.errors import BatchTooLarge, UndecodableBody

#: upper bound of JSON values per body (commas + colons + 1). The plugins' events hold 20-70
#: (a Kong log-phase object ~67, counted on the bench's bodies); 1.5M allows 10,000 of the
#: largest with room to spare, and the worst body under it (1.5M empty objects) is ~110 MB of
#: Python objects for a moment, once: decoding runs one request at a time on the event loop.
MAX_JSON_VALUES: Final = 1_500_000
#: tokens (strings and structural characters) the array splitter may scan. Measured: ~0.6 us
#: per token, ~110 per Kong event; 250k tokens (~0.15 s, ~2,000 Kong events) bounds the work
#: one broken body can cost the event loop. Larger broken arrays are refused as a whole.
MAX_SPLIT_TOKENS: Final = 250_000
DEFAULT_MAX_ITEMS: Final = 10_000

_BOM: Final = b"\xef\xbb\xbf"
_FORMS_HINT: Final = (
    "send a JSON array of events, one event object, or NDJSON (one object per line)"
)
#: a whole JSON string (escapes included) or one structural character
_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


class UnparsedItem:
    """An item of the body that is not a usable JSON value: rejected with ``reason``, and
    ``raw`` (its bytes as sent) dead-lettered. The decoders never see it."""

    __slots__ = ("raw", "reason")

    def __init__(self, raw: bytes, reason: str) -> None:
        self.raw = raw
        self.reason = reason

    def __repr__(self) -> str:
        return f"UnparsedItem({self.raw[:40]!r}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnparsedItem):
            return NotImplemented
        return (self.raw, self.reason) == (other.raw, other.reason)

    __hash__ = None  # type: ignore[assignment]


def parse_items(data: bytes, *, max_items: int = DEFAULT_MAX_ITEMS) -> list[Any]:
    """JSON array -> its items; one object -> ``[obj]``; NDJSON -> one item per non-blank line.

    Items that cannot be used are :class:`UnparsedItem`; see the module doc for the bounds.
    """
    text = data[len(_BOM) :] if data.startswith(_BOM) else data
    text = text.strip()
    if not text:
        raise UndecodableBody(f"the body is empty; {_FORMS_HINT}")
    values = text.count(b",") + text.count(b":") + 1
    if values > MAX_JSON_VALUES:
        raise BatchTooLarge("JSON values", MAX_JSON_VALUES, values, counted_as="upper bound")
    items: list[Any]
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if text[:1] == b"{" and b"\n" in text:
            items = _ndjson(text)
        elif text[:1] == b"[":
            items = _split_array(text, str(exc))
        else:
            raise UndecodableBody(f"invalid JSON ({exc})") from exc
    else:
        if isinstance(parsed, list):
            items = parsed
        elif isinstance(parsed, dict):
            items = [parsed]
        else:
            raise UndecodableBody(
                f"the body is a JSON {json_type(parsed)}, not an object or array; {_FORMS_HINT}"
            )
        items = _serialisable(items, text)
    if len(items) > max_items:
        raise BatchTooLarge("events", max_items, len(items))
    return items


def _ndjson(text: bytes) -> list[Any]:
    items: list[Any] = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            items.append(UnparsedItem(line, f"NDJSON line {number} is not valid JSON ({exc})"))
            continue
        if not isinstance(item, dict):
            reason = f"NDJSON line {number} is a JSON {json_type(item)}, not an object"
            items.append(UnparsedItem(line, reason))
            continue
        items.append(_serialisable([item], line)[0])
    return items


def _split_array(text: bytes, whole_error: str) -> list[Any]:
    """The top-level items of a JSON array that does not parse as a whole, each parsed alone."""
    slices = _array_slices(text)
    if slices is None:
        raise UndecodableBody(
            f"invalid JSON ({whole_error}), and the array could not be split into its items"
        )
    items: list[Any] = []
    for start, end in slices:
        raw = text[start:end].strip()
        try:
            items.append(_serialisable([orjson.loads(raw)], raw)[0])
        except orjson.JSONDecodeError as exc:
            items.append(UnparsedItem(raw, f"the item is not valid JSON ({exc})"))
    return items


def _array_slices(text: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each top-level item of the array ``text``; None if it cannot be split
    safely (unbalanced, trailing data, or too many tokens to scan)."""
    slices: list[tuple[int, int]] = []
    depth = 0
    start = 1
    closed_at = -1
    for scanned, match in enumerate(_TOKEN.finditer(text), start=1):
        if scanned > MAX_SPLIT_TOKENS or closed_at >= 0:
            return None
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                closed_at = match.start()
                if text[start:closed_at].strip():
                    slices.append((start, closed_at))
        elif token == b"," and depth == 1:
            slices.append((start, match.start()))
            start = match.end()
    if closed_at < 0 or text[closed_at + 1 :].strip():
        return None
    return slices


def _serialisable(items: list[Any], text: bytes) -> list[Any]:
    """``items`` with each one orjson cannot serialise (nested deeper than 254 levels: it parses
    up to 1024) replaced by an :class:`UnparsedItem`, so that every item can be dead-lettered."""
    try:
        orjson.dumps(items)
    except orjson.JSONEncodeError:
        pass
    else:
        return items
    slices = _array_slices(text) if text[:1] == b"[" else None
    if slices is not None and len(slices) != len(items):
        slices = None
    fixed: list[Any] = []
    for index, item in enumerate(items):
        try:
            orjson.dumps(item)
        except orjson.JSONEncodeError as exc:
            raw = text[slice(*slices[index])].strip() if slices is not None else text
            fixed.append(UnparsedItem(raw, f"the item is nested too deeply ({exc})"))
        else:
            fixed.append(item)
    return fixed


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
