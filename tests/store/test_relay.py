"""The store relay: a subprocess owning an embedded data directory, and its HTTP client.

The pytest process holds its own session chdb engine (tests/conftest_store.py), so every relay
here is a subprocess on its own temp data directory, reached through :class:`RelayStore`.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, StoreError
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.store.migrate import migrate
from pipeline.store.relay import RelayStore, main, serve_relay

REPO_ROOT = Path(__file__).resolve().parents[2]
RELAY = (sys.executable, "-m", "pipeline.store.relay")
READY = re.compile(r"^relay listening on http://127\.0\.0\.1:(\d+) \(data dir (.+)\)$")


def start_relay(data_dir: Path, port: int = 0) -> tuple[subprocess.Popen[str], int]:
    """A relay subprocess on ``data_dir`` and the port it printed once ready."""
    process = subprocess.Popen(
        [*RELAY, "--data-dir", str(data_dir), "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=60).strip()
    except queue.Empty:
        process.kill()
        raise AssertionError("the relay printed nothing within 60 s") from None
    match = READY.match(line)
    if match is None:
        process.kill()
        _, errors = process.communicate(timeout=10)
        raise AssertionError(f"relay did not start: {line!r}; stderr: {errors}")
    assert Path(match.group(2)) == data_dir.resolve()
    return process, int(match.group(1))


def stop_relay(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- without a relay -------------------------------------------------------------------------


def test_relay_urls_select_the_relay_client_and_carry_timeouts() -> None:
    opened = open_store(
        Settings(clickhouse_url=SecretStr("relay://127.0.0.1:8124?connect_timeout=0.5&timeout=9"))
    )
    assert isinstance(opened, RelayStore)
    assert isinstance(opened, Store)
    assert (opened.engine, opened.url) == ("relay", "relay://127.0.0.1:8124")
    assert (opened.connect_timeout_s, opened.timeout_s) == (0.5, 9.0)
    defaults = RelayStore.connect("relay://localhost:1")
    assert (defaults.connect_timeout_s, defaults.timeout_s) == (5.0, 120.0)


@pytest.mark.parametrize(
    "url",
    [
        "relay://127.0.0.1",
        "relay://:8124",
        "relay://127.0.0.1:8124?timeout=soon",
        "relay://127.0.0.1:8124?timeout=0",
        "relay://127.0.0.1:8124?retries=3",
        "relay://127.0.0.1:99999",
        "http://127.0.0.1:8124",
    ],
)
def test_malformed_relay_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="relay://HOST:PORT") as caught:
        RelayStore.connect(url)
    assert caught.value.fields == {"url": url}


def test_an_unreachable_relay_is_a_quick_store_error() -> None:
    port = free_port()
    relay = RelayStore("127.0.0.1", port, connect_timeout_s=3, timeout_s=3)
    started = time.monotonic()
    with pytest.raises(StoreError, match="is unreachable") as caught:
        relay.query("SELECT 1")
    assert time.monotonic() - started < 1.0
    assert "python -m pipeline.store.relay` running?" in str(caught.value)
    assert caught.value.fields == {
        "engine": "relay",
        "relay": f"relay://127.0.0.1:{port}",
        "sql": "SELECT 1",
    }
    relay.close()
    with pytest.raises(StoreError, match="is closed"):
        relay.command("SELECT 1")


def test_the_relay_refuses_non_loopback_hosts_before_opening_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no authentication") as caught:
        serve_relay(tmp_path / "data", "0.0.0.0", 0)
    assert caught.value.fields == {"host": "0.0.0.0"}
    assert main(["--data-dir", str(tmp_path / "data"), "--host", "192.168.1.10"]) == 2
    assert not (tmp_path / "data").exists()


# --- against a relay subprocess ----------------------------------------------------------------


@pytest.fixture(scope="module")
def relay_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    data_dir = tmp_path_factory.mktemp("relay")
    process, port = start_relay(data_dir)
    try:
        yield data_dir, port
    finally:
        assert stop_relay(process) == 0


@pytest.fixture
def relay(relay_process: tuple[Path, int]) -> Iterator[RelayStore]:
    opened = RelayStore("127.0.0.1", relay_process[1], timeout_s=30)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def scratch(relay: RelayStore, store: Store) -> Iterator[str]:
    """One database name, created both behind the relay and on the session store."""
    database = f"relay_{uuid.uuid4().hex[:12]}"
    for target in (relay, store):
        target.command(f"CREATE DATABASE {database}")
    try:
        yield database
    finally:
        for target in (relay, store):
            target.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.integration
def test_migrate_runs_unchanged_through_the_relay(
    relay: RelayStore, fresh_database: tuple[Store, str]
) -> None:
    store, migrated = fresh_database
    database = f"relay_{uuid.uuid4().hex[:12]}"
    first = migrate(relay, database)
    assert first.applied and first.already_present == ()
    second = migrate(relay, database)
    assert second.applied == () and second.already_present == first.applied
    show = "SELECT name, engine FROM system.tables WHERE database = {db:String} ORDER BY name"
    assert [row["name"] for row in relay.query(show, {"db": database})] == [
        row["name"] for row in store.query(show, {"db": migrated})
    ]
    relay.command(f"DROP DATABASE {database}")


@pytest.mark.integration
def test_rows_come_back_exactly_as_from_the_in_process_adapter(
    relay: RelayStore, store: Store, scratch: str
) -> None:
    ddl = f"""CREATE TABLE {scratch}.t (
        k String, amount Decimal(38, 10), at DateTime64(6, 'UTC'), day Date,
        attrs Map(String, String), tags Array(String), maybe Nullable(UInt64), big UInt64,
        pair Tuple(String, Decimal(18, 2))
    ) ENGINE = MergeTree ORDER BY k"""
    rows: list[dict[str, Any]] = [
        {
            "k": "a'b\\c\n\"",
            "amount": Decimal("12345678901234567890.0123456789"),
            "at": datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "day": datetime(2026, 1, 31, tzinfo=UTC).date(),
            "attrs": {"tokens": "12", "quote'": 'x"y'},
            "tags": ["x", ""],
            "maybe": None,
            "big": 2**64 - 1,
            "pair": ("p", Decimal("1.50")),
        },
        {"k": "b", "amount": Decimal("0.10"), "at": datetime(2026, 2, 1, tzinfo=UTC)},
    ]
    results = []
    for target in (relay, store):
        target.command(ddl)
        target.insert_rows(f"{scratch}.t", rows)
        results.append(target.query(f"SELECT * FROM {scratch}.t ORDER BY k"))
    assert results[0] == results[1]
    assert results[0][0] == rows[0]
    assert str(results[0][1]["amount"]) == "0.1000000000"
    assert results[0][1]["maybe"] is None and results[0][1]["attrs"] == {}


@pytest.mark.integration
def test_value_tuples_under_a_column_list_insert_the_same_through_both_adapters(
    relay: RelayStore, store: Store, scratch: str
) -> None:
    ddl = f"""CREATE TABLE {scratch}.c (
        k String, amount Decimal(38, 10), at String, attrs Map(String, String),
        maybe Nullable(UInt64), left_out UInt8 DEFAULT 7
    ) ENGINE = MergeTree ORDER BY k"""
    columns = ("k", "amount", "at", "attrs", "maybe")
    rows = [
        ("a'b\\c\n\"", Decimal("1.5"), "2026-01-31 23:59:59.999999", {"q'": 'x"y'}, None),
        ("b", Decimal("0.10"), "2026-02-01 00:00:00.000000", {}, 2**64 - 1),
    ]
    results = []
    for target in (relay, store):
        target.command(ddl)
        target.insert_columns(f"{scratch}.c", columns, rows)
        results.append(target.query(f"SELECT * FROM {scratch}.c ORDER BY k"))
    assert results[0] == results[1]
    assert [tuple(r[c] for c in columns) for r in results[0]] == rows
    assert {r["left_out"] for r in results[0]} == {7}
    with pytest.raises(StoreError, match="row 0 has 2 values for 5 columns"):
        relay.insert_columns(f"{scratch}.c", columns, [("x", Decimal(1))])
    with pytest.raises(StoreError, match="not a plain identifier"):
        relay.insert_columns(f"{scratch}.c", ("k; DROP",), [("x",)])


@pytest.mark.integration
@pytest.mark.parametrize("text", ["x' OR '1'='1", "\\'; DROP DATABASE default; --", "a\tb\nc"])
def test_parameterised_queries_bind_like_the_in_process_adapter(
    relay: RelayStore, store: Store, text: str
) -> None:
    sql = (
        "SELECT {s:String} AS s, {n:Nullable(String)} AS n, {a:Array(String)} AS a, "
        "{d:Decimal(38, 4)} AS d, {t:DateTime64(6, 'UTC')} AS t, map('k', {s:String}) AS m"
    )
    at = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    params = {"s": text, "n": None, "a": [text, ""], "d": Decimal("-7.1250"), "t": at}
    expected = [{"s": text, "n": None, "a": [text, ""], "d": Decimal("-7.1250"), "t": at}]
    got = relay.query(sql, params)
    assert got == store.query(sql, params)
    assert [{key: value for key, value in row.items() if key != "m"} for row in got] == expected
    assert got[0]["m"] == {"k": text}


@pytest.mark.integration
def test_engine_errors_come_back_as_store_errors_with_the_sql(
    relay: RelayStore, scratch: str
) -> None:
    sql = f"SELECT * FROM {scratch}.missing"
    with pytest.raises(StoreError, match="UNKNOWN_TABLE") as caught:
        relay.query(sql)
    assert caught.value.message.startswith("embedded ClickHouse (chdb) failed: ")
    assert caught.value.fields["sql"] == sql
    assert caught.value.fields["engine"] == "relay"
    relay.command(f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k")
    with pytest.raises(StoreError, match="tenant_typo") as insert_failure:
        relay.insert_rows(f"{scratch}.t", [{"k": "a", "tenant_typo": "x"}])
    assert str(insert_failure.value.fields["sql"]).startswith(f"INSERT INTO `{scratch}`.`t`")
    with pytest.raises(StoreError, match="not a plain identifier"):
        relay.insert_rows("bad-name", [{"k": "a"}])
    assert relay.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 0}]
    assert relay.ping()["status"] == "ok"  # the connection is still usable after errors


@pytest.mark.integration
def test_dedup_tokens_reach_the_engine(relay: RelayStore, scratch: str) -> None:
    relay.command(
        f"CREATE TABLE {scratch}.t (k String) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    for token in ("events:1:0-0", "events:1:0-0", "events:1:1-1 &x=?"):
        relay.insert_rows(f"{scratch}.t", [{"k": "a"}], dedup_token=token)
    assert relay.query(f"SELECT count() AS c FROM {scratch}.t") == [{"c": 2}]


@pytest.mark.integration
def test_two_threads_share_one_relay_store(relay: RelayStore, scratch: str) -> None:
    relay.command(f"CREATE TABLE {scratch}.t (n UInt64) ENGINE = MergeTree ORDER BY n")
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for step in range(15):
                relay.insert_rows(f"{scratch}.t", [{"n": offset * 100 + step}])
                relay.query(f"SELECT count() AS c FROM {scratch}.t")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert relay.query(f"SELECT count() AS c, uniqExact(n) AS u FROM {scratch}.t") == [
        {"c": 30, "u": 30}
    ]


@pytest.mark.integration
def test_a_second_relay_on_the_same_directory_names_the_holder(
    relay_process: tuple[Path, int],
) -> None:
    data_dir, _ = relay_process
    result = subprocess.run(
        [*RELAY, "--data-dir", str(data_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "relay: the embedded ClickHouse store at" in result.stderr
    assert "held by process" in result.stderr


@pytest.mark.integration
def test_a_relay_that_goes_away_fails_fast_and_is_used_again_when_back(tmp_path: Path) -> None:
    process, port = start_relay(tmp_path)
    relay = RelayStore("127.0.0.1", port, connect_timeout_s=5, timeout_s=10)
    try:
        relay.command("CREATE TABLE default.t (k String) ENGINE = MergeTree ORDER BY k")
        relay.insert_rows("default.t", [{"k": "before"}])

        process.kill()  # no graceful shutdown: the kept-alive connection just dies
        process.wait(timeout=10)
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(StoreError, match="is unreachable"):
                relay.insert_rows("default.t", [{"k": "while down"}])
            assert time.monotonic() - started < 2.0

        process, _ = start_relay(tmp_path, port)
        relay.insert_rows("default.t", [{"k": "after"}])
        assert relay.query("SELECT k FROM default.t ORDER BY k") == [
            {"k": "after"},
            {"k": "before"},
        ]

        # SIGTERM while a call is in flight: the call completes, then the relay exits cleanly.
        answers: list[object] = []
        slow = threading.Thread(
            target=lambda: answers.append(
                relay.query("SELECT sleepEachRow(0.5) AS s FROM numbers(3)")
            )
        )
        slow.start()
        time.sleep(0.6)  # the call has reached the relay and is running
        assert stop_relay(process) == 0
        slow.join(timeout=10)
        assert answers == [[{"s": 0}] * 3]
        with pytest.raises(StoreError, match=r"unreachable|shutting down"):
            relay.query("SELECT 1")
    finally:
        relay.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
