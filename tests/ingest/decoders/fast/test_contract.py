"""Every gateway's fast path against the general path (the contract in
``pipeline.ingest.decoders.fast``): a batch is declined (``None``) or decoded to exactly the
general path's records, with every item accepted.

The payloads are those of ``test_against_reference`` (generated calls, one value replaced
anywhere, keys re-cased, arbitrary JSON), plus the bench's and the plugins' plain batches, which
must take the fast path (a fast path that declines everything would pass the rest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog import load_catalog
from pipeline.devstack import samples
from pipeline.devstack.bench import build_bodies, dev_plugins
from pipeline.events import GATEWAYS, Gateway
from pipeline.ingest.body import decompress_body, parse_items
from pipeline.ingest.decoders import decode_items
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import fast_records
from pipeline.ingest.errors import UndecodableBody
from pipeline.settings import load_settings
from tests.ingest.decoders.test_against_reference import (
    CHECKS,
    _payload,
    calls,
    context,
    recased,
    with_values_replaced,
)
from tests.ingest.decoders.test_dispatch import json_values

ORJSON_LIMITS = ("nested too deeply", "number is infinity when parsed as double")
"""The general path's refusals the fast path does not share (see its module doc)."""


def general_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | str:
    """The general path's records if it accepts every item, else why not (a short text)."""
    try:
        items = parse_items(data)
    except UndecodableBody as exc:
        return f"undecodable: {exc}"
    records = []
    for item in decode_items(items, ctx):
        if item.record is None:
            return f"rejected: {item.error}"
        records.append((item.record.key, item.record.value))
    return records


def check(data: bytes, ctx: DecoderContext) -> bool:
    """Assert the contract for one body; True if the fast path took it."""
    fast = fast_records(data, ctx)
    if fast is None:
        return False
    general = general_records(data, ctx)
    if isinstance(general, str) and any(limit in general for limit in ORJSON_LIMITS):
        return True  # the deliberate differences (see the fast path's module doc)
    assert fast == general, f"fast path took a body the general path gives as: {general!r}"
    return True


def check_items(items: list[Any], gateway: Gateway) -> bool:
    try:
        data = orjson.dumps(items)
    except orjson.JSONEncodeError:
        return False
    return check(data, context(gateway))


def plain_calls(count: int, gateway: Gateway) -> list[samples.SampleCall]:
    start = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    return [
        samples.SampleCall(
            idempotency_key=f"{gateway}-plain-{i}",
            timestamp=start + timedelta(milliseconds=37 * i),
            api="payments-api",
            route="/v1/payments/{id}",
            method=("GET", "POST", "PUT")[i % 3],
            status=(200, 201, 404, 500)[i % 4],
            request_bytes=100 + i,
            response_bytes=None if i % 5 == 0 else 2000 + i,
            latency_ms=i,
            consumer="a1b2c3d4e5" if gateway == "aws" else f"app-{i}",
            tenant=None if i % 7 == 0 else ("acme", "Initech")[i % 2],
            attributes={},
        )
        for i in range(count)
    ]


# --- the plugins' plain batches take the fast path ---------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_plain_plugin_batches_take_the_fast_path(gateway: Gateway) -> None:
    items = samples.native_batch(gateway, plain_calls(12, gateway))
    assert check_items(items, gateway), "the fast path declined a plain plugin batch"


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_the_bench_batches_take_the_fast_path(gateway: Gateway) -> None:
    catalog = load_catalog(load_settings().rules_dir)
    plugins = [p for p in dev_plugins(catalog) if p.integration.gateway == gateway]
    assert plugins
    for plugin, body in build_bodies(catalog, plugins, 3, 50, "fast", 11):
        data = decompress_body(body, "lz4", max_compressed=1 << 26, max_decompressed=1 << 26)
        ctx = DecoderContext(
            plugin.integration.id, gateway, dict(plugin.integration.api_key_tenants)
        )
        assert check(data, ctx), "the fast path declined a bench batch"


# --- declined: other forms -----------------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_other_body_forms_are_declined(gateway: Gateway) -> None:
    ctx = context(gateway)
    (item,) = samples.native_batch(gateway, plain_calls(1, gateway))
    one = orjson.dumps(item)
    for data in (one, one + b"\n" + one, b"\xef\xbb\xbf[" + one + b"]", b"[" + one + b"] x"):
        assert fast_records(data, ctx) is None


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_canonical_event_in_a_native_batch_is_declined(gateway: Gateway) -> None:
    (call,) = plain_calls(1, gateway)
    items = [*samples.native_batch(gateway, [call]), samples.canonical_event(call)]
    assert fast_records(orjson.dumps(items), context(gateway)) is None


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_blank_integration_id_is_declined(gateway: Gateway) -> None:
    items = samples.native_batch(gateway, plain_calls(2, gateway))
    assert fast_records(orjson.dumps(items), DecoderContext(" ", gateway)) is None


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_empty_array_is_no_records(gateway: Gateway) -> None:
    assert check(b"[]", context(gateway))


# --- the contract on generated payloads ---------------------------------------------------------


@CHECKS
@given(gateway=st.sampled_from(GATEWAYS), batch=st.lists(calls, min_size=1, max_size=3))
def test_generated_batches(gateway: Gateway, batch: list[samples.SampleCall]) -> None:
    check_items(samples.native_batch(gateway, batch), gateway)


