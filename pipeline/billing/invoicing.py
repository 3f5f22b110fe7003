"""Invoice a tenant for a period from the stored meters, keep versions, finalize.

The flow (contract §6 and §8):

* no invoice yet -> draft v1;
* the latest version is a draft -> recomputed in place (same version, next revision);
* the latest version is finalized -> never touched again. When the amounts computed now differ
  from it, a new draft version supersedes it and records the difference; else 'unchanged'.
* :func:`finalize_invoice` turns the latest draft into a finalized version.

Every call returns a :class:`StoredInvoice` whose ``action`` and ``outcome`` say what happened,
in words the CLI prints as they are. ``clock`` is injected (a callable returning an aware UTC
datetime) so that stored times are reproducible in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.billing.common import as_period, require_aware
from pipeline.billing.errors import BillingError, InvoiceNotFound
from pipeline.billing.quantities import period_quantities, tenants_with_usage
from pipeline.billing.runs import billing_run_for
from pipeline.billing.stored import (
    StoredInvoice,
    invoiced_tenants,
    latest_invoice,
    write_invoice,
)
from pipeline.catalog import Catalog, NoEffectivePlanVersion
from pipeline.catalog.values import plain
from pipeline.errors import PipelineError
from pipeline.rating import (
    Invoice,
    Period,
    UnknownTenant,
    compute_invoice,
    round_money,
    select_plan_version,
)
from pipeline.store import Store

Clock = Callable[[], datetime]


def invoice_tenant(
    store: Store,
    database: str,
    catalog: Catalog,
    tenant: str,
    period: Period | str,
    *,
    clock: Clock,
    billing_run: str | None = None,
) -> StoredInvoice:
    """Compute ``tenant``'s invoice (id or alias) for ``period`` and store it as a version.

    ``billing_run`` None picks the run with :func:`billing_run_for` (newest covering replay,
    else 'live'). Raises UnknownTenant, NoEffectivePlanVersion, InconsistentMeters, or a
    BillingError when a revision would change the invoice currency.
    """
    month = as_period(period)
    canonical = canonical_tenant(catalog, tenant)
    run = billing_run or billing_run_for(store, database, canonical, month)
    quantities = period_quantities(store, database, canonical, month, run)
    invoice = compute_invoice(catalog, canonical, month, quantities)
    current = latest_invoice(store, database, canonical, month)
    now = require_aware(clock(), "the invoicing clock")
    fresh = StoredInvoice(
        invoice=invoice,
        version=1,
        revision=1,
        status="draft",
        billing_run=run,
        catalog_fingerprint=catalog.fingerprint,
        supersedes="",
        difference_from_superseded=_zero(invoice.currency),
        computed_at=now,
        finalized_at=None,
    )
    if current is None:
        stored = replace(
            fresh,
            action="created",
            outcome=f"created draft v1: total {money(invoice.total, invoice.currency)}"
            f"{_run_note(run)}",
        )
    elif current.status == "draft":
        stored = _recomputed(fresh, current, run)
    else:
        if same_amounts(current.invoice, invoice):
            return replace(
                current,
                action="unchanged",
                outcome=f"unchanged: finalized v{current.version} still matches the usage and "
                f"rules (total {money(current.total, current.currency)}{_run_note(run)})",
            )
        _check_currency(current, invoice)
        difference = invoice.total - current.total
        version = current.version + 1
        stored = replace(
            fresh,
            version=version,
            supersedes=current.invoice_id,
            difference_from_superseded=difference,
            action="revised",
            outcome=f"created v{version} revising finalized v{current.version}: "
            f"{signed_money(difference, invoice.currency)} "
            f"(total {money(invoice.total, invoice.currency)}{_run_note(run)})",
        )
    write_invoice(store, database, stored)
    return stored


def _recomputed(fresh: StoredInvoice, current: StoredInvoice, run: str) -> StoredInvoice:
    invoice = fresh.invoice
    if current.supersedes:
        _check_currency(current, invoice)
    # The superseded finalized total is recorded in the draft: total - difference.
    superseded_total = current.total - current.difference_from_superseded
    difference = (
        invoice.total - superseded_total if current.supersedes else fresh.difference_from_superseded
    )
    was = money(current.total, current.currency)
    change = "unchanged" if invoice.total == current.total else f"was {was}"
    outcome = (
        f"recomputed draft v{current.version}: total {money(invoice.total, invoice.currency)} "
        f"({change}){_run_note(run)}"
    )
    if current.supersedes:
        outcome += (
            f"; {signed_money(difference, invoice.currency)} against finalized "
            f"v{current.version - 1}"
        )
    return replace(
        fresh,
        version=current.version,
        revision=current.revision + 1,
        supersedes=current.supersedes,
        difference_from_superseded=difference,
        action="recomputed",
        outcome=outcome,
    )


def finalize_invoice(
    store: Store, database: str, tenant: str, period: Period | str, *, clock: Clock
) -> StoredInvoice:
    """Finalize the latest draft of ``tenant`` (canonical id) for ``period``.

    Finalizing writes a new state of the same version (status 'finalized', finalized_at now);
    that version is never written again. Already finalized: nothing is written and the action
    is 'already_finalized'. No invoice at all: InvoiceNotFound.
    """
    month = as_period(period)
    current = latest_invoice(store, database, tenant, month)
    if current is None:
        raise InvoiceNotFound(
            f"no invoice to finalize for tenant {tenant} in {month}; compute it first "
            f"(python -m pipeline invoice --tenant {tenant} --period {month})",
            tenant=tenant,
            period=str(month),
        )
    if current.status == "finalized":
        finalized_at = current.finalized_at.isoformat() if current.finalized_at else "?"
        return replace(
            current,
            action="already_finalized",
            outcome=f"v{current.version} was already finalized at {finalized_at}; nothing to do",
        )
    now = require_aware(clock(), "the invoicing clock")
    stored = replace(current, status="finalized", finalized_at=now, action="finalized")
    outcome = f"finalized v{current.version}: total {money(current.total, current.currency)}"
    if current.supersedes:
        outcome += (
            f" (revises v{current.version - 1}: "
            f"{signed_money(current.difference_from_superseded, current.currency)})"
        )
    stored = replace(stored, outcome=outcome)
    write_invoice(store, database, stored)
    return stored


@dataclass(frozen=True)
class TenantFailure:
    """A tenant :func:`invoice_all` could not invoice, and why."""

    tenant: str
    error: PipelineError

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready: the message and the error's kind (the exception object is not JSON)."""
        return {"tenant": self.tenant, "error": str(self.error), "kind": type(self.error).__name__}


