"""The README's first command, the way a new user runs it (``python -m pipeline dev``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_dev_shows_one_invoice_per_sample_tenant(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        {
            # Isolated from other runs: own topics, group, data and state; the shared broker.
            "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "PIPELINE_TOPIC_EVENTS": f"{unique_name}.events",
            "PIPELINE_TOPIC_QUARANTINE": f"{unique_name}.quarantine",
            "PIPELINE_TOPIC_DEAD_LETTERS": f"{unique_name}.dlq",
            "PIPELINE_WORKER_GROUP_ID": unique_name,
            "PIPELINE_CLICKHOUSE_DATA_DIR": str(tmp_path / "clickhouse"),
            "PIPELINE_STATE_DIR": str(tmp_path / "state"),
            "PIPELINE_INGEST_PORT": "0",
        }
    )
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
