"""Noise of repeated bench measurements: median, range, relative spread, ratios of medians.

Pure functions over the numbers of individual runs. A :class:`Measure` is one quantity (say, edge
events/s) measured ``n`` times; the bench reports its median, its range (min-max) and its
relative spread ``(max - min) / median``. Two results differ by more than noise only when their
ranges do not overlap. Ratios between measures are ratios of medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Measure:
    """One quantity measured in ``runs`` (one value per run, in run order)."""

    key: str
    """JSON name, e.g. ``edge_events_per_s``."""
    label: str
    """What the table calls it, e.g. ``ingest edge, 1 process``."""
    unit: str
    runs: tuple[float, ...]
    note: str = ""
    """Where the runs come from when they are not whole repeats (e.g. windows of one run)."""

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError(f"measure {self.key!r} has no runs", key=self.key)

    @property
    def median(self) -> float:
        return float(statistics.median(self.runs))

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)

    @property
    def spread_pct(self) -> float | None:
        """``(max - min) / median`` in percent; ``None`` for one run or a zero median."""
        if len(self.runs) < 2 or self.median == 0:
            return None
        return 100 * (self.high - self.low) / abs(self.median)

    @property
    def stdev(self) -> float | None:
        """Sample standard deviation; ``None`` for one run."""
        return statistics.stdev(self.runs) if len(self.runs) > 1 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread_pct": self.spread_pct,
            "stdev": self.stdev,
            "runs": list(self.runs),
            "note": self.note,
        }


def measure(
    key: str, label: str, unit: str, runs: Sequence[float | None], note: str = ""
) -> Measure | None:
    """A :class:`Measure` of the known values in ``runs``; ``None`` when none is known."""
    known = tuple(float(value) for value in runs if value is not None)
    return Measure(key, label, unit, known, note) if known else None


def ratio(numerator: Measure, denominator: Measure) -> float | None:
    """Median over median; ``None`` when the denominator's median is zero."""
    return numerator.median / denominator.median if denominator.median else None


def window_rates(samples: Sequence[tuple[float, int]], window_s: float) -> list[float]:
    """Rates (count per second) over consecutive windows of at least ``window_s`` seconds.

    ``samples`` are ``(seconds, cumulative count)`` in time order. A window closes at the first
    sample ``window_s`` or more after it opened; a last window shorter than that is left out.
    """
    if window_s <= 0:
        raise ConfigError("the rate window must be positive", window_s=window_s)
    rates: list[float] = []
    if not samples:
        return rates
    opened_at, opened_count = samples[0]
    for at, count in samples[1:]:
        if at - opened_at >= window_s:
            rates.append((count - opened_count) / (at - opened_at))
            opened_at, opened_count = at, count
    return rates


@dataclass(frozen=True)
class Ratio:
    """A ratio of two measures' medians, e.g. worker / bare consume."""

    key: str
    label: str
    value: float | None

    @classmethod
    def of(
        cls, key: str, label: str, numerator: Measure | None, denominator: Measure | None
    ) -> Ratio:
        if numerator is None or denominator is None:
            return cls(key, label, None)
        return cls(key, label, ratio(numerator, denominator))
