"""The canonical usage event: one API request, whatever gateway saw it (contract §4).

Design decisions
----------------
* ``tenant_headers`` (a tuple) instead of one ``tenant_header`` string: a gateway can forward
  ``X-Tenant-Id`` several times (repeated header, array value). The edge keeps every raw value,
  trimmed, in arrival order (empty values dropped, duplicates kept) and leaves the decision to
  the stream stage, which quarantines two *different* tenants in one event after unification
  (``ACME`` and ``acme`` may well be the same tenant, so the edge cannot decide). ``()`` means
  no header at all. :attr:`CanonicalEvent.tenant_header` gives the first value for display.
* Unknown values are ``None``, never ``0``: a missing size is not a zero-byte response.
* ``gateway`` and ``integration_id`` are always those of the integration that posted the
  event (the edge forces them), so the stream stage can trust them for tenant permissions.
* Sizes and latency are bounded by :data:`MAX_EVENT_INTEGER` (2**64 - 1) so that every valid
  event can be encoded for Kafka.
* The model is strict (no str -> int coercion, no bool as int): the decoders convert gateway
  values first and produce precise, gateway-specific messages; this model is the last guard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.events.errors import InvalidTimestamp
from pipeline.events.timestamps import ensure_utc, parse_iso8601

Gateway = Literal["kong", "apigee", "aws", "azure", "mulesoft"]
GATEWAYS: Final[tuple[Gateway, ...]] = get_args(Gateway)

MAX_IDEMPOTENCY_KEY_LENGTH: Final = 512
MIN_STATUS: Final = 100
MAX_STATUS: Final = 599
MAX_EVENT_INTEGER: Final = 2**64 - 1
"""The largest size or latency an event holds: the largest whole number a Kafka record (JSON via
orjson, unsigned 64-bit) can carry. Larger values are refused instead of crashing the encoder."""

# Field order of the model and of the Kafka record.
EVENT_FIELDS: Final[tuple[str, ...]] = (
    "idempotency_key",
    "tenant_headers",
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
    "attributes",
)


class CanonicalEvent(BaseModel):
    """One metered API request after decoding; immutable."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    idempotency_key: str = Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    tenant_headers: tuple[str, ...] = ()
    gateway: Gateway
    integration_id: str = Field(min_length=1)
    timestamp: datetime
    api: str | None = None
    route: str | None = None
    method: str | None = None
    status: int | None = Field(default=None, ge=MIN_STATUS, le=MAX_STATUS)
    request_bytes: int | None = Field(default=None, ge=0, le=MAX_EVENT_INTEGER)
    response_bytes: int | None = Field(default=None, ge=0, le=MAX_EVENT_INTEGER)
    latency_ms: int | None = Field(default=None, ge=0, le=MAX_EVENT_INTEGER)
    consumer: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @property
    def tenant_header(self) -> str | None:
        """The first raw ``X-Tenant-Id`` value (contract §4); see ``tenant_headers`` for all."""
        return self.tenant_headers[0] if self.tenant_headers else None

    @field_validator("idempotency_key", "integration_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("tenant_headers", mode="before")
    @classmethod
    def _headers_as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_timestamp(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_iso8601(value)
            except InvalidTimestamp as exc:
                raise ValueError(exc.problem) from exc
        return value

    @field_validator("timestamp")
    @classmethod
    def _utc_timestamp(cls, value: datetime) -> datetime:
        try:
            return ensure_utc(value)
        except InvalidTimestamp as exc:
            raise ValueError(exc.problem) from exc

    @field_validator("method")
    @classmethod
    def _upper_method(cls, value: str | None) -> str | None:
        if value is None:
            return None
        method = value.strip().upper()
        if not method or not method.isascii() or not method.replace("-", "").isalpha():
            raise ValueError(f"must be an HTTP method like GET or POST, got {value!r}")
        return method
