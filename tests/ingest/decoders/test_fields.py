from typing import Any

import pytest

from pipeline.ingest.decoders.fields import (
    as_count,
    as_latency,
    as_method,
    as_status,
    as_text,
    extras,
    header_values,
    url_path,
)
from pipeline.ingest.errors import InvalidField


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("  ", None), (" a ", "a"), (12, "12"), ("-", "-")],
)
def test_as_text(value: Any, expected: str | None) -> None:
    assert as_text(value, "f") == expected


def test_as_text_absent_markers() -> None:
    assert as_text("-", "f", absent=("-",)) is None
    with pytest.raises(InvalidField, match="f must be a string, got True"):
        as_text(True, "f")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        ("12", 12),
        (" 12 ", 12),
        (12.0, 12),
        ("12.00", 12),
        ("+7", 7),
        (None, None),
        ("", None),
    ],
)
def test_as_count(value: Any, expected: int | None) -> None:
    assert as_count(value, "size") == expected


@pytest.mark.parametrize("value", ["1e3", "12 bytes", 1.5, "0x10", [], {}, True, float("inf"), -1])
def test_as_count_rejects(value: Any) -> None:
    with pytest.raises(InvalidField) as caught:
        as_count(value, "size")
    assert caught.value.field == "size"
    assert caught.value.fields["field"] == "size"


def test_as_count_unknown_marker() -> None:
    assert as_count(-1, "size", unknown=(-1,)) is None
    assert as_count("-1", "size", unknown=(-1,)) is None


def test_as_latency_rounds_half_up() -> None:
    assert as_latency("12.5", "t") == 13
    assert as_latency(12.49, "t") == 12
    assert as_latency(-1, "t") is None
    with pytest.raises(InvalidField, match=">= 0"):
        as_latency(-1.5, "t")


def test_as_status() -> None:
    assert as_status("404", "s") == 404
    assert as_status(0, "s", zero_is_unknown=True) is None
    with pytest.raises(InvalidField, match=r"100\.\.599"):
        as_status(0, "s")
    with pytest.raises(InvalidField, match=r"100\.\.599"):
        as_status(200.5, "s")


def test_as_method() -> None:
    assert as_method(" patch ", "m") == "PATCH"
    assert as_method("M-SEARCH", "m") == "M-SEARCH"
    with pytest.raises(InvalidField):
        as_method("GET /", "m")


def test_header_values_keep_order_and_do_not_split_commas() -> None:
    headers = {"X-Tenant-Id": ["a", "b,c"], "x-tenant-id": " d ", "other": "e"}
    assert header_values(headers, "x-tenant-id", "h") == ("a", "b,c", "d")
    assert header_values({"x-tenant-id": [1, None, ""]}, "X-TENANT-ID", "h") == ("1",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://h.example/a/b?x=1#f", "/a/b"),
        ("https://h.example", "/"),
        ("/a/b?x=1", "/a/b"),
        ("/a/{id}", "/a/{id}"),
        ("?x=1", None),
        (None, None),
    ],
)
def test_url_path(value: Any, expected: str | None) -> None:
    assert url_path(value, "u") == expected


def test_extras_render_scalars_and_objects() -> None:
    assert extras(
        [("a", 1), ("b", True), ("c", None), ("d", ""), ("e", {"x": [1]}), ("f", 1.5)]
    ) == {
        "a": "1",
        "b": "true",
        "e": '{"x":[1]}',
        "f": "1.5",
    }
