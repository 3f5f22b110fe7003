"""The project's launcher for a local ClickHouse server (development, tests and CI only).

``python -m pipeline clickhouse start|stop|status``, ``python -m pipeline dev`` and the test
fixtures start ClickHouse this one way, as :mod:`pipeline.devstack.kafka_launcher` starts Kafka:

1. **Configure**: ``HOME/config.xml`` (loopback, a free HTTP port and a free native TCP port,
   the previous ones when still free) and ``HOME/users.xml`` with one user (``pipeline``) whose
   password is generated once and kept in ``HOME/password``, readable by its owner only; the
   users file holds only its SHA-256. Inserts are synchronous (``async_insert = 0``).
2. **Start**: ``python -m pipeline.devstack.clickhouse_server HOME`` in its own session, so it
   outlives the caller; data under ``HOME/data``, log ``HOME/server.log``.
3. **Ready**: waits until the HTTP interface answers an authenticated ``SELECT 1``.
4. **Reuse**: ``HOME/server.json`` records pid and ports; a live server is reused.
5. **Stop**: SIGTERM (the server cancels its own hold query and shuts down), SIGKILL after a
   grace period.

Nothing in production imports this module: production reaches ClickHouse only through the
server named by ``PIPELINE_CLICKHOUSE_URL``.

Access: the engine's own in-process session logs in as ClickHouse's ``default`` user from
127.0.0.1 without a password (chdb hard-codes that), so ``default`` exists, on loopback only,
with one privilege: ``SYSTEM LISTEN`` (it starts the listeners). It can read or write no data.
A process on this machine could use it to stop the listeners; that is the one thing a local
user can do without the password, and why the server listens on loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from xml.sax.saxutils import escape

from pipeline.devstack import clickhouse_server
from pipeline.devstack.local_processes import (
    free_ports,
    locked,
    port_free,
    runs_module,
    tail,
    terminate_group,
    wait_gone,
)
from pipeline.errors import ClickHouseLaunchError

Say = Callable[[str], None]

USER = "pipeline"
READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 30.0
PORT_RELEASE_S = 5.0
SERVER_MODULE = clickhouse_server.__name__


@dataclass(frozen=True)
class ServerInfo:
    """A running local ClickHouse server."""

    pid: int
    http_port: int
    tcp_port: int
    user: str
    password_file: Path
    reused: bool = False

    @property
    def address(self) -> str:
        """The HTTP interface, without credentials (safe to print and log)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        """``http://user:password@127.0.0.1:port``: a secret, for settings and environments."""
        return f"http://{self.user}:{self.password()}@127.0.0.1:{self.http_port}"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def export_line(self) -> str:
        """A shell line that sets PIPELINE_CLICKHOUSE_URL without printing the password."""
        return (
            f'export PIPELINE_CLICKHOUSE_URL="http://{self.user}:$(cat {self.password_file})'
            f'@127.0.0.1:{self.http_port}"'
        )


def _quiet(_: str) -> None:
    return None


