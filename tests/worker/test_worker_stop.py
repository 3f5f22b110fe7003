"""SIGTERM stops a worker process within its grace period, whatever it is waiting on: a
ClickHouse server that is gone (SIGKILLed: connection refused, the sink retrying), one that
hangs (SIGSTOPped: an insert stuck in the HTTP client, which would wait 300 s), or a Kafka
broker that is down. Unwritten batches make it exit with EXIT_UNFINISHED; they stay
uncommitted, and a worker started afterwards brings the end state to the reference.

The only clock here is the timeout on waiting for the process to exit (grace + margin):
everything before the SIGTERM waits for an observed condition."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher
from pipeline.devstack.processes import start_worker, stop_worker
from pipeline.devstack.traffic import sample_deliveries
from pipeline.store import Store
from pipeline.worker.stopping import EXIT_UNFINISHED, STOP_GRACE_S
from tests.support.stack import private_kafka, wait_drained, wait_for
from tests.worker.support import Stack, database_for, expected_for, wait_for_log

pytestmark = pytest.mark.integration

#: what the exit may take beyond the grace: interpreter teardown, a loaded 2-core machine
MARGIN_S = 5.0


def exit_code_after_sigterm(proc: subprocess.Popen[bytes], log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_GRACE_S + MARGIN_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        raise AssertionError(
            f"the worker ignored SIGTERM for more than {STOP_GRACE_S + MARGIN_S:.0f} s:\n"
            + log.read_text()[-3000:]
        ) from None


def bytes_waiting_at(port: int) -> int:
    """Bytes received but not read by the local listener on ``port`` (its established
    connections' receive queues in /proc/net/tcp*): a stopped server's unread requests."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                    waiting += int(queues.split(":")[1], 16)
    return waiting


@pytest.mark.parametrize("outage", ["killed", "frozen"])
def test_sigterm_while_clickhouse_is_unreachable_exits_within_the_grace(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, outage: str
) -> None:
    server = ClickHouseLauncher(tmp_path / "clickhouse")  # ours alone: it gets killed
    info = server.start()
    stack = Stack(kafka_bootstrap, unique_name, info.url, "metering", tmp_path)
    deliveries = sample_deliveries(400, seed=61)
    expected = expected_for(deliveries)
    frozen = False
    try:
        stack.produce(deliveries[:100], seed=62)
        proc = start_worker(stack.env(), stack.log())
        try:
            wait_drained(stack.bootstrap, stack.name, stack.topic, alive=[proc], logs=[stack.log()])
            if outage == "killed":
                assert server.kill() == info.pid
            else:
                os.killpg(info.pid, signal.SIGSTOP)
                frozen = True
            stack.produce(deliveries[100:], seed=63)
            if outage == "killed":
                wait_for(
                    lambda: "ClickHouse insert failed" in stack.log().read_text(),
                    60,
                    "the worker to fail an insert and retry it",
                )
            else:
                wait_for(
                    lambda: bytes_waiting_at(info.http_port) > 0,
                    60,
                    "an insert to be in flight to the frozen server",
                )
            assert proc.poll() is None
            assert exit_code_after_sigterm(proc, stack.log()) == EXIT_UNFINISHED
        finally:
            stop_worker(proc, signal.SIGKILL)
        log = stack.log().read_text()
        assert "will be re-read from the last committed offsets" in log, log[-3000:]
        # Nothing was lost: once ClickHouse is back, a new worker re-reads what was left.
        if frozen:
            os.killpg(info.pid, signal.SIGCONT)
            frozen = False
        else:
            assert server.start().http_port == info.http_port
        stack.run_until_drained()
        stack.assert_exact(expected)
    finally:
        if frozen:
            os.killpg(info.pid, signal.SIGCONT)
        server.stop()


def test_sigterm_while_kafka_is_down_exits_within_the_grace(
    tmp_path: Path, unique_name: str, clickhouse_url: str, store: Store
) -> None:
    launcher = private_kafka(tmp_path / "kafka")  # ours to stop
    bootstrap = launcher.start().bootstrap_servers
    stack = Stack(bootstrap, unique_name, clickhouse_url, database_for(unique_name), tmp_path)
    try:
        stack.produce(sample_deliveries(100, seed=64))
        proc = start_worker(stack.env(), stack.log())
        try:
            wait_for_log(stack.log(), "consuming", 60)
            wait_drained(bootstrap, stack.name, stack.topic, alive=[proc], logs=[stack.log()])
            launcher.stop()
            assert exit_code_after_sigterm(proc, stack.log()) in (0, EXIT_UNFINISHED)
        finally:
            stop_worker(proc, signal.SIGKILL)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {stack.database}")
        launcher.stop()
