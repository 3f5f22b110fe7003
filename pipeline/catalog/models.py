"""Rules models for tenants, integrations (gateway deployments) and products (contract §6)."""

from __future__ import annotations

import re
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Annotated, Final, Literal, get_args

from pydantic import AfterValidator, Field, field_validator, model_validator

from pipeline.catalog.values import (
    EventField,
    ExactDecimal,
    Identifier,
    PositiveDecimal,
    RuleModel,
    Text,
    is_numeric_field,
    to_decimal,
)

Gateway = Literal["kong", "apigee", "aws", "azure", "mulesoft"]
GATEWAYS: Final[tuple[Gateway, ...]] = get_args(Gateway)

Aggregation = Literal["count", "sum", "max", "unique_count"]
AGGREGATIONS: Final[tuple[Aggregation, ...]] = get_args(Aggregation)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_METHOD = re.compile(r"[A-Z]+")


def normalize_tenant_key(value: str) -> str:
    """How X-Tenant-Id values, tenant ids and aliases are compared: trimmed, case-folded."""
    return value.strip().casefold()


class Tenant(RuleModel):
    """A canonical billing context and the other X-Tenant-Id values that mean it."""

    id: Identifier
    plan: Identifier
    aliases: tuple[Text, ...] = ()


def _sha256_hex(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        # The value is not echoed: a key pasted here by mistake must not reach logs.
        raise ValueError(
            "must be the sha256 of the api key as 64 hex characters, e.g. "
            f'printf %s "$KEY" | sha256sum (got {len(digest)} characters, not shown)'
        )
    return digest


ANY_TENANT: Final = "any"
_ALLOWED_TENANTS_HINT: Final = (
    "list the tenants this integration's key may bill (allowed_tenants: [acme, globex]), or "
    "write allowed_tenants: any for a single-tenant deployment"
)


class Integration(RuleModel):
    """One gateway deployment reporting usage with its own ingest API key."""

    id: Identifier
    gateway: Gateway
    api_key_sha256: Annotated[str, AfterValidator(_sha256_hex)]
    default_tenant: Identifier | None = None
    #: deny by default (contract §12): the tenants this key may bill, or ``"any"``
    allowed_tenants: tuple[Identifier, ...] | Literal["any"]
    api_key_tenants: dict[Text, Identifier] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _tenants_are_named(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("allowed_tenants") is None:
            state = "missing" if "allowed_tenants" not in data else "null"
            raise ValueError(
                f"allowed_tenants is {state}: an integration bills no tenant by default; "
                + _ALLOWED_TENANTS_HINT
            )
        return data

    @field_validator("api_key_tenants", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return {} if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> Integration:
        if self.api_key_tenants and self.gateway != "aws":
            raise ValueError(
                f"api_key_tenants is only used by aws integrations (this one is {self.gateway}); "
                "remove it"
            )
        if self.allowed_tenants != ANY_TENANT:
            if not self.allowed_tenants:
                raise ValueError(
                    "allowed_tenants is empty, so every event would be quarantined; "
                    + _ALLOWED_TENANTS_HINT
                )
            allowed = set(self.allowed_tenants)
            if self.default_tenant is not None and self.default_tenant not in allowed:
                raise ValueError(
                    f"default_tenant '{self.default_tenant}' is not in allowed_tenants"
                )
            for key_id, tenant in self.api_key_tenants.items():
                if tenant not in allowed:
                    raise ValueError(
                        f"api_key_tenants maps '{key_id}' to '{tenant}', "
                        "which is not in allowed_tenants"
                    )
        return self

    def referenced_tenants(self) -> tuple[tuple[str, str], ...]:
        """(setting, tenant id) for every tenant this integration names."""
        refs: list[tuple[str, str]] = []
        if self.default_tenant is not None:
            refs.append(("default_tenant", self.default_tenant))
        refs.extend(("allowed_tenants", tenant) for tenant in self.listed_tenants)
        refs.extend(
            (f"api_key_tenants['{key_id}']", tenant)
            for key_id, tenant in self.api_key_tenants.items()
        )
        return tuple(refs)

    @property
    def listed_tenants(self) -> tuple[str, ...]:
        """The tenants ``allowed_tenants`` names; empty when it says ``any``."""
        return () if self.allowed_tenants == ANY_TENANT else self.allowed_tenants

    def allows(self, tenant_id: str) -> bool:
        """Whether this integration may report usage for ``tenant_id`` (a canonical id)."""
        return self.allowed_tenants == ANY_TENANT or tenant_id in self.allowed_tenants


def _http_method(value: str) -> str:
    method = value.strip().upper()
    if not _METHOD.fullmatch(method):
        raise ValueError(f"method must be an HTTP method such as GET or POST, got {value!r}")
    return method


class MatchRule(RuleModel):
    """Which events belong to a product: gateway and API id, optionally route glob and method."""

    gateway: Gateway
    api: Text
    route: Text | None = None
    method: Annotated[str, AfterValidator(_http_method)] | None = None

    def matches(self, gateway: str, api: str | None, route: str | None, method: str | None) -> bool:
        """Exact gateway and api; ``route`` is an fnmatch glob (``*`` spans ``/``, case-sensitive);
        ``method`` compares case-insensitively. A rule with a route or method never matches an
        event that lacks it."""
        if gateway != self.gateway or api != self.api:
            return False
        if self.route is not None and (route is None or not fnmatchcase(route, self.route)):
            return False
        return self.method is None or (method is not None and method.upper() == self.method)


Scalar = bool | Decimal | str


def _scalar(value: object) -> object:
    """Numbers become Decimals so that 500, 500.0 and "500" compare alike; text stays text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return to_decimal(value)
    return value


class Condition(RuleModel):
    """Conditions on one event field; every operator given must hold."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Scalar, ...] | None = None
    lt: ExactDecimal | None = None
    lte: ExactDecimal | None = None
    gt: ExactDecimal | None = None
    gte: ExactDecimal | None = None

    @field_validator("eq", "ne", mode="before")
    @classmethod
    def _one_scalar(cls, value: object) -> object:
        return _scalar(value)

    @field_validator("in_", "not_in", mode="before")
    @classmethod
    def _many_scalars(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(_scalar(item) for item in value)
        return value

    @model_validator(mode="after")
    def _has_operator(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError(
                "a condition needs at least one of eq, ne, in, not_in, lt, lte, gt, gte"
            )
        for name in ("in_", "not_in", "lt", "lte", "gt", "gte"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name.rstrip('_')} must not be null")
        return self

    def operators(self) -> tuple[tuple[str, object], ...]:
        """The operators given, as (name, value) in a fixed order; ``in_`` is reported as ``in``."""
        names = ("eq", "ne", "in_", "not_in", "lt", "lte", "gt", "gte")
        return tuple(
            (name.rstrip("_"), getattr(self, name))
            for name in names
            if name in self.model_fields_set
        )


class Metric(RuleModel):
    """How matched events of a product turn into one quantity over a period."""

    id: Identifier
    aggregation: Aggregation
    field: EventField | None = None
    divide_by: PositiveDecimal = Decimal(1)
    where: dict[EventField, Condition] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _field_fits_aggregation(self) -> Metric:
        if self.aggregation == "count":
            if self.field is not None:
                raise ValueError(
                    "aggregation count counts events and takes no field "
                    "(filter with where, or use unique_count)"
                )
        elif self.field is None:
            raise ValueError(f"aggregation {self.aggregation} needs a field")
        elif self.aggregation in ("sum", "max") and not is_numeric_field(self.field):
            raise ValueError(
                f"aggregation {self.aggregation} needs a numeric field "
                f"(status, request_bytes, response_bytes, latency_ms or attributes.<name>), "
                f"got {self.field}"
            )
        return self


class Product(RuleModel):
    """A billable product: the events it matches and the metrics it meters."""

    id: Identifier
    match: tuple[MatchRule, ...] = Field(min_length=1)
    metrics: tuple[Metric, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_metric_ids(self) -> Product:
        seen: set[str] = set()
        for metric in self.metrics:
            if metric.id in seen:
                raise ValueError(f"duplicate metric id '{metric.id}'")
            seen.add(metric.id)
        return self

    def metric(self, metric_id: str) -> Metric | None:
        """The metric with this id, or None."""
        return next((m for m in self.metrics if m.id == metric_id), None)

    def matches(self, gateway: str, api: str | None, route: str | None, method: str | None) -> bool:
        """Whether any of the product's match rules fits the event."""
        return any(rule.matches(gateway, api, route, method) for rule in self.match)