class ClickHouseLauncher:
    """Starts, reuses and stops the local ClickHouse server kept in ``home``."""

    def __init__(self, home: Path, *, say: Say = _quiet) -> None:
        self.home = home.resolve()
        self.data_dir = self.home / "data"
        self.config_file = self.home / "config.xml"
        self.users_file = self.home / "users.xml"
        self.password_file = self.home / "password"
        self.user_file = self.home / "user"
        self.state_file = self.home / "server.json"
        self.ports_file = self.home / "ports.json"
        self.log_file = self.home / "server.log"
        self._say = say

    # ------------------------------------------------------------------ status
    def running(self) -> ServerInfo | None:
        """The server this launcher started, if its process is alive and it answers."""
        info = self._recorded()
        if info is None or not _is_our_server(info.pid) or _authenticated_ping(info) is not None:
            return None
        return replace(info, reused=True)

    # ------------------------------------------------------------------ start
    def start(self) -> ServerInfo:
        """Return the running server, or start one and wait until it answers as the user."""
        with self._lock():
            existing = self.running()
            if existing is not None:
                self._say(f"ClickHouse already running at {existing.address} (pid {existing.pid})")
                return existing
            if importlib.util.find_spec("chdb") is None:
                raise ClickHouseLaunchError(
                    "the local ClickHouse server needs the chdb-core package (the ClickHouse "
                    "engine), which is part of the development install: make install, or set "
                    "PIPELINE_CLICKHOUSE_URL to use an existing ClickHouse server",
                )
            self.home.mkdir(parents=True, exist_ok=True)
            os.chmod(self.home, 0o700)
            password = self._password()
            http_port, tcp_port = self._pick_ports()
            self._write_config(http_port, tcp_port, password)
            self._say(f"Starting ClickHouse (local server, data in {self.data_dir})")
            started = time.monotonic()
            proc = self._spawn()
            info = ServerInfo(proc.pid, http_port, tcp_port, USER, self.password_file)
            try:
                self._wait_ready(proc, info)
            except BaseException:
                terminate_group(proc.pid, STOP_GRACE_S)
                raise
            self.state_file.write_text(
                json.dumps(
                    {"pid": proc.pid, "http_port": http_port, "tcp_port": tcp_port, "user": USER}
                )
            )
            self._say(
                f"ClickHouse ready at {info.address} (native TCP 127.0.0.1:{tcp_port}) in "
                f"{time.monotonic() - started:.1f} s (pid {proc.pid}; log {self.log_file})"
            )
            return info

    def _password(self) -> str:
        """The user's password: kept across restarts, so URLs handed out stay valid."""
        with contextlib.suppress(OSError):
            existing = self.password_file.read_text().strip()
            if existing:
                return existing
        password = secrets.token_hex(24)
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password + "\n")
        return password

    def _pick_ports(self) -> tuple[int, int]:
        """Prefer the previous run's ports (a stable address for users), else two free ones."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            old = json.loads(self.ports_file.read_text())
            http_port, tcp_port = int(old["http_port"]), int(old["tcp_port"])
            # A server that was just stopped or killed may hold its sockets for a moment while
            # its last threads exit: wait for them briefly rather than move the address.
            deadline = time.monotonic() + PORT_RELEASE_S
            while True:
                if port_free(http_port) and port_free(tcp_port):
                    return http_port, tcp_port
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        http_port, tcp_port = free_ports(2)
        self.ports_file.write_text(json.dumps({"http_port": http_port, "tcp_port": tcp_port}))
        return http_port, tcp_port

    def _write_config(self, http_port: int, tcp_port: int, password: str) -> None:
        digest = hashlib.sha256(password.encode()).hexdigest()
        self.user_file.write_text(USER + "\n")
        _write_private(
            self.config_file,
            "\n".join(
                [
                    "<clickhouse>",
                    "  <listen_host>127.0.0.1</listen_host>",
                    f"  <http_port>{http_port}</http_port>",
                    f"  <tcp_port>{tcp_port}</tcp_port>",
                    f"  <users_config>{escape(str(self.users_file))}</users_config>",
                    "</clickhouse>",
                    "",
                ]
            ),
        )
        _write_private(
            self.users_file,
            "\n".join(
                [
                    "<clickhouse>",
                    "  <profiles>",
                    "    <default>",
                    # Synchronous inserts: an insert is acknowledged only once its part is
                    # written, which the sink's order of side effects relies on.
                    "      <async_insert>0</async_insert>",
                    "    </default>",
                    "  </profiles>",
                    "  <quotas><default/></quotas>",
                    "  <users>",
                    # The engine's own session (chdb logs in as default, from 127.0.0.1, without
                    # a password): it may start the listeners and nothing else.
                    "    <default>",
                    "      <password></password>",
                    "      <networks><ip>127.0.0.1</ip></networks>",
                    "      <profile>default</profile>",
                    "      <quota>default</quota>",
                    "      <grants><query>GRANT SYSTEM LISTEN ON *.*</query></grants>",
                    "    </default>",
                    f"    <{USER}>",
                    f"      <password_sha256_hex>{digest}</password_sha256_hex>",
                    "      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>",
                    "      <profile>default</profile>",
                    "      <quota>default</quota>",
                    "      <access_management>1</access_management>",
                    f"    </{USER}>",
                    "  </users>",
                    "</clickhouse>",
                    "",
                ]
            ),
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = self.log_file.open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-u", "-m", SERVER_MODULE, str(self.home)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        finally:
            log.close()

    def _wait_ready(self, proc: subprocess.Popen[bytes], info: ServerInfo) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = "not started"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClickHouseLaunchError(
                    f"the local ClickHouse server exited with code {proc.returncode} while "
                    f"starting; last log lines:\n{self.tail_log()}",
                    log=str(self.log_file),
                )
            problem = _authenticated_ping(info)
            if problem is None:
                return
            last_error = problem
            time.sleep(0.2)
        raise ClickHouseLaunchError(
            f"the local ClickHouse server did not answer within {READY_TIMEOUT_S:.0f} s "
            f"({last_error}); last log lines:\n{self.tail_log()}",
            log=str(self.log_file),
        )

    def tail_log(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)

    # ------------------------------------------------------------------ stop
    def stop(self) -> bool:
        """Stop the server this launcher started. Returns False when none was running."""
        with self._lock():
            info = self._recorded()
            if info is None or not _is_our_server(info.pid):
                self.state_file.unlink(missing_ok=True)
                return False
            self._say(f"Stopping ClickHouse (pid {info.pid})")
            terminate_group(info.pid, STOP_GRACE_S)
            self.state_file.unlink(missing_ok=True)
            return True

    def kill(self) -> int | None:
        """SIGKILL the server (a crash, for tests); its pid, or None when none was running."""
        info = self._recorded()
        if info is None or not _is_our_server(info.pid):
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info.pid, signal.SIGKILL)
        wait_gone(info.pid, STOP_GRACE_S)
        return info.pid

    def _recorded(self) -> ServerInfo | None:
        try:
            state = json.loads(self.state_file.read_text())
            return ServerInfo(
                pid=int(state["pid"]),
                http_port=int(state["http_port"]),
                tcp_port=int(state["tcp_port"]),
                user=str(state["user"]),
                password_file=self.password_file,
            )
        except (OSError, ValueError, KeyError):
            return None

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.home / "launcher.lock")


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _authenticated_ping(info: ServerInfo) -> str | None:
    """None when the server answers ``SELECT 1`` as the user; else what went wrong."""
    token = base64.b64encode(f"{info.user}:{info.password()}".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", info.http_port, timeout=2)
    try:
        connection.request(
            "POST", "/", body=b"SELECT 1", headers={"Authorization": f"Basic {token}"}
        )
        response = connection.getresponse()
        body = response.read()
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    finally:
        connection.close()
    if response.status == 200 and body.strip() == b"1":
        return None
    return f"HTTP {response.status}: {body[:200].decode(errors='replace')}"


def _is_our_server(pid: int) -> bool:
    return runs_module(pid, SERVER_MODULE.encode())
