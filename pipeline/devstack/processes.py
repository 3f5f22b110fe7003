"""Stream worker child processes of the local stack, and their supervision.

Used by ``python -m pipeline dev`` and by the integration tests, so both start workers one way.
(Kafka and ClickHouse have launchers of their own beside this module.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline.worker.app import EXIT_OFFSET_GAP


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
EXIT_RESTART_ME = EXIT_OFFSET_GAP


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
