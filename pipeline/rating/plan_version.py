"""Which version of a plan bills a period."""

from __future__ import annotations

from pipeline.catalog.errors import NoEffectivePlanVersion
from pipeline.catalog.plans import Plan, PlanVersion
from pipeline.rating.period import Period


def select_plan_version(plan: Plan, period: Period) -> PlanVersion:
    """The latest version whose ``effective_from`` is on or before the period's first day."""
    start = period.start_date
    effective = [v for v in plan.versions if v.effective_from <= start]
    if not effective:
        earliest = min(v.effective_from for v in plan.versions).isoformat()
        raise NoEffectivePlanVersion(
            f"plan '{plan.id}' has no version effective for period {period} "
            f"(earliest effective_from is {earliest}); add a version with effective_from "
            f"on or before {start.isoformat()} to the rating rules",
            plan=plan.id,
            period=str(period),
            earliest_effective_from=earliest,
        )
    return max(effective, key=lambda version: version.effective_from)
