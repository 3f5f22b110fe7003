"""``where`` conditions of a metric (contract §6), compiled once per catalog.

Semantics (what a billing engineer reading the rules would expect):

* The field is a canonical event field or ``attributes.<name>`` (attribute values are text).
* ``eq``, ``ne``, ``in``, ``not_in`` compare numbers to numbers and text to text: a number in
  the rules equals an event value whose number is equal (``200`` eq ``200``, attribute
  ``"200"`` or ``"200.0"`` eq ``200``); text in the rules equals the event value's text exactly
  (case-sensitive; ``status`` 200 eq ``"200"`` holds, as the text of 200 is ``"200"``). A text
  that is not a number never equals a number. ``true``/``false`` in the rules equal the text
  ``true``/``false`` in any case. On ``method`` (always upper case in events) text values of the
  rules are compared upper-cased, so ``{in: [get, post]}`` works.
* ``lt``, ``lte``, ``gt``, ``gte`` compare as exact decimals. A value that is not a number
  (attribute ``"abc"``) does not satisfy them, and is reported as a problem (a metric silently
  not counting bad data would be invisible otherwise). ``timestamp`` compares as epoch
  milliseconds.
* **Null** (unknown field, missing attribute) satisfies **only** ``ne`` and ``not_in``: an
  unknown status is "not 500" but is not "< 500". So ``status: {lt: 500}`` does not count an
  event whose status is unknown, while ``status: {ne: 500}`` does. Every operator of a
  condition must hold.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, cast

from pipeline.catalog import Condition
from pipeline.errors import PipelineError
from pipeline.events import format_utc

ATTRIBUTES_PREFIX: Final = "attributes."
#: Longest attribute text read as a number (longer values are "not a number").
MAX_NUMBER_TEXT: Final = 40
_NUMBER_TEXT: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class NotANumber(PipelineError):
    """An ordering condition met a value that is not a number (caught and reported as a
    MeterProblem by the meters; never escapes :mod:`pipeline.metering`)."""


def parse_number(text: str) -> Decimal | None:
    """A plain decimal number (``12``, ``-0.5``, `` 3. ``) or None; no exponents, NaN or ∞."""
    text = text.strip()
    if len(text) > MAX_NUMBER_TEXT or not _NUMBER_TEXT.fullmatch(text):
        return None
    return Decimal(text)


def as_number(value: object) -> Decimal | int | None:
    """The event value as an exact number (ints stay ints: they compare exactly), or None."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        return parse_number(value)
    if isinstance(value, datetime):
        return Decimal((value - _EPOCH) // _MICROSECOND).scaleb(-3)
    return None


def as_text(value: object) -> str:
    """The event value as text: strings as they are, numbers in decimal, times as ISO UTC."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_utc(value)
    return str(value)


Test = Callable[[object], bool]
_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


class CompiledCondition:
    """All operators of one field's condition, as one function ``holds(value)``.

    ``holds`` raises :class:`NotANumber` when an ordering operator meets a value that is not
    a number; ``value`` is the field's value in one event (None when null).
    """

    __slots__ = ("attribute", "field", "holds", "name")

    def __init__(self, field: str, condition: Condition) -> None:
        self.field = field
        self.attribute = field.startswith(ATTRIBUTES_PREFIX)
        self.name = field.removeprefix(ATTRIBUTES_PREFIX) if self.attribute else field
        operators = condition.operators()
        null_holds = all(op in ("ne", "not_in") for op, _ in operators)
        upper = field == "method"
        tests = tuple(_compile(op, operand, upper=upper) for op, operand in operators)
        self.holds = _all_of(tests, null_holds)


def _all_of(tests: tuple[Test, ...], null_holds: bool) -> Test:
    if len(tests) == 1:
        (test,) = tests

        def holds_one(value: object) -> bool:
            return null_holds if value is None else test(value)

        return holds_one

    def holds_all(value: object) -> bool:
        if value is None:
            return null_holds
        return all(test(value) for test in tests)

    return holds_all


def _compile(op: str, operand: object, *, upper: bool) -> Test:
    if op in ("eq", "ne", "in", "not_in"):
        values = cast(tuple[object, ...], operand) if op in ("in", "not_in") else (operand,)
        member = _membership(values, upper=upper)
        if op in ("eq", "in"):
            return member
        return lambda value: not member(value)
    bound = cast(Decimal, operand)  # lt/lte/gt/gte are ExactDecimal in the catalog model
    compare = _ORDERINGS[op]

    def ordered(value: object) -> bool:
        if type(value) is int:
            return compare(value, bound)
        number = as_number(value)
        if number is None:
            raise NotANumber(f"{value!r} is not a number", value=repr(value))
        return compare(number, bound)

    return ordered


def _membership(values: tuple[object, ...], *, upper: bool) -> Test:
    """Whether an event value equals one of ``values`` (numbers, texts, booleans)."""
    numbers: frozenset[Decimal] = frozenset(
        v for v in values if isinstance(v, Decimal)
    )  # hash(Decimal(200)) == hash(200): ints look up directly
    texts = frozenset((v.upper() if upper else v) for v in values if isinstance(v, str))
    flags = frozenset(("true" if v else "false") for v in values if isinstance(v, bool))

    def member(value: object) -> bool:
        if numbers:
            number = as_number(value)
            if number is not None and number in numbers:
                return True
        if texts and as_text(value) in texts:
            return True
        return bool(flags) and as_text(value).lower() in flags

    return member
