"""Last checks on an accepted event's record before it leaves the edge: will every value fit?

The decoders already bound what the event columns hold (status 100..599 in ``UInt16``, sizes and
latency up to 2**64 - 1 in ``UInt64``, event times 2000..2100 in ``DateTime64``). Two things
only the edge's catalog and producer know are checked here, on the record's bytes:

* **Meter values**: an attribute that a ``sum`` or ``max`` metric of the catalog reads becomes a
  ``meter_entries.value``, a ``Decimal(38, 9)``: at most 29 digits before the point and 9 after.
  A longer number was accepted before and then refused by ClickHouse on every retry of the
  worker, stalling its partition for every tenant.
* **Record size**: a record over the broker's limit failed its whole batch with 503 on every
  retry of the plugin.

Either is that event's rejection, with a reason. The attribute is found by a byte search in the
record (``"attributes":{...,"<name>":"<text>"``), so events without such attributes cost one
``bytes.find``; the text is only parsed when it is long or has a point or exponent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

import orjson

from pipeline.catalog import Catalog
from pipeline.metering.meters import METER_FRACTION_DIGITS, METER_INTEGER_DIGITS, fits_meter_value

ATTRIBUTE_PREFIX: Final = "attributes."
_ATTRIBUTES: Final = b'"attributes":{'


def numeric_attributes(catalog: Catalog) -> tuple[str, ...]:
    """Attribute names a ``sum`` or ``max`` metric of the catalog reads as a number."""
    names = {
        metric.field.removeprefix(ATTRIBUTE_PREFIX)
        for product in catalog.products
        for metric in product.metrics
        if metric.aggregation in ("sum", "max")
        and metric.field is not None
        and metric.field.startswith(ATTRIBUTE_PREFIX)
    }
    return tuple(sorted(names))


class RecordChecks:
    """The checks of the module doc for one catalog and record-size limit."""

    __slots__ = ("_needles", "max_record_bytes")

    def __init__(self, catalog: Catalog, max_record_bytes: int) -> None:
        self.max_record_bytes = max_record_bytes
        self._needles = tuple(
            (name, orjson.dumps(name) + b":") for name in numeric_attributes(catalog)
        )

    def problem(self, value: bytes) -> str | None:
        """Why the record ``value`` cannot be accepted, or None."""
        if len(value) > self.max_record_bytes:
            return (
                f"the event's record is {len(value)} bytes, more than the "
                f"{self.max_record_bytes} an event may be; keep large values out of attributes"
            )
        if not self._needles:
            return None
        start = value.find(_ATTRIBUTES)
        if start < 0 or value.startswith(b"}", start + len(_ATTRIBUTES)):
            return None
        for name, needle in self._needles:
            at = value.find(needle, start)
            if at < 0:
                continue
            text_start = at + len(needle) + 1  # past the opening quote
            text = value[text_start : value.find(b'"', text_start)]
            problem = meter_value_problem(text)
            if problem is not None:
                return f"attributes.{name} = {text[:60].decode(errors='replace')!r} {problem}"
        return None


def meter_value_problem(text: bytes) -> str | None:
    """Why a number's text does not fit ``Decimal(38, 9)``; None if it does or is no number
    (a text that is not a number is the metering's own problem: it skips the entry)."""
    if len(text) <= METER_INTEGER_DIGITS and b"." not in text and b"e" not in text.lower():
        return None
    try:
        number = Decimal(text.decode())
    except (InvalidOperation, UnicodeDecodeError, ValueError):
        return None
    if not number.is_finite() or fits_meter_value(format(number, "f")):
        return None
    return (
        f"does not fit a meter value (Decimal(38, 9): at most {METER_INTEGER_DIGITS} digits "
        f"before the point and {METER_FRACTION_DIGITS} after)"
    )
