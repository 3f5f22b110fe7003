"""AWS's fast path against the general path on what only AWS has: the gzip envelope and its
bound, several log events per envelope, access-log lines as JSON strings with ``-`` for absent,
flat or nested identity and authorizer keys, and fallbacks (request id, log event time, api key
tenant, principal, route key and path, integration latency).

Each case either asserts a decline or, with ``check``, that the fast path took the body and gave
exactly the general path's records.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.body import DecompressionBudget
from pipeline.ingest.decoders import decode_items
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import fast_records
from pipeline.ingest.errors import BodyTooLarge
from pipeline.ingest.items import parse_items
from tests.ingest.decoders.fast.test_contract import check, general_records
from tests.ingest.decoders.test_against_reference import context
from tests.ingest.decoders.test_aws import ACCESS_LOG

CTX = context("aws")  # api key a1b2c3d4e5 -> acme, k9x8w7v6u5 -> initech
TIME = 1768471200123
LINE: dict[str, Any] = {
    **ACCESS_LOG,
    "requestTimeEpoch": str(TIME),
    "authorizer.tenantId": "globex",
}
DROP: Any = object()
"""A change that removes the key."""


def dumps(value: Any) -> bytes:
    """Compact JSON like orjson's, also of integers beyond 64 bits."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def line(**changes: Any) -> dict[str, Any]:
    out = {**LINE, **changes}
    return {key: value for key, value in out.items() if value is not DROP}


def envelope(*lines: Any, message_type: str = "DATA_MESSAGE", **head: Any) -> dict[str, Any]:
    """A decoded envelope; a line given as a dict is logged as its JSON string."""
    env: dict[str, Any] = {
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": "API-Gateway-Access-Logs_h7k2p9q4xa/prod",
        "logStream": "2b2c5d3f8e7a6b5c4d3e2f1a0b9c8d7e",
        "subscriptionFilters": ["metering"],
        "logEvents": [
            {
                "id": f"37195800117{n:04d}",
                "timestamp": TIME + 877,
                "message": dumps(m).decode() if isinstance(m, dict) else m,
            }
            for n, m in enumerate(lines)
        ],
        **head,
    }
    return {key: value for key, value in env.items() if value is not DROP}


def subscription(env: dict[str, Any] | bytes) -> dict[str, Any]:
    raw = env if isinstance(env, bytes) else dumps(env)
    return {"awslogs": {"data": base64.b64encode(gzip.compress(raw, mtime=0)).decode()}}


def body(*items: Any) -> bytes:
    return dumps(list(items))


def taken(*lines: Any, ctx: DecoderContext = CTX) -> list[dict[str, Any]]:
    """Assert the fast path takes one subscription of ``lines`` as the general path; the events."""
    data = body(subscription(envelope(*lines)))
    assert check(data, ctx), general_records(data, ctx)
    return [orjson.loads(value) for _, value in fast_records(data, ctx) or []]


def declined(data: bytes, ctx: DecoderContext = CTX) -> None:
    assert fast_records(data, ctx) is None


# --- the plugin's line, and the forms of its values ---------------------------------------------


def test_a_plain_line() -> None:
    (event,) = taken(line())
    assert event["idempotency_key"] == "Ab1CdEfGhIjKlMn="
    assert event["tenant_headers"] == ["globex"]
    assert event["consumer"] == "k9x8w7v6u5"
    assert event["request_bytes"] is None
    assert event["attributes"] == {
        "stage": "prod",
        "integrationLatency": "38",
        "logGroup": "API-Gateway-Access-Logs_h7k2p9q4xa/prod",
    }


@pytest.mark.parametrize(
    "name",
    ["requestTimeEpoch", "status", "responseLength", "responseLatency", "integrationLatency"],
)
def test_numbers_as_json_numbers(name: str) -> None:
    taken(line(**{name: int(LINE[name])}))


@pytest.mark.parametrize("marker", ["-", "", "  ", " - ", None, DROP])
@pytest.mark.parametrize(
    "name",
    [
        "requestTimeEpoch",  # -> the log event's timestamp
        "extendedRequestId",  # -> requestId
        "identity.apiKeyId",  # -> authorizer.principalId is the consumer
        "authorizer.tenantId",  # -> the api key's tenant
        "httpMethod",
        "resourcePath",
        "status",
        "responseLength",
        "responseLatency",  # -> integrationLatency
        "integrationLatency",
        "apiId",
        "stage",
    ],
)
def test_absent_values_and_their_fallbacks(name: str, marker: Any) -> None:
    taken(line(**{name: marker}))


