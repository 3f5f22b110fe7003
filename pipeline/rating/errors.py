"""Errors raised while rating usage into invoices."""

from __future__ import annotations

from pipeline.errors import PipelineError


class RatingError(PipelineError):
    """Invoice arithmetic was asked something it cannot answer exactly."""


class InvalidPeriod(RatingError):
    """A billing period is not a valid ``YYYY-MM`` calendar month (or a timestamp is naive)."""


class UnknownTenant(RatingError):
    """No catalog tenant has this id or alias."""


class InvalidQuantity(RatingError):
    """A metric quantity is not a finite, non-negative Decimal."""
