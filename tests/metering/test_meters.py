"""Meter entries per metric and period quantities, exact decimals throughout."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog import Aggregation, Product
from pipeline.metering import (
    MeterEntry,
    MeterError,
    MeterProblem,
    aggregate_quantity,
    meter_entries,
    product_meters,
)
from pipeline.rating import metric_quantity_from_raw
from tests.support.builders import make_event

PRODUCT = Product.model_validate(
    {
        "id": "payments",
        "match": [{"gateway": "kong", "api": "payments-svc"}],
        "metrics": [
            {"id": "calls", "aggregation": "count", "where": {"status": {"lt": 500}}},
            {
                "id": "egress_gb",
                "aggregation": "sum",
                "field": "response_bytes",
                "divide_by": 10**9,
            },
            {"id": "tokens", "aggregation": "sum", "field": "attributes.tokens"},
            {"id": "active_apps", "aggregation": "unique_count", "field": "consumer"},
            {"id": "peak_latency", "aggregation": "max", "field": "latency_ms"},
            {"id": "statuses", "aggregation": "unique_count", "field": "status"},
        ],
    }
)
GB = Decimal(10**9)
ONE = Decimal(1)


def by_metric(**event: Any) -> dict[str, MeterEntry | MeterProblem]:
    entries = meter_entries(PRODUCT, make_event(**event))
    result = {entry.metric_id: entry for entry in entries}
    assert len(result) == len(entries)
    return result


def test_entries_of_a_full_event() -> None:
    entries = by_metric(
        status=201,
        response_bytes=2048,
        latency_ms=35,
        consumer="app-1",
        attributes={"tokens": "1500"},
    )
    assert entries == {
        "calls": MeterEntry("calls", "count", ONE, None, ONE),
        "egress_gb": MeterEntry("egress_gb", "sum", Decimal(2048), None, GB),
        "tokens": MeterEntry("tokens", "sum", Decimal(1500), None, ONE),
        "active_apps": MeterEntry("active_apps", "unique_count", None, "app-1", ONE),
        "peak_latency": MeterEntry("peak_latency", "max", Decimal(35), None, ONE),
        "statuses": MeterEntry("statuses", "unique_count", None, "201", ONE),
    }
    for entry in entries.values():
        assert isinstance(entry, MeterEntry)
        assert entry.value is None or type(entry.value) is Decimal


def test_null_fields_give_no_entry_but_count_still_counts() -> None:
    entries = by_metric(status=None, response_bytes=None, latency_ms=None, consumer=None)
    assert set(entries) == set()  # status null: lt 500 does not hold; the rest are null
    entries = by_metric(response_bytes=None, latency_ms=None, consumer=None, attributes={})
    assert set(entries) == {"calls", "statuses"}


def test_where_false_skips_only_its_metric() -> None:
    entries = by_metric(status=503)
    assert "calls" not in entries
    assert entries["statuses"] == MeterEntry("statuses", "unique_count", None, "503", ONE)


@pytest.mark.parametrize("text", ["1.5k", "", "NaN", "1e3", "twelve"])
def test_attribute_that_is_not_a_number_is_a_problem_not_an_error(text: str) -> None:
    problem = by_metric(attributes={"tokens": text})["tokens"]
    assert isinstance(problem, MeterProblem)
    assert (problem.metric_id, problem.field, problem.value) == (
        "tokens",
        "attributes.tokens",
        text,
    )
    assert "not a decimal number" in problem.detail
    assert isinstance(by_metric(attributes={"tokens": text})["calls"], MeterEntry)


def test_negative_quantity_is_a_problem() -> None:
    problem = by_metric(attributes={"tokens": "-5"})["tokens"]
    assert isinstance(problem, MeterProblem)
    assert "negative" in problem.detail


def test_attribute_numbers_keep_their_exact_value() -> None:
    entry = by_metric(attributes={"tokens": " 0.1 "})["tokens"]
    assert entry == MeterEntry("tokens", "sum", Decimal("0.1"), None, ONE)


def test_compiled_product_is_reused() -> None:
    assert product_meters(PRODUCT) is product_meters(PRODUCT)


def entries_of(
    aggregation: Aggregation, values: list[Any], divide_by: Decimal = ONE
) -> list[MeterEntry]:
    if aggregation == "unique_count":
        return [MeterEntry("m", aggregation, None, v, divide_by) for v in values]
    return [MeterEntry("m", aggregation, v, None, divide_by) for v in values]


def test_aggregate_quantity_per_aggregation() -> None:
    assert aggregate_quantity("count", entries_of("count", [ONE] * 7)) == 7
    assert aggregate_quantity("count", []) == 0
    assert aggregate_quantity("sum", entries_of("sum", [Decimal("0.1")] * 3)) == Decimal("0.3")
    assert aggregate_quantity("max", entries_of("max", [Decimal(3), Decimal(9), Decimal(4)])) == 9
    assert aggregate_quantity("max", []) == 0
    distinct = ["a", "b", "a", None, "c", "b"]
    assert aggregate_quantity("unique_count", entries_of("unique_count", distinct)) == 3
    assert aggregate_quantity("unique_count", []) == 0


def test_sum_is_divided_once_at_the_end() -> None:
    # 3 x 1 byte / 1e9: dividing each entry first would also be exact here, but 1/3 shows it:
    thirds = entries_of("sum", [ONE, ONE, ONE], Decimal(3))
    assert aggregate_quantity("sum", thirds) == ONE
    bytes_ = entries_of("sum", [Decimal(1), Decimal(2), Decimal(999_999_997)], GB)
    assert aggregate_quantity("sum", bytes_) == ONE
    assert (
        str(aggregate_quantity("sum", entries_of("sum", [Decimal(1234567)], GB))) == "0.001234567"
    )


@given(st.lists(st.integers(0, 10**13), max_size=60))
def test_egress_gb_is_exact(sizes: list[int]) -> None:
    entries = entries_of("sum", [Decimal(s) for s in sizes], GB)
    quantity = aggregate_quantity("sum", entries)
    assert quantity == Decimal(sum(sizes)) / GB
    assert quantity * GB == sum(sizes)
    assert quantity == metric_quantity_from_raw("sum", Decimal(sum(sizes)), GB)


@given(
    st.sampled_from(["count", "sum", "max", "unique_count"]),
    st.lists(st.decimals(min_value=0, max_value=10**9, places=4), max_size=30),
    st.decimals(min_value=Decimal("0.001"), max_value=10**9, places=3),
)
def test_agrees_with_the_invoice_arithmetic(
    aggregation: Aggregation, values: list[Decimal], divide_by: Decimal
) -> None:
    if aggregation == "count":
        entries = entries_of("count", [ONE] * len(values), divide_by)
        raw: Decimal | int = len(values)
    elif aggregation == "unique_count":
        texts = [str(v) for v in values]
        entries = entries_of("unique_count", texts, divide_by)
        raw = len(set(texts))
    else:
        entries = entries_of(aggregation, values, divide_by)
        raw = sum(values, Decimal(0)) if aggregation == "sum" else max(values, default=Decimal(0))
    assert aggregate_quantity(aggregation, entries) == metric_quantity_from_raw(
        aggregation, raw, divide_by
    )


def test_entries_of_different_metrics_are_refused() -> None:
    mixed = [MeterEntry("a", "sum", ONE, None, ONE), MeterEntry("a", "sum", ONE, None, GB)]
    with pytest.raises(MeterError, match="disagree on divide_by"):
        aggregate_quantity("sum", mixed)
    with pytest.raises(MeterError, match="not max"):
        aggregate_quantity("max", [MeterEntry("a", "sum", ONE, None, ONE)])


def test_absurd_totals_raise_instead_of_rounding() -> None:
    huge = [
        MeterEntry("m", "sum", Decimal("1" + "0" * 79), None, ONE),
        MeterEntry("m", "sum", Decimal("0.5"), None, ONE),
    ]
    with pytest.raises(MeterError, match="significant digits"):
        aggregate_quantity("sum", huge)


def test_metrics_can_name_the_first_raw_tenant_header() -> None:
    """the contract's canonical field ``tenant_header`` is the first raw X-Tenant-Id value."""
    product = Product.model_validate(
        {
            "id": "p",
            "match": [{"gateway": "kong", "api": "payments-svc"}],
            "metrics": [
                {"id": "legacy_calls", "aggregation": "count",
                 "where": {"tenant_header": {"eq": "ACME-LEGACY"}}},
                {"id": "spellings", "aggregation": "unique_count",
                 "field": "tenant_header"},
            ],
        }
    )  # fmt: skip
    legacy = meter_entries(product, make_event(tenant_headers=("ACME-LEGACY", "acme")))
    assert {entry.metric_id: entry for entry in legacy} == {
        "legacy_calls": MeterEntry("legacy_calls", "count", ONE, None, ONE),
        "spellings": MeterEntry("spellings", "unique_count", None, "ACME-LEGACY", ONE),
    }
    plain = meter_entries(product, make_event(tenant_headers=("acme",)))
    assert [entry.metric_id for entry in plain] == ["spellings"]
    assert meter_entries(product, make_event(tenant_headers=())) == []
