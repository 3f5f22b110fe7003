"""The bench command's options, measures, checks and CLI wiring (no infrastructure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.devstack.bench import report
from pipeline.devstack.bench.report import BenchOptions, build_checks, build_measures, build_ratios
from pipeline.errors import ConfigError
from pipeline.settings import Settings


def _ingest(
    events_per_s: float, p50: float, edge_rss: list[float], failed: int = 0
) -> dict[str, Any]:
    return {
        "events_per_s": events_per_s,
        "p50_ms": p50,
        "p99_ms": 2 * p50,
        "edge_peak_rss_mb": edge_rss,
        "failed_batches": failed,
        "events_accepted": 20_000 - 100 * failed,
        "bench_peak_rss_mb": 80.0,
    }


def _loop(events_per_s: float, rss: float | None = 90.0) -> dict[str, Any]:
    return {"events_per_s": events_per_s, "bench_peak_rss_mb": rss}


def _worker(events_per_s: float, *, exact: bool = True, events: int = 20_000) -> dict[str, Any]:
    return {
        "events": events,
        "events_per_s": events_per_s,
        "startup_seconds": 3.0,
        "peak_rss_mb": 444.0,
        "window_rates": [4_000.0, 4_400.0],
        "exact": exact,
        "worker_cpu_us_per_event": 40.0,
        "clickhouse_cpu_us_per_event": 15.0,
        "clickhouse_peak_rss_mb": 600.0,
    }


def _runs(**overrides: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    runs = {
        "ingest": [_ingest(7_000, 50, [68.0]), _ingest(8_000, 40, [70.0])],
        "produce": [_loop(30_000), _loop(32_000)],
        "consume": [_loop(150_000), _loop(170_000, None)],
        "worker": [_worker(4_000)],
    }
    return {**runs, **overrides}


def test_defaults_are_the_issues_million_events_and_three_repeats() -> None:
    options = BenchOptions()
    assert (options.worker_events, options.duplicate_share, options.repeat) == (1_000_000, 0.05, 3)
    assert options.worker_repeat == 1


@pytest.mark.parametrize(
    "bad", [{"repeat": 0}, {"worker_repeat": 0}, {"ingest_batches": -1}, {"duplicate_share": 1.0}]
)
def test_nonsense_options_are_refused_with_the_offending_field(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        BenchOptions(**bad)
    assert set(bad) <= set(caught.value.fields)


def test_measures_take_every_run_and_label_peak_memory_per_process() -> None:
    measures = {m.key: m for m in build_measures(BenchOptions(), _runs(), records_mb=8.0)}
    assert measures["edge_events_per_s"].runs == (7_000.0, 8_000.0)
    assert measures["edge_p99_ms"].runs == (100.0, 80.0)
    assert measures["consume_events_per_s"].median == 160_000.0
    assert measures["worker_events_per_s"].runs == (4_000.0,)
    assert measures["worker_window_events_per_s"].runs == (4_000.0, 4_400.0)
    assert "within a run" in measures["worker_window_events_per_s"].note
    assert measures["edge_peak_rss_mb"].runs == (68.0, 70.0)
    assert measures["worker_peak_rss_mb"].runs == (444.0,)
    assert measures["worker_cpu_us_per_event"].runs == (40.0,)
    assert measures["clickhouse_cpu_us_per_event"].runs == (15.0,)
    assert measures["clickhouse_peak_rss_mb"].runs == (600.0,)
    # a configured server is not measured: its rows are left out, not shown as zero
    remote = _worker(4_000)
    for key in ("clickhouse_cpu_us_per_event", "clickhouse_peak_rss_mb"):
        remote[key] = None
    remote_keys = {m.key for m in build_measures(BenchOptions(), _runs(worker=[remote]), 8.0)}
    assert "clickhouse_peak_rss_mb" not in remote_keys and "worker_cpu_us_per_event" in remote_keys
    # produce and consume runs; an unknown peak is left out, not counted as zero
    assert measures["bench_loops_peak_rss_mb"].runs == (90.0, 90.0, 90.0)
    assert "8 MiB" in measures["bench_loops_peak_rss_mb"].note


def test_ratios_set_each_stage_against_its_bare_loop_by_medians() -> None:
    ratios = {r.key: r.value for r in build_ratios(build_measures(BenchOptions(), _runs(), 8.0))}
    assert ratios["worker_over_bare_consume"] == pytest.approx(4_000 / 160_000)
    assert ratios["edge_over_bare_produce"] == pytest.approx(7_500 / 31_000)
    no_worker = build_ratios(build_measures(BenchOptions(), _runs(worker=[]), 8.0))
    assert [r.value for r in no_worker] == [None, pytest.approx(7_500 / 31_000)]


def test_rows_without_any_value_are_left_out() -> None:
    keys = {m.key for m in build_measures(BenchOptions(), _runs(worker=[]), records_mb=None)}
    assert "worker_events_per_s" not in keys and "worker_peak_rss_mb" not in keys
    assert "edge_events_per_s" in keys


def test_checks_fail_on_inexact_worker_rows_a_short_topic_or_refused_batches() -> None:
    options = BenchOptions(worker_events=20_000, ingest_batches=200)
    assert all(ok for _, ok in build_checks(options, _runs()).values())
    inexact = build_checks(options, _runs(worker=[_worker(1), _worker(1, exact=False)]))
    assert inexact["worker_exact"] == (
        "worker rows exact (all 20,000 copies logged, every unique event once) in 1/2 run(s)",
        False,
    )
    short = build_checks(options, _runs(worker=[_worker(1, events=19_999)]))
    assert not short["worker_exact"][1]
    refused = build_checks(options, _runs(ingest=[_ingest(1, 1, [1.0], failed=2)]))
    assert refused["edge_accepted_all"] == (
        "edge accepted 19,800/20,000 events (2 batches refused)",
        False,
    )
    # a 202 that accepted nothing (every event rejected) is no throughput either
    rejected = {**_ingest(1, 1, [1.0]), "events_accepted": 0}
    assert not build_checks(options, _runs(ingest=[rejected]))["edge_accepted_all"][1]


def test_the_cli_hands_its_flags_to_the_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BenchOptions] = []

    def fake_run(settings: Settings, options: BenchOptions, say: Any = print) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(report, "run_bench", fake_run)
    argv = ["bench", "--ingest-batches", "200", "--worker-events", "20000", "--repeat", "5"]
    assert cli.main([*argv, "--worker-repeat", "2", "--json-out", "/tmp/x.json"]) == 0
    [options] = seen
    assert (options.ingest_batches, options.worker_events, options.repeat) == (200, 20_000, 5)
    assert options.worker_repeat == 2 and options.json_out == Path("/tmp/x.json")
    assert cli.main(["bench"]) == 0 and seen[-1] == BenchOptions()
