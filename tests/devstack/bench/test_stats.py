"""Noise of repeated measurements: medians, ranges, spreads, ratios, window rates."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.devstack.bench.stats import Measure, Ratio, measure, ratio, window_rates
from pipeline.errors import ConfigError


def test_a_measure_reports_median_range_relative_spread_and_stdev() -> None:
    m = Measure("edge_events_per_s", "ingest edge", "events/s", (8_000.0, 10_000.0, 9_000.0))
    assert (m.median, m.low, m.high) == (9_000.0, 8_000.0, 10_000.0)
    assert m.spread_pct == pytest.approx(100 * 2_000 / 9_000)
    assert m.stdev == pytest.approx(1_000.0)
    doc = m.to_json()
    assert doc["runs"] == [8_000.0, 10_000.0, 9_000.0]  # every run, in run order
    assert (doc["median"], doc["min"], doc["max"]) == (9_000.0, 8_000.0, 10_000.0)
    assert doc["unit"] == "events/s" and doc["label"] == "ingest edge"


def test_even_count_median_is_the_mean_of_the_middle_two() -> None:
    assert Measure("k", "l", "ms", (1.0, 2.0, 4.0, 10.0)).median == 3.0


def test_one_run_has_no_spread_and_no_stdev() -> None:
    m = Measure("worker", "worker", "events/s", (4_200.0,))
    assert m.median == m.low == m.high == 4_200.0
    assert m.spread_pct is None and m.stdev is None


def test_zero_median_has_no_relative_spread() -> None:
    assert Measure("k", "l", "s", (0.0, 0.0, 0.0)).spread_pct is None


def test_a_measure_without_runs_is_refused() -> None:
    with pytest.raises(ConfigError, match="no runs"):
        Measure("k", "l", "s", ())


def test_measure_keeps_known_values_and_gives_none_when_nothing_is_known() -> None:
    m = measure("rss", "peak RSS", "MiB", [None, 10, 30.5])
    assert m is not None and m.runs == (10.0, 30.5)
    assert measure("rss", "peak RSS", "MiB", [None, None]) is None
    assert measure("rss", "peak RSS", "MiB", []) is None


def test_ratios_divide_medians() -> None:
    worker = Measure("w", "worker", "events/s", (1_000.0, 3_000.0, 2_000.0))
    consume = Measure("c", "consume", "events/s", (100_000.0, 200_000.0, 400_000.0))
    assert ratio(worker, consume) == pytest.approx(0.01)
    assert Ratio.of("w_c", "worker / consume", worker, consume).value == pytest.approx(0.01)
    assert Ratio.of("w_c", "worker / consume", worker, None).value is None
    assert ratio(worker, Measure("z", "zero", "events/s", (0.0,))) is None


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=30))
def test_median_lies_in_the_range_and_the_spread_is_never_negative(values: list[float]) -> None:
    m = Measure("k", "l", "u", tuple(values))
    assert m.low <= m.median <= m.high
    assert m.median == statistics.median(values)
    if m.spread_pct is not None:
        assert m.spread_pct >= 0


def test_window_rates_at_a_steady_pace_are_all_that_pace() -> None:
    samples = [(t * 0.25, int(t * 0.25 * 1_000)) for t in range(0, 81)]  # 20 s at 1,000/s
    rates = window_rates(samples, 5.0)
    assert len(rates) == 4 and all(r == pytest.approx(1_000.0) for r in rates)


def test_window_rates_leave_out_a_short_last_window_and_see_a_slowdown() -> None:
    samples = [(0.0, 0), (5.0, 10_000), (10.0, 20_000), (15.0, 25_000), (17.0, 26_000)]
    assert window_rates(samples, 5.0) == [2_000.0, 2_000.0, 1_000.0]


def test_window_rates_of_too_few_samples_are_empty_and_a_bad_window_is_refused() -> None:
    assert window_rates([], 5.0) == []
    assert window_rates([(0.0, 5)], 5.0) == []
    assert window_rates([(0.0, 5), (4.9, 500)], 5.0) == []
    with pytest.raises(ConfigError):
        window_rates([(0.0, 0)], 0.0)


@given(
    st.lists(
        st.tuples(st.floats(min_value=0.01, max_value=3.0), st.integers(0, 5_000)),
        min_size=1,
        max_size=60,
    ),
    st.floats(min_value=0.5, max_value=10.0),
)
def test_windows_cover_the_count_up_to_the_last_closed_window(
    steps: list[tuple[float, int]], window_s: float
) -> None:
    samples, at, count = [(0.0, 0)], 0.0, 0
    for gap, more in steps:
        at, count = at + gap, count + more
        samples.append((at, count))
    rates = window_rates(samples, window_s)
    assert all(rate >= 0 for rate in rates)
    assert len(rates) <= int(at / window_s)
    # each window is at least window_s long, so the rates times their lengths add up to at
    # most the whole count
    assert sum(rates) * window_s <= count + 1e-6 * max(count, 1)
