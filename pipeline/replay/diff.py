"""What a replay changes for one tenant: invoice lines before and after, and totals (pure).

Both sides are rated with the CURRENT catalog by :func:`pipeline.rating.compute_invoice`:
``previous`` from the quantities of the run billing used before the replay, ``new`` from the
replay's quantities. The line differences are therefore exactly what the replay changed in
usage (repaired quarantine, new matching or metric rules), never a price change, and replaying
twice gives an empty diff. What the rebill changes on the tenant's stored invoice (which may
also include price changes, or be stale) is :class:`StoredInvoiceImpact`, shown next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.catalog.values import plain
from pipeline.rating import Invoice, InvoiceLine

#: how a line is recognised on both sides: (kind, product or name, metric, n-th such line)
LineKey = tuple[str, str, str, int]


@dataclass(frozen=True)
class LineDiff:
    """One invoice line before and after. A side without the line has quantity None, amount 0."""

    kind: str
    name: str
    product: str | None
    metric: str | None
    previous_quantity: Decimal | None
    new_quantity: Decimal | None
    previous_amount: Decimal
    new_amount: Decimal

    @property
    def amount_difference(self) -> Decimal:
        return self.new_amount - self.previous_amount

    @property
    def quantity_difference(self) -> Decimal | None:
        if self.previous_quantity is None and self.new_quantity is None:
            return None
        return (self.new_quantity or Decimal(0)) - (self.previous_quantity or Decimal(0))

    @property
    def changed(self) -> bool:
        return bool(self.amount_difference) or bool(self.quantity_difference)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "product": self.product,
            "metric": self.metric,
            "previous_quantity": _text(self.previous_quantity),
            "new_quantity": _text(self.new_quantity),
            "quantity_difference": _text(self.quantity_difference),
            "previous_amount": plain(self.previous_amount),
            "new_amount": plain(self.new_amount),
            "amount_difference": plain(self.amount_difference),
        }


@dataclass(frozen=True)
class StoredInvoiceImpact:
    """The tenant's latest stored invoice version and what rebilling from the new run makes of
    its total. ``difference`` is None when the currencies differ (plan currency changed)."""

    invoice_id: str
    status: str
    billing_run: str
    currency: str
    total: Decimal
    new_total: Decimal
    new_currency: str

    @property
    def difference(self) -> Decimal | None:
        return self.new_total - self.total if self.currency == self.new_currency else None

    def to_json_dict(self) -> dict[str, Any]:
        difference = self.difference
        return {
            "invoice_id": self.invoice_id,
            "status": self.status,
            "billing_run": self.billing_run,
            "currency": self.currency,
            "total": plain(self.total),
            "total_after_rebill": plain(self.new_total),
            "difference": None if difference is None else plain(difference),
        }


@dataclass(frozen=True)
class TenantDiff:
    """One tenant: previous run vs replay run, line by line, rated with the current rules.

    ``previous`` is None when the previous run's meters could not be rated
    (``previous_problem`` says why, e.g. two aggregations of one metric in the period).
    """

    tenant: str
    currency: str
    previous_run: str
    new_run: str
    previous: Invoice | None
    new: Invoice
    lines: tuple[LineDiff, ...]
    stored: StoredInvoiceImpact | None = None
    previous_problem: str = ""

    @property
    def previous_total(self) -> Decimal:
        return Decimal(0) if self.previous is None else self.previous.total

    @property
    def new_total(self) -> Decimal:
        return self.new.total

    @property
    def difference(self) -> Decimal:
        return self.new_total - self.previous_total

    @property
    def changed(self) -> bool:
        return self.previous is None or any(line.changed for line in self.lines)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "currency": self.currency,
            "previous_run": self.previous_run,
            "new_run": self.new_run,
            "previous_basis": "previous run rated with the current rules",
            "previous_problem": self.previous_problem or None,
            "lines": [line.to_json_dict() for line in self.lines],
            "previous_total": None if self.previous is None else plain(self.previous_total),
            "new_total": plain(self.new_total),
            "difference": None if self.previous is None else plain(self.difference),
            "changed": self.changed,
            "stored_invoice": None if self.stored is None else self.stored.to_json_dict(),
        }


def diff_lines(previous: Invoice | None, new: Invoice) -> tuple[LineDiff, ...]:
    """The lines of both invoices matched by kind, product and metric (usage), name (flat) or
    kind (true-up); in the new invoice's order, then lines only the previous one has."""
    before = _keyed(() if previous is None else previous.lines_with_true_up())
    after = _keyed(new.lines_with_true_up())
    out: list[LineDiff] = []
    for key, line in after.items():
        old = before.get(key)
        out.append(_line_diff(old, line))
    for key, old in before.items():
        if key not in after:
            out.append(_line_diff(old, None))
    return tuple(out)


def _keyed(lines: Sequence[InvoiceLine]) -> dict[LineKey, InvoiceLine]:
    keyed: dict[LineKey, InvoiceLine] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for line in lines:
        base: tuple[str, str, str]
        if line.kind == "usage":
            base = (line.kind, line.product or "", line.metric or "")
        elif line.kind == "flat":
            base = (line.kind, line.name, "")
        else:
            base = (line.kind, "", "")
        number = seen.get(base, 0)
        seen[base] = number + 1
        keyed[(*base, number)] = line
    return keyed


def _line_diff(old: InvoiceLine | None, new: InvoiceLine | None) -> LineDiff:
    shown = new or old
    assert shown is not None  # one side always exists
    return LineDiff(
        kind=shown.kind,
        name=shown.name,
        product=shown.product,
        metric=shown.metric,
        previous_quantity=None if old is None else old.quantity,
        new_quantity=None if new is None else new.quantity,
        previous_amount=Decimal(0) if old is None else old.amount,
        new_amount=Decimal(0) if new is None else new.amount,
    )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)