@dataclass(frozen=True)
class InvoiceRunReport:
    """What :func:`invoice_all` did for each tenant of a period."""

    period: Period
    invoices: tuple[StoredInvoice, ...]
    failures: tuple[TenantFailure, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "invoices": [stored.to_json_dict() for stored in self.invoices],
            "failures": [failure.to_json_dict() for failure in self.failures],
        }

    def lines(self) -> list[str]:
        """One line per tenant, e.g. ``acme: created draft v1: total 149.00 USD``."""
        done = [f"{stored.tenant}: {stored.outcome}" for stored in self.invoices]
        failed = [f"{failure.tenant}: FAILED: {failure.error}" for failure in self.failures]
        return sorted(done + failed)


def invoice_all(
    store: Store,
    database: str,
    catalog: Catalog,
    period: Period | str,
    *,
    clock: Clock,
    billing_run: str | None = None,
) -> InvoiceRunReport:
    """Invoice every tenant of ``period``; one tenant's failure does not stop the others.

    The tenants are those with usage in the period (in ``billing_run``, or in any run when
    None), those already invoiced for it (so a rebill that removed all usage still revises
    them), and every catalog tenant whose plan has a version in effect for the period (a
    subscribed tenant owes its flat fees and minimum commitment without usage).
    """
    month = as_period(period)
    tenants = set(tenants_with_usage(store, database, month, billing_run))
    tenants.update(invoiced_tenants(store, database, month))
    tenants.update(subscribed_tenants(catalog, month))
    invoices: list[StoredInvoice] = []
    failures: list[TenantFailure] = []
    for tenant in sorted(tenants):
        try:
            invoices.append(
                invoice_tenant(
                    store, database, catalog, tenant, month, clock=clock, billing_run=billing_run
                )
            )
        except PipelineError as error:
            failures.append(TenantFailure(tenant, error))
    return InvoiceRunReport(month, tuple(invoices), tuple(failures))


# --- pure helpers -----------------------------------------------------------------------------


def canonical_tenant(catalog: Catalog, tenant: str) -> str:
    """The canonical id of ``tenant`` (an id or alias), or UnknownTenant."""
    found = catalog.tenant(tenant) or catalog.tenant_for_header(tenant)
    if found is None:
        raise UnknownTenant(
            f"no tenant has the id or alias {tenant!r} in the rating rules", tenant=tenant
        )
    return found.id


def subscribed_tenants(catalog: Catalog, period: Period) -> list[str]:
    """Catalog tenants whose plan has a version in effect for ``period``."""
    subscribed = []
    for tenant in catalog.tenants:
        try:
            select_plan_version(catalog.plan_of(tenant), period)
        except NoEffectivePlanVersion:
            continue
        subscribed.append(tenant.id)
    return subscribed


def same_amounts(first: Invoice, second: Invoice) -> bool:
    """Whether two invoices bill the same: currency, every line's amount, subtotal, total.

    Lines are compared by kind, product, metric and amount in order; names, quantities and
    pricing descriptions alone do not make a revision.
    """

    def amounts(invoice: Invoice) -> tuple[object, ...]:
        lines = tuple(
            (line.kind, line.product, line.metric, line.amount)
            for line in invoice.lines_with_true_up()
        )
        return (invoice.currency, lines, invoice.subtotal, invoice.true_up, invoice.total)

    return amounts(first) == amounts(second)


def money(amount: Decimal, currency: str) -> str:
    """``149.00 USD``, ``1500 JPY``: the amount at the currency's minor unit."""
    return f"{plain(round_money(amount, currency))} {currency}"


def signed_money(amount: Decimal, currency: str) -> str:
    """``+12.40 USD``, ``-3 JPY``, ``0.00 USD``: a difference with its sign."""
    rounded = round_money(amount, currency)
    sign = "+" if rounded > 0 else ""
    return f"{sign}{plain(rounded)} {currency}" if rounded else f"{plain(abs(rounded))} {currency}"


def _zero(currency: str) -> Decimal:
    return round_money(Decimal(0), currency)


def _run_note(run: str) -> str:
    return "" if run == "live" else f", billing run {run}"


def _check_currency(current: StoredInvoice, invoice: Invoice) -> None:
    if current.currency != invoice.currency:
        superseded = current.supersedes or current.invoice_id
        raise BillingError(
            f"cannot revise {superseded} ({current.currency}) with an invoice in "
            f"{invoice.currency}: the tenant's plan currency changed. Credit the finalized "
            "invoice by hand and bill the difference separately",
            invoice_id=current.invoice_id,
            currency=current.currency,
            new_currency=invoice.currency,
        )
