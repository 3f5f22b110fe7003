import gzip
import struct
import tracemalloc
import zlib
from typing import Any

import lz4.block
import lz4.frame
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import items
from pipeline.ingest.body import (
    FEED_BYTES,
    MAX_FRAMES,
    DecompressionBudget,
    content_encoding_of,
    decode_body,
    gunzip_bounded,
    item_bytes,
    lz4_frame_bounded,
    parse_items,
)
from pipeline.ingest.errors import (
    BatchTooLarge,
    BodyTooLarge,
    IngestError,
    UndecodableBody,
    UnsupportedEncoding,
)
from pipeline.ingest.items import UnparsedItem

MIB = 1 << 20
LIMITS = {"max_compressed": 4 * MIB, "max_decompressed": 4 * MIB}
EVENTS = [{"request": {"id": "a"}, "started_at": 1768471200000}, {"request": {"id": "b"}}]


def decode(raw: bytes, encoding: str | None, **limits: int) -> list[Any]:
    return decode_body(raw, encoding, **{**LIMITS, **limits})


def compress(body: bytes, encoding: str | None) -> bytes:
    if encoding in ("lz4", "LZ4 "):
        return bytes(lz4.frame.compress(body))
    if encoding in ("gzip", "x-gzip", "GZip"):
        return gzip.compress(body)
    return body


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding", ["lz4", "LZ4 ", "gzip", "x-gzip", "GZip", "identity", None, ""]
)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (orjson.dumps(EVENTS), EVENTS),
        (orjson.dumps(EVENTS[0]), [EVENTS[0]]),
        (b"\n".join(orjson.dumps(e) for e in EVENTS) + b"\n", EVENTS),
        (b"\r\n".join(orjson.dumps(e) for e in EVENTS) + b"\r\n\r\n", EVENTS),
        (b"\xef\xbb\xbf" + orjson.dumps(EVENTS), EVENTS),
        (b"  \n[]\n", []),
    ],
    ids=["array", "object", "ndjson", "ndjson-crlf", "bom", "empty-array"],
)
def test_round_trip(encoding: str | None, body: bytes, expected: list[Any]) -> None:
    assert decode(compress(body, encoding), encoding) == expected


def test_concatenated_lz4_frames_and_gzip_members_are_one_body() -> None:
    first, second = b'[{"a":1},', b'{"b":2}]'
    frames = lz4.frame.compress(first) + lz4.frame.compress(second)
    assert decode(frames, "lz4") == [{"a": 1}, {"b": 2}]
    members = gzip.compress(first) + gzip.compress(second)
    assert decode(members, "gzip") == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("encoding", ["lz4", "gzip"])
