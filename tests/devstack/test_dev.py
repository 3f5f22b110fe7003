"""The README's first command, the way a new user runs it (``python -m pipeline dev``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]


def dev_env(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> dict[str, str]:
    """Isolated from other runs: own topics, group, ClickHouse server and state; the shared
    broker (the Kafka launcher is tested on its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        {
            "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "PIPELINE_TOPIC_EVENTS": f"{unique_name}.events",
            "PIPELINE_TOPIC_QUARANTINE": f"{unique_name}.quarantine",
            "PIPELINE_TOPIC_DEAD_LETTERS": f"{unique_name}.dlq",
            "PIPELINE_WORKER_GROUP_ID": unique_name,
            "PIPELINE_CLICKHOUSE_LOCAL_DIR": str(tmp_path / "clickhouse"),
            "PIPELINE_STATE_DIR": str(tmp_path / "state"),
            "PIPELINE_INGEST_PORT": "0",
        }
    )
    return env


@pytest.mark.integration
def test_dev_shows_one_invoice_per_sample_tenant(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    env = dev_env(kafka_bootstrap, unique_name, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "dev", "--once", "--events", "250"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    match = re.search(
        r"Event log: (\d+) events consumed = (\d+) billed \+ (\d+) duplicate \+ "
        r"(\d+) quarantined \+ (\d+) unmapped",
        out,
    )
    assert match, out[-3000:]
    consumed, billed, duplicate, quarantined, unmapped = map(int, match.groups())
    accepted = int(re.search(r"(\d+) events accepted", out).group(1))  # type: ignore[union-attr]
    assert consumed == accepted == billed + duplicate + quarantined + unmapped
    assert duplicate > 0 and billed > 0
    for tenant in ("acme", "globex", "initech", "umbrella"):
        assert f"Invoice for tenant {tenant}, period 2026-03" in out
        assert re.search(rf"{tenant}: created draft v1: total [0-9.]+ [A-Z]{{3}}", out)
    assert "Stopping the worker" in out and "Stopping ClickHouse" in out
    # The local server is ClickHouse's own protocol: its address and user are printed, the
    # password is not (it is in a file only its owner can read).
    password_file = tmp_path / "clickhouse" / "password"
    address = re.search(r"ClickHouse: (http://127\.0\.0\.1:\d+) \(native TCP [0-9.:]+\)", out)
    assert address and "user pipeline" in out and str(password_file) in out, out[-3000:]
    assert password_file.read_text().strip() not in out + proc.stderr
    assert password_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.integration
def test_the_curl_line_dev_prints_works_as_printed(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """`dev` without --once keeps running and prints a curl line and the commands to look at the
    result: the line's file exists, the edge takes it, and the events command sees it."""
    env = dev_env(kafka_bootstrap, unique_name, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "dev", "--events", "20"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        out = "".join(lines)
        curl = re.search(
            r"curl -s -X POST (\S+) -H 'Authorization: Bearer (\S+)' "
            r"-H 'Content-Type: application/json' --data-binary @(\S+)",
            out,
        )
        assert curl, out[-3000:]
        url, key, sample = curl.groups()
        request = urllib.request.Request(
            url,
            data=Path(sample).read_bytes(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            assert orjson.loads(response.read()) == {"accepted": 3, "rejected": 0, "errors": []}
        export = re.search(
            r'export PIPELINE_CLICKHOUSE_URL="(http://pipeline:)\$\(cat (\S+)\)(@\S+)"', out
        )
        assert export, out[-3000:]
        head, password_file, tail = export.groups()
        events_env = {
            **env,
            "PIPELINE_CLICKHOUSE_URL": head + Path(password_file).read_text().strip() + tail,
        }
        deadline = time.monotonic() + 60
        while True:
            shown = subprocess.run(
                [sys.executable, "-m", "pipeline", "events", "--tenant", "acme", "--json",
                 "--period", "2026-03"],
                cwd=REPO, env=events_env, capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            if "manual-" in shown.stdout:
                break
            assert time.monotonic() < deadline, shown.stdout[-2000:]
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines)[-2000:] + rest[-2000:]
    assert "Stopping ClickHouse" in rest
