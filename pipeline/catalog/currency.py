"""The currencies a plan may bill in, with the number of digits of their minor unit."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: ISO 4217 code -> digits of the minor unit. Extend here to support another currency.
MINOR_UNIT_DIGITS: Final = MappingProxyType(
    {
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "JPY": 0,
    }
)

SUPPORTED_CURRENCIES: Final = tuple(sorted(MINOR_UNIT_DIGITS))


def minor_unit_digits(currency: str) -> int:
    """Digits after the decimal point of ``currency``'s minor unit (KeyError if unsupported)."""
    return MINOR_UNIT_DIGITS[currency]
