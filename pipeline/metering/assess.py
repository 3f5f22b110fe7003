"""One call per consumed event: tenant, product and meter entries (dedup is separate: state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Final, NamedTuple

from pipeline.catalog import Catalog
from pipeline.events import EventFields
from pipeline.metering.matching import ProductMatcher
from pipeline.metering.meters import MeterEntry, MeterProblem, ProductMeters
from pipeline.metering.tenancy import TenantResolution, TenantResolver

DEFAULT_CACHE_SIZE: Final = 65_536

#: tuple.__new__ builds a NamedTuple without its Python-level __new__ (once per event).
_new = tuple.__new__


class Fate(StrEnum):
    """What tenancy and matching make of an event (before dedup decides on copies). Stable."""

    QUARANTINED = "quarantined"
    UNMAPPED = "unmapped"
    METERED = "metered"


class Assessment(NamedTuple):
    """Tenancy, product and meter entries of one event.

    Quarantined events are not matched (``product_id`` None, no entries): they are billed to
    nobody until the catalog is fixed and they are re-processed.
    """

    tenant: TenantResolution
    product_id: str | None
    entries: Sequence[MeterEntry | MeterProblem]

    @property
    def fate(self) -> Fate:
        if self.tenant.reason is not None:
            return Fate.QUARANTINED
        return Fate.UNMAPPED if self.product_id is None else Fate.METERED


# (integration id, tenant headers, gateway, api, route, method)
_RoutingKey = tuple[str, tuple[str, ...], str, str | None, str | None, str | None]
# A finished Assessment (quarantined or unmapped: no entries), or what metering needs.
_Routing = Assessment | tuple[TenantResolution, str, ProductMeters]


class Metering:
    """The pure per-event core of the stream worker for one catalog (build once per catalog).

    ``tenants`` and ``matcher`` are available on their own (e.g. for the quarantine re-run).
    :meth:`assess` caches tenancy and matching together by the event's routing fields.
    """

    __slots__ = ("_cache", "_max_size", "_meters", "catalog", "matcher", "tenants")

    def __init__(self, catalog: Catalog, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.catalog = catalog
        self.tenants = TenantResolver(catalog, max_size)
        self.matcher = ProductMatcher(catalog, max_size)
        self._meters = {product.id: ProductMeters(product) for product in catalog.products}
        self._max_size = max_size
        self._cache: dict[_RoutingKey, _Routing] = {}

    def assess(self, fields: EventFields) -> Assessment:
        """Tenant resolution, then (unless quarantined) product and meter entries."""
        key = (
            fields["integration_id"],
            fields["tenant_headers"],
            fields["gateway"],
            fields["api"],
            fields["route"],
            fields["method"],
        )
        try:
            routing = self._cache[key]
        except KeyError:
            routing = self._route(key)
        if isinstance(routing, Assessment):
            return routing
        tenant, product_id, meters = routing
        row: Mapping[str, object] = fields
        return _new(Assessment, (tenant, product_id, meters.entries(row)))

    def _route(self, key: _RoutingKey) -> _Routing:
        integration_id, tenant_headers, gateway, api, route, method = key
        tenant = self.tenants.resolve(integration_id, tenant_headers)
        routing: _Routing
        if tenant.reason is not None:
            routing = Assessment(tenant, None, ())
        else:
            product = self.matcher.match(gateway, api, route, method)
            if product is None:
                routing = Assessment(tenant, None, ())
            else:
                routing = (tenant, product.id, self._meters[product.id])
        if len(self._cache) >= self._max_size:
            self._cache.clear()
        self._cache[key] = routing
        return routing
