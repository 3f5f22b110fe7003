"""In-memory run totals agree with the metering core's own aggregation (pure)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog import Aggregation
from pipeline.metering import MeterEntry, aggregate_quantity
from pipeline.replay import ReplayError, RunTotals

VALUES = st.decimals(min_value=0, max_value=10**12, places=9, allow_nan=False)


def row(tenant: str, metric: str, aggregation: str, **more: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "product": "payments",
        "metric": metric,
        "aggregation": aggregation,
        "value": more.get("value"),
        "distinct_value": more.get("distinct_value"),
        "divide_by": more.get("divide_by", D(1)),
    }


@given(
    st.sampled_from(["count", "sum", "max"]),
    st.lists(VALUES, max_size=30),
    st.sampled_from([D(1), D(1000), D("1E9"), D(3)]),
)
def test_numeric_totals_match_aggregate_quantity(
    aggregation: Aggregation, values: list[D], divide_by: D
) -> None:
    if aggregation == "count":
        values = [D(1)] * len(values)
    totals = RunTotals()
    totals.add_entries(
        [row("acme", "m", aggregation, value=v, divide_by=divide_by) for v in values]
    )
    entries = [MeterEntry("m", aggregation, v, None, divide_by) for v in values]
    expected = aggregate_quantity(aggregation, entries)
    assert totals.quantities("acme") == ({("payments", "m"): expected} if values else {})
    assert totals.quantities("globex") == {}


@given(st.lists(st.sampled_from(["app-1", "app-2", "app-3", "APP-1"]), max_size=20))
def test_unique_counts_count_distinct_values(values: list[str]) -> None:
    totals = RunTotals()
    totals.add_entries([row("acme", "apps", "unique_count", distinct_value=v) for v in values])
    totals.add_usage([{"tenant": "acme"}, {"tenant": "globex"}])
    if values:
        assert totals.quantities("acme") == {("payments", "apps"): D(len(set(values)))}
    assert totals.tenants() == {"acme", "globex"}
    assert totals.entry_count() == len(values)


def test_entries_of_one_metric_must_agree_and_be_known() -> None:
    totals = RunTotals()
    totals.add_entries([row("acme", "m", "sum", value=D(1))])
    with pytest.raises(ReplayError, match=r"payments/m for tenant acme disagree"):
        totals.add_entries([row("acme", "m", "max", value=D(1))])
    with pytest.raises(ReplayError, match="unknown aggregation 'median'"):
        totals.add_entries([row("acme", "x", "median", value=D(1))])


def test_sums_are_exact_beyond_the_default_decimal_precision() -> None:
    totals = RunTotals()
    big = D("123456789012345678901234567.123456789")
    totals.add_entries([row("acme", "m", "sum", value=big), row("acme", "m", "sum", value=big)])
    exact = D("246913578024691357802469134.246913578")
    assert big * 2 != exact  # the default context (28 digits) would have rounded it
    assert totals.quantities("acme") == {("payments", "m"): exact}
