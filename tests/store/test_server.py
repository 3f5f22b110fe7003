"""The server adapter (clickhouse-connect). Runs against the test run's engine: a real server
when one is configured or Docker is available, else clickhouse-connect's in-process chdb
backend on the embedded engine (same client calls: raw_query, raw_insert, server-side binding).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.store.server import ServerStore, redact_url


def test_redact_url_drops_credentials() -> None:
    assert redact_url("http://default:s3cret@ch.internal:8123/") == "http://ch.internal:8123/"
    assert redact_url("https://u:p@ch.example.com") == "https://ch.example.com"


def test_connect_failure_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect") as caught:
        ServerStore.connect("http://default:s3cret-pw@127.0.0.1:1")
    assert "s3cret-pw" not in str(caught.value)
    assert caught.value.fields["target"] == "http://127.0.0.1:1"
    assert caught.value.fields["engine"] == "server"


@pytest.fixture
def scratch(server_store: ServerStore) -> Iterator[str]:
    database = f"srv_{uuid.uuid4().hex[:12]}"
    server_store.command(f"CREATE DATABASE {database}")
    try:
        yield database
    finally:
        server_store.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.integration
def test_rows_round_trip_with_exact_types(server_store: ServerStore, scratch: str) -> None:
    server_store.command(
        f"""CREATE TABLE {scratch}.t (
            k String, amount Decimal(38, 10), at DateTime64(6, 'UTC'),
            attrs Map(String, String), maybe Nullable(UInt64)
        ) ENGINE = MergeTree ORDER BY k"""
    )
    row = {
        "k": 'it\'s \\ "quoted"\n',
        "amount": Decimal("-0.0000000001"),
        "at": datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "attrs": {"tokens": "7"},
        "maybe": None,
    }
    server_store.insert_rows(f"{scratch}.t", [row])
    got = server_store.query(
        f"SELECT * FROM {scratch}.t WHERE k = {{k:String}} AND at = {{at:DateTime64(6, 'UTC')}}",
        {"k": row["k"], "at": row["at"]},
    )
    assert got == [row]


@pytest.mark.integration
@pytest.mark.parametrize(
    "attack", ["x' OR '1'='1", "'; DROP DATABASE default; --", "\\'; SELECT 1; --", "a\tb\nc"]
)
def test_parameters_are_bound_server_side(server_store: ServerStore, attack: str) -> None:
    rows = server_store.query(
        "SELECT {s:String} AS s, {n:Nullable(String)} AS n, {a:Array(String)} AS a",
        {"s": attack, "n": None, "a": [attack, ""]},
    )
    assert rows == [{"s": attack, "n": None, "a": [attack, ""]}]


@pytest.mark.integration
def test_dedup_token_drops_a_retried_block(server_store: ServerStore, scratch: str) -> None:
    server_store.command(
        f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    for token in ("events:1:0-0", "events:1:0-0", "events:1:1-1"):
        server_store.insert_rows(f"{scratch}.t", [{"k": "a"}], dedup_token=token)
    assert server_store.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 2}]


@pytest.mark.integration
def test_engine_errors_become_store_errors(server_store: ServerStore, scratch: str) -> None:
    with pytest.raises(StoreError, match="UNKNOWN_TABLE") as caught:
        server_store.query(f"SELECT * FROM {scratch}.missing")
    assert caught.value.fields == {"engine": "server", "sql": f"SELECT * FROM {scratch}.missing"}
    server_store.command(f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k")
    with pytest.raises(StoreError, match="tenant_typo"):
        server_store.insert_rows(f"{scratch}.t", [{"k": "a", "tenant_typo": "x"}])


@pytest.mark.integration
def test_both_adapters_return_identical_rows(server_store: ServerStore, store: Store) -> None:
    sql = (
        "SELECT toDecimal64('12.30', 2) AS d, toDateTime64('2026-01-02 03:04:05.5', 3, 'UTC') AS t,"
        " map('a', 'b') AS m, CAST(NULL AS Nullable(UInt64)) AS n, toUInt64(18446744073709551615)"
        " AS u, [1, 2] AS a, {p:String} AS p"
    )
    params = {"p": "x'y"}
    assert server_store.query(sql, params) == store.query(sql, params)
    assert store.query(sql, params) == [
        {
            "d": Decimal("12.30"),
            "t": datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
            "m": {"a": "b"},
            "n": None,
            "u": 2**64 - 1,
            "a": [1, 2],
            "p": "x'y",
        }
    ]


def test_a_closed_store_refuses_calls() -> None:
    class _Client:
        closed = False

        def close(self) -> None:
            self.closed = True

    client = _Client()
    adapter = ServerStore(client)
    adapter.close()
    adapter.close()
    assert client.closed
    with pytest.raises(StoreError, match="closed"):
        adapter.command("SELECT 1")
