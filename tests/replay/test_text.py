"""Text helpers of the reports (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pipeline.replay.text import quantity, signed_quantity, table, timestamp


def test_quantities_drop_padding_and_exponents() -> None:
    assert quantity(D("15000.000000000")) == "15000"
    assert quantity(D("1.500000000")) == "1.5"
    assert quantity(D("1E+3")) == "1000"
    assert quantity(None) == "-"
    assert signed_quantity(D(3)) == "+3"
    assert signed_quantity(D("-0.25")) == "-0.25"
    assert signed_quantity(D(0)) == "0"


@given(st.decimals(min_value=-(10**30), max_value=10**30, places=9))
def test_a_quantity_reads_back_as_itself(value: D) -> None:
    assert D(quantity(value)) == value


def test_table_aligns_text_left_and_numbers_right() -> None:
    lines = table(["gateway", "events"], [["kong", "5"], ["mulesoft", "120"]], indent="  ")
    assert lines == ["  gateway   events", "  kong           5", "  mulesoft     120"]
    assert table(["a", "b"], [["xx", "y"]], align="ll") == ["a   b", "xx  y"]


def test_timestamps_are_utc_with_microseconds() -> None:
    assert timestamp(datetime(2026, 3, 1, 9, 5, tzinfo=UTC)) == "2026-03-01T09:05:00.000000Z"
