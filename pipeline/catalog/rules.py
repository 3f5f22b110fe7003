"""The content of one rules file (or of all of them merged)."""

from __future__ import annotations

from pydantic import field_validator

from pipeline.catalog.models import Integration, Product, Tenant
from pipeline.catalog.plans import Plan
from pipeline.catalog.values import RuleModel

TOP_LEVEL_KEYS = ("tenants", "integrations", "products", "plans")


class RulesFile(RuleModel):
    """Top level of a ``rating_rules/*.yaml`` file; every section is optional."""

    tenants: tuple[Tenant, ...] = ()
    integrations: tuple[Integration, ...] = ()
    products: tuple[Product, ...] = ()
    plans: tuple[Plan, ...] = ()

    @field_validator("tenants", "integrations", "products", "plans", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return () if value is None else value
