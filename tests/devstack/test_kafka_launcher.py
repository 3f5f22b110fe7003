"""The project's Kafka launcher: resolve once, start, reuse, stop, restart without Maven."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.devstack import kafka_launcher
from pipeline.devstack.kafka_launcher import KafkaLauncher, new_cluster_id
from pipeline.errors import BrokerLaunchError
from pipeline.settings import Settings


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_missing_maven_without_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_launcher.shutil, "which", lambda _name: None)
    launcher = KafkaLauncher(tmp_path, "4.1.1")
    with pytest.raises(BrokerLaunchError, match=r"Maven \('mvn'\) is not on PATH"):
        launcher.ensure_jars()


def test_stale_state_file_is_not_a_running_broker(tmp_path: Path) -> None:
    launcher = KafkaLauncher(tmp_path, "4.1.1")
    launcher.run_dir.mkdir(parents=True)
    # A pid that has surely exited: a finished child of ours.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    launcher.state_file.write_text(
        json.dumps({"pid": dead.pid, "port": 1, "controller_port": 2, "version": "4.1.1"})
    )
    assert launcher.running() is None
    assert launcher.stop() is False
    assert not launcher.state_file.exists()


@pytest.mark.integration
def test_start_reuse_stop_restart_uses_cached_jars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    shared = KafkaLauncher(settings.cache_dir, settings.kafka_version)
    libs = shared.ensure_jars()  # resolved once per machine (Maven), cached afterwards

    # An isolated launcher home that shares only the cached jars with the default one.
    launcher = KafkaLauncher(tmp_path, settings.kafka_version)
    launcher.home.mkdir(parents=True)
    os.symlink(libs, launcher.libs_dir)
    # From here on Maven must not be needed: the cache is complete.
    real_which = shutil.which
    monkeypatch.setattr(
        kafka_launcher.shutil, "which", lambda n: None if n == "mvn" else real_which(n)
    )

    first = launcher.start()
    try:
        assert not first.reused
        assert _port_open(first.port)

        again = launcher.start()
        assert again.reused  # a pid + port check: the same process, not a second broker
        assert again.pid == first.pid and again.port == first.port

        assert launcher.stop() is True
        assert launcher.running() is None
        assert not _port_open(first.port)

        # Restart on the kept data directory, same cached jars, Maven still unavailable.
        restarted = launcher.start()
        assert not restarted.reused
        assert restarted.port == first.port  # stable address across restarts when free
    finally:
        launcher.stop()


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    # 0xF8 encodes to "-" first: kafka-storage would read such an id as an option and fail.
    draws = iter([b"\xf8" + bytes(15), b"\xf8" + bytes(15), b"\x01" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
    assert len(new_cluster_id()) == 22