def test_fallbacks_all_at_once() -> None:
    (event,) = taken(
        line(
            **{
                "requestTimeEpoch": "-",
                "extendedRequestId": "-",
                "identity.apiKeyId": "a1b2c3d4e5",
                "authorizer.tenantId": "-",
                "resourcePath": "-",
                "responseLatency": "-",
                "stage": "-",
            }
        )
    )
    assert event["timestamp"] == "2026-01-15T10:00:01.000000Z"
    assert event["idempotency_key"] == LINE["requestId"]
    assert event["tenant_headers"] == ["acme"]
    assert event["route"] == "/prod/v1/payments/ch_123/capture"
    assert event["latency_ms"] == 38
    assert event["attributes"] == {
        "integrationLatency": "38",
        "logGroup": "API-Gateway-Access-Logs_h7k2p9q4xa/prod",
    }
    (event,) = taken(line(**{"identity.apiKeyId": "-", "authorizer.tenantId": "-"}))
    assert (event["consumer"], event["tenant_headers"]) == ("user-17", [])
    (event,) = taken(line(**{"identity.apiKeyId": "unknown", "authorizer.tenantId": "-"}))
    assert (event["consumer"], event["tenant_headers"]) == ("unknown", [])


@pytest.mark.parametrize(
    "changes",
    [
        {"resourcePath": DROP, "routeKey": "GET /pets/{id}"},
        {"resourcePath": DROP, "routeKey": "$default", "path": "/pets/7?x=1#top"},
        {"resourcePath": "-", "routeKey": " ANY  /spaced ", "path": DROP},
        {"resourcePath": DROP, "path": "?only=query"},
        {"resourcePath": " /padded ", "httpMethod": " get "},
        {"extendedRequestId": "  padded-key  ", "apiId": " h7k2 "},
        {"stage": " - ", "integrationLatency": ""},
        {"status": "0201", "responseLength": "0", "responseLatency": "0"},
    ],
)
def test_values_the_general_readers_take_as_they_are_or_trimmed(changes: dict[str, Any]) -> None:
    taken(line(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"resourcePath": DROP, "path": "https://h.example/prod/a?b=1"},  # a URL: urlsplit
        {"requestTimeEpoch": " 1768471200123 "},
        {"requestTimeEpoch": "1768471200123.5"},
        {"requestTimeEpoch": "946684799999"},  # 1999: the general path rejects it
        {"status": "99"},
        {"status": 0},
        {"responseLength": "12.0"},
        {"responseLength": "-1"},
        {"responseLength": 2**64},
        {"responseLatency": -1},
        {"responseLatency": "12.5"},
        {"integrationLatency": 2**64},  # an attribute: orjson reads it as a float
        {"httpMethod": "M-SEARCH"},
        {"httpMethod": "G3T"},
        {"extendedRequestId": "k" * 513},
        {"extendedRequestId": 12345},
        {"apiId": 7},
        {"stage": True},
        {"requestId": "-", "extendedRequestId": "-"},
    ],
)
def test_values_the_general_path_converts_or_rejects_are_declined(changes: dict[str, Any]) -> None:
    declined(body(subscription(envelope(line(**changes)))))


# --- flat and nested keys; names are matched exactly -------------------------------------------


def test_nested_identity_and_authorizer() -> None:
    nested = line(
        **{"identity.apiKeyId": DROP, "authorizer.tenantId": DROP, "authorizer.principalId": DROP}
    )
    nested["identity"] = {"apiKeyId": "a1b2c3d4e5"}
    nested["authorizer"] = {"tenantId": "-", "principalId": "p-1"}
    (event,) = taken(nested)
    assert (event["consumer"], event["tenant_headers"]) == ("a1b2c3d4e5", ["acme"])
    nested["identity"] = {"apiKeyId": "-"}
    (event,) = taken(nested)
    assert (event["consumer"], event["tenant_headers"]) == ("p-1", [])
    # a flat key wins over the nested one, even when it is null
    both = line(**{"identity.apiKeyId": None})
    both["identity"] = {"apiKeyId": "a1b2c3d4e5"}
    (event,) = taken(both)
    assert (event["consumer"], event["tenant_headers"]) == ("user-17", ["globex"])
    # a real nested object has more keys (sourceIp...): not read, as in the general path
    other = line(**{"identity.apiKeyId": DROP})
    other["identity"] = {"apiKeyId": "a1b2c3d4e5", "sourceIp": "203.0.113.10"}
    (event,) = taken(other)
    assert event["consumer"] == "a1b2c3d4e5"


