from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest.decoders import fields
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
from tests.ingest.decoders.reference import fields as reference


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


# --- fast paths against the reference readers (tests/ingest/decoders/reference/fields.py) -----

VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-5, max_value=10**19)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.text(st.sampled_from("0123456789 .+-e\u0661\u00b2"), max_size=22)
    | st.sampled_from(["-", "", "  ", " 42 ", "1768471200123", "9" * 5000, "GET", " post ", "A-B"])
    | st.sampled_from(["https://h.example/a/b?c#d", "http://[::1]:80/x", "HTTPS://H/x", "/p?q"])
    | st.sampled_from(["2026-01-15T10:00:00.1234567Z", "2026-01-15T10:00:00+01:00", "x"])
    | st.lists(st.text(max_size=3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
)
ABSENT = st.sampled_from([(), ("-",)])


def outcome(read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return ("value", read(*args, **kwargs))
    except InvalidField as exc:
        return ("refused", str(exc), exc.fields)


READERS = ["as_text", "as_key", "as_count", "as_latency", "as_status", "as_method", "url_path"]


@given(name=st.sampled_from(READERS), value=VALUES, absent=ABSENT)
def test_readers_equal_the_reference(name: str, value: Any, absent: tuple[str, ...]) -> None:
    new, old = getattr(fields, name), getattr(reference, name)
    assert outcome(new, value, "f", absent=absent) == outcome(old, value, "f", absent=absent)


@given(value=VALUES, unknown=st.sampled_from([(), (-1,), (0, 7)]), zero=st.booleans())
def test_count_variants_equal_the_reference(
    value: Any, unknown: tuple[int, ...], zero: bool
) -> None:
    assert outcome(fields.as_count, value, "s", unknown=unknown) == outcome(
        reference.as_count, value, "s", unknown=unknown
    )
    assert outcome(fields.as_latency, value, "t", unknown=unknown) == outcome(
        reference.as_latency, value, "t", unknown=unknown
    )
    assert outcome(fields.as_status, value, "c", zero_is_unknown=zero) == outcome(
        reference.as_status, value, "c", zero_is_unknown=zero
    )


@given(value=VALUES, absent=ABSENT)
def test_times_equal_the_reference(value: Any, absent: tuple[str, ...]) -> None:
    assert outcome(fields.epoch_millis_time, value, "t", absent=absent) == outcome(
        reference.epoch_millis_time, value, "t", absent=absent
    )
    assert outcome(fields.iso_time, value, "t") == outcome(reference.iso_time, value, "t")


HEADER_NAMES = st.sampled_from(["x-tenant-id", "X-Tenant-Id", "X-TENANT-ID", "host", "x-tenant-ıd"])
HEADERS = st.none() | VALUES | st.dictionaries(HEADER_NAMES, VALUES, max_size=4)


@given(headers=HEADERS)
def test_header_lookups_equal_the_reference(headers: Any) -> None:
    assert outcome(fields.header_values, headers, "x-tenant-id", "h") == outcome(
        reference.header_values, headers, "x-tenant-id", "h"
    )
    if isinstance(headers, dict):
        assert outcome(fields.flat_header_values, headers, "X-Tenant-Id", "p.") == outcome(
            reference.flat_header_values, headers, "X-Tenant-Id", "p."
        )


@given(pairs=st.lists(st.tuples(st.text(max_size=4), VALUES), max_size=5))
def test_extras_equal_the_reference(pairs: list[tuple[str, Any]]) -> None:
    assert outcome(fields.extras, pairs) == outcome(reference.extras, pairs)
