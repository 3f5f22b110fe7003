"""Stored invoices: the rows of ``invoices`` / ``invoice_lines`` and reading them back.

One invoice version is one :class:`StoredInvoice`: the rated :class:`pipeline.rating.Invoice`
plus what the store adds (id, version, revision, status, billing run, revision links). The
row conversions here are pure; :func:`write_invoice` and the loaders are the only I/O.
See migration 0003 for the storage rules (a draft is replaced by a higher revision, a
finalized row outranks every draft, lines belong to one revision).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Literal

from pipeline.billing.common import as_period, bind_database
from pipeline.billing.errors import CorruptInvoice, InvoiceNotFound
from pipeline.catalog.values import plain
from pipeline.rating import RATING_CONTEXT, Invoice, InvoiceLine, Period, round_money
from pipeline.rating.invoice import LineKind
from pipeline.store import Store

Status = Literal["draft", "finalized"]
Action = Literal[
    "loaded", "created", "recomputed", "revised", "unchanged", "finalized", "already_finalized"
]

#: Stored quantity scale (Decimal(38, 9)); amounts are stored as Decimal(38, 4).
QUANTITY_STEP = Decimal("1E-9")

_INVOICE_COLUMNS = (
    "invoice_id, tenant, period, version, revision, status, billing_run, catalog_fingerprint, "
    "plan, plan_version, currency, subtotal, minimum_commitment, true_up, total, line_count, "
    "supersedes, difference_from_superseded, computed_at, finalized_at"
)
_LATEST = f"""
SELECT {_INVOICE_COLUMNS}
FROM {{database}}.invoices FINAL
WHERE tenant = {{tenant:String}} AND period = {{period:String}}
ORDER BY version DESC
LIMIT 1
"""
_VERSION = f"""
SELECT {_INVOICE_COLUMNS}
FROM {{database}}.invoices FINAL
WHERE tenant = {{tenant:String}} AND period = {{period:String}} AND version = {{version:UInt32}}
"""
_VERSIONS = f"""
SELECT {_INVOICE_COLUMNS}
FROM {{database}}.invoices FINAL
WHERE tenant = {{tenant:String}} AND period = {{period:String}}
ORDER BY version
"""
_LINES = """
SELECT line_no, kind, name, product, metric, quantity, billable, unit_description, amount
FROM {database}.invoice_lines FINAL
WHERE tenant = {tenant:String} AND period = {period:String} AND version = {version:UInt32}
  AND revision = {revision:UInt32} AND line_no <= {line_count:UInt16}
ORDER BY line_no
"""
_INVOICED_TENANTS = """
SELECT DISTINCT tenant FROM {database}.invoices WHERE period = {period:String} ORDER BY tenant
"""


def invoice_id_for(tenant: str, period: Period, version: int) -> str:
    """The deterministic id of an invoice version, e.g. ``acme-2026-03-v2``."""
    return f"{tenant}-{period}-v{version}"


@dataclass(frozen=True)
class StoredInvoice:
    """One invoice version as stored; ``action``/``outcome`` say what the last call did."""

    invoice: Invoice
    version: int
    revision: int
    status: Status
    billing_run: str
    catalog_fingerprint: str
    supersedes: str
    difference_from_superseded: Decimal
    computed_at: datetime
    finalized_at: datetime | None
    action: Action = "loaded"
    outcome: str = ""

    @property
    def invoice_id(self) -> str:
        return invoice_id_for(self.invoice.tenant, self.invoice.period, self.version)

    @property
    def tenant(self) -> str:
        return self.invoice.tenant

    @property
    def period(self) -> Period:
        return self.invoice.period

    @property
    def currency(self) -> str:
        return self.invoice.currency

    @property
    def total(self) -> Decimal:
        return self.invoice.total

    @property
    def lines(self) -> tuple[InvoiceLine, ...]:
        """Every stored line: the charges, then the true-up line when there is one."""
        return self.invoice.lines_with_true_up()

    def to_json_dict(self) -> dict[str, Any]:
        """The invoice's JSON (decimal strings) plus the stored version's facts."""
        return {
            "invoice_id": self.invoice_id,
            "version": self.version,
            "status": self.status,
            "billing_run": self.billing_run,
            "catalog_fingerprint": self.catalog_fingerprint,
            **self.invoice.to_json_dict(),
            "supersedes": self.supersedes or None,
            "difference_from_superseded": plain(self.difference_from_superseded),
            "computed_at": self.computed_at.isoformat(),
            "finalized_at": None if self.finalized_at is None else self.finalized_at.isoformat(),
        }


# --- rows out ---------------------------------------------------------------------------------


def invoice_row(stored: StoredInvoice) -> dict[str, Any]:
    """The ``invoices`` row of ``stored`` (row_rank is computed by the table)."""
    invoice = stored.invoice
    return {
        "invoice_id": stored.invoice_id,
        "tenant": invoice.tenant,
        "period": str(invoice.period),
        "version": stored.version,
        "revision": stored.revision,
        "status": stored.status,
        "billing_run": stored.billing_run,
        "catalog_fingerprint": stored.catalog_fingerprint,
        "plan": invoice.plan,
        "plan_version": invoice.plan_version,
        "currency": invoice.currency,
        "subtotal": invoice.subtotal,
        "minimum_commitment": invoice.minimum_commitment,
        "true_up": invoice.true_up,
        "total": invoice.total,
        "line_count": len(stored.lines),
        "supersedes": stored.supersedes,
        "difference_from_superseded": stored.difference_from_superseded,
        "computed_at": stored.computed_at,
        "finalized_at": stored.finalized_at,
    }


def line_rows(stored: StoredInvoice) -> list[dict[str, Any]]:
    """The ``invoice_lines`` rows of ``stored``'s revision, numbered from 1."""
    return [
        {
            "invoice_id": stored.invoice_id,
            "tenant": stored.tenant,
            "period": str(stored.period),
            "version": stored.version,
            "revision": stored.revision,
            "line_no": number,
            "kind": line.kind,
            "name": line.name,
            "product": line.product,
            "metric": line.metric,
            "quantity": stored_quantity(line.quantity),
            "billable": stored_quantity(line.billable),
            "unit_description": line.unit_description,
            "amount": line.amount,
        }
        for number, line in enumerate(stored.lines, start=1)
    ]


