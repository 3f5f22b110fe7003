"""The local ClickHouse server process: ``python -m pipeline.devstack.clickhouse_server HOME``.

Development and tests only (:mod:`pipeline.devstack.clickhouse_launcher` starts it). It runs the
ClickHouse engine of the pinned ``chdb-core`` wheel as a real server: ClickHouse's own HTTP
interface and native TCP protocol on loopback, with the users, ports and settings that the
launcher wrote to ``HOME/config.xml`` and ``HOME/users.xml``. Every other process reaches it as
it would reach any ClickHouse server, through clickhouse-connect.

How it works (the recipe is tested in tests/devstack/test_clickhouse_launcher.py, because
``chdb._chdb.query`` is not a documented entry point; the version is pinned in pyproject.toml):

* ``_chdb.query(sql, fmt, path=DATA)`` runs clickhouse-local's ``LocalServer``, which can start
  network listeners (``SYSTEM START LISTEN``); chdb's ``Session``/``connect()`` cannot.
* ``LocalServer`` reads ``config.xml`` from the working directory, so this process moves there
  *after* importing chdb: the import itself opens an in-memory engine, which must not pick up
  that config (its user would need the password).
* One call holds the server: the listeners stay open while its last statement, the hold query,
  runs (``sleepEachRow`` releases the GIL). A second ``_chdb.query`` in the same process is
  refused by the engine, so this process serves one data directory once, then exits.
* Stopping: on SIGTERM or SIGINT this process cancels its own hold query through its HTTP port
  (``KILL QUERY``, as the configured user); the engine then closes the listeners and shuts down.
  If that does not end it within :data:`STOP_GRACE_S`, it exits hard. Parts already written are
  on disk; an insert that was not acknowledged may be lost, as with any server that is killed.

Exit codes: 0 after a requested stop, 1 when the engine ended on its own (a failed start, a
port in use, a crash): the log says why, and the launcher reports its tail.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

#: a name in the hold query's text, so that a stop cancels that query and nothing else
HOLD_MARKER = "pipeline_local_server_hold"
HOLD_QUERY = (
    f"SELECT sleepEachRow(1) AS {HOLD_MARKER} FROM numbers(1000000000000) "
    "SETTINGS max_block_size = 1 FORMAT Null"
)
STOP_GRACE_S = 20.0
#: written to stdout (the launcher's log) once the listeners are up
READY_LINE = "clickhouse server listening"


def _read_setting(config: str, tag: str) -> str:
    start = config.index(f"<{tag}>") + len(tag) + 2
    return config[start : config.index(f"</{tag}>", start)]


def _cancel_hold_query(home: Path) -> None:
    """``KILL QUERY`` on our own hold query through our HTTP port, as the configured user."""
    config = (home / "config.xml").read_text()
    port = int(_read_setting(config, "http_port"))
    user = (home / "user").read_text().strip()
    password = (home / "password").read_text().strip()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    statement = f"KILL QUERY WHERE query LIKE 'SELECT sleepEachRow(1) AS {HOLD_MARKER}%' ASYNC"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST", "/", body=statement.encode(), headers={"Authorization": f"Basic {token}"}
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            print(f"cancelling the hold query answered HTTP {response.status}", flush=True)
    finally:
        connection.close()


def serve(home: Path) -> int:
    home = home.resolve()
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    os.chdir("/")  # chdb's import opens an engine that must not read our config.xml
    chdb: Any = importlib.import_module("chdb._chdb")
    os.chdir(home)
    ended = threading.Event()
    outcome: dict[str, str] = {}

    def run() -> None:
        try:
            result = chdb.query(
                f"SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; {HOLD_QUERY}",
                "TSV",
                path=str(data),
            )
            if result.has_error():
                outcome["error"] = result.error_message()
        except Exception as error:  # the engine's own failure: report it, exit 1
            outcome["error"] = f"{type(error).__name__}: {error}"
        finally:
            ended.set()

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    engine = threading.Thread(target=run, name="clickhouse-engine", daemon=True)
    engine.start()
    announced = False
    while not ended.wait(0.2):
        if not announced and _listening(home):
            print(f"{READY_LINE} (pid {os.getpid()}, data {data})", flush=True)
            announced = True
        if stop.is_set():
            _stop_engine(home, ended)
            break
    if stop.is_set():
        print("clickhouse server stopped", flush=True)
        return 0
    print(f"clickhouse server ended on its own: {outcome.get('error', 'no error given')}")
    return 1


def _stop_engine(home: Path, ended: threading.Event) -> None:
    """Cancel the hold query until the engine has ended (a stop that arrives between the
    listeners starting and the hold query starting finds no query yet: it is sent again)."""
    print("stopping: cancelling the hold query", flush=True)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        try:
            _cancel_hold_query(home)
        except OSError as error:
            print(f"could not reach our own HTTP port to stop cleanly: {error}", flush=True)
        if ended.wait(1.0):
            return
    print(f"the engine did not stop within {STOP_GRACE_S:.0f} s; exiting", flush=True)
    sys.stdout.flush()
    os._exit(1)


def _listening(home: Path) -> bool:
    try:
        port = int(_read_setting((home / "config.xml").read_text(), "http_port"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except (OSError, ValueError):
        time.sleep(0.1)
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m pipeline.devstack.clickhouse_server HOME", file=sys.stderr)
        return 2
    return serve(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
