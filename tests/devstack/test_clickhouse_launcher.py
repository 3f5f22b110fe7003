"""The local ClickHouse server: the chdb recipe it relies on, access, reuse, stop, crash, restart.

Each test starts its own server in ``tmp_path`` (the run's shared server is never stopped here).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from pipeline.cli import main
from pipeline.devstack import clickhouse_launcher, local_processes
from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher, ServerInfo
from pipeline.devstack.clickhouse_server import HOLD_MARKER
from pipeline.errors import ClickHouseLaunchError
from pipeline.store.server import ServerStore

pytestmark = pytest.mark.integration


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[ClickHouseLauncher]:
    said: list[str] = []
    own = ClickHouseLauncher(tmp_path / "ch", say=said.append)
    try:
        yield own
    finally:
        own.stop()


def _as(info: ServerInfo, user: str, password: str) -> object:
    return clickhouse_connect.get_client(
        host="127.0.0.1", port=info.http_port, username=user, password=password
    )


def test_it_serves_clickhouses_own_http_and_native_protocols_as_the_configured_user(
    launcher: ClickHouseLauncher,
) -> None:
    info = launcher.start()
    store = ServerStore.connect(info.url)
    try:
        [row] = store.query("SELECT currentUser() AS user, version() AS version")
        assert row["user"] == "pipeline" and row["version"].startswith("26.")
        # The recipe: one held query keeps the listeners open (tested: _chdb.query is not a
        # documented entry point of chdb).
        [held] = store.query(
            f"SELECT count() AS n FROM system.processes WHERE query LIKE '%{HOLD_MARKER}%' "
            "AND query NOT LIKE '%system.processes%'"
        )
        assert held["n"] == 1
        [settings] = store.query(
            "SELECT value AS v FROM system.settings WHERE name = 'async_insert'"
        )
        assert settings["v"] == "0"
    finally:
        store.close()
    # The native TCP port speaks ClickHouse's own protocol: a client Hello is answered with the
    # server's Hello (packet 0) for the user, with an Exception (packet 2) for a wrong password.
    assert _native_hello(info.tcp_port, "pipeline", info.password()) == 0
    assert _native_hello(info.tcp_port, "pipeline", "wrong") == 2


def test_the_password_is_generated_kept_private_and_never_written_in_clear_elsewhere(
    launcher: ClickHouseLauncher,
) -> None:
    info = launcher.start()
    password = info.password()
    assert len(password) >= 32
    assert launcher.password_file.stat().st_mode & 0o777 == 0o600
    assert launcher.home.stat().st_mode & 0o777 == 0o700
    for path in launcher.home.iterdir():
        if path.is_file() and path != launcher.password_file:
            assert password not in path.read_text(errors="replace"), path.name
    assert password not in info.address and password not in info.export_line()
    with pytest.raises(DatabaseError, match="516"):
        _as(info, "pipeline", password + "x")


def test_the_engines_own_default_user_can_read_and_write_nothing(
    launcher: ClickHouseLauncher,
) -> None:
    info = launcher.start()
    store = ServerStore.connect(info.url)
    try:
        store.command("CREATE DATABASE IF NOT EXISTS billing")
        store.command("CREATE TABLE billing.t (n UInt64) ENGINE = MergeTree ORDER BY n")
        store.insert_rows("billing.t", [{"n": 1}])
    finally:
        store.close()
    anonymous = _as(info, "default", "")
    for statement in (
        "SELECT * FROM billing.t",
        "INSERT INTO billing.t VALUES (2)",
        "CREATE DATABASE stolen",
        "DROP TABLE billing.t",
        "SELECT * FROM system.users",
    ):
        with pytest.raises(DatabaseError, match=r"ACCESS_DENIED|497"):
            anonymous.command(statement)  # type: ignore[attr-defined]


def test_a_running_server_is_reused_and_stop_closes_it(launcher: ClickHouseLauncher) -> None:
    first = launcher.start()
    again = launcher.start()
    assert again.reused and again.pid == first.pid and again.http_port == first.http_port
    assert launcher.running() is not None
    assert launcher.stop() is True
    assert launcher.running() is None
    assert not _alive(first.pid)
    assert launcher.stop() is False  # nothing left to stop


def test_data_and_address_survive_a_stop_and_a_sigkill(launcher: ClickHouseLauncher) -> None:
    first = launcher.start()
    store = ServerStore.connect(first.url)
    try:
        store.command("CREATE DATABASE keep")
        store.command("CREATE TABLE keep.t (n UInt64) ENGINE = MergeTree ORDER BY n")
        store.insert_rows("keep.t", [{"n": n} for n in range(10)])
    finally:
        store.close()
    assert launcher.stop()
    second = launcher.start()
    assert (second.http_port, second.tcp_port, second.url) == (
        first.http_port,
        first.tcp_port,
        first.url,
    )
    assert launcher.kill() == second.pid  # a crash: no clean shutdown
    assert not _alive(second.pid) and launcher.running() is None
    third = launcher.start()
    assert third.pid != second.pid and third.http_port == first.http_port
    store = ServerStore.connect(third.url)
    try:
        assert store.query("SELECT count() AS rows, sum(n) AS total FROM keep.t") == [
            {"rows": 10, "total": 45}
        ]
    finally:
        store.close()


def test_sigterm_stops_the_server_process_within_its_grace(launcher: ClickHouseLauncher) -> None:
    info = launcher.start()
    os.kill(info.pid, signal.SIGTERM)
    deadline_s = clickhouse_launcher.STOP_GRACE_S
    assert local_processes.wait_gone(info.pid, deadline_s)
    assert "stopping: cancelling the hold query" in launcher.log_file.read_text()


def test_a_server_that_dies_while_starting_is_reported_with_its_log(
    launcher: ClickHouseLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_spawn() -> subprocess.Popen[bytes]:
        launcher.home.mkdir(parents=True, exist_ok=True)
        launcher.log_file.write_text("Code: 210. DB::Exception: Listen [127.0.0.1]: in use\n")
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(launcher, "_spawn", broken_spawn)
    with pytest.raises(ClickHouseLaunchError, match="exited with code 3") as caught:
        launcher.start()
    assert "Listen [127.0.0.1]: in use" in str(caught.value)
    assert not launcher.state_file.exists()


def test_the_ports_of_the_previous_run_are_kept_unless_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = ClickHouseLauncher(tmp_path / "ports")
    launcher.home.mkdir(parents=True)
    http_port, tcp_port = local_processes.free_ports(2)
    launcher.ports_file.write_text(json.dumps({"http_port": http_port, "tcp_port": tcp_port}))
    assert launcher._pick_ports() == (http_port, tcp_port)
    monkeypatch.setattr(clickhouse_launcher, "PORT_RELEASE_S", 0.5)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", http_port))
        busy.listen()
        picked = launcher._pick_ports()
    assert picked[0] != http_port and len(set(picked)) == 2


def test_the_cli_prints_where_it_is_and_how_to_use_it_but_not_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPELINE_CLICKHOUSE_LOCAL_DIR", str(tmp_path / "cli"))
    try:
        assert main(["clickhouse", "status"]) == 1
        assert "No local ClickHouse server is running" in capsys.readouterr().out
        assert main(["clickhouse", "start"]) == 0
        out = capsys.readouterr().out
        password = (tmp_path / "cli" / "password").read_text().strip()
        assert password not in out
        assert "user: pipeline" in out and str(tmp_path / "cli" / "password") in out
        assert 'export PIPELINE_CLICKHOUSE_URL="http://pipeline:$(cat ' in out
        assert main(["clickhouse", "status"]) == 0
        assert "ClickHouse running at http://127.0.0.1:" in capsys.readouterr().out
    finally:
        assert main(["clickhouse", "stop"]) == 0
    assert "ClickHouse stopped." in capsys.readouterr().out


def _native_hello(port: int, user: str, password: str) -> int:
    """Send the native protocol's client Hello; the type of the server's first packet."""

    def varint(number: int) -> bytes:
        out = bytearray()
        while True:
            byte, number = number & 0x7F, number >> 7
            out.append(byte | (0x80 if number else 0))
            if not number:
                return bytes(out)

    def text(value: str) -> bytes:
        return varint(len(value.encode())) + value.encode()

    client = [text("pipeline-test"), varint(24), varint(8), varint(54460)]
    hello = b"".join([varint(0), *client, text(""), text(user), text(password)])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(hello)
        return connection.recv(1)[0]


def _alive(pid: int) -> bool:
    return local_processes.pid_alive(pid)