def stored_quantity(value: Decimal | None) -> Decimal | None:
    """A line quantity as the Decimal(38, 9) column holds it (half-even beyond 9 decimals)."""
    if value is None:
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -9:
        return value
    return value.quantize(QUANTITY_STEP, rounding=ROUND_HALF_EVEN, context=RATING_CONTEXT)


def write_invoice(store: Store, database: str, stored: StoredInvoice) -> None:
    """Write the lines of ``stored``'s revision, then its invoice row.

    Lines go first: until the row is written, readers still see the previous state (they
    read lines by the row's revision), so a crash in between leaves no half invoice.
    """
    prefix = bind_database("{database}", database)
    store.insert_rows(f"{prefix}.invoice_lines", line_rows(stored))
    store.insert_rows(f"{prefix}.invoices", [invoice_row(stored)])


# --- rows in ----------------------------------------------------------------------------------


def stored_from_rows(row: dict[str, Any], lines: list[dict[str, Any]]) -> StoredInvoice:
    """Rebuild a StoredInvoice from its ``invoices`` row and its revision's line rows.

    Raises CorruptInvoice when lines are missing or their amounts do not add up to the total.
    """
    currency = str(row["currency"])
    invoice_id = str(row["invoice_id"])
    numbers = [int(line["line_no"]) for line in lines]
    if numbers != list(range(1, int(row["line_count"]) + 1)):
        raise CorruptInvoice(
            f"invoice {invoice_id} revision {row['revision']} should have lines 1.."
            f"{row['line_count']} but has {numbers}; recompute the draft (or, if finalized, "
            "restore the lines from a backup)",
            invoice_id=invoice_id,
            revision=int(row["revision"]),
        )
    parsed = [_line(line, currency, invoice_id) for line in lines]
    charges = tuple(line for line in parsed if line.kind != "true_up")
    minimum = row["minimum_commitment"]
    invoice = Invoice(
        tenant=str(row["tenant"]),
        period=Period.parse(str(row["period"])),
        plan=str(row["plan"]),
        plan_version=row["plan_version"],
        currency=currency,
        lines=charges,
        subtotal=_money(row["subtotal"], currency, invoice_id),
        minimum_commitment=None if minimum is None else _money(minimum, currency, invoice_id),
        true_up=_money(row["true_up"], currency, invoice_id),
        total=_money(row["total"], currency, invoice_id),
    )
    with localcontext(RATING_CONTEXT):
        lines_total = sum((line.amount for line in parsed), Decimal(0))
    if lines_total != invoice.total or len(invoice.lines_with_true_up()) != len(parsed):
        raise CorruptInvoice(
            f"invoice {invoice_id}: its lines add up to {plain(lines_total)} {currency} but "
            f"its total is {plain(invoice.total)}",
            invoice_id=invoice_id,
        )
    status: Status = "finalized" if row["status"] == "finalized" else "draft"
    return StoredInvoice(
        invoice=invoice,
        version=int(row["version"]),
        revision=int(row["revision"]),
        status=status,
        billing_run=str(row["billing_run"]),
        catalog_fingerprint=str(row["catalog_fingerprint"]),
        supersedes=str(row["supersedes"]),
        difference_from_superseded=_money(row["difference_from_superseded"], currency, invoice_id),
        computed_at=row["computed_at"],
        finalized_at=row["finalized_at"],
    )