def test_frames_are_walked_in_one_pass_up_to_the_cap(encoding: str) -> None:
    """Each frame used to copy the rest of the body: 40,000 empty gzip members took 0.37 s and
    an 8 MiB body ~40 s. Now at most MAX_FRAMES, each handed at most FEED_BYTES at a time."""
    big = orjson.dumps([{"pad": "x" * 1000, "i": n} for n in range(2_000)])  # > FEED_BYTES
    assert len(big) > 2 * FEED_BYTES
    parts = [big[: len(big) // 2], big[len(big) // 2 :]]
    assert decode(b"".join(compress(part, encoding) for part in parts), encoding) == (
        orjson.loads(big)
    )
    at_cap = b"".join(compress(b" " if n else b"[]", encoding) for n in range(MAX_FRAMES))
    assert decode(at_cap, encoding) == []
    over = at_cap + compress(b" ", encoding)
    with pytest.raises(UndecodableBody, match=f"more than {MAX_FRAMES} concatenated"):
        decode(over, encoding)


def test_one_budget_is_shared_by_every_nested_stage() -> None:
    budget = DecompressionBudget(1_000)
    budget.spend(600)  # the body itself
    assert budget.gunzip(gzip.compress(b"a" * 300)) == b"a" * 300
    assert budget.remaining == 100
    with pytest.raises(BodyTooLarge) as caught:
        budget.gunzip(gzip.compress(b"b" * 101))  # fine alone, over the request's budget
    assert caught.value.limit == 1_000 and caught.value.stage == "decompressed"


def test_content_encoding_names() -> None:
    assert content_encoding_of(None) == "identity"
    assert content_encoding_of(" Identity ") == "identity"
    assert content_encoding_of("x-gzip") == "gzip"


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip, lz4", "lz4-block", "zstd"])
def test_unsupported_encoding(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as caught:
        decode(b"[]", encoding)
    assert caught.value.encoding == encoding
    assert caught.value.fields["encoding"] == encoding
    assert "lz4" in str(caught.value)


# --- corrupt compression -------------------------------------------------------------------------


def test_truncated_lz4_frame() -> None:
    frame = lz4.frame.compress(orjson.dumps(EVENTS * 50))
    with pytest.raises(UndecodableBody, match="truncated lz4 frame"):
        decode(frame[:-6], "lz4")


@pytest.mark.parametrize(
    "raw",
    [b"not lz4 at all", lz4.block.compress(orjson.dumps(EVENTS)), gzip.compress(b"[]")],
    ids=["garbage", "lz4-block-not-frame", "gzip-labelled-lz4"],
)
def test_invalid_lz4(raw: bytes) -> None:
    with pytest.raises(UndecodableBody, match="invalid lz4 frame data"):
        decode(raw, "lz4")


def test_lz4_frame_followed_by_garbage() -> None:
    with pytest.raises(UndecodableBody, match="invalid lz4"):
        decode(lz4.frame.compress(b"[]") + b"junk-after-frame", "lz4")


def test_truncated_and_invalid_gzip() -> None:
    member = gzip.compress(orjson.dumps(EVENTS * 50))
    with pytest.raises(UndecodableBody, match="truncated gzip"):
        decode(member[:-10], "gzip")
    with pytest.raises(UndecodableBody, match="invalid gzip data"):
        decode(lz4.frame.compress(b"[]"), "gzip")


@pytest.mark.parametrize("encoding", ["lz4", "gzip"])
def test_empty_compressed_body(encoding: str) -> None:
    with pytest.raises(UndecodableBody, match="is empty"):
        decode(b"", encoding)


# --- size caps -----------------------------------------------------------------------------------


def test_compressed_cap() -> None:
    with pytest.raises(BodyTooLarge) as caught:
        decode(b"[" + b" " * 100 + b"]", None, max_compressed=50)
    assert caught.value.stage == "compressed"
    assert caught.value.limit == 50
    assert caught.value.size == 102
    assert "split the batch" in str(caught.value)


@pytest.mark.parametrize("encoding", ["lz4", "gzip", None])
def test_decompressed_cap_is_exact(encoding: str | None) -> None:
    body = b"[" + b" " * 998 + b"]"  # 1000 bytes
    assert decode(compress(body, encoding), encoding, max_decompressed=1000) == []
    with pytest.raises(BodyTooLarge) as caught:
        decode(compress(body, encoding), encoding, max_decompressed=999)
    assert caught.value.stage == "decompressed"
    assert caught.value.limit == 999
    assert caught.value.fields == {"limit": 999, "stage": "decompressed", "size": caught.value.size}


def _lz4_zeros(total: int, *, declare_size: bool) -> bytes:
    chunk = bytes(MIB)
    compressor = lz4.frame.LZ4FrameCompressor()
    parts = [compressor.begin(source_size=total if declare_size else 0)]
    parts.extend(compressor.compress(chunk) for _ in range(total // MIB))
    parts.append(compressor.flush())
    return b"".join(parts)


def _gzip_zeros(mebibytes: int) -> bytes:
    """A valid gzip member of zeros, built from identical full-flush deflate blocks (fast)."""
    chunk = bytes(MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (mebibytes * MIB) & 0xFFFFFFFF)
    return header + block * mebibytes + deflate.flush() + trailer


def test_gzip_zeros_helper_builds_valid_gzip() -> None:
    assert gzip.decompress(_gzip_zeros(3)) == bytes(3 * MIB)


@pytest.mark.parametrize(
    "bomb",
    [
        pytest.param(lambda: _lz4_zeros(1 << 30, declare_size=True), id="lz4-1GiB-size-declared"),
        pytest.param(lambda: _lz4_zeros(1 << 30, declare_size=False), id="lz4-1GiB"),
        pytest.param(lambda: _gzip_zeros(1024), id="gzip-1GiB"),
    ],
)
def test_decompression_bomb_is_refused_without_allocating_it(bomb: Any) -> None:
    raw = bomb()
    assert len(raw) < 8 * MIB
    encoding = "gzip" if raw[:2] == b"\x1f\x8b" else "lz4"
    limit = 2 * MIB
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge) as caught:
            decode(raw, encoding, max_compressed=8 * MIB, max_decompressed=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.stage == "decompressed"
    assert peak < len(raw) + 3 * limit, f"peak allocation {peak} bytes"


def test_bounded_helpers_used_by_decoders() -> None:
    assert gunzip_bounded(gzip.compress(b"abc"), 3) == b"abc"
    assert lz4_frame_bounded(lz4.frame.compress(b"abc"), 3) == b"abc"
    with pytest.raises(BodyTooLarge):
        gunzip_bounded(gzip.compress(b"abcd"), 3)
    with pytest.raises(BodyTooLarge):
        lz4_frame_bounded(lz4.frame.compress(b"abcd"), 3)


# --- JSON shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is empty"),
        (b" \n\t ", "the body is empty"),
        (b"42", "JSON number, not an object or array"),
        (b'"text"', "JSON string, not an object or array"),
        (b"null", "JSON null"),
        (b"true", "JSON boolean"),
        (b"[1, 2", "invalid JSON"),
        (b"\xff\xfe[]", "invalid JSON"),
        (b"[" * 100_000, "invalid JSON (depth limit exceeded"),
        (b'{"a":' * 100_000, "invalid JSON"),
    ],
    ids=[
        "empty",
        "blank",
        "number",
        "string",
        "null",
        "bool",
        "broken",
        "utf16",
        "deep-array",
        "deep-object",
    ],
)
def test_undecodable_json(body: bytes, reason: str) -> None:
    with pytest.raises(UndecodableBody) as caught:
        decode(body, None)
    assert reason in caught.value.reason


def test_ndjson_bad_lines_are_those_items_rejections_and_the_rest_goes_on() -> None:
    body = b'{"a":1}\n\n{"b":2}\n{"c":\n[1,2]\n{"d":4}\n'
    items = decode(body, None)
    assert items[:2] == [{"a": 1}, {"b": 2}] and items[4] == {"d": 4}
    bad, wrong_type = items[2], items[3]
    assert isinstance(bad, UnparsedItem) and bad.raw == b'{"c":'
    assert bad.reason.startswith("NDJSON line 4 is not valid JSON")
    assert wrong_type == UnparsedItem(b"[1,2]", "NDJSON line 5 is a JSON array, not an object")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (b'{"n": NaN}', "not valid JSON"),
        (b'{"n": 1e400}', "not valid JSON"),
        (b'{"s": "\xff"}', "not valid JSON"),
        (b'{"s": "\\ud800"}', "not valid JSON"),
        (b"[" * 300 + b"]" * 300, "nested too deeply"),
    ],
    ids=["nan", "huge-number", "invalid-utf8", "lone-surrogate", "too-deep"],
)
def test_one_bad_array_item_is_that_items_rejection(bad: bytes, why: str) -> None:
    """contract §2 and the hostile-input issue: valid events of the same batch still go on."""
    text = 'a,b]c"}'  # structural characters inside a string do not split it
    good = [orjson.dumps({"id": n, "text": text}) for n in range(3)]
    body = b"[" + b", ".join([good[0], bad, good[1], good[2]]) + b"]"
    items = decode(body, None)
    assert [items[0], *items[2:]] == [{"id": n, "text": text} for n in range(3)]
    assert isinstance(items[1], UnparsedItem) and items[1].raw == bad
    assert why in items[1].reason


@pytest.mark.parametrize(
    "body",
    [b"[1, 2", b"[1, 2]]", b"[1, 2] x", b"[{]", b"[" * 1000],
    ids=["unclosed", "extra-close", "trailing-data", "unbalanced", "deep"],
)
def test_an_array_that_cannot_be_split_safely_is_refused_whole(body: bytes) -> None:
    with pytest.raises(UndecodableBody, match="invalid JSON"):
        decode(body, None)


def test_splitting_is_bounded_by_the_tokens_it_may_scan() -> None:
    strings = b",".join([b'"x"'] * (items.MAX_SPLIT_TOKENS // 2 + 1))
    with pytest.raises(UndecodableBody, match="could not be split"):
        decode(b"[" + strings + b", NaN]", None)


def test_bodies_with_too_many_values_or_events_are_refused_before_the_work() -> None:
    """A 1 KB lz4 body of 80,000 '{}' blocked the event loop 0.6 s and grew the edge 411 MB:
    the values are counted (an upper bound, in C) before anything is parsed."""
    flood = b"[" + b",".join([b"{}"] * (items.MAX_JSON_VALUES + 1)) + b"]"
    body = lz4.frame.compress(flood)
    tracemalloc.start()
    try:
        with pytest.raises(BatchTooLarge, match="JSON values") as caught:
            decode(body, "lz4", max_decompressed=16 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.limit == items.MAX_JSON_VALUES
    # a few copies of the bytes, never 1.5M dicts (those alone would be over 100 MB)
    assert peak < 6 * len(flood) < 100 * MIB
    many = orjson.dumps([{"i": n} for n in range(101)])
    with pytest.raises(BatchTooLarge, match="101 events, more than the 100"):
        decode(many, None, max_items=100)
    assert len(decode(many, None, max_items=101)) == 101


def test_a_single_item_nested_too_deeply_is_that_items_rejection() -> None:
    [item] = decode(b"[" * 300 + b"]" * 300, None)
    assert isinstance(item, UnparsedItem) and "nested too deeply" in item.reason


def test_single_object_with_trailing_garbage_on_one_line_is_invalid_json() -> None:
    with pytest.raises(UndecodableBody, match="invalid JSON"):
        decode(b'{"a":1} {"b":2}', None)


def test_item_bytes_round_trip_and_never_raise() -> None:
    items = parse_items(orjson.dumps(EVENTS))
    assert [orjson.loads(item_bytes(item)) for item in items] == EVENTS
    deep: Any = []
    for _ in range(400):
        deep = [deep]
    fallback = orjson.loads(item_bytes(deep))
    assert "unserialisable_item" in fallback


# --- fuzz --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=512),
    encoding=st.sampled_from(["lz4", "gzip", "identity", None, "br"]),
    wrap=st.booleans(),
)
def test_random_bytes_give_items_or_an_ingest_error(
    raw: bytes, encoding: str | None, wrap: bool
) -> None:
    data = compress(raw, encoding) if wrap else raw
    try:
        items = decode(data, encoding, max_compressed=4096, max_decompressed=1024)
    except IngestError:
        return
    assert isinstance(items, list)
    for item in items:
        assert isinstance(item_bytes(item), bytes)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values, encoding=st.sampled_from(["lz4", "gzip", None]))
def test_any_json_value_gives_items_or_undecodable(value: Any, encoding: str | None) -> None:
    data = compress(orjson.dumps(value), encoding)
    try:
        items = decode(data, encoding)
    except UndecodableBody:
        assert not isinstance(value, list | dict)
        return
    assert items == (value if isinstance(value, list) else [value])
