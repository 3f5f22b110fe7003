"""The dev supervisor restarts a worker that asks for it, and only then."""

from __future__ import annotations

from typing import Any

from pipeline.devstack.processes import EXIT_RESTART_ME, RestartingWorker


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def test_exit_75_starts_a_new_worker_and_other_exits_are_final() -> None:
    started: list[FakeProcess] = []
    said: list[str] = []

    def start() -> Any:
        started.append(FakeProcess(100 + len(started)))
        return started[-1]

    worker = RestartingWorker(start, said.append)
    assert worker.alive() and len(started) == 1
    started[0].returncode = EXIT_RESTART_ME
    assert worker.alive()
    assert worker.process is started[1] and worker.restarts == 1
    assert "restarted from the committed offsets, pid 101" in said[0]
    started[1].returncode = 1  # a crash is not papered over
    assert not worker.alive()
    assert len(started) == 2
