"""The bench's table and JSON document: what a reader sees, and every run kept."""

from __future__ import annotations

import orjson
import pytest

from pipeline.devstack.bench.stats import Measure, Ratio
from pipeline.devstack.bench.table import (
    HOW_TO_READ,
    SCHEMA,
    bench_document,
    format_number,
    render_table,
    table_rows,
)

EDGE = Measure("edge_events_per_s", "ingest edge", "events/s", (7_873.4, 6_935.0, 6_766.9))
P99 = Measure("edge_p99_ms", "  latency p99", "ms", (98.3, 106.1, 130.4))
WORKER = Measure("worker_events_per_s", "worker end to end", "events/s", (4_278.0,))
WINDOWS = Measure("worker_windows", "  per window", "events/s", (4_000.0, 4_500.0), note="within")


@pytest.mark.parametrize(
    ("value", "text"),
    [(176_261.4, "176,261"), (100.0, "100"), (54.66, "54.7"), (3.4099, "3.41"), (0.0, "0.00")],
)
def test_numbers_get_separators_and_a_precision_that_suits_their_size(
    value: float, text: str
) -> None:
    assert format_number(value) == text


def test_rows_show_median_range_and_spread_or_say_there_was_one_run() -> None:
    edge, worker, windows = table_rows([EDGE, WORKER, WINDOWS])
    assert edge == ("ingest edge", "events/s", "3", "6,935", "6,767 - 7,873", "16.0%")
    assert worker == ("worker end to end", "events/s", "1", "4,278", "-", "1 run")
    assert windows[0] == "  per window *"  # a note is marked and printed below the table
    [zero] = table_rows([Measure("k", "edge", "events/s", (0.0, 0.0, 7_000.0))])
    assert zero[2:] == ("3", "0.00", "0.00 - 7,000", "n/a")  # no relative spread around 0


def test_the_table_lines_up_and_ends_with_ratios_checks_and_how_to_read_it() -> None:
    ratios = [Ratio("w", "worker / bare consume", 0.0243), Ratio("e", "edge / produce", None)]
    lines = render_table([EDGE, P99, WORKER, WINDOWS], ratios, ["worker rows exact in 1/1 run(s)"])
    header, rule, *rows = lines[:6]
    assert header.split() == ["measure", "unit", "runs", "median", "min", "-", "max", "spread"]
    assert set(rule.replace(" ", "")) == {"-"}
    # right-aligned numbers: every row's median ends where the header's "median" ends
    end = header.index("median") + len("median")
    for row, m in zip(rows, [EDGE, P99, WORKER, WINDOWS], strict=True):
        assert row[:end].endswith(format_number(m.median)), row
    assert "  * " in lines[6] and "within" in lines[6]
    assert lines[7] == "Ratios of medians: worker / bare consume = 0.024; edge / produce = n/a"
    assert lines[8] == "Check: worker rows exact in 1/1 run(s)"
    assert lines[-1] == HOW_TO_READ and HOW_TO_READ.startswith("How to read this:")


def test_the_json_document_holds_every_measure_ratio_check_and_run() -> None:
    runs = {"ingest": [{"events_per_s": 7_873.4}, {"events_per_s": 6_935.0}], "worker": []}
    document = bench_document(
        machine={"cpus": 2},
        options={"repeat": 3},
        measures=[EDGE, WORKER],
        ratios=[Ratio("worker_over_bare_consume", "worker / bare consume", 0.02)],
        runs=runs,
        checks={"worker_exact": {"text": "exact", "ok": True}},
        started_at="2026-11-27T20:19:48+00:00",
        duration_s=27.5,
    )
    assert document["schema"] == SCHEMA
    assert set(document) == {
        "schema", "started_at", "duration_s", "machine", "options", "measures", "ratios",
        "checks", "runs", "how_to_read",
    }  # fmt: skip
    assert document["measures"]["edge_events_per_s"]["runs"] == [7_873.4, 6_935.0, 6_766.9]
    assert document["measures"]["worker_events_per_s"]["spread_pct"] is None
    assert document["ratios"]["worker_over_bare_consume"]["value"] == 0.02
    assert document["runs"] == runs and document["runs"]["ingest"] is not runs["ingest"]
    assert orjson.loads(orjson.dumps(document)) == document  # plain JSON all the way down
