"""Field types shared by the rules models: exact decimals, identifiers, event field names."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints


class RuleModel(BaseModel):
    """Base of every rules model: immutable, unknown keys rejected, numeric ids read as text."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def to_decimal(value: object) -> Decimal:
    """Read a YAML/JSON number or numeric string as an exact Decimal (floats via their text)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest text that reads back as this float: 0.1 -> "0.1", never
        # 0.1000000000000000055511151231257827 as Decimal(0.1) would give.
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"expected a decimal number, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must be >= 0, got {plain(value)}")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be > 0, got {plain(value)}")
    return value


ExactDecimal = Annotated[Decimal, BeforeValidator(to_decimal)]
NonNegativeDecimal = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(_non_negative)]
PositiveDecimal = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(_positive)]

IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
Identifier = Annotated[
    str, StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=128)
]


def _trimmed_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError(f"must not start or end with whitespace, got {value!r}")
    return value


Text = Annotated[str, StringConstraints(max_length=256), AfterValidator(_trimmed_text)]

#: Canonical event fields (contract §4) a metric may read or filter on, besides attributes.*.
CANONICAL_FIELDS: Final = frozenset(
    {
        "idempotency_key",
        "tenant_header",
        "gateway",
        "integration_id",
        "timestamp",
        "api",
        "route",
        "method",
        "status",
        "request_bytes",
        "response_bytes",
        "latency_ms",
        "consumer",
    }
)
#: Canonical fields holding numbers (valid for ``sum`` and ``max``); attributes.* also qualify.
NUMERIC_FIELDS: Final = frozenset({"status", "request_bytes", "response_bytes", "latency_ms"})
ATTRIBUTES_PREFIX: Final = "attributes."


def _event_field(value: str) -> str:
    if value in CANONICAL_FIELDS:
        return value
    name = value.removeprefix(ATTRIBUTES_PREFIX)
    if value.startswith(ATTRIBUTES_PREFIX) and name and name.strip() == name:
        return value
    known = ", ".join(sorted(CANONICAL_FIELDS))
    raise ValueError(f"unknown event field {value!r}: use one of {known} or attributes.<name>")


EventField = Annotated[str, AfterValidator(_event_field)]


def is_numeric_field(field: str) -> bool:
    """True for canonical numeric fields and for attributes (parsed as numbers when rated)."""
    return field in NUMERIC_FIELDS or field.startswith(ATTRIBUTES_PREFIX)


def plain(number: Decimal) -> str:
    """Decimal as positional text without exponent, keeping its written scale (``1E+3`` -> 1000)."""
    return format(number, "f")
