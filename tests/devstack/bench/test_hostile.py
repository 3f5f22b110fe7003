"""A small attack campaign against a real edge, worker, Kafka and ClickHouse: nothing a client
sends crashes a process, answers 5xx (other than 503 busy) or stalls a partition."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from pipeline.devstack.bench.hostile import STALLED_UPLOADS, run_hostile
from pipeline.settings import Settings
from tests.ingest.test_service import REPO_RULES


@pytest.mark.integration
def test_a_small_campaign_passes_and_reports_every_measure(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        clickhouse_url=SecretStr(clickhouse_url),
        rules_dir=REPO_RULES,
    )
    said: list[str] = []
    out = tmp_path / "hostile.json"
    assert (
        run_hostile(
            settings, bodies=600, clients=4, poison_records=300, json_out=out, say=said.append
        )
        == 0
    ), "\n".join(said[-40:])
    report = orjson.loads(out.read_bytes())
    assert report["passed"] and report["other_5xx"] == [] and report["worker_restarts"] == 0
    assert report["stalled_partitions"] == {} and report["edge_alive"]
    assert report["stalled_408"] == STALLED_UPLOADS
    assert report["poison_records"] == 300
    assert report["saturated_503"] > 0  # the burst went past the concurrency limit
    assert {"413", "400", "401", "202"} <= set(report["statuses"])
    kinds = {reason.split(":")[0] for reason in report["dead_letters"]}
    assert {"event", "body", "record"} <= kinds  # the edge's and the worker's dead letters
    assert report["edge_peak_rss_mb"] < 512