def _line(row: dict[str, Any], currency: str, invoice_id: str) -> InvoiceLine:
    kind: LineKind = row["kind"]
    if kind not in ("flat", "usage", "true_up"):
        raise CorruptInvoice(
            f"invoice {invoice_id} line {row['line_no']} has the unknown kind {kind!r}",
            invoice_id=invoice_id,
            line_no=int(row["line_no"]),
        )
    return InvoiceLine(
        kind=kind,
        name=str(row["name"]),
        product=row["product"],
        metric=row["metric"],
        quantity=_quantity(row["quantity"]),
        billable=_quantity(row["billable"]),
        unit_description=str(row["unit_description"]),
        amount=_money(row["amount"], currency, invoice_id),
    )


def _money(value: Decimal, currency: str, invoice_id: str) -> Decimal:
    """A stored Decimal(38, 4) amount at the currency's scale (it was stored rounded)."""
    rounded = round_money(value, currency)
    if rounded != value:
        raise CorruptInvoice(
            f"invoice {invoice_id} holds the amount {plain(value)}, which is not a whole "
            f"number of {currency} minor units",
            invoice_id=invoice_id,
            amount=plain(value),
        )
    return rounded


def _quantity(value: Decimal | None) -> Decimal | None:
    """A stored Decimal(38, 9) quantity without the padding zeros (15000.000000000 -> 15000)."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=RATING_CONTEXT)
    return value.normalize(RATING_CONTEXT)


# --- loaders ----------------------------------------------------------------------------------


def _with_lines(store: Store, database: str, row: dict[str, Any]) -> StoredInvoice:
    lines = store.query(
        bind_database(_LINES, database),
        {
            "tenant": row["tenant"],
            "period": row["period"],
            "version": row["version"],
            "revision": row["revision"],
            "line_count": row["line_count"],
        },
    )
    return stored_from_rows(row, lines)


def latest_invoice(
    store: Store, database: str, tenant: str, period: Period | str
) -> StoredInvoice | None:
    """The highest version of the tenant's invoice for ``period``, or None when there is none."""
    rows = store.query(
        bind_database(_LATEST, database), {"tenant": tenant, "period": str(as_period(period))}
    )
    return _with_lines(store, database, rows[0]) if rows else None


def load_invoice(
    store: Store, database: str, tenant: str, period: Period | str, version: int | None = None
) -> StoredInvoice:
    """A stored invoice version (default: the latest) with its lines, or InvoiceNotFound."""
    month = as_period(period)
    if version is None:
        found = latest_invoice(store, database, tenant, month)
        if found is None:
            raise InvoiceNotFound(
                f"no invoice for tenant {tenant} in {month}; compute it first "
                f"(python -m pipeline invoice --tenant {tenant} --period {month})",
                tenant=tenant,
                period=str(month),
            )
        return found
    rows = store.query(
        bind_database(_VERSION, database),
        {"tenant": tenant, "period": str(month), "version": version},
    )
    if not rows:
        known = [stored.version for stored in invoice_versions(store, database, tenant, month)]
        raise InvoiceNotFound(
            f"tenant {tenant} has no invoice version {version} for {month} "
            f"(versions: {', '.join(map(str, known)) or 'none'})",
            tenant=tenant,
            period=str(month),
            version=version,
        )
    return _with_lines(store, database, rows[0])


def invoice_versions(
    store: Store, database: str, tenant: str, period: Period | str
) -> list[StoredInvoice]:
    """Every version of the tenant's invoice for ``period`` (current states), oldest first."""
    rows = store.query(
        bind_database(_VERSIONS, database), {"tenant": tenant, "period": str(as_period(period))}
    )
    return [_with_lines(store, database, row) for row in rows]


def invoiced_tenants(store: Store, database: str, period: Period | str) -> list[str]:
    """Tenants with at least one stored invoice version for ``period``, sorted."""
    rows = store.query(
        bind_database(_INVOICED_TENANTS, database), {"period": str(as_period(period))}
    )
    return [str(row["tenant"]) for row in rows]
