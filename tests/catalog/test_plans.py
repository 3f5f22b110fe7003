from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from pipeline.catalog.plans import FlatCharge, PackageCharge, Plan, Tier, check_tiers


def test_check_tiers_accepts_sorted_lists_ending_unbounded() -> None:
    check_tiers([Tier(unit_price=Decimal(1))])
    check_tiers([Tier(up_to=Decimal("0.5"), unit_price=Decimal(1)), Tier(unit_price=Decimal(0))])


@pytest.mark.parametrize(
    ("ups", "message"),
    [
        ([Decimal(100), Decimal(50), None], "tiers overlap (up_to 100 then up_to 50)"),
        ([Decimal(100), Decimal(100), None], "tiers overlap (up_to 100 then up_to 100)"),
        ([Decimal(100)], "the last tier must be unbounded"),
        ([None, None], "tier #1 has no up_to but is not the last tier"),
    ],
)
def test_check_tiers_rejects(ups: list[Decimal | None], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_tiers([Tier(up_to=up, unit_price=Decimal(1)) for up in ups])


def test_plan_currency_is_normalized_and_checked() -> None:
    plan = Plan.model_validate(
        {"id": "p", "currency": " eur", "versions": [{"effective_from": "2026-01-01"}]}
    )
    assert plan.currency == "EUR"
    with pytest.raises(ValidationError, match="unknown currency 'CHF'"):
        Plan.model_validate(
            {"id": "p", "currency": "CHF", "versions": [{"effective_from": "2026-01-01"}]}
        )


def test_minimum_commitment_in_whole_minor_units() -> None:
    version = {"effective_from": "2026-01-01", "minimum_commitment": "50000.0"}
    assert Plan.model_validate({"id": "p", "currency": "JPY", "versions": [version]})
    with pytest.raises(ValidationError, match="more decimals than USD allows"):
        Plan.model_validate(
            {"id": "p", "currency": "USD", "versions": [{**version, "minimum_commitment": "1.001"}]}
        )


def test_charge_defaults_and_names() -> None:
    flat = FlatCharge.model_validate({"model": "flat", "amount": "49"})
    assert flat.display_name == "Flat fee"
    package = PackageCharge.model_validate(
        {"model": "package", "product": "p", "metric": "m", "package_size": 10, "package_price": 1}
    )
    assert package.included == 0 and package.display_name == "p m"
    with pytest.raises(ValidationError, match="must be > 0"):
        PackageCharge.model_validate({**package.model_dump(), "package_size": 0})
