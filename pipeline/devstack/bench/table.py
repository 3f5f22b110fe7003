"""The bench's outputs: a plain-text table of medians and spreads, and its JSON document.

Pure formatting: the numbers come from :mod:`pipeline.devstack.bench.stats`; nothing here measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.devstack.bench.stats import Measure, Ratio

#: version of the JSON document's shape; bump it when a field changes meaning or moves
SCHEMA = "pipeline-bench/2"

HOW_TO_READ = (
    "How to read this: median of the runs; min - max is their range and spread = "
    "(max - min) / median. A difference smaller than the spread is noise (results differ only "
    "when their ranges do not overlap); ratios divide medians, 1.0 = as fast as bare Kafka."
)

_HEADERS = ("measure", "unit", "runs", "median", "min - max", "spread")


def format_number(value: float) -> str:
    """Thousands separators and a precision that suits the size: 8,412 / 41.3 / 0.27."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table_rows(measures: Sequence[Measure]) -> list[tuple[str, ...]]:
    """One row of cells per measure, in the order of :data:`_HEADERS`."""
    rows: list[tuple[str, ...]] = []
    for m in measures:
        several = len(m.runs) > 1
        span = f"{format_number(m.low)} - {format_number(m.high)}" if several else "-"
        spread = f"{m.spread_pct:.1f}%" if m.spread_pct is not None else "n/a"
        spread = spread if several else "1 run"
        label = f"{m.label} *" if m.note else m.label
        rows.append((label, m.unit, str(len(m.runs)), format_number(m.median), span, spread))
    return rows


def render_table(
    measures: Sequence[Measure], ratios: Sequence[Ratio], checks: Sequence[str] = ()
) -> list[str]:
    """The table, its footnotes, the ratios, the checks and the how-to-read hint, as lines."""
    rows = [_HEADERS, *table_rows(measures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    lines = []
    for number, row in enumerate(rows):
        label, *numbers = row
        cells = [label.ljust(widths[0]), numbers[0].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(numbers[1:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines += [f"  * {m.label.strip()}: {m.note}" for m in measures if m.note]
    if ratios:
        shown = "; ".join(
            f"{r.label} = {'n/a' if r.value is None else f'{r.value:.3f}'}" for r in ratios
        )
        lines.append(f"Ratios of medians: {shown}")
    lines += [f"Check: {check}" for check in checks]
    lines.append(HOW_TO_READ)
    return lines


def bench_document(
    *,
    machine: Mapping[str, Any],
    options: Mapping[str, Any],
    measures: Sequence[Measure],
    ratios: Sequence[Ratio],
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    checks: Mapping[str, Any],
    started_at: str,
    duration_s: float,
) -> dict[str, Any]:
    """The JSON document: every measure with its individual runs, and every run in full."""
    return {
        "schema": SCHEMA,
        "started_at": started_at,
        "duration_s": duration_s,
        "machine": dict(machine),
        "options": dict(options),
        "measures": {m.key: m.to_json() for m in measures},
        "ratios": {r.key: {"label": r.label, "value": r.value} for r in ratios},
        "checks": dict(checks),
        "runs": {name: [dict(run) for run in entries] for name, entries in runs.items()},
        "how_to_read": HOW_TO_READ,
    }