@pytest.mark.parametrize("name", ["status", "extendedRequestId", "identity.apiKeyId", "stage"])
def test_names_in_another_case_are_other_fields(name: str) -> None:
    # the general decoder matches names exactly: "STATUS" is a field it does not read
    taken(line(**{name.upper(): "-"}))
    swapped = taken(line(**{name: DROP, name.swapcase(): LINE[name]}))
    assert swapped == taken(line(**{name: DROP}))


def test_more_access_log_fields_than_read() -> None:
    taken(line(wafResponseCode="-", userAgent="curl/8.5.0", error={"message": None}, n=[1.5]))


def test_repeated_keys_in_a_line_keep_the_last_value() -> None:
    text = orjson.dumps(line()).decode()
    for first, last in (("-", "200"), ("200", "-"), ("404", "200")):
        message = f'{{"status":"{first}",{text[1:-1]},"status":"{last}"}}'
        taken(message)


# --- what orjson refuses and msgspec does not check ----------------------------------------------


def _rejected(data: bytes) -> None:
    assert isinstance(general_records(data, CTX), str)
    declined(data)


def test_invalid_utf8_in_the_gzip_data_is_declined() -> None:
    raw = orjson.dumps(envelope(line()))
    for junk in (b'"\xff"', b'"\xed\xa0\x80"', b'"caf\xc3"'):
        _rejected(body(subscription(raw[:-1] + b',"owner":' + junk + b"}")))
        _rejected(body(subscription(raw[:-1] + b',"zz_unread":' + junk + b"}")))


def test_numbers_beyond_a_double_in_unread_fields() -> None:
    # valid JSON orjson cannot read: a deliberate difference (see the contract), taken here
    raw = orjson.dumps(envelope(line()))
    text = orjson.dumps(line()).decode()
    for junk in ("1e400", "1" + "0" * 400, "-1.5E+999"):
        assert check(body(subscription(raw[:-1] + f',"owner":{junk}}}'.encode())), CTX)
        assert check(body(subscription(envelope(text[:-1] + f',"zz_unread":{junk}}}'))), CTX)
        # in a field the general decoder reads: declined
        for name in ("status", "responseLength", "stage", "integrationLatency"):
            read = orjson.dumps(line(**{name: DROP})).decode()[:-1] + f',"{name}":{junk}}}'
            _rejected(body(subscription(envelope(read))))


def test_huge_log_event_timestamps() -> None:
    env = envelope(line())
    env["logEvents"][0]["timestamp"] = 123
    huge = orjson.dumps(env).replace(b'"timestamp":123', b'"timestamp":1' + b"0" * 400)
    _rejected(body(subscription(huge)))  # orjson refuses the number
    env["logEvents"][0]["timestamp"] = 2**64  # a float for orjson, unread: declined anyway
    declined(body(subscription(env)))


# --- envelopes: forms, order, control messages, the bound -----------------------------------


def test_several_envelopes_keep_item_then_log_event_order() -> None:
    logged = [line(extendedRequestId=f"k-{n}") for n in range(7)]
    decoded = envelope(logged[3], logged[4])
    for log_event in decoded["logEvents"]:  # the decoded form may hold the line itself
        log_event["message"] = orjson.loads(log_event["message"])
    data = body(
        subscription(envelope(logged[0], logged[1], logged[2])),
        subscription(envelope(message_type="CONTROL_MESSAGE")),
        decoded,
        subscription(envelope()),
        envelope(logged[5], message_type=" DATA_MESSAGE "),
        subscription(envelope(logged[6], logGroup="-")),
    )
    assert check(data, CTX)
    assert [key for key, _ in fast_records(data, CTX) or []] == [
        f"k-{n}".encode() for n in range(7)
    ]


def test_the_control_message_gives_no_events() -> None:
    control = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": TIME, "message": "CWL CONTROL MESSAGE: Checking"}],
    }
    assert check(body(subscription(control), control), CTX)
    assert fast_records(body(subscription(control)), CTX) == []


@pytest.mark.parametrize(
    "item",
    [
        {"awslogs": None},
        {"awslogs": {}},
        {"awslogs": {"data": ""}},
        {"awslogs": {"data": "not base64!"}},
        {"awslogs": {"data": base64.b64encode(b"not gzip").decode()}},
        {"awslogs": {"data": base64.b64encode(gzip.compress(b"[1]")).decode()}},
        {"awslogs": {"data": "x", "other": 1}},
        envelope(line(), message_type="OTHER_MESSAGE"),
        envelope(line(), logEvents=None),
        envelope(line(), logEvents=DROP),
        envelope(line(), messageType=None),
        envelope(line(), messageType=DROP),
        envelope("not JSON"),
        envelope("[1]"),
        {"logEvents": []},
    ],
)
def test_items_the_general_path_rejects_are_declined(item: Any) -> None:
    _rejected(body(subscription(envelope(line())), item))


