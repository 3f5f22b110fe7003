from __future__ import annotations

from datetime import date

import pytest

from pipeline.catalog.errors import CatalogError, NoEffectivePlanVersion
from pipeline.catalog.plans import Plan
from pipeline.rating.period import Period
from pipeline.rating.plan_version import select_plan_version

PLAN = Plan.model_validate(
    {
        "id": "growth",
        "currency": "USD",
        # Deliberately unsorted: selection must not depend on the written order.
        "versions": [
            {"effective_from": "2026-01-01"},
            {"effective_from": "2025-01-01"},
            {"effective_from": "2026-03-15"},
        ],
    }
)


@pytest.mark.parametrize(
    ("period", "effective_from"),
    [
        ("2025-01", date(2025, 1, 1)),  # effective on the period start itself
        ("2025-12", date(2025, 1, 1)),
        ("2026-01", date(2026, 1, 1)),
        ("2026-03", date(2026, 1, 1)),  # 2026-03-15 is after the March period starts
        ("2026-04", date(2026, 3, 15)),
    ],
)
def test_latest_version_effective_on_or_before_period_start(
    period: str, effective_from: date
) -> None:
    assert select_plan_version(PLAN, Period.parse(period)).effective_from == effective_from


def test_no_effective_version_names_plan_and_period() -> None:
    with pytest.raises(NoEffectivePlanVersion) as err:
        select_plan_version(PLAN, Period.parse("2024-12"))
    assert isinstance(err.value, CatalogError)
    assert "plan 'growth'" in str(err.value)
    assert "2024-12" in str(err.value)
    assert err.value.fields["plan"] == "growth"
    assert err.value.fields["period"] == "2024-12"
