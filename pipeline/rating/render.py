"""Human-readable invoice text with aligned columns."""

from __future__ import annotations

from decimal import Decimal

from pipeline.catalog.values import plain
from pipeline.rating.invoice import Invoice

_HEADERS = ("Charge", "Product", "Metric", "Quantity", "Billable", "Pricing", "Amount")
_RIGHT = frozenset({3, 4, 6})  # numeric columns


def render_invoice_text(invoice: Invoice) -> str:
    """The invoice as a plain-text table, amounts right-aligned, totals under the Amount column."""
    rows = [
        (
            line.name,
            line.product or "-",
            line.metric or "-",
            _cell(line.quantity),
            _cell(line.billable),
            line.unit_description,
            plain(line.amount),
        )
        for line in invoice.lines
    ]
    totals = [("Subtotal", invoice.subtotal)]
    if invoice.minimum_commitment is not None:
        minimum = plain(invoice.minimum_commitment)
        totals.append((f"Minimum commitment true-up (minimum {minimum})", invoice.true_up))
    totals.append((f"Total {invoice.currency}", invoice.total))

    widths = [len(header) for header in _HEADERS]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    widths[6] = max(widths[6], *(len(plain(amount)) for _, amount in totals))
    table_width = sum(widths) + 2 * (len(widths) - 1)

    def fmt(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(width) if index in _RIGHT else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [
        f"Invoice for tenant {invoice.tenant}, period {invoice.period}",
        f"Plan {invoice.plan} (version effective {invoice.plan_version.isoformat()}), "
        f"currency {invoice.currency}",
        "",
        fmt(_HEADERS),
        "-" * table_width,
        *(fmt(row) for row in rows),
        "-" * table_width,
    ]
    label_width = table_width - widths[6] - 2
    out += [
        f"{label.rjust(label_width)}  {plain(amount).rjust(widths[6])}" for label, amount in totals
    ]
    return "\n".join(out) + "\n"


def _cell(value: Decimal | None) -> str:
    return "-" if value is None else plain(value)