def test_the_embedded_data_is_charged_to_the_requests_budget_as_in_the_general_path() -> None:
    raw = orjson.dumps(envelope(line(), line(extendedRequestId="second")))
    data = body(subscription(raw))

    def context(budget: int) -> DecoderContext:
        limits = DecompressionBudget(budget)
        return DecoderContext(CTX.integration_id, "aws", CTX.api_key_tenants, limits)

    fast = fast_records(data, context(len(raw)))
    assert fast is not None and fast == general_records(data, context(len(raw)))
    for decode in (fast_records, lambda data, ctx: decode_items(parse_items(data), ctx)):
        with pytest.raises(BodyTooLarge):  # the whole request: 413, nothing published
            decode(data, context(len(raw) - 1))


def test_a_tenant_map_value_that_is_not_text_is_declined() -> None:
    odd = DecoderContext(CTX.integration_id, "aws", {"k9x8w7v6u5": None})  # type: ignore[dict-item]
    declined(body(subscription(envelope(line(**{"authorizer.tenantId": "-"})))), odd)


# --- generated lines: every field in each of its forms ------------------------------------------

_FORMS: dict[str, list[Any]] = {
    "requestId": [LINE["requestId"], "-", DROP],
    "extendedRequestId": ["ext-1", "-", "", " ext-2 ", None, DROP],
    "requestTimeEpoch": [str(TIME), TIME, "-", None, DROP, " 1768471200123 ", "946684799999"],
    "httpMethod": ["GET", "get", " PUT ", "-", "", DROP, "M-SEARCH"],
    "resourcePath": ["/v1/{id}", "-", DROP, " /p "],
    "routeKey": [DROP, "GET /pets/{id}", "$default", "-"],
    "path": ["/prod/x?y=1#f", "-", DROP, "https://h.example/x", ""],
    "status": ["200", 200, "-", DROP, "0200", "99", 700, " 201 "],
    "responseLength": ["123", 123, "-", "", DROP, "-1", 2**64 - 1, 2**64, "12.0"],
    "responseLatency": ["98", 98, "-", DROP, -1, "12.5", ""],
    "integrationLatency": ["97", 97, "-", DROP, 2**64, ""],
    "apiId": ["h7k2p9q4xa", "-", " ", DROP],
    "stage": ["prod", "-", "", " prod ", DROP],
    "identity.apiKeyId": ["a1b2c3d4e5", "k9x8w7v6u5", "other", "-", None, DROP],
    "authorizer.tenantId": ["acme", "-", None, DROP],
    "authorizer.principalId": ["user-17", "-", DROP],
    "protocol": ["HTTP/1.1", DROP],
    "Status": [DROP, "404", 1.5],  # not read: names are matched exactly
    "userAgent": [DROP, "curl/8.5.0", {"a": [None, True]}],
}
_NESTED: dict[str, list[Any]] = {
    "identity": [DROP, {"apiKeyId": "a1b2c3d4e5"}, {"apiKeyId": "-"}, {}, None],
    "authorizer": [DROP, {"tenantId": "initech", "principalId": "p-2"}, {"principalId": "p-3"}],
}
_PLAIN = {name: forms[0] for name, forms in (_FORMS | _NESTED).items()}


@st.composite
def access_logs(draw: st.DrawFn) -> dict[str, Any]:
    """The plugin's line with a few fields in another form (so that many lines are taken)."""
    fields = dict(_PLAIN)
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=4)):
        fields[name] = draw(st.sampled_from((_FORMS | _NESTED)[name]))
    return {name: value for name, value in fields.items() if value is not DROP}


log_times = st.sampled_from([TIME + 1, None, 946684799999])


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    events = []
    for message in draw(st.lists(access_logs(), min_size=1, max_size=3)):
        event: dict[str, Any] = {"id": "1", "message": message}
        if draw(st.booleans()):  # the plugin's form: the line as a JSON string
            event["message"] = dumps(message).decode()
        timestamp = draw(log_times)
        if timestamp is not None:
            event["timestamp"] = timestamp
        events.append(event)
    env = {
        "messageType": draw(st.sampled_from(["DATA_MESSAGE"] * 4 + ["CONTROL_MESSAGE"])),
        "logGroup": draw(st.sampled_from(["group", "-", "", None])),
        "logEvents": events,
    }
    return subscription(env) if draw(st.booleans()) else env


@settings(max_examples=250, deadline=None)
@given(items=st.lists(envelopes(), min_size=1, max_size=3))
def test_generated_lines(items: list[Any]) -> None:
    check(body(*items), CTX)
