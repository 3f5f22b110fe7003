"""Billing from the store (contract §6-8): period quantities from the meters, billing runs,
stored invoice versions (draft, finalized, revisions) and the finance SQL.

The arithmetic is :mod:`pipeline.rating` (pure); this package reads and writes ClickHouse
through the :class:`pipeline.store.Store` port.
"""

from pipeline.billing.errors import (
    BillingError,
    CorruptInvoice,
    FinanceQueryError,
    InconsistentMeters,
    InvoiceNotFound,
)
from pipeline.billing.finance import (
    FINANCE_DIR,
    finance_query_names,
    finance_query_summary,
    load_finance_query,
    query_parameters,
    run_finance_query,
)
from pipeline.billing.invoicing import (
    Clock,
    InvoiceRunReport,
    TenantFailure,
    finalize_invoice,
    invoice_all,
    invoice_tenant,
)
from pipeline.billing.quantities import period_quantities, tenants_with_usage
from pipeline.billing.runs import (
    ALL_TENANTS,
    LIVE_RUN,
    BillingRun,
    billing_run_for,
    billing_runs_of,
    record_billing_run,
)
from pipeline.billing.stored import (
    StoredInvoice,
    invoice_id_for,
    invoice_versions,
    latest_invoice,
    load_invoice,
)

__all__ = [
    "ALL_TENANTS",
    "FINANCE_DIR",
    "LIVE_RUN",
    "BillingError",
    "BillingRun",
    "Clock",
    "CorruptInvoice",
    "FinanceQueryError",
    "InconsistentMeters",
    "InvoiceNotFound",
    "InvoiceRunReport",
    "StoredInvoice",
    "TenantFailure",
    "billing_run_for",
    "billing_runs_of",
    "finalize_invoice",
    "finance_query_names",
    "finance_query_summary",
    "invoice_all",
    "invoice_id_for",
    "invoice_tenant",
    "invoice_versions",
    "latest_invoice",
    "load_finance_query",
    "load_invoice",
    "period_quantities",
    "query_parameters",
    "record_billing_run",
    "run_finance_query",
    "tenants_with_usage",
]
