from __future__ import annotations

import pytest

from pipeline.catalog.currency import SUPPORTED_CURRENCIES, minor_unit_digits


def test_minor_units() -> None:
    assert [minor_unit_digits(c) for c in ("USD", "EUR", "GBP", "JPY")] == [2, 2, 2, 0]
    assert SUPPORTED_CURRENCIES == ("EUR", "GBP", "JPY", "USD")
    with pytest.raises(KeyError):
        minor_unit_digits("XYZ")
