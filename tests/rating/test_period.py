from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.rating.errors import InvalidPeriod
from pipeline.rating.period import Period


def test_parse_and_bounds() -> None:
    period = Period.parse(" 2026-02 ")
    assert (period.year, period.month) == (2026, 2)
    assert str(period) == "2026-02"
    assert period.start == datetime(2026, 2, 1, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 1, tzinfo=UTC)


def test_december_ends_at_next_new_year() -> None:
    assert Period.parse("2025-12").end == datetime(2026, 1, 1, tzinfo=UTC)
    assert Period.parse("2025-12").next() == Period(2026, 1)
    assert Period(2026, 1).previous() == Period(2025, 12)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "x"])
def test_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(InvalidPeriod) as err:
        Period.parse(text)
    assert "2026-01" in str(err.value) or "month" in str(err.value)


def test_contains_is_half_open_and_utc() -> None:
    period = Period(2026, 1)
    assert period.contains(datetime(2026, 1, 1, tzinfo=UTC))
    assert not period.contains(datetime(2026, 2, 1, tzinfo=UTC))
    assert period.contains(datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC))
    # 2026-02-01 00:30 at +01:00 is 2026-01-31 23:30 UTC: January.
    plus_one = timezone(timedelta(hours=1))
    assert period.contains(datetime(2026, 2, 1, 0, 30, tzinfo=plus_one))
    assert Period.containing(datetime(2026, 2, 1, 0, 30, tzinfo=plus_one)) == period


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(InvalidPeriod, match="timezone"):
        Period(2026, 1).contains(datetime(2026, 1, 5))  # noqa: DTZ001 - the point of the test


def test_periods_order_chronologically() -> None:
    assert sorted([Period(2026, 1), Period(2025, 12), Period(2025, 2)]) == [
        Period(2025, 2),
        Period(2025, 12),
        Period(2026, 1),
    ]


@given(
    st.datetimes(
        timezones=st.just(UTC),
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by API
        max_value=datetime(9998, 11, 1),  # noqa: DTZ001
    )
)
def test_every_instant_is_in_exactly_its_period(moment: datetime) -> None:
    period = Period.containing(moment)
    assert period.contains(moment)
    assert not period.next().contains(moment)
    assert not period.previous().contains(moment)
    assert Period.parse(str(period)) == period