@CHECKS
@given(
    gateway=st.sampled_from(GATEWAYS),
    call=calls,
    form=st.sampled_from(["native", "canonical", "decoded envelope", "records"]),
    data=st.data(),
)
def test_payloads_with_values_replaced(
    gateway: Gateway, call: samples.SampleCall, form: str, data: st.DataObject
) -> None:
    item = with_values_replaced(_payload(gateway, call, form), data)
    plain = samples.native_batch(gateway, plain_calls(2, gateway))
    check_items([*plain, item], gateway)


@CHECKS
@given(gateway=st.sampled_from(GATEWAYS), call=calls, data=st.data())
def test_names_in_any_case(gateway: Gateway, call: samples.SampleCall, data: st.DataObject) -> None:
    check_items([data.draw(recased(samples.native_batch(gateway, [call])[0]))], gateway)


@CHECKS
@given(gateway=st.sampled_from(GATEWAYS), items=st.lists(json_values, max_size=4))
def test_arbitrary_json(gateway: Gateway, items: list[Any]) -> None:
    check_items(items, gateway)


# --- JSON details where msgspec and orjson could differ ----------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_repeated_keys_keep_the_last_value_as_orjson_does(gateway: Gateway) -> None:
    (item,) = samples.native_batch(gateway, plain_calls(1, gateway))
    for key, value in list(item.items()):
        text = orjson.dumps(item).decode()
        decoy = orjson.dumps({key: {"x": 1} if isinstance(value, str) else "decoy"}).decode()
        # the decoy first, the real value last: both paths must read the last one
        data = f"[{{{decoy[1:-1]},{text[1:]}]".encode()
        check(data, context(gateway))
        # the real value first, the decoy last: the general path reads the decoy
        data = f"[{text[:-1]},{decoy[1:-1]}}}]".encode()
        check(data, context(gateway))


def with_unread_field(item: dict[str, Any], junk: bytes) -> bytes:
    return b'[{"zz_unread_junk":' + junk + b"," + orjson.dumps(item)[1:] + b"]"


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_values_only_orjson_refuses_in_unread_fields(gateway: Gateway) -> None:
    (item,) = samples.native_batch(gateway, plain_calls(1, gateway))
    ctx = context(gateway)
    for junk in (b"[" * 300 + b"]" * 300, b"1e400", b"-1.5E+999", b"9" * 400 + b".5"):
        assert isinstance(general_records(with_unread_field(item, junk), ctx), str)
        took = check(with_unread_field(item, junk), ctx)
        assert took or gateway != "kong"  # Kong skips unknown fields; flat shapes decline them
    # nested beyond what msgspec reads: declined
    assert fast_records(with_unread_field(item, b"[" * 5000 + b"]" * 5000), ctx) is None


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_invalid_utf8_anywhere_is_declined(gateway: Gateway) -> None:
    (item,) = samples.native_batch(gateway, plain_calls(1, gateway))
    for junk in (b'"\xff"', b'"\xed\xa0\x80"', b'"caf\xc3"'):
        data = with_unread_field(item, junk)
        # the general path rejects that item alone (the body is split into its items)
        general = str(general_records(data, context(gateway)))
        assert general.startswith("rejected: the item is not valid JSON"), general
        assert fast_records(data, context(gateway)) is None


@CHECKS
@given(
    gateway=st.sampled_from(GATEWAYS),
    edits=st.lists(
        st.tuples(st.floats(min_value=0, max_value=1, exclude_max=True), st.binary(max_size=3)),
        min_size=1,
        max_size=3,
    ),
)
def test_bytes_edited_anywhere(gateway: Gateway, edits: list[tuple[float, bytes]]) -> None:
    data = bytearray(orjson.dumps(samples.native_batch(gateway, plain_calls(3, gateway))))
    for where, new in edits:
        at = int(where * len(data))
        data[at : at + len(new)] = new
    check(bytes(data), context(gateway))


def test_the_fast_path_takes_the_plugins_batches_and_reports_its_acceptance_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The properties above pass when the fast path declines; this measures how often it takes
    what the plugins really send: the sample traffic of every gateway (tenant aliases and
    header variants, AWS key-map tenants, default tenants), in batches of 50, each identical
    to the general path's records when taken."""
    from collections import defaultdict

    from pipeline.devstack.traffic import sample_deliveries

    by_gateway: dict[str, list[samples.SampleCall]] = defaultdict(list)
    for delivery in sample_deliveries(2_000, seed=17):
        by_gateway[delivery.gateway].append(delivery.call)
    taken: dict[str, tuple[int, int]] = {}
    for gateway, gateway_calls in sorted(by_gateway.items()):
        batches = [gateway_calls[n : n + 50] for n in range(0, len(gateway_calls), 50)]
        took = sum(
            check(orjson.dumps(samples.native_batch(gateway, batch)), context(gateway))  # type: ignore[arg-type]
            for batch in batches
        )
        taken[gateway] = (took, len(batches))
    with capsys.disabled():
        rates = ", ".join(f"{g} {t}/{n}" for g, (t, n) in taken.items())
        print(f"\nfast path acceptance on the plugins' batches: {rates}")
    assert all(took == total for took, total in taken.values()), taken
