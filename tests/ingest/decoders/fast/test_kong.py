"""Kong's fast path on the forms Kong sends in two ways (the contract: ``test_contract``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipeline.devstack import samples
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import fast_records
from tests.ingest.decoders.fast.test_contract import check, general_records, plain_calls

CTX = DecoderContext("kong-prod", "kong")


def kong_log(**changes: Any) -> dict[str, Any]:
    (log,) = samples.native_batch("kong", plain_calls(1, "kong"))
    for path, value in changes.items():
        node = log
        *parents, last = path.split("__")
        for step in parents:
            node = node.setdefault(step, {})
        if value is _DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return log


_DELETE = object()


def taken(log: dict[str, Any]) -> bool:
    return check(orjson.dumps([log]), CTX)


@pytest.mark.parametrize(
    "changes",
    [
        {"request__headers": {"x-tenant-id": ["acme", " ", " initech "]}},  # repeated header
        {"request__headers": {"X-Tenant-ID": "acme", "x-tenant-id": "beta"}},  # any case, both
        {"request__headers": None},
        {"request__size": 120, "response__size": "0"},  # numbers or nginx's digit strings
        {"route__paths": ["~/v1/items/\\d+$"], "request__uri": "/v1/items/7?x=1"},  # regex
        {"route__paths": ["/a", "/b"], "request__uri": "/v1/items#top"},
        {"route": None, "request__uri": "/v1/items"},
        {"consumer": None, "authenticated_entity": {"id": "ent-1"}},
        {"consumer__username": "  ", "consumer__id": "c-9"},
        {"latencies__kong": "2", "upstream_status": 200, "workspace_name": ""},
        {"request__method": None, "response__status": None, "latencies": None},
        {"request__method": "delete"},
        {"service__name": " search ", "request__id": "  k-1  "},
    ],
)
def test_forms_kong_sends_are_taken_and_equal(changes: dict[str, Any]) -> None:
    assert taken(kong_log(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"request__id": _DELETE},  # Kong < 3.5: the general path reads x-kong-request-id
        {"request__id": "   "},
        {"request__id": "k" * 513},
        {"started_at": "1768471200123"},  # a digit string: the general path converts it
        {"service__name": None},  # the general path falls back to service.id
        {"route__paths": ["~/re"], "request__uri": _DELETE},  # the general path reads request.url
        {"route__paths": ["~/re"], "request__uri": "https://h.example/a"},
        {"request__method": "M-SEARCH"},
        {"request__method": " GET "},
        {"response__status": 0},
        {"request__size": "12.0"},
        {"request__size": -1},
        {"latencies__request": -1},  # the general path reads -1 as unknown
        {"request__headers": {"x-tenant-id": 7}},
        {"consumer__username": 42},
        {"latencies__kong": True},
        {"request": "not an object"},
    ],
)
def test_other_forms_are_declined(changes: dict[str, Any]) -> None:
    log = kong_log(**changes)
    assert fast_records(orjson.dumps([log]), CTX) is None
    assert general_records(orjson.dumps([log]), CTX) is not None  # the general path decides


@pytest.mark.parametrize("big", [b"18446744073709551616", b"9223372036854775808", b"-" + b"9" * 30])
def test_whole_numbers_beyond_64_bits_in_attributes_are_declined(big: bytes) -> None:
    # orjson reads them as floats, msgspec as ints: their text would differ
    data = orjson.dumps([kong_log(latencies__proxy=12345)])
    assert taken(orjson.loads(data)[0])
    assert fast_records(data.replace(b"12345", big), CTX) is None
