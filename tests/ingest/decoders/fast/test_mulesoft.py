"""MuleSoft's fast path: the cases that matter for Anypoint events (the shared contract tests in
``test_contract`` cover the rest). Each case either asserts a decline or that the fast path's
records equal the general path's (``check``).

Bodies are written with the standard ``json`` module where the shared tests cannot reach: it
writes integers beyond 64 bits (orjson reads them as floats, msgspec as ints) and, with raw
bytes, invalid UTF-8 (orjson refuses the body; msgspec would skip it in an unread field).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.devstack import samples
from pipeline.events import MAX_EVENT_INTEGER, MAX_IDEMPOTENCY_KEY_LENGTH
from pipeline.ingest.decoders.fast import fast_records
from tests.ingest.decoders.fast.test_contract import check
from tests.ingest.decoders.test_against_reference import context

CTX = context("mulesoft")
CALL = samples.SampleCall(
    idempotency_key="mule-1",
    timestamp=datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC),
    api="16183500",
    route="/v2/search",
    method="POST",
    status=201,
    request_bytes=512,
    response_bytes=2048,
    latency_ms=58,
    consumer="app-7",
    tenant="acme",
)
QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def event(**changes: Any) -> dict[str, Any]:
    """The plugin's event for CALL with fields replaced (keyword ``Message_ID`` -> "Message ID")."""
    item = samples.mulesoft_event(CALL)
    item.update({name.replace("_", " "): value for name, value in changes.items()})
    return item


def body(*items: Any) -> bytes:
    return json.dumps(list(items), ensure_ascii=False).encode()


def taken(*items: Any) -> bool:
    """True if the fast path took the batch (then its records are the general path's)."""
    return check(body(*items), CTX)


def declined(data: bytes) -> bool:
    return fast_records(data, CTX) is None


# --- the plugin's forms are taken -----------------------------------------------------------


def test_the_plugins_event_is_taken() -> None:
    assert taken(event())
    assert taken(event(), event(Message_ID="mule-2"), event(Message_ID="mule-3"))


def test_ids_sent_as_strings_or_numbers() -> None:
    assert taken(event(API_ID=16183500, API_Version_ID=16810512))
    assert taken(event(API_ID="16183500", API_Version_ID="16810512"))
    assert taken(event(API_ID=" 16183500 ", API_Version_ID=" 16810512 "))
    assert taken(event(API_ID=0, API_Version_ID=-5))
    assert taken(event(API_ID=None, API_Version_ID=None))
    assert taken(event(API_ID="  ", API_Version_ID=""))


def test_minus_one_means_unknown_for_sizes_and_response_time() -> None:
    assert taken(event(Request_Size=-1, Response_Size=-1, Response_Time=-1))
    assert taken(event(Request_Size=None, Response_Size=None, Response_Time=None))
    assert taken(event(Request_Size=0, Response_Size=MAX_EVENT_INTEGER, Response_Time=0))
    for field in ("Request Size", "Response Size", "Response Time"):
        for value in (-2, "-1", "12", MAX_EVENT_INTEGER + 1, 1.0, True):
            assert declined(body({**event(), field: value})), (field, value)


def test_status_codes() -> None:
    for status in (100, 200, 599, None):
        assert taken(event(Status_Code=status))
    for status in (99, 600, -1, 0, "200", 200.0):
        assert declined(body(event(Status_Code=status))), status


def test_verbs() -> None:
    assert taken(event(Verb="get"), event(Verb="Patch"), event(Verb=None), event(Verb="GET"))
    for verb in (" GET ", "", "M-SEARCH", "G3T", "x" * 33, "G\u00c9T", 1):
        assert declined(body(event(Verb=verb))), verb


def test_resource_paths() -> None:
    assert taken(event(Resource_Path="/v1/items/7?expand=all#top"))
    assert taken(event(Resource_Path=" /v1/items "), event(Resource_Path="?only=query"))
    assert taken(event(Resource_Path=None), event(Resource_Path="   "))
    assert declined(body(event(Resource_Path="https://h.example/v1/items?x=1")))
    assert declined(body(event(Resource_Path=7)))


