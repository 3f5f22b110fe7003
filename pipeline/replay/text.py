"""Plain-text rendering shared by the replay and event-log reports (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pipeline.catalog.values import plain
from pipeline.rating import RATING_CONTEXT


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    indent: str = "",
    align: str = "",
) -> list[str]:
    """Aligned columns. ``align`` has one letter per column, ``l`` or ``r``; by default the
    first column is left-aligned and the others (numbers) right-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    sides = align or "l" + "r" * (len(headers) - 1)

    def render(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[index]) if sides[index] == "l" else cell.rjust(widths[index])
            for index, cell in enumerate(cells)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [render(headers), *(render(row) for row in rows)]


def quantity(value: Decimal | None) -> str:
    """``15000``, ``1.5``, ``-``: a quantity without padding zeros or exponent."""
    if value is None:
        return "-"
    if value == value.to_integral_value():
        return plain(value.quantize(Decimal(1), context=RATING_CONTEXT))
    return plain(value.normalize(RATING_CONTEXT))


def signed_quantity(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = quantity(value)
    return f"+{text}" if value > 0 else text


def timestamp(moment: datetime) -> str:
    """``2026-03-14T09:30:00.123456Z`` (UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
