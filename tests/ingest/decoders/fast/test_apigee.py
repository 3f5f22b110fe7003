"""Apigee's fast path on what matters for its flow variables (the contract itself is in
``test_contract``): values the callout sends in two forms, ``null``/blank for unset variables,
the fallbacks the general decoder reads only when a variable is unset, and the variable names it
matches in any case."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.devstack import samples
from pipeline.ingest.decoders.fast import fast_records
from tests.ingest.decoders.fast.test_contract import check, plain_calls
from tests.ingest.decoders.test_against_reference import CHECKS, context

CTX = context("apigee")
REMOVE: Any = object()
TENANT = "request.header.X-Tenant-Id"
START = "client.received.start.timestamp"
END = "client.sent.end.timestamp"
REQUEST_LENGTH = "request.header.Content-Length"
RESPONSE_LENGTH = "response.header.Content-Length"


def plain(count: int = 3) -> list[dict[str, Any]]:
    return samples.native_batch("apigee", plain_calls(count, "apigee"))


def with_values(changes: dict[str, Any]) -> list[dict[str, Any]]:
    """A plain batch whose first item has these variables set (or removed: ``REMOVE``)."""
    items = plain()
    for variable, value in changes.items():
        if value is REMOVE:
            items[0].pop(variable, None)
        else:
            items[0][variable] = value
    return items


def taken(items: list[Any]) -> bool:
    return check(orjson.dumps(items), CTX)


def declined(items: list[Any]) -> bool:
    return fast_records(orjson.dumps(items), CTX) is None


# --- the callout's forms are taken, with the general path's result ------------------------------


def test_a_plain_batch_is_taken() -> None:
    assert taken(plain(12))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (START, 1772366400123),  # a number instead of the callout's string
        (END, 1772366400200),
        (END, None),  # unset: no latency
        (END, ""),  # blank: no latency
        (END, "   "),
        ("client.received.content.length", 512),
        ("client.sent.content.length", "2048"),
        ("client.received.content.length", "0"),
        ("response.status.code", "201"),
        ("response.status.code", None),
        ("request.verb", "get"),  # upper-cased, as the general path does
        ("request.verb", None),
        ("apiproxy.name", "  payments  "),
        ("apiproxy.name", " "),
        ("developer.app.name", " app-7 "),
        (TENANT, None),
        (TENANT, "  "),
        (TENANT, " acme "),
        (TENANT, ["acme", " Initech ", "", "  "]),
        (TENANT, []),
        ("apiproxy.revision", 3),  # an attribute sent as a number: its decimal text
        ("apiproxy.revision", -(2**63)),
        ("apiproxy.revision", 2**63 - 1),
        ("apiproduct.name", ""),  # an empty attribute is left out
        ("apiproduct.name", " gold "),  # attributes are kept as sent
        ("current.flow.name", "PostClientFlow"),
    ],
)
def test_values_in_other_forms_are_taken_as_the_general_path_reads_them(
    variable: str, value: Any
) -> None:
    items = plain()
    items[0][variable] = value
    assert taken(items)


def test_a_latency_of_zero_and_the_time_range_edges() -> None:
    items = plain()
    items[0][START] = items[0][END] = "946684800000"  # 2000-01-01T00:00:00Z, whole second
    items[1][START] = "4133980799999"  # the last millisecond of 2100
    items[1][END] = None
    assert taken(items)


def test_attributes_that_change_from_event_to_event() -> None:
    items = plain(6)
    for item, revision in zip(items, ["3", 3, "3", "4", None, ""], strict=True):
        item["apiproxy.revision"] = revision
    items[2]["environment.name"] = "test"
    items[3]["current.flow.name"] = "flow"
    assert taken(items)


# --- fallbacks: read only when the first variable is unset --------------------------------------


@pytest.mark.parametrize("basepath", [None, "", "  "])
@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("/v1/orders?page=2", "/ignored"),
        (None, "/v1/orders?x=1#top"),
        ("  ", "/v1/orders"),
        ("?only=query", "/v1/orders"),  # an empty path: request.uri is read next
        (None, None),  # no route
    ],
)
def test_the_route_falls_back_to_request_path_then_request_uri(
    basepath: str | None, path: str | None, uri: str | None
) -> None:
    changes = {"proxy.basepath": basepath, "request.path": path, "request.uri": uri}
    assert taken(with_values(changes))


@pytest.mark.parametrize(
    ("basepath", "suffix"),
    [("/v1/", "/items/7"), ("/v1", "items"), ("/", "/x"), (" /v1 ", "  "), ("/v1", None)],
)
def test_the_route_joins_basepath_and_pathsuffix(basepath: str, suffix: str | None) -> None:
    assert taken(with_values({"proxy.basepath": basepath, "proxy.pathsuffix": suffix}))


def test_a_url_with_a_scheme_is_declined_when_it_is_read() -> None:
    url = "https://api.example.com/v1/orders?x=1"
    assert declined(with_values({"proxy.basepath": None, "request.uri": url}))
    assert declined(with_values({"proxy.basepath": None, "request.path": url}))
    # not read: request.uri is only a fallback of proxy.basepath
    assert taken(with_values({"request.uri": url}))


@pytest.mark.parametrize(
    ("size", "header"),
    [(None, "1234"), (None, " 1234 "), (None, None), (None, ""), (None, "   "), ("77", "1234")],
)
def test_sizes_fall_back_to_the_content_length_variables(size: Any, header: Any) -> None:
    items = plain()
    items[0]["client.received.content.length"] = size
    items[0]["client.sent.content.length"] = size
    items[0][REQUEST_LENGTH] = header
    items[0][RESPONSE_LENGTH] = header
    assert taken(items)


def test_the_consumer_falls_back_to_client_id() -> None:
    for app, client_id in [(None, " key-1 "), ("  ", "key-1"), (None, "  "), ("app", "key-1")]:
        assert taken(with_values({"developer.app.name": app, "client_id": client_id}))


# --- names matched in any case: only the exact spelling is taken --------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        "request.header.x-tenant-id",
        "REQUEST.HEADER.X-TENANT-ID",
        "request.header.X-Tenant-ID",
        "reque\u017ft.header.X-Tenant-Id",  # long s: casefolds to the tenant variable
        "reque\u017ft.header.Content-Length",
        "request.header.content-length",
        "response.header.CONTENT-LENGTH",
    ],
)
def test_a_variable_matched_in_any_case_under_another_spelling_is_declined(variable: str) -> None:
    items = plain()
    items[0][variable] = "acme" if "tenant" in variable.casefold() else "12"
    assert declined(items)
    # a null under another spelling still counts for the general path's any-case match
    items[0][variable] = None
    assert declined(items)


def test_other_variables_and_canonical_fields_are_declined() -> None:
    assert declined(with_values({"client.ip": "203.0.113.1"}))
    assert declined(with_values({"idempotency_key": "k"}))
    items = plain()
    items[0]["idempotency_key"] = "k"
    items[0]["timestamp"] = "2026-03-01T12:00:00Z"
    assert declined(items)


# --- values the general path would convert or reject are declined ------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("messageid", None),
        ("messageid", "  "),
        ("messageid", 12345),  # the general path would take its text
        ("messageid", "k" * 513),
        (START, None),
        (START, REMOVE),
        (START, ""),
        (START, " 1772366400123"),
        (START, "1772366400123.5"),
        (START, 1772366400123.5),
        (START, "1772366400"),  # epoch seconds
        (START, 4133980800000),  # 2101
        (START, True),
        (END, "1772366400122"),  # before the start
        (END, 1),
        (END, " 1772366400200 "),
        (END, 1772366400200.0),
        (END, False),
        ("response.status.code", 99),
        ("response.status.code", 600),
        ("response.status.code", " 200"),
        ("response.status.code", "200.0"),
        ("response.status.code", 200.0),
        ("client.received.content.length", -1),
        ("client.received.content.length", ""),
        ("client.received.content.length", " 12"),
        ("client.received.content.length", "1e3"),
        ("client.received.content.length", 12.0),
        ("client.sent.content.length", True),
        ("request.verb", " GET "),
        ("request.verb", ""),
        ("request.verb", "M-SEARCH"),
        ("apiproxy.name", 7),
        ("proxy.basepath", 7),
        ("developer.app.name", 7),
        (TENANT, 7),
        (TENANT, ["acme", None]),
        (TENANT, {"x": 1}),
        ("apiproxy.revision", True),
        ("apiproxy.revision", 3.0),
        ("apiproxy.revision", {"x": 1}),
        ("apiproxy.revision", 2**63),  # orjson reads 2**64 and beyond as floats
    ],
)
def test_values_the_general_path_converts_or_rejects_are_declined(
    variable: str, value: Any
) -> None:
    items = plain()
    if value is REMOVE:
        del items[0][variable]
    else:
        items[0][variable] = value
    assert declined(items)


@pytest.mark.parametrize("number", [b"18446744073709551616", b"-9223372036854775809"])
def test_integers_beyond_64_bits_in_an_attribute_are_declined(number: bytes) -> None:
    (item,) = plain(1)
    item["apiproxy.revision"] = 424242
    data = orjson.dumps([item]).replace(b"424242", number)
    assert fast_records(data, CTX) is None


@pytest.mark.parametrize("item", [{}, [], "x", 1, None])
def test_items_that_are_not_flow_variable_objects_are_declined(item: Any) -> None:
    assert declined([*plain(1), item])


# --- generated: every variable in the forms the general decoder reads -------------------------

_TEXTS = st.sampled_from([None, "", "  ", "x", " x ", "/v1/a", "/v1/", "a/b?c#d", "http://h/p"])
_NUMBERS = st.sampled_from(
    [None, "", " ", "0", "12", " 12", "12.5", "-1", "abc", 0, 12, -1, 2**64 - 1, 12.5, True]
)
_MILLIS = st.sampled_from(
    [None, "", "  ", "1772366400123", "1772366400200", " 1772366400200", "1772366400122",
     1772366400123, 1772366400500, 1772366400122, 946684799999, 4133980800000, "17723664001230"]
)  # fmt: skip
_EXTRAS = st.sampled_from([None, "", " a ", "a", 0, 3, -(2**63), 2**63, True, 1.5])
_VARIABLES: dict[str, st.SearchStrategy[Any]] = {
    "messageid": st.sampled_from([None, "", " k ", "k", 5]),
    START: _MILLIS,
    END: _MILLIS,
    TENANT: st.sampled_from([None, "", " acme ", ["a", " ", "b"], [], 3]),
    "apiproxy.name": _TEXTS,
    "proxy.basepath": _TEXTS,
    "proxy.pathsuffix": _TEXTS,
    "request.path": _TEXTS,
    "request.uri": _TEXTS,
    "request.verb": st.sampled_from([None, "", "GET", "get", " GET", "M-SEARCH", 1]),
    "response.status.code": st.sampled_from([None, "", 200, "200", 99, "099", 600, " 404"]),
    "client.received.content.length": _NUMBERS,
    "client.sent.content.length": _NUMBERS,
    REQUEST_LENGTH: _NUMBERS,
    RESPONSE_LENGTH: _NUMBERS,
    "developer.app.name": _TEXTS,
    "client_id": _TEXTS,
    "apiproduct.name": _EXTRAS,
    "apiproxy.revision": _EXTRAS,
    "environment.name": _EXTRAS,
    "organization.name": _EXTRAS,
    "current.flow.name": _EXTRAS,
}


@st.composite
def variable_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A plain item with some variables removed or set to one of their interesting forms."""
    item = copy.deepcopy(plain(1)[0])
    for name in draw(st.lists(st.sampled_from(list(_VARIABLES)), max_size=5, unique=True)):
        if draw(st.integers(0, 4)):
            item[name] = draw(_VARIABLES[name])
        else:
            item.pop(name, None)
    return item


@CHECKS
@given(items=st.lists(variable_objects(), min_size=1, max_size=3))
def test_generated_flow_variables(items: list[dict[str, Any]]) -> None:
    check(orjson.dumps(items), CTX)
