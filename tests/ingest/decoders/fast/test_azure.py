"""Azure's fast path: the cases that matter for ApiManagementGatewayLogs columns (the shared
contract tests in ``test_contract`` cover the rest). Each case either asserts a decline or that
the fast path's records equal the general path's (``check``).

Bodies are written with the standard ``json`` module: it writes integers beyond 64 bits, which
orjson reads as floats and msgspec as ints.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.devstack import samples
from pipeline.events import MAX_EVENT_INTEGER, MAX_IDEMPOTENCY_KEY_LENGTH
from pipeline.ingest.decoders.azure import EXTRA_COLUMNS
from pipeline.ingest.decoders.fast import fast_records
from tests.ingest.decoders.fast.test_contract import check, general_records
from tests.ingest.decoders.test_against_reference import context

CTX = context("azure")
CALL = samples.SampleCall(
    idempotency_key="azure-1",
    timestamp=datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC),
    api="payments-api",
    route="/v1/payments/{id}",
    method="POST",
    status=201,
    request_bytes=512,
    response_bytes=2048,
    latency_ms=58,
    consumer="sub-mobile-app",
    tenant="acme",
)
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def event(**changes: Any) -> dict[str, Any]:
    """The plugin's event for CALL with columns replaced (``None`` is sent as null)."""
    item = samples.azure_event(CALL)
    item.update(changes)
    return item


def without(*names: str, **changes: Any) -> dict[str, Any]:
    item = event(**changes)
    for name in names:
        del item[name]
    return item


def body(*items: Any) -> bytes:
    return json.dumps(list(items), ensure_ascii=False).encode()


def taken(*items: Any) -> bool:
    """True if the fast path took the batch (then its records are the general path's)."""
    return check(body(*items), CTX)


def declined(*items: Any) -> bool:
    return fast_records(body(*items), CTX) is None


def rejected(*items: Any) -> bool:
    """True if the general path does not accept every item (the fast path must decline)."""
    return isinstance(general_records(body(*items), CTX), str)


def value_of(item: dict[str, Any]) -> dict[str, Any]:
    records = fast_records(body(item), CTX)
    assert records is not None
    ((_, value),) = records
    parsed: dict[str, Any] = orjson.loads(value)
    return parsed


# --- the plugin's forms are taken -----------------------------------------------------------


def test_the_plugins_event_is_taken() -> None:
    assert taken(event())
    assert taken(event(), event(CorrelationId="azure-2"), event(CorrelationId="azure-3"))
    assert value_of(event())["route"] == "/v1/payments/{id}"


def test_numbers_sent_as_numbers_or_digit_strings() -> None:
    assert taken(event(ResponseCode="201", RequestSize="512", ResponseSize="0", TotalTime="58"))
    assert taken(event(RequestSize=0, ResponseSize=MAX_EVENT_INTEGER, TotalTime=0))
    assert taken(event(ResponseCode="0201", RequestSize="000000000000000512"))
    for odd in (" 512", "5.0", "-1", "1e3", "", " ", "\u0661", "5" * 19, 5.0, True):
        assert declined(event(RequestSize=odd))
    assert rejected(event(RequestSize=MAX_EVENT_INTEGER + 1))
    assert declined(event(RequestSize=MAX_EVENT_INTEGER + 1))
    assert declined(event(RequestSize=-1))


def test_absent_markers() -> None:
    # ResponseCode 0: the client went away before a response (an unknown status)
    assert value_of(event(ResponseCode=0))["status"] is None
    assert taken(event(ResponseCode=0), event(ResponseCode="0", CorrelationId="b"))
    # TotalTime -1: unknown latency
    assert value_of(event(TotalTime=-1))["latency_ms"] is None
    assert taken(event(TotalTime=-1))
    assert declined(event(TotalTime="-1"))  # the general path reads it as unknown too: declined
    assert declined(event(TotalTime=-2)) and rejected(event(TotalTime=-2))
    # null and absent columns
    for name in ("ResponseCode", "RequestSize", "ResponseSize", "TotalTime", "Method", "Url"):
        assert taken(event(**{name: None}))
        assert taken(without(name))
    for name in ("ApiId", "ApimSubscriptionId", "OperationId", "ProductId"):
        assert taken(event(**{name: None}), event(**{name: "", "CorrelationId": "b"}))
        assert taken(event(**{name: "  "}), without(name, CorrelationId="b"))


