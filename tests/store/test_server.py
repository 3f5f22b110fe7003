"""The store (clickhouse-connect over ClickHouse's HTTP interface) against the run's real server.

The server is the test run's (tests/conftest_store.py): the project's local server unless a URL
or a Docker engine is configured.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, StoreError
from pipeline.store import Store
from pipeline.store.server import ServerStore, parse_url, redact_url


def test_redact_url_drops_credentials() -> None:
    assert redact_url("http://default:s3cret@ch.internal:8123/") == "http://ch.internal:8123"
    assert redact_url("https://u:p@ch.example.com") == "https://ch.example.com:8443"
    assert redact_url("http://u:p@[::1]:8123/metering") == "http://[::1]:8123/metering"


@pytest.mark.parametrize("secret", ["pa#ss", "pa/ss", "pa?ss", "p@ss", "a:b", "x/y?z#w@v"])
def test_passwords_with_url_delimiters_parse_and_never_appear(secret: str) -> None:
    address = parse_url(f"http://pipeline:{secret}@ch.internal:8123")
    assert (address.user, address.password) == ("pipeline", secret)
    assert (address.host, address.port) == ("ch.internal", 8123)
    assert secret not in address.redacted
    assert secret not in redact_url(f"http://pipeline:{secret}@ch.internal:8123")


def test_percent_encoded_credentials_are_decoded() -> None:
    address = parse_url("http://us%40er:pa%2Fss%23@ch.internal:9999/billing")
    assert (address.user, address.password, address.database) == ("us@er", "pa/ss#", "billing")


@pytest.mark.parametrize(
    "url", ["ch.internal:8123", "tcp://u:p@h:9000", "http://u:secret-pw@h:port", "http://u:p@"]
)
def test_malformed_urls_are_config_errors_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(url)
    assert "secret-pw" not in str(caught.value)
    assert caught.value.fields["setting"] == "PIPELINE_CLICKHOUSE_URL"


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect") as caught:
        ServerStore.connect("http://default:s3cret-pw@127.0.0.1:1")
    assert "s3cret-pw" not in str(caught.value)
    assert caught.value.fields["target"] == "http://127.0.0.1:1"
    assert caught.value.fields["engine"] == "server"


@pytest.mark.integration
def test_a_wrong_password_is_refused_with_the_url_and_without_the_secret(
    clickhouse_url: str,
) -> None:
    address = parse_url(clickhouse_url)
    wrong = "not-the-password-" + uuid.uuid4().hex
    host = f"[{address.host}]" if ":" in address.host else address.host
    with pytest.raises(StoreError, match="refused user") as caught:
        ServerStore.connect(f"http://{address.user}:{wrong}@{host}:{address.port}")
    message = str(caught.value)
    assert wrong not in message and address.password not in message
    assert address.redacted in message
    assert caught.value.fields["code"] == 516


@pytest.mark.integration
def test_inserts_are_synchronous_whatever_the_client_or_server_default(
    clickhouse_url: str, store: Store, scratch: str
) -> None:
    """A client whose every request asks for fire-and-forget async inserts: the store's own
    insert settings still make each insert visible as soon as it returns."""
    import clickhouse_connect

    address = parse_url(clickhouse_url)
    client = clickhouse_connect.get_client(
        host=address.host,
        port=address.port,
        username=address.user,
        password=address.password,
        autogenerate_session_id=False,
        settings={"async_insert": 1, "wait_for_async_insert": 0},
    )
    eager = ServerStore(client)
    try:
        store.command(f"CREATE TABLE {scratch}.t (n UInt64) ENGINE = MergeTree ORDER BY n")
        for n in range(5):
            eager.insert_rows(f"{scratch}.t", [{"n": n}])
            assert eager.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": n + 1}]
    finally:
        eager.close()


@pytest.fixture
def scratch(store: Store) -> Iterator[str]:
    database = f"srv_{uuid.uuid4().hex[:12]}"
    store.command(f"CREATE DATABASE {database}")
    try:
        yield database
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.integration
def test_rows_round_trip_with_exact_types(store: Store, scratch: str) -> None:
    store.command(
        f"""CREATE TABLE {scratch}.t (
            k String, amount Decimal(38, 10), at DateTime64(6, 'UTC'),
            attrs Map(String, String), maybe Nullable(UInt64), big UInt64
        ) ENGINE = MergeTree ORDER BY k"""
    )
    rows = [
        {
            "k": 'a\'b\\c "quoted"\n',
            "amount": Decimal("12345678901234567890.0123456789"),
            "at": datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "attrs": {"tokens": "12", "quote'": 'x"y'},
            "maybe": None,
            "big": 2**64 - 1,
        },
        {"k": "b", "amount": Decimal("0.10"), "at": datetime(2026, 2, 1, tzinfo=UTC)},
    ]
    store.insert_rows(f"{scratch}.t", rows)
    got = store.query(f"SELECT * FROM {scratch}.t ORDER BY k")
    assert got[0] == rows[0]
    assert got[1] == {**rows[1], "attrs": {}, "maybe": None, "big": 0}
    assert str(got[1]["amount"]) == "0.1000000000"


@pytest.mark.integration
def test_value_tuples_under_a_column_list_insert_like_dict_rows(store: Store, scratch: str) -> None:
    store.command(
        f"CREATE TABLE {scratch}.t (k String, d Decimal(18, 4), m Map(String, String)) "
        "ENGINE = MergeTree ORDER BY k"
    )
    store.insert_columns(
        f"{scratch}.t", ("k", "d", "m"), [("a", Decimal("1.5"), {"x": "y"}), ("b", Decimal(0), {})]
    )
    assert store.query(f"SELECT * FROM {scratch}.t ORDER BY k") == [
        {"k": "a", "d": Decimal("1.5000"), "m": {"x": "y"}},
        {"k": "b", "d": Decimal("0.0000"), "m": {}},
    ]
    with pytest.raises(StoreError, match="row 1 has 2 values for 3 columns"):
        store.insert_columns(f"{scratch}.t", ("k", "d", "m"), [("c", 1, {}), ("d", 2)])


@pytest.mark.integration
@settings(max_examples=60, deadline=None)
@given(text=st.text(), amount=st.decimals(places=4, min_value=-(10**12), max_value=10**12))
def test_parameters_bind_any_text_and_decimal_exactly(
    store: Store, text: str, amount: Decimal
) -> None:
    [row] = store.query(
        "SELECT {s:String} AS s, {d:Decimal(38, 4)} AS d, length({s:String}) AS n",
        {"s": text, "d": amount},
    )
    assert row["s"] == text
    assert row["d"] == amount
    assert row["n"] == len(text.encode())


@pytest.mark.integration
@pytest.mark.parametrize(
    "attack",
    ["x' OR '1'='1", "'; DROP DATABASE default; --", "\\'; SELECT 1; --", "} UNION ALL {", "\\N"],
)
def test_injection_attempts_are_only_data(store: Store, scratch: str, attack: str) -> None:
    store.command(f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k")
    store.insert_rows(f"{scratch}.t", [{"k": "secret"}, {"k": attack}])
    rows = store.query(f"SELECT k FROM {scratch}.t WHERE k = {{k:String}}", {"k": attack})
    assert rows == [{"k": attack}]


@pytest.mark.integration
def test_null_array_and_datetime_parameters(store: Store) -> None:
    at = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    [row] = store.query(
        "SELECT {n:Nullable(String)} AS n, {a:Array(String)} AS a, "
        "{t:DateTime64(6, 'UTC')} AS t, {t:DateTime64(6, 'UTC')} = toDateTime64("
        "'2026-05-06 07:08:09.000010', 6, 'UTC') AS same, toUInt64(18446744073709551615) AS u",
        {"n": None, "a": ["x'y", "z\\", ""], "t": at},
    )
    assert row == {"n": None, "a": ["x'y", "z\\", ""], "t": at, "same": True, "u": 2**64 - 1}


@pytest.mark.integration
def test_dedup_token_drops_a_retried_block_where_the_table_allows_it(
    store: Store, scratch: str
) -> None:
    store.command(
        f"CREATE TABLE {scratch}.t (k String, n UInt64) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    block = [{"k": "a", "n": 1}, {"k": "b", "n": 2}]
    store.insert_rows(f"{scratch}.t", block, dedup_token="events:0:0-1")
    store.insert_rows(f"{scratch}.t", block, dedup_token="events:0:0-1")
    store.insert_rows(f"{scratch}.t", block, dedup_token="events:0:2-3")
    [row] = store.query(f"SELECT count() AS c, sum(n) AS s FROM {scratch}.t")
    assert row == {"c": 4, "s": 6}


@pytest.mark.integration
def test_engine_errors_become_store_errors_with_sql(store: Store, scratch: str) -> None:
    with pytest.raises(StoreError, match="UNKNOWN_TABLE") as caught:
        store.query(f"SELECT * FROM {scratch}.missing")
    assert caught.value.fields == {
        "engine": "server",
        "sql": f"SELECT * FROM {scratch}.missing",
        "code": 60,  # UNKNOWN_TABLE: the worker's sink decides by the code
    }


@pytest.mark.integration
def test_unknown_insert_keys_are_refused_not_dropped(store: Store, scratch: str) -> None:
    store.command(f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k")
    with pytest.raises(StoreError, match="tenant_typo"):
        store.insert_rows(f"{scratch}.t", [{"k": "a", "tenant_typo": "x"}])
    assert store.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 0}]
    store.insert_rows(f"{scratch}.t", [])  # nothing to do, no error


@pytest.mark.integration
def test_calls_from_many_threads_share_one_store(store: Store, scratch: str) -> None:
    store.command(f"CREATE TABLE {scratch}.t (n UInt64) ENGINE = MergeTree ORDER BY n")
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for step in range(10):
                store.insert_rows(f"{scratch}.t", [{"n": offset * 100 + step}])
                store.query(f"SELECT count() FROM {scratch}.t")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 40}]


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
