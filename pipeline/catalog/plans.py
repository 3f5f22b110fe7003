"""Rules models for plans: versions, charges and their price models (contract §6)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.catalog.currency import MINOR_UNIT_DIGITS, SUPPORTED_CURRENCIES
from pipeline.catalog.values import (
    Identifier,
    NonNegativeDecimal,
    PositiveDecimal,
    RuleModel,
    Text,
    plain,
)

ChargeModel = Literal["flat", "per_unit", "graduated", "volume", "package"]
CHARGE_MODELS: Final[tuple[str, ...]] = ("flat", "per_unit", "graduated", "volume", "package")


class Tier(RuleModel):
    """One price tier. ``up_to`` is inclusive; only the last tier of a list has none."""

    up_to: PositiveDecimal | None = None
    unit_price: NonNegativeDecimal
    flat_fee: NonNegativeDecimal = Decimal(0)


def check_tiers(tiers: Sequence[Tier]) -> None:
    """Raise ValueError unless the tiers are sorted, non-overlapping and end unbounded."""
    if not tiers:
        raise ValueError("tiers must not be empty")
    previous: Decimal | None = None
    for position, tier in enumerate(tiers, start=1):
        is_last = position == len(tiers)
        if tier.up_to is None:
            if not is_last:
                raise ValueError(
                    f"tier #{position} has no up_to but is not the last tier "
                    "(only the last tier is unbounded)"
                )
            continue
        if is_last:
            raise ValueError(
                f"the last tier must be unbounded: remove up_to {plain(tier.up_to)} "
                f"from tier #{position} or add an unbounded tier after it"
            )
        if previous is not None and tier.up_to <= previous:
            raise ValueError(
                f"tiers overlap (up_to {plain(previous)} then up_to {plain(tier.up_to)}): "
                "each up_to must be greater than the one before"
            )
        previous = tier.up_to


class FlatCharge(RuleModel):
    """A fixed amount per period."""

    model: Literal["flat"]
    amount: NonNegativeDecimal
    name: Text | None = None

    @property
    def display_name(self) -> str:
        return self.name or "Flat fee"


class _UsageCharge(RuleModel):
    """A charge priced from one product metric's quantity; ``included`` units are free."""

    product: Identifier
    metric: Identifier
    included: NonNegativeDecimal = Decimal(0)
    name: Text | None = None

    @property
    def display_name(self) -> str:
        return self.name or f"{self.product} {self.metric}"


class PerUnitCharge(_UsageCharge):
    model: Literal["per_unit"]
    unit_price: NonNegativeDecimal


class _TieredCharge(_UsageCharge):
    tiers: tuple[Tier, ...]

    @model_validator(mode="after")
    def _valid_tiers(self) -> _TieredCharge:
        check_tiers(self.tiers)
        return self


class GraduatedCharge(_TieredCharge):
    model: Literal["graduated"]


class VolumeCharge(_TieredCharge):
    model: Literal["volume"]


class PackageCharge(_UsageCharge):
    model: Literal["package"]
    package_size: PositiveDecimal
    package_price: NonNegativeDecimal


UsageCharge = PerUnitCharge | GraduatedCharge | VolumeCharge | PackageCharge
Charge = Annotated[
    FlatCharge | PerUnitCharge | GraduatedCharge | VolumeCharge | PackageCharge,
    Field(discriminator="model"),
]


class PlanVersion(RuleModel):
    """The charges of a plan for billing periods starting on or after ``effective_from``."""

    effective_from: date
    minimum_commitment: NonNegativeDecimal | None = None
    charges: tuple[Charge, ...] = ()


class Plan(RuleModel):
    """A price plan in one currency, with dated versions."""

    id: Identifier
    currency: str
    versions: tuple[PlanVersion, ...] = Field(min_length=1)

    @field_validator("currency", mode="before")
    @classmethod
    def _known_currency(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        code = value.strip().upper()
        if code not in MINOR_UNIT_DIGITS:
            supported = ", ".join(SUPPORTED_CURRENCIES)
            raise ValueError(f"unknown currency {value!r} (supported: {supported})")
        return code

    @model_validator(mode="after")
    def _versions_consistent(self) -> Plan:
        seen: set[date] = set()
        digits = MINOR_UNIT_DIGITS[self.currency]
        for version in self.versions:
            if version.effective_from in seen:
                raise ValueError(
                    f"two versions have effective_from {version.effective_from.isoformat()}"
                )
            seen.add(version.effective_from)
            minimum = version.minimum_commitment
            if minimum is not None and minimum != minimum.quantize(Decimal(1).scaleb(-digits)):
                raise ValueError(
                    f"version {version.effective_from.isoformat()}: minimum_commitment "
                    f"{plain(minimum)} has more decimals than {self.currency} allows ({digits})"
                )
        return self
