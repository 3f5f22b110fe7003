"""Invoice arithmetic of contract §6 as pure Decimal functions."""

from pipeline.rating.errors import InvalidPeriod, InvalidQuantity, RatingError, UnknownTenant
from pipeline.rating.invoice import Invoice, InvoiceLine, compute_invoice, describe_pricing
from pipeline.rating.money import RATING_CONTEXT, minor_unit, round_money
from pipeline.rating.period import Period
from pipeline.rating.plan_version import select_plan_version
from pipeline.rating.pricing import (
    billable_quantity,
    flat_amount,
    graduated_amount,
    graduated_units,
    package_amount,
    package_count,
    per_unit_amount,
    usage_amount,
    volume_amount,
    volume_tier,
)
from pipeline.rating.quantities import MetricKey, Quantities, metric_quantity_from_raw
from pipeline.rating.render import render_invoice_text

__all__ = [
    "RATING_CONTEXT",
    "InvalidPeriod",
    "InvalidQuantity",
    "Invoice",
    "InvoiceLine",
    "MetricKey",
    "Period",
    "Quantities",
    "RatingError",
    "UnknownTenant",
    "billable_quantity",
    "compute_invoice",
    "describe_pricing",
    "flat_amount",
    "graduated_amount",
    "graduated_units",
    "metric_quantity_from_raw",
    "minor_unit",
    "package_amount",
    "package_count",
    "per_unit_amount",
    "render_invoice_text",
    "round_money",
    "select_plan_version",
    "usage_amount",
    "volume_amount",
    "volume_tier",
]
