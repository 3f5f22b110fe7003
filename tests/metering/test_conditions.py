"""``where`` semantics: every operator, numbers vs text, null, non-numbers (see conditions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog import Product
from pipeline.metering import MeterEntry, MeterProblem, meter_entries, parse_number
from pipeline.metering.conditions import as_number, as_text
from tests.support.builders import make_event


def counts(where: dict[str, Any], **event: Any) -> bool:
    """Whether a count metric with this ``where`` counts the event (problems: AssertionError)."""
    product = Product.model_validate(
        {
            "id": "p",
            "match": [{"gateway": "kong", "api": "x"}],
            "metrics": [{"id": "calls", "aggregation": "count", "where": where}],
        }
    )
    entries = meter_entries(product, make_event(**event))
    assert all(isinstance(e, MeterEntry) for e in entries), entries
    return len(entries) == 1


def problems(where: dict[str, Any], **event: Any) -> list[MeterProblem]:
    product = Product.model_validate(
        {
            "id": "p",
            "match": [{"gateway": "kong", "api": "x"}],
            "metrics": [{"id": "calls", "aggregation": "count", "where": where}],
        }
    )
    return [e for e in meter_entries(product, make_event(**event)) if isinstance(e, MeterProblem)]


@pytest.mark.parametrize(
    ("condition", "status", "expected"),
    [
        ({"eq": 200}, 200, True),
        ({"eq": 200}, 201, False),
        ({"eq": "200"}, 200, True),  # text of 200 is "200"
        ({"eq": 200.0}, 200, True),
        ({"ne": 200}, 200, False),
        ({"ne": 200}, 500, True),
        ({"in": [200, 201]}, 201, True),
        ({"in": [200, 201]}, 204, False),
        ({"not_in": [500, 502]}, 502, False),
        ({"not_in": [500, 502]}, 200, True),
        ({"lt": 500}, 499, True),
        ({"lt": 500}, 500, False),
        ({"lte": 500}, 500, True),
        ({"lte": 500}, 501, False),
        ({"gt": 399}, 400, True),
        ({"gt": 399}, 399, False),
        ({"gte": "399.5"}, 400, True),
        ({"gte": 400}, 399, False),
        ({"gte": 200, "lt": 300}, 204, True),  # all operators must hold
        ({"gte": 200, "lt": 300}, 302, False),
        ({"gte": 200, "ne": 204}, 204, False),
    ],
)
def test_operators_on_a_number_field(
    condition: dict[str, Any], status: int, expected: bool
) -> None:
    assert counts({"status": condition}, status=status) is expected


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ({"eq": 200}, "200", True),  # attribute text "200" eq number 200
        ({"eq": 200}, " 200.00 ", True),
        ({"eq": 200}, "2e2", False),  # plain decimals only
        ({"eq": 200}, "two hundred", False),
        ({"ne": 200}, "abc", True),
        ({"in": [1, 2]}, "2.0", True),
        ({"eq": "gpt-4"}, "gpt-4", True),
        ({"eq": "gpt-4"}, "GPT-4", False),  # text is case-sensitive
        ({"in": ["a", 7]}, "7", True),
        ({"in": ["a", 7]}, "a", True),
        ({"in": ["a", 7]}, "b", False),
        ({"not_in": ["a", 7]}, "7.000", False),
        ({"eq": "007"}, "7", False),  # text compares as text
        ({"eq": True}, "True", True),
        ({"eq": True}, "false", False),
        ({"ne": False}, "FALSE", False),
        ({"lt": 10}, "9.999", True),
        ({"lt": 10}, "-3", True),
        ({"gt": "0.1"}, "0.10000000000000000001", True),  # exact, no float rounding
        ({"lte": "0.3"}, "0.30", True),
    ],
)
def test_operators_on_an_attribute(condition: dict[str, Any], value: str, expected: bool) -> None:
    assert counts({"attributes.model": condition}, attributes={"model": value}) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"eq": 200}, False),
        ({"ne": 200}, True),
        ({"in": [200]}, False),
        ({"not_in": [200]}, True),
        ({"lt": 500}, False),
        ({"lte": 500}, False),
        ({"gt": 0}, False),
        ({"gte": 0}, False),
        ({"ne": 500, "not_in": [502]}, True),
        ({"ne": 500, "lt": 600}, False),
    ],
)
def test_null_satisfies_only_ne_and_not_in(condition: dict[str, Any], expected: bool) -> None:
    assert counts({"status": condition}, status=None) is expected
    assert counts({"attributes.tier": condition}, attributes={}) is expected
    assert problems({"status": condition}, status=None) == []


def test_ordering_on_a_non_number_does_not_hold_and_is_reported() -> None:
    [problem] = problems({"attributes.tokens": {"gt": 0}}, attributes={"tokens": "lots"})
    assert problem.metric_id == "calls"
    assert problem.field == "attributes.tokens"
    assert problem.value == "lots"
    assert "'lots' is not a number" in problem.detail
    assert counts({"attributes.tokens": {"gt": 0}}, attributes={"tokens": "12"})


def test_method_text_compares_upper_case() -> None:
    assert counts({"method": {"in": ["get", "post"]}}, method="POST")
    assert counts({"method": {"eq": "Delete"}}, method="DELETE")
    assert not counts({"method": {"ne": "post"}}, method="POST")


def test_text_fields() -> None:
    assert counts({"consumer": {"eq": "app-1"}}, consumer="app-1")
    assert not counts({"consumer": {"eq": "APP-1"}}, consumer="app-1")
    assert counts({"route": {"not_in": ["/health", "/ready"]}}, route="/v1/payments")
    assert not counts({"consumer": {"eq": 1}}, consumer="app-1")


def test_timestamp_compares_as_epoch_ms_and_iso_text() -> None:
    moment = datetime(2026, 1, 15, 10, 0, 0, 250_000, tzinfo=UTC)
    ms = 1_768_471_200_250
    assert counts({"timestamp": {"gte": ms}}, timestamp=moment)
    assert not counts({"timestamp": {"gt": ms}}, timestamp=moment)
    assert counts({"timestamp": {"eq": "2026-01-15T10:00:00.250000Z"}}, timestamp=moment)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", Decimal(12)),
        (" -0.5 ", Decimal("-0.5")),
        ("+3.", Decimal(3)),
        (".25", Decimal("0.25")),
        ("0012.3400", Decimal("12.34")),
        ("1" * 40, Decimal("1" * 40)),
        ("1" * 41, None),
        ("1e3", None),
        ("NaN", None),
        ("Infinity", None),
        ("1_000", None),
        ("", None),
        (".", None),
        ("1.2.3", None),
        ("١٢", None),  # non-ASCII digits
        ("12 kb", None),
    ],
)
def test_parse_number(text: str, expected: Decimal | None) -> None:
    assert parse_number(text) == expected


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12
    )
)
def test_parse_number_reads_plain_decimal_text_exactly(number: Decimal) -> None:
    assert parse_number(format(number, "f")) == number


def test_as_number_and_as_text() -> None:
    assert as_number(7) == 7
    assert as_number("7.5") == Decimal("7.5")
    assert as_number("x") is None
    assert as_number(datetime(1970, 1, 1, 0, 0, 1, 500, tzinfo=UTC)) == Decimal("1000.5")
    assert as_text(7) == "7"
    assert as_text(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