def test_application_and_attributes() -> None:
    assert taken(
        event(Application="  app-1 ", Application_Name=" Mobile "),
        event(Application="", Application_Name="", API_Name="x", Violated_Policy_Name="rate"),
        event(Application=None, Request_Outcome=None, Violated_Policy_Name=None),
        event(API_Version_ID=7),
        event(API_Version_ID="7"),
    )
    for name in ("API Name", "Application", "Request Outcome", "Violated Policy Name"):
        assert declined(body({**event(), name: 12})), name
        assert declined(body({**event(), name: {"x": 1}})), name


def test_message_ids() -> None:
    assert taken(event(Message_ID=" padded "), event(Message_ID="k" * MAX_IDEMPOTENCY_KEY_LENGTH))
    for key in ("", "   ", None, 12, "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)):
        assert declined(body(event(Message_ID=key))), key
    item = event()
    del item["Message ID"]
    assert declined(body(item))


# --- the tenant header, in any case ----------------------------------------------------------


def test_tenant_headers_in_any_case_and_as_arrays() -> None:
    assert taken(event(headers={"X-Tenant-Id": " acme "}))
    assert taken(event(headers={"X-TENANT-ID": ["acme", " ", "initech"], "x-tenant-id": "umb"}))
    assert taken(event(headers={"host": "h"}), event(headers={}), event(headers=None))
    assert taken(event(headers={"x-tenant-id": "", "X-Tenant-ID": []}))
    for headers in ({"x-tenant-id": 7}, {"x-tenant-id": None}, {"host": 1}, ["acme"], "acme"):
        assert declined(body(event(headers=headers))), headers


def test_repeated_header_names_keep_the_first_position_and_the_last_value() -> None:
    text = body(event(headers={}))
    data = text.replace(
        b'"headers": {}',
        b'"headers": {"X-Tenant-Id": "a", "x-tenant-id": "b", "X-Tenant-Id": "c"}',
    )
    assert data != text
    assert check(data, CTX)


# --- names the general decoder reads exactly: another case, another field --------------------


def test_names_in_another_case_or_unknown_are_declined() -> None:
    for name in ("Message ID", "Timestamp", "API ID", "Request Size", "headers", "Client IP"):
        item = event()
        value = item.pop(name)
        for other in {name.lower(), name.upper(), name.swapcase(), name + " "} - {name}:
            assert declined(body({**item, other: value})), other
            assert declined(body({**event(), other: value})), other
    for extra in ("Browser", "City", "idempotency_key", "timestamp"):
        assert declined(body({**event(), extra: "x"})), extra


def test_a_canonical_event_is_declined() -> None:
    assert declined(body(event(), samples.canonical_event(CALL)))
    assert declined(body({**event(), "idempotency_key": "k", "timestamp": "t"}))


def test_one_declined_event_declines_the_batch() -> None:
    assert declined(body(event(), event(Status_Code="200"), event()))
    assert declined(body(event(), {}, event()))
    assert declined(body(event(), None))


# --- timestamps ----------------------------------------------------------------------------


def test_timestamps_in_the_forms_the_general_parser_takes() -> None:
    for text in (
        "2026-03-01T12:00:00.123Z",
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00.1234567Z",
        "2026-03-01T12:00:00.999999999Z",
        "2026-03-01T14:00:00.123+02:00",
        "2026-03-01 12:00:00.123Z",
        "2026-03-01t12:00:00.123z",
        " 2026-03-01T12:00:00.123Z ",
        "2000-01-01T00:00:00.000Z",
        "2100-12-31T23:59:59.999Z",
        "2001-01-01T00:30:00.000+01:00",
        "2026-03-01T12:00:00.\u0661\u0662\u0663Z",  # the general parser's \d: any digit
    ):
        assert taken(event(Timestamp=text)), text


def test_timestamps_the_general_parser_refuses_are_declined() -> None:
    for text in (
        "1999-12-31T23:59:59.999Z",
        "2101-01-01T00:00:00.000Z",
        "2026-02-30T12:00:00.123Z",
        "2026-03-01T24:00:00.123Z",
        "2026-03-01T12:00:60.123Z",
        "2026-03-01T12:00:00.123",
        "2026-03-01T12:00:00.12xZ",
        "",
        "  ",
        None,
        1772366400123,
    ):
        assert declined(body(event(Timestamp=text))), text


ANYPOINT_FORM = re.compile(
    r"(2000|2026|2100)-(01|02|12)-(01|28)T(00:00:00|12:34:56|23:59:59)\.[0-9]{3}Z"
)


PARTS: dict[str, tuple[list[str], list[str]]] = {
    # part: (values of Anypoint's form, other values)
    "year": (["2000", "2026", "2100"], ["1999", "2101", "20260", "226"]),
    "month": (["01", "02", "12"], ["00", "13", "1"]),
    "day": (["01", "28"], ["29", "30", "31", "00", "1"]),
    "sep": (["T"], ["t", " ", "_"]),
    "time": (["00:00:00", "12:34:56", "23:59:59"], ["24:00:00", "12:60:00", "12:00:60", "12:00"]),
    "fraction": ([".000", ".123", ".999"], ["", ".", ".1", ".12345", ".1234567", ".1234567890"]),
    "zone": (["Z"], ["z", "", "+00:00", "-00:00", "+02:00", "+0530", "-23:59", "+24:00"]),
}


@st.composite
def iso_texts(draw: st.DrawFn) -> str:
    """Timestamp texts in Anypoint's form with up to two parts in another form (or broken)."""
    odd = draw(st.sets(st.sampled_from([*PARTS, "wrap"]), max_size=2))
    part = {name: draw(st.sampled_from(forms[name in odd])) for name, forms in PARTS.items()}
    text = "{year}-{month}-{day}{sep}{time}{fraction}{zone}".format(**part)
    if "wrap" in odd:
        return draw(st.sampled_from([f" {text}", f"{text} ", text[:-1], text.replace("-", "/")]))
    return text


@QUICK
@given(text=iso_texts())
def test_generated_timestamps(text: str) -> None:
    accepted = taken(event(Timestamp=text))
    if ANYPOINT_FORM.fullmatch(text):
        assert accepted, "the fast path declined a valid timestamp in Anypoint's form"


# --- what orjson reads differently from msgspec ---------------------------------------------


def test_integers_beyond_64_bits_are_declined() -> None:
    # orjson (the general path) reads them as floats: "1.8446744073709552e+19" as API ID
    for name in ("API ID", "API Version ID"):
        assert taken({**event(), name: 2**64 - 1}, {**event(), name: -(2**63)})
        assert declined(body({**event(), name: 2**64}))
        assert declined(body({**event(), name: -(2**63) - 1}))
        assert declined(body({**event(), name: 10**400}))
    for name in ("Request Size", "Response Size", "Response Time", "Status Code"):
        assert declined(body({**event(), name: 2**64}))
        assert declined(body({**event(), name: -(2**70)}))


@QUICK
@given(
    name=st.sampled_from(["API ID", "API Version ID", "Request Size", "Response Time"]),
    number=st.integers(min_value=-(2**66), max_value=2**66) | st.sampled_from([-1, 2**63]),
)
def test_integers_of_any_size(name: str, number: int) -> None:
    check(body({**event(), name: number}), CTX)


def test_bodies_orjson_refuses_are_declined() -> None:
    plain = body(event())
    for bad in (b'"\xff"', b'"\xed\xa0\x80"', b"1e999", b"NaN", b'"\\ud800"'):
        for field in (b'"Client IP": ', b'"Browser": '):
            data = plain.replace(b'"Client IP": "203.0.113.10"', field + bad)
            assert data != plain
            assert declined(data), data
    data = plain.replace(b'"host": "api.example.cloudhub.io"', b'"host": "\xff"')
    assert declined(data)
