"""Shared helpers: database names in SQL, periods, aware clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.billing import BillingError
from pipeline.billing.common import as_period, bind_database, require_aware
from pipeline.rating import InvalidPeriod, Period


def test_only_the_database_placeholder_is_substituted() -> None:
    sql = "SELECT {period:String} FROM {database}.invoices WHERE x = '{database}'"
    assert bind_database(sql, "billing") == (
        "SELECT {period:String} FROM billing.invoices WHERE x = 'billing'"
    )


@pytest.mark.parametrize("name", ["", "1db", "db.x", "db; DROP TABLE t", "db-name", "db name"])
def test_database_names_must_be_plain_identifiers(name: str) -> None:
    with pytest.raises(BillingError, match="not a plain identifier"):
        bind_database("{database}.t", name)


@given(st.integers(min_value=1, max_value=9998), st.integers(min_value=1, max_value=12))
def test_periods_from_text_or_period(year: int, month: int) -> None:
    period = Period(year, month)
    assert as_period(period) is period
    assert as_period(str(period)) == period


def test_a_bad_period_names_the_format() -> None:
    with pytest.raises(InvalidPeriod, match="expected YYYY-MM"):
        as_period("2026-3")


def test_clocks_must_be_aware() -> None:
    aware = datetime(2026, 4, 1, tzinfo=timezone(timedelta(hours=9)))
    assert require_aware(aware, "clock") == datetime(2026, 3, 31, 15, tzinfo=UTC)
    assert require_aware(aware, "clock").tzinfo is UTC
    assert require_aware(datetime(2026, 4, 1, tzinfo=UTC), "clock").tzinfo is UTC
    with pytest.raises(BillingError, match="the clock returned the naive datetime"):
        require_aware(datetime(2026, 4, 1), "the clock")  # noqa: DTZ001