def test_statuses_outside_http_are_declined() -> None:
    for odd in (99, 600, -1, 1, "600", "99", 2**64, 2**70):
        assert declined(event(ResponseCode=odd))
        assert rejected(event(ResponseCode=odd))
    assert taken(event(ResponseCode=100), event(ResponseCode=599, CorrelationId="b"))


# --- the idempotency key ---------------------------------------------------------------------


def test_correlation_id() -> None:
    assert taken(event(CorrelationId="  padded  "))
    assert taken(event(CorrelationId="k" * MAX_IDEMPOTENCY_KEY_LENGTH))
    assert declined(event(CorrelationId="k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)))
    assert declined(event(CorrelationId=12345))  # the general path takes it as "12345"
    for missing in ("", "   ", None):
        assert declined(event(CorrelationId=missing))
        assert rejected(event(CorrelationId=missing))
    assert declined(without("CorrelationId"))


# --- TimeGenerated: 7 fraction digits, truncated ---------------------------------------------


def test_seven_fraction_digits_are_truncated_to_microseconds() -> None:
    for text in (
        "2026-03-01T12:00:00.1234567Z",
        "2026-03-01T12:00:00.9999999Z",
        "2026-03-01T23:59:59.9999995Z",
        "2026-03-01T12:00:00.0000000Z",
        "2000-01-01T00:00:00.0000000Z",
        "2100-12-31T23:59:59.9999999Z",
    ):
        assert taken(event(TimeGenerated=text))
    assert value_of(event(TimeGenerated="2026-03-01T12:00:00.9999999Z"))["timestamp"] == (
        "2026-03-01T12:00:00.999999Z"
    )


def test_other_time_forms_are_the_general_parsers() -> None:
    for text in (
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00.123Z",
        "2026-03-01T12:00:00.123456789Z",
        "2026-03-01T12:00:00.1234567+02:00",
        "2026-03-01T12:00:00.1234567z",
        "2026-03-01 12:00:00.1234567Z",
        " 2026-03-01T12:00:00.1234567Z ",
        "2026-03-01T12:00:00,1234567Z",
        "2026-03-01T12:00Z",
    ):
        check(body(event(TimeGenerated=text)), CTX)  # declined or equal
    for bad in (
        "1999-12-31T23:59:59.9999999Z",
        "2101-01-01T00:00:00.0000000Z",
        "2026-02-30T12:00:00.1234567Z",
        "2026-03-01T12:00:00.1234567",
        "2026-03-01T25:00:00.1234567Z",
        "2026-03-01T12:00:00.12345\u00e97Z",
        "",
        "  ",
        None,
    ):
        assert declined(event(TimeGenerated=bad))
        assert rejected(event(TimeGenerated=bad))
    assert declined(event(TimeGenerated=1772366400123))  # epoch millis: not this column's form


# --- aliases and names in another case -------------------------------------------------------


def test_time_and_duration_ms_stand_for_time_generated_and_total_time() -> None:
    time = samples.azure_event(CALL)["TimeGenerated"]
    assert taken(without("TimeGenerated", time=time))
    assert taken(without("TotalTime", durationMs=58))
    assert taken(event(time="2026-01-01T00:00:00.0000000Z", durationMs=9))  # the columns win
    assert taken(event(TimeGenerated=None, time=time, TotalTime=None, durationMs=7))
    assert value_of(event(TotalTime=None, durationMs=7))["latency_ms"] == 7
    # a blank TimeGenerated is not absent: the general path rejects it, without falling back
    assert declined(event(TimeGenerated="", time=time))
    assert rejected(event(TimeGenerated="", time=time))


def test_columns_in_another_case_are_declined() -> None:
    """The general path matches column names in any case, the last non-null spelling winning."""
    item = samples.azure_event(CALL)
    for name, value in item.items():
        for other in {name.lower(), name.upper(), name[0].lower() + name[1:]} - {name}:
            renamed = {other if key == name else key: v for key, v in item.items()}
            assert declined(renamed)
            assert declined({**item, other: value})
            assert declined({**item, other: None})
    assert declined(without("TimeGenerated", Time=item["TimeGenerated"]))
    assert declined(without("TotalTime", DurationMs=58))
    # a name that only casefolds to a column ('\u017f' is a long s, casefolded to 's')
    long_s = {"Reque\u017ftSize" if key == "RequestSize" else key: v for key, v in item.items()}
    assert declined(long_s)


def test_other_keys_and_forms_are_declined() -> None:
    assert declined(event(BackendTime=61))
    assert declined(event(IsRequestSuccess=True))
    assert declined({})
    assert declined(samples.azure_resource_log([CALL]))  # the resource-log form
    assert declined(event(records=[]))
    assert declined(samples.canonical_event(CALL))
    assert declined(event(idempotency_key="k", timestamp="2026-03-01T12:00:00Z"))


# --- RequestHeaders: an object or a JSON string of one; names in any case ----------------------


def test_tenant_header_in_any_case_and_form() -> None:
    base = {"Host": "contoso.azure-api.net"}
    for headers in (
        {**base, "X-Tenant-Id": "acme"},
        {**base, "x-tenant-id": " acme "},
        {**base, "X-TENANT-ID": "acme", "x-tenant-id": "initech"},
        {**base, "X-Tenant-Id": ["acme", " ", "initech"]},
        {**base, "X-Tenant-Id": []},
        {**base, "X-Tenant-Id": "  "},
        {**base, "X-Tenant-Id": ""},
        {"X-Tenant-Id": "acme", "x-tenant-id": ["a", "b"], "X-TENANT-ID": "c"},
        base,
        {},
        None,
    ):
        assert taken(event(RequestHeaders=headers))
        if headers is not None:
            assert taken(event(RequestHeaders=json.dumps(headers)))
            assert taken(event(RequestHeaders=" " + json.dumps(headers, indent=1) + "\n"))
    assert value_of(event(RequestHeaders={"x-tenant-id": " a ", "X-Tenant-ID": "b"}))[
        "tenant_headers"
    ] == ["a", "b"]
    assert value_of(event(RequestHeaders='{"X-TENANT-ID": ["a", "b"]}'))["tenant_headers"] == [
        "a",
        "b",
    ]


def test_odd_headers() -> None:
    # values the general path converts or rejects
    for odd in (12, True, None, {"x": 1}, [1], ["a", None]):
        headers = {"Host": "h", "X-Tenant-Id": odd}
        assert declined(event(RequestHeaders=headers))
        check(body(event(RequestHeaders=json.dumps(headers))), CTX)
    # not an object, or a string that is not a JSON object
    for odd in ("", " ", "acme", "[]", "null", '{"a": 1', '{"a": 1} x', [], 12, True):
        assert declined(event(RequestHeaders=odd))
        assert rejected(event(RequestHeaders=odd))
    # other headers with values of other types: the general path ignores them
    assert declined(event(RequestHeaders={"Content-Length": 12, "X-Tenant-Id": "acme"}))
    assert taken(event(RequestHeaders='{"Content-Length": 12, "X-Tenant-Id": "acme"}'))


# --- Url -> route --------------------------------------------------------------------------------


def test_url_paths() -> None:
    for url in (
        "https://contoso.azure-api.net/v1/items?x=1#f",
        "https://contoso.azure-api.net:8443/v1/items",
        "https://contoso.azure-api.net",
        "https://contoso.azure-api.net?x=1",
        "http://contoso.azure-api.net/caf\u00e9/x",
        "https://contoso.azure-api.net/a b",
        "https://user@contoso.azure-api.net/a",
        "HTTPS://contoso.azure-api.net/a",
        "ftp://h/a",
        "/v1/items?x=1",
        "  /v1/items  ",
        "v1/items",
        "?x=1",
        "#f",
        "",
        "  ",
    ):
        assert taken(event(Url=url))
        assert taken(event(Url=url), event(Url=url, CorrelationId="again"))  # cached
    assert value_of(event(Url="https://h.example"))["route"] == "/"
    assert value_of(event(Url="?x=1"))["route"] is None
    for bad in ("http://[::1/a", "http://[x]/a", 12):
        assert declined(event(Url=bad))
    check(body(event(Url="https://h:99999999/a")), CTX)
    assert taken(event(Url="u" * 5000))


# --- extras ------------------------------------------------------------------------------------


def test_extras_as_strings_or_whole_numbers() -> None:
    extras = {name: f"{name}-value" for name in EXTRA_COLUMNS}
    assert taken(event(**extras))
    assert list(value_of(event(**extras))["attributes"]) == list(EXTRA_COLUMNS)
    assert taken(event(BackendResponseCode=200, UserId=1, ApiRevision="3"))
    assert taken(event(OperationId=-(2**63), ProductId=2**63 - 1))
    check(body(event(OperationId=2**63, ProductId=MAX_EVENT_INTEGER)), CTX)
    assert taken(event(OperationId="", ProductId=" ", Cache=None, Region="  West Europe "))
    assert taken(event(OperationId=None, ProductId=None))
    assert taken(event(OperationId=0, ProductId="starter"))
    # numbers orjson reads as floats, and values the general path writes as JSON or words
    for odd in (2**64, -(2**63) - 1, 2**70, 1.5, 1e300, True, False, [], {}, ["a"], {"a": 1}):
        assert declined(event(BackendResponseCode=odd))
        assert declined(event(OperationId=odd))


# --- a generated hypothesis gap: the forms the shared generator never produces -----------------


digits = st.text(alphabet="0123456789", min_size=0, max_size=9)


@QUICK
@given(
    batch=st.lists(
        st.fixed_dictionaries(
            {
                "fraction": digits,
                "sizes_as_text": st.booleans(),
                "headers_as_text": st.booleans(),
                "aliases": st.sampled_from(["columns", "aliases", "both"]),
                "tenant_name": st.sampled_from(["X-Tenant-Id", "x-tenant-id", "X-TENANT-ID"]),
                "tenant": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=3)),
                "status": st.sampled_from([0, 100, 200, 404, 599, 600, -1]),
                "total": st.sampled_from([None, -1, 0, 7, 2**64 - 1, 2**64]),
                "extra": st.none() | st.integers(min_value=-(2**65), max_value=2**65) | digits,
                "url": st.sampled_from(
                    ["https://c.azure-api.net/v1/a?b=1", "/v1/a", "https://c/", "", None]
                ),
            }
        ),
        min_size=1,
        max_size=3,
    )
)
def test_generated_forms_of_the_flat_columns(batch: list[dict[str, Any]]) -> None:
    items = []
    for number, form in enumerate(batch):
        item = samples.azure_event(CALL)
        item["CorrelationId"] = f"azure-{number}"
        time = item["TimeGenerated"][:19] + ("." + form["fraction"] if form["fraction"] else "")
        item["TimeGenerated"] = time + "Z"
        item["ResponseCode"] = form["status"]
        item["TotalTime"] = form["total"]
        item["Url"] = form["url"]
        item["BackendResponseCode"] = form["extra"]
        if form["sizes_as_text"]:
            item["RequestSize"] = str(item["RequestSize"])
            item["ResponseCode"] = str(item["ResponseCode"])
        headers: dict[str, Any] = {"Host": "contoso.azure-api.net"}
        if form["tenant"] is not None:
            headers[form["tenant_name"]] = form["tenant"]
        item["RequestHeaders"] = json.dumps(headers) if form["headers_as_text"] else headers
        if form["aliases"] != "columns":
            item["time"] = item["TimeGenerated"]
            item["durationMs"] = 3
            if form["aliases"] == "aliases":
                del item["TimeGenerated"], item["TotalTime"]
        items.append(item)
    check(body(*items), CTX)
