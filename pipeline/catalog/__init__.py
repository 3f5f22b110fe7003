"""The rating-rules catalog (contract §6): typed rules models, loader and lookups."""

from pipeline.catalog.catalog import Catalog, RulesSource, build_catalog
from pipeline.catalog.currency import MINOR_UNIT_DIGITS, SUPPORTED_CURRENCIES, minor_unit_digits
from pipeline.catalog.errors import CatalogError, NoEffectivePlanVersion, RuleProblem
from pipeline.catalog.loader import load_catalog, parse_rules
from pipeline.catalog.models import (
    AGGREGATIONS,
    GATEWAYS,
    Aggregation,
    Condition,
    Gateway,
    Integration,
    MatchRule,
    Metric,
    Product,
    Tenant,
    normalize_tenant_key,
)
from pipeline.catalog.plans import (
    Charge,
    FlatCharge,
    GraduatedCharge,
    PackageCharge,
    PerUnitCharge,
    Plan,
    PlanVersion,
    Tier,
    UsageCharge,
    VolumeCharge,
)
from pipeline.catalog.rules import RulesFile

__all__ = [
    "AGGREGATIONS",
    "GATEWAYS",
    "MINOR_UNIT_DIGITS",
    "SUPPORTED_CURRENCIES",
    "Aggregation",
    "Catalog",
    "CatalogError",
    "Charge",
    "Condition",
    "FlatCharge",
    "Gateway",
    "GraduatedCharge",
    "Integration",
    "MatchRule",
    "Metric",
    "NoEffectivePlanVersion",
    "PackageCharge",
    "PerUnitCharge",
    "Plan",
    "PlanVersion",
    "Product",
    "RuleProblem",
    "RulesFile",
    "RulesSource",
    "Tenant",
    "Tier",
    "UsageCharge",
    "VolumeCharge",
    "build_catalog",
    "load_catalog",
    "minor_unit_digits",
    "normalize_tenant_key",
    "parse_rules",
]
