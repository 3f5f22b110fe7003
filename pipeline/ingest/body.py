"""Turn a POST body into raw items: decompress (bounded), then JSON array / object / NDJSON.

Decompression never produces more than ``max_decompressed + 1`` bytes: both the lz4 frame
decompressor and zlib are asked for at most the remaining budget plus one byte, so a
decompression bomb is detected after allocating about the cap, never its full size.

Items are returned as parsed JSON values (the decoders interpret them); :func:`item_bytes`
gives each item's bytes for the dead-letter topic (re-serialised compact JSON, which carries
exactly the same JSON value as the plugin sent).
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

import lz4.frame
import orjson

from pipeline.ingest.errors import BodyTooLarge, UndecodableBody, UnsupportedEncoding, short_repr

Encoding = Literal["lz4", "gzip", "identity"]

_ENCODINGS: dict[str, Encoding] = {
    "lz4": "lz4",
    "gzip": "gzip",
    "x-gzip": "gzip",
    "identity": "identity",
    "": "identity",
}
_BOM = b"\xef\xbb\xbf"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_FORMS_HINT = "send a JSON array of events, one event object, or NDJSON (one object per line)"


def decode_body(
    raw: bytes, content_encoding: str | None, *, max_compressed: int, max_decompressed: int
) -> list[Any]:
    """The items of one request body. Raises an :class:`IngestError` subclass, nothing else."""
    data = decompress_body(
        raw, content_encoding, max_compressed=max_compressed, max_decompressed=max_decompressed
    )
    return parse_items(data)


def content_encoding_of(header: str | None) -> Encoding:
    """Normalise a ``Content-Encoding`` header value (case and blanks do not matter)."""
    key = (header or "").strip().lower()
    try:
        return _ENCODINGS[key]
    except KeyError:
        raise UnsupportedEncoding(header or "") from None


def decompress_body(
    raw: bytes, content_encoding: str | None, *, max_compressed: int, max_decompressed: int
) -> bytes:
    """The decompressed body, enforcing the size caps in both stages."""
    encoding = content_encoding_of(content_encoding)
    if len(raw) > max_compressed:
        raise BodyTooLarge(max_compressed, "compressed", size=len(raw))
    if encoding == "lz4":
        return lz4_frame_bounded(raw, max_decompressed)
    if encoding == "gzip":
        return gunzip_bounded(raw, max_decompressed)
    if len(raw) > max_decompressed:
        raise BodyTooLarge(max_decompressed, "decompressed", size=len(raw))
    return bytes(raw)


def lz4_frame_bounded(data: bytes, limit: int) -> bytes:
    """Decompress one or more concatenated lz4 frames, refusing more than ``limit`` bytes."""
    if not data:
        raise UndecodableBody("the lz4 body is empty")
    chunks: list[bytes] = []
    total = 0
    remaining = bytes(data)
    while remaining:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            out = decompressor.decompress(remaining, max_length=limit - total + 1)
        except RuntimeError as exc:
            raise UndecodableBody(
                f"invalid lz4 frame data ({exc}); frames, not raw blocks"
            ) from exc
        total += len(out)
        if total > limit:
            raise BodyTooLarge(limit, "decompressed")
        chunks.append(out)
        if not decompressor.eof:
            raise UndecodableBody("truncated lz4 frame: the body ends before the frame's end mark")
        remaining = decompressor.unused_data
    return b"".join(chunks)


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress one or more gzip members, refusing more than ``limit`` bytes."""
    if not data:
        raise UndecodableBody("the gzip body is empty")
    chunks: list[bytes] = []
    total = 0
    remaining = bytes(data)
    while remaining:
        decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            out = decompressor.decompress(remaining, limit - total + 1)
        except zlib.error as exc:
            raise UndecodableBody(f"invalid gzip data ({exc})") from exc
        total += len(out)
        if total > limit:
            raise BodyTooLarge(limit, "decompressed")
        chunks.append(out)
        if not decompressor.eof:
            raise UndecodableBody("truncated gzip data: the body ends before the gzip trailer")
        remaining = decompressor.unused_data
    return b"".join(chunks)


def parse_items(data: bytes) -> list[Any]:
    """JSON array -> its items; one object -> ``[obj]``; NDJSON -> one item per non-blank line."""
    text = data[len(_BOM) :] if data.startswith(_BOM) else data
    text = text.strip()
    if not text:
        raise UndecodableBody(f"the body is empty; {_FORMS_HINT}")
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if text[:1] == b"{" and b"\n" in text:
            items = _parse_ndjson(text)
        else:
            raise UndecodableBody(f"invalid JSON ({exc})") from exc
    else:
        if isinstance(parsed, list):
            items = parsed
        elif isinstance(parsed, dict):
            items = [parsed]
        else:
            raise UndecodableBody(
                f"the body is a JSON {_json_type(parsed)}, not an object or array; {_FORMS_HINT}"
            )
    _check_serialisable(items)
    return items


def _parse_ndjson(text: bytes) -> list[Any]:
    items: list[Any] = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UndecodableBody(
                f"NDJSON line {number} is not valid JSON ({exc})", line=number
            ) from exc
        if not isinstance(item, dict):
            raise UndecodableBody(
                f"NDJSON line {number} is a JSON {_json_type(item)}, not an object", line=number
            )
        items.append(item)
    return items


def _check_serialisable(items: list[Any]) -> None:
    # orjson parses up to 1024 levels but serialises only 254; an item we cannot serialise
    # could not be dead-lettered, so the whole body is refused (and dead-lettered raw) instead.
    try:
        orjson.dumps(items)
    except orjson.JSONEncodeError as exc:
        raise UndecodableBody(f"the JSON is nested too deeply ({exc})") from exc


def item_bytes(item: Any) -> bytes:
    """Compact JSON of one item, for the dead-letter record; never raises."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError as exc:
        return orjson.dumps({"unserialisable_item": short_repr(item), "error": str(exc)})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
