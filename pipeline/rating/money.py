"""Rounding amounts to a currency's minor unit."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, DivisionByZero, Overflow
from decimal import InvalidOperation as DecimalInvalidOperation
from typing import Final

from pipeline.catalog.currency import MINOR_UNIT_DIGITS, SUPPORTED_CURRENCIES
from pipeline.rating.errors import RatingError

#: Context for all rating arithmetic, independent of the caller's thread context. 60 significant
#: digits keep every realistic product and quotient exact; lines are rounded explicitly.
RATING_CONTEXT: Final = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    traps=[DecimalInvalidOperation, DivisionByZero, Overflow],
)


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency``: Decimal("0.01") for USD, Decimal("1") for JPY."""
    digits = MINOR_UNIT_DIGITS.get(currency)
    if digits is None:
        raise RatingError(
            f"unsupported currency {currency!r} (supported: {', '.join(SUPPORTED_CURRENCIES)})",
            currency=currency,
        )
    return Decimal(1).scaleb(-digits)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up (away from zero on a tie) to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP, context=RATING_CONTEXT)
