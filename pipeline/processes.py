"""Child processes of the local stack: the ClickHouse relay and stream workers.

Used by ``python -m pipeline dev`` and by the integration tests, so both start them one way.
The embedded ClickHouse (chdb) allows one process per data directory; the relay is that one
process, and workers and commands reach it with ``PIPELINE_CLICKHOUSE_URL=relay://...``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path


class Relay:
    """The embedded ClickHouse in its own process, on a fixed data dir and (after start) port."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"relay://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "pipeline.store.relay",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log_path.read_text()[-2000:]}")
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                return
        raise RuntimeError("relay did not start in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def worker_env(
    *,
    bootstrap: str,
    name: str,
    store_url: str,
    state_dir: Path,
    rules_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a worker process on ``bootstrap`` and topics ``<name>.*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        {
            "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_TOPIC_EVENTS": f"{name}.events",
            "PIPELINE_TOPIC_QUARANTINE": f"{name}.quarantine",
            "PIPELINE_TOPIC_DEAD_LETTERS": f"{name}.dlq",
            "PIPELINE_WORKER_GROUP_ID": name,
            "PIPELINE_CLICKHOUSE_URL": store_url,
            "PIPELINE_STATE_DIR": str(state_dir),
            "PIPELINE_WORKER_WEB_PORT": "0",
            "PIPELINE_RULES_DIR": str(rules_dir),
        }
    )
    env.update(extra or {})
    return env


def start_worker(env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker"],
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60
) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    return proc.returncode


#: exit code of a worker that asks to be started again (it re-reads from its committed offsets)
EXIT_RESTART_ME = 75


class RestartingWorker:
    """A worker process that is started again when it exits with :data:`EXIT_RESTART_ME`
    (the stream worker's offset-gap guard, pipeline/worker/app.py); any other exit is final."""

    def __init__(
        self, start: Callable[[], subprocess.Popen[bytes]], say: Callable[[str], None]
    ) -> None:
        self._start = start
        self._say = say
        self.process = start()
        self.restarts = 0

    def alive(self) -> bool:
        code = self.process.poll()
        if code == EXIT_RESTART_ME:
            self.process = self._start()
            self.restarts += 1
            self._say(
                f"Worker exited with {code} (it skipped an offset and stopped before committing "
                f"past it); restarted from the committed offsets, pid {self.process.pid}"
            )
            return True
        return code is None
