"""Errors raised while turning stored meters into stored invoices and running finance SQL."""

from __future__ import annotations

from pipeline.errors import PipelineError


class BillingError(PipelineError):
    """Invoicing from the store could not be done as asked; the message says what to do."""


class InconsistentMeters(BillingError):
    """The meters of one metric disagree with each other (e.g. two aggregations in a period)."""


class InvoiceNotFound(BillingError):
    """No stored invoice (or invoice version) exists for the tenant and period asked for."""


class CorruptInvoice(BillingError):
    """A stored invoice's lines do not match its row (missing lines, or amounts off the total)."""


class FinanceQueryError(BillingError):
    """A finance query name or its parameters are wrong."""
