"""The embedded (chdb) adapter against a real chdb data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import StoreError
from pipeline.store.embedded import EmbeddedStore, lock_holder

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch(embedded_store: EmbeddedStore) -> Iterator[str]:
    """A throwaway database on the embedded engine."""
    database = f"scratch_{uuid.uuid4().hex[:12]}"
    embedded_store.command(f"CREATE DATABASE {database}")
    try:
        yield database
    finally:
        embedded_store.command(f"DROP DATABASE IF EXISTS {database}")


def test_rows_round_trip_with_exact_types(embedded_store: EmbeddedStore, scratch: str) -> None:
    embedded_store.command(
        f"""CREATE TABLE {scratch}.t (
            k String, amount Decimal(38, 10), at DateTime64(6, 'UTC'),
            attrs Map(String, String), maybe Nullable(UInt64), big UInt64
        ) ENGINE = MergeTree ORDER BY k"""
    )
    rows = [
        {
            "k": "a'b\\c",
            "amount": Decimal("12345678901234567890.0123456789"),
            "at": datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "attrs": {"tokens": "12", "quote'": 'x"y'},
            "maybe": None,
            "big": 2**64 - 1,
        },
        {"k": "b", "amount": Decimal("0.10"), "at": datetime(2026, 2, 1, tzinfo=UTC)},
    ]
    embedded_store.insert_rows(f"{scratch}.t", rows)
    got = embedded_store.query(f"SELECT * FROM {scratch}.t ORDER BY k")
    assert got[0] == rows[0]
    assert got[1] == {**rows[1], "attrs": {}, "maybe": None, "big": 0}
    assert str(got[1]["amount"]) == "0.1000000000"


@settings(max_examples=60, deadline=None)
@given(text=st.text(), amount=st.decimals(places=4, min_value=-(10**12), max_value=10**12))
def test_parameters_bind_any_text_and_decimal_exactly(
    embedded_store: EmbeddedStore, text: str, amount: Decimal
) -> None:
    [row] = embedded_store.query(
        "SELECT {s:String} AS s, {d:Decimal(38, 4)} AS d, length({s:String}) AS n",
        {"s": text, "d": amount},
    )
    assert row["s"] == text
    assert row["d"] == amount
    assert row["n"] == len(text.encode())


@pytest.mark.parametrize(
    "attack",
    [
        "x' OR '1'='1",
        "'; DROP DATABASE default; --",
        "\\'; SELECT 1; --",
        "} UNION ALL SELECT {",
        "\\N",
    ],
)
def test_injection_attempts_are_only_data(
    embedded_store: EmbeddedStore, scratch: str, attack: str
) -> None:
    embedded_store.command(f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k")
    embedded_store.insert_rows(f"{scratch}.t", [{"k": "secret"}, {"k": attack}])
    rows = embedded_store.query(f"SELECT k FROM {scratch}.t WHERE k = {{k:String}}", {"k": attack})
    assert rows == [{"k": attack}]


def test_null_array_and_datetime_parameters(embedded_store: EmbeddedStore) -> None:
    at = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    [row] = embedded_store.query(
        "SELECT {n:Nullable(String)} AS n, {a:Array(String)} AS a, "
        "{t:DateTime64(6, 'UTC')} AS t, {t:DateTime64(6, 'UTC')} = toDateTime64("
        "'2026-05-06 07:08:09.000010', 6, 'UTC') AS same",
        {"n": None, "a": ["x'y", "z\\", ""], "t": at},
    )
    assert row == {"n": None, "a": ["x'y", "z\\", ""], "t": at, "same": True}


def test_dedup_token_drops_a_retried_block_where_the_table_allows_it(
    embedded_store: EmbeddedStore, scratch: str
) -> None:
    embedded_store.command(
        f"CREATE TABLE {scratch}.t (k String, n UInt64) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    block = [{"k": "a", "n": 1}, {"k": "b", "n": 2}]
    embedded_store.insert_rows(f"{scratch}.t", block, dedup_token="events:0:0-1")
    embedded_store.insert_rows(f"{scratch}.t", block, dedup_token="events:0:0-1")
    embedded_store.insert_rows(f"{scratch}.t", block, dedup_token="events:0:2-3")
    [row] = embedded_store.query(f"SELECT count() AS c, sum(n) AS s FROM {scratch}.t")
    assert row == {"c": 4, "s": 6}


def test_engine_errors_become_store_errors_with_sql(embedded_store: EmbeddedStore) -> None:
    with pytest.raises(StoreError, match="UNKNOWN_DATABASE") as caught:
        embedded_store.query("SELECT * FROM no_such_db.no_such_table")
    assert caught.value.fields["engine"] == "chdb"
    assert caught.value.fields["sql"] == "SELECT * FROM no_such_db.no_such_table"


def test_unknown_insert_keys_are_refused_not_dropped(
    embedded_store: EmbeddedStore, scratch: str
) -> None:
    embedded_store.command(f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k")
    with pytest.raises(StoreError, match="tenant_typo"):
        embedded_store.insert_rows(f"{scratch}.t", [{"k": "a", "tenant_typo": "x"}])
    assert embedded_store.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 0}]
    embedded_store.insert_rows(f"{scratch}.t", [])  # nothing to do, no error


def test_calls_from_many_threads_share_the_engine(
    embedded_store: EmbeddedStore, scratch: str
) -> None:
    embedded_store.command(f"CREATE TABLE {scratch}.t (n UInt64) ENGINE = MergeTree ORDER BY n")
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for step in range(10):
                embedded_store.insert_rows(f"{scratch}.t", [{"n": offset * 100 + step}])
                embedded_store.query(f"SELECT count() FROM {scratch}.t")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert embedded_store.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 40}]


def test_same_directory_joins_the_engine_and_close_is_counted(
    embedded_store: EmbeddedStore,
) -> None:
    second = EmbeddedStore.open(embedded_store.path)
    assert second.query("SELECT 1 AS one") == [{"one": 1}]
    second.close()
    second.close()  # idempotent
    with pytest.raises(StoreError, match="is closed"):
        second.query("SELECT 1")
    assert embedded_store.query("SELECT 2 AS two") == [{"two": 2}]


def test_a_second_directory_in_one_process_is_refused(
    embedded_store: EmbeddedStore, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="one data directory per process") as caught:
        EmbeddedStore.open(tmp_path / "other")
    assert caught.value.fields["open_path"] == str(embedded_store.path)


def test_a_second_process_is_told_who_holds_the_directory(embedded_store: EmbeddedStore) -> None:
    data_dir = str(embedded_store.path)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from pipeline.errors import StoreError
        from pipeline.settings import Settings
        from pipeline.store import open_store
        settings = Settings(clickhouse_url=None, clickhouse_data_dir=Path({data_dir!r}))
        try:
            open_store(settings)
        except StoreError as error:
            print("STORE-ERROR:" + str(error))
            raise SystemExit(3)
        raise SystemExit(0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    [message] = [line for line in result.stdout.splitlines() if line.startswith("STORE-ERROR:")]
    assert str(embedded_store.path) in message
    assert f"held by process {os.getpid()}" in message
    assert "Stop that process" in message
    assert "PIPELINE_CLICKHOUSE_URL" in message


def test_lock_holder_names_no_one_for_a_free_directory(tmp_path: Path) -> None:
    assert lock_holder(tmp_path) is None
    (tmp_path / "status").write_text("PID: 123\n")
    assert lock_holder(tmp_path) is None
