"""Tenant unification (contract §5): which canonical tenant an event bills to, or why none.

Rules, in the order they are applied:

1. The event's integration must be in the catalog, else ``unknown_integration``.
2. ``X-Tenant-Id`` values are trimmed and compared case-insensitively with every tenant's id
   and aliases. Blank values are ignored (the edge already drops them).
3. No value: the integration's ``default_tenant`` if set, else ``missing_tenant``.
4. Any value that names no tenant: ``unknown_tenant`` (even next to a known one: the unknown
   value is what must be fixed, and it may well turn out to mean the same tenant).
5. Known values naming two or more different tenants: ``conflicting_tenants``. Several values
   naming one tenant (``ACME`` and ``acme_eu``) are fine.
6. The tenant must be allowed for the integration (``allowed_tenants``: deny by default, every
   integration names its tenants or says ``any``), else ``tenant_not_allowed``.

A quarantined event is never billed to a guess and never dropped; the reason codes below are
stable strings (stored in ClickHouse, used as Prometheus labels): never rename one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pipeline.catalog import Catalog, Integration


class QuarantineReason(StrEnum):
    """Why an event has no canonical tenant. Values are part of the storage contract."""

    UNKNOWN_INTEGRATION = "unknown_integration"
    MISSING_TENANT = "missing_tenant"
    UNKNOWN_TENANT = "unknown_tenant"
    CONFLICTING_TENANTS = "conflicting_tenants"
    TENANT_NOT_ALLOWED = "tenant_not_allowed"


@dataclass(frozen=True, slots=True)
class TenantResolution:
    """The canonical tenant of an event, or the quarantine reason; ``detail`` names the values."""

    tenant_id: str | None
    reason: QuarantineReason | None
    detail: str

    @property
    def quarantined(self) -> bool:
        return self.reason is not None


def resolve_tenant(
    catalog: Catalog, integration_id: str, tenant_headers: Sequence[str]
) -> TenantResolution:
    """Apply the rules of the module doc (uncached; :class:`TenantResolver` caches)."""
    integration = catalog.integration(integration_id)
    if integration is None:
        return _quarantine(
            QuarantineReason.UNKNOWN_INTEGRATION,
            f"integration '{integration_id}' is not in the catalog; add it to rating_rules",
        )
    values = [value.strip() for value in tenant_headers if value.strip()]
    if not values:
        return _default_tenant(integration)
    unknown: list[str] = []
    tenants: dict[str, list[str]] = {}  # canonical id -> the header values naming it
    for value in values:
        tenant = catalog.tenant_for_header(value)
        if tenant is None:
            unknown.append(value)
        else:
            tenants.setdefault(tenant.id, []).append(value)
    if unknown:
        return _quarantine(
            QuarantineReason.UNKNOWN_TENANT,
            f"X-Tenant-Id {_quoted(unknown)} matches no tenant id or alias; "
            "add it as an alias of the right tenant",
        )
    if len(tenants) > 1:
        named = "; ".join(f"{_quoted(vals)} -> {tid}" for tid, vals in tenants.items())
        return _quarantine(
            QuarantineReason.CONFLICTING_TENANTS,
            f"X-Tenant-Id values name different tenants ({named})",
        )
    (tenant_id,) = tenants
    source = f"X-Tenant-Id {_quoted(values)}"
    return _allowed(integration, tenant_id, source)


def _default_tenant(integration: Integration) -> TenantResolution:
    if integration.default_tenant is None:
        return _quarantine(
            QuarantineReason.MISSING_TENANT,
            f"no X-Tenant-Id and integration '{integration.id}' has no default_tenant",
        )
    return _allowed(
        integration, integration.default_tenant, f"default_tenant of '{integration.id}'"
    )


def _allowed(integration: Integration, tenant_id: str, source: str) -> TenantResolution:
    if integration.allows(tenant_id):
        return TenantResolution(tenant_id, None, f"{source} -> {tenant_id}")
    allowed = ", ".join(integration.listed_tenants)
    return _quarantine(
        QuarantineReason.TENANT_NOT_ALLOWED,
        f"{source} -> tenant '{tenant_id}', which integration '{integration.id}' may not "
        f"report for (allowed_tenants: {allowed})",
    )


def _quarantine(reason: QuarantineReason, detail: str) -> TenantResolution:
    return TenantResolution(None, reason, detail)


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


DEFAULT_CACHE_SIZE: Final = 65_536


class TenantResolver:
    """:func:`resolve_tenant` for one catalog, cached by (integration id, header values).

    The cache is bounded: when full it is emptied (cheap, and results are pure functions of the
    catalog, so a miss only costs a recomputation).
    """

    __slots__ = ("_cache", "_catalog", "_max_size")

    def __init__(self, catalog: Catalog, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._catalog = catalog
        self._max_size = max_size
        self._cache: dict[tuple[str, tuple[str, ...]], TenantResolution] = {}

    def resolve(self, integration_id: str, tenant_headers: tuple[str, ...]) -> TenantResolution:
        key = (integration_id, tenant_headers)
        found = self._cache.get(key)
        if found is None:
            found = resolve_tenant(self._catalog, integration_id, tenant_headers)
            if len(self._cache) >= self._max_size:
                self._cache.clear()
            self._cache[key] = found
        return found
