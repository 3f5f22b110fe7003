"""The merged, cross-checked rules catalog with the lookups the pipeline stages need."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.catalog.errors import RuleProblem, catalog_error
from pipeline.catalog.models import Integration, Metric, Product, Tenant, normalize_tenant_key
from pipeline.catalog.plans import FlatCharge, Plan
from pipeline.catalog.rules import RulesFile


@dataclass(frozen=True)
class RulesSource:
    """Validated content of one rules file and the name it is reported under."""

    name: str
    rules: RulesFile


class Catalog:
    """All tenants, integrations, products and plans, merged in file order and cross-checked.

    Build it with :func:`pipeline.catalog.load_catalog` (from ``rating_rules/``) or
    :meth:`Catalog.from_rules`; both reject inconsistent rules with a CatalogError.
    """

    __slots__ = (
        "_by_key_sha256",
        "_integrations",
        "_plans",
        "_products",
        "_tenant_by_key",
        "_tenants",
        "fingerprint",
        "integrations",
        "plans",
        "products",
        "tenants",
    )

    def __init__(self, merged: RulesFile) -> None:
        # Private: use build_catalog / from_rules, which check references first.
        self.tenants: tuple[Tenant, ...] = merged.tenants
        self.integrations: tuple[Integration, ...] = merged.integrations
        self.products: tuple[Product, ...] = merged.products
        self.plans: tuple[Plan, ...] = merged.plans
        #: sha256 of the merged rules content (comments and file layout do not count).
        self.fingerprint: str = hashlib.sha256(merged.model_dump_json().encode()).hexdigest()
        self._tenants = {t.id: t for t in self.tenants}
        self._tenant_by_key: dict[str, Tenant] = {}
        for tenant in self.tenants:
            for name in (tenant.id, *tenant.aliases):
                self._tenant_by_key[normalize_tenant_key(name)] = tenant
        self._integrations = {i.id: i for i in self.integrations}
        self._by_key_sha256 = {i.api_key_sha256: i for i in self.integrations}
        self._products = {p.id: p for p in self.products}
        self._plans = {p.id: p for p in self.plans}

    @classmethod
    def from_rules(cls, rules: RulesFile, source: str = "<rules>") -> Catalog:
        """A catalog from already-parsed rules (cross-checked, problems reported under source)."""
        return build_catalog([RulesSource(source, rules)])

    # --- tenants -------------------------------------------------------------------------
    def tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with exactly this canonical id."""
        return self._tenants.get(tenant_id)

    def tenant_for_header(self, value: str) -> Tenant | None:
        """The tenant whose id or alias equals ``value`` (trimmed, case-insensitive)."""
        return self._tenant_by_key.get(normalize_tenant_key(value))

    def plan_of(self, tenant: Tenant) -> Plan:
        """The tenant's plan (always present in a built catalog)."""
        return self._plans[tenant.plan]

    # --- integrations --------------------------------------------------------------------
    def integration(self, integration_id: str) -> Integration | None:
        return self._integrations.get(integration_id)

    def integration_by_key_sha256(self, key_sha256: str) -> Integration | None:
        """The integration whose api_key_sha256 is ``key_sha256`` (hex, any case)."""
        return self._by_key_sha256.get(key_sha256.strip().lower())

    def integration_for_api_key(self, api_key: str) -> Integration | None:
        """The integration owning the plaintext ``api_key``; compares every stored digest in
        constant time (no early exit), so timing reveals nothing about which digest is close."""
        digest = hashlib.sha256(api_key.encode()).hexdigest().encode()
        found: Integration | None = None
        for integration in self.integrations:
            if hmac.compare_digest(digest, integration.api_key_sha256.encode()):
                found = integration
        return found

    # --- products and plans --------------------------------------------------------------
    def product(self, product_id: str) -> Product | None:
        return self._products.get(product_id)

    def metric(self, product_id: str, metric_id: str) -> Metric | None:
        product = self._products.get(product_id)
        return None if product is None else product.metric(metric_id)

    def plan(self, plan_id: str) -> Plan | None:
        return self._plans.get(plan_id)


def build_catalog(sources: Sequence[RulesSource]) -> Catalog:
    """Merge the sources in order (lists concatenated) and check every cross-reference."""
    problems = _check_references(sources)
    if problems:
        raise catalog_error(problems)
    merged = RulesFile(
        tenants=tuple(t for s in sources for t in s.rules.tenants),
        integrations=tuple(i for s in sources for i in s.rules.integrations),
        products=tuple(p for s in sources for p in s.rules.products),
        plans=tuple(p for s in sources for p in s.rules.plans),
    )
    return Catalog(merged)


def _check_references(sources: Sequence[RulesSource]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    problems += _duplicate_ids(sources)
    tenant_ids = {t.id for s in sources for t in s.rules.tenants}
    plan_ids = {p.id for s in sources for p in s.rules.plans}
    problems += _tenant_problems(sources, plan_ids)
    problems += _integration_problems(sources, tenant_ids)
    problems += _charge_problems(sources)
    return problems


def _duplicate_ids(sources: Sequence[RulesSource]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    sections: Iterable[tuple[str, str]] = (
        ("tenant", "tenants"),
        ("integration", "integrations"),
        ("product", "products"),
        ("plan", "plans"),
    )
    for label, section in sections:
        first_seen: dict[str, str] = {}
        for source in sources:
            for item in getattr(source.rules, section):
                if item.id in first_seen:
                    problems.append(
                        RuleProblem(
                            source.name,
                            f"{label} '{item.id}'",
                            f"duplicate {label} id (first defined in {first_seen[item.id]})",
                        )
                    )
                else:
                    first_seen[item.id] = source.name
    return problems


def _tenant_problems(sources: Sequence[RulesSource], plan_ids: set[str]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    claimed: dict[str, str] = {}  # normalized id or alias -> tenant id claiming it
    for source in sources:
        for tenant in source.rules.tenants:
            claimed.setdefault(normalize_tenant_key(tenant.id), tenant.id)
    for source in sources:
        for tenant in source.rules.tenants:
            item = f"tenant '{tenant.id}'"
            if tenant.plan not in plan_ids:
                known = ", ".join(sorted(plan_ids)) or "none"
                problems.append(
                    RuleProblem(
                        source.name,
                        item,
                        f"plan '{tenant.plan}' does not exist (known plans: {known})",
                    )
                )
            if claimed[normalize_tenant_key(tenant.id)] != tenant.id:
                other = claimed[normalize_tenant_key(tenant.id)]
                problems.append(
                    RuleProblem(source.name, item, f"id differs only in case from tenant '{other}'")
                )
            for alias in tenant.aliases:
                owner = claimed.setdefault(normalize_tenant_key(alias), tenant.id)
                if owner != tenant.id:
                    problems.append(
                        RuleProblem(
                            source.name,
                            item,
                            f"alias '{alias}' is already the id or an alias of tenant '{owner}' "
                            "(compared case-insensitively)",
                        )
                    )
    return problems


def _integration_problems(
    sources: Sequence[RulesSource], tenant_ids: set[str]
) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    key_owner: dict[str, str] = {}
    for source in sources:
        for integration in source.rules.integrations:
            item = f"integration '{integration.id}'"
            for setting, tenant in integration.referenced_tenants():
                if tenant not in tenant_ids:
                    problems.append(
                        RuleProblem(
                            source.name,
                            item,
                            f"{setting} names unknown tenant "
                            f"'{tenant}' (use a tenant id, not an alias)",
                        )
                    )
            owner = key_owner.setdefault(integration.api_key_sha256, integration.id)
            if owner != integration.id:
                problems.append(
                    RuleProblem(
                        source.name,
                        item,
                        f"api_key_sha256 is the same as integration "
                        f"'{owner}'s: each integration needs its own key",
                    )
                )
    return problems


def _charge_problems(sources: Sequence[RulesSource]) -> list[RuleProblem]:
    products = {p.id: p for s in sources for p in s.rules.products}
    problems: list[RuleProblem] = []
    for source in sources:
        for plan in source.rules.plans:
            for version in plan.versions:
                for position, charge in enumerate(version.charges, start=1):
                    if isinstance(charge, FlatCharge):
                        continue
                    item = (
                        f"plan '{plan.id}' version {version.effective_from.isoformat()} "
                        f"charge #{position}"
                    )
                    product = products.get(charge.product)
                    if product is None:
                        known = ", ".join(sorted(products)) or "none"
                        problem = f"unknown product '{charge.product}' (known products: {known})"
                        problems.append(RuleProblem(source.name, item, problem))
                    elif product.metric(charge.metric) is None:
                        known = ", ".join(m.id for m in product.metrics)
                        problem = (
                            f"unknown metric '{charge.metric}' in product '{product.id}' "
                            f"(its metrics: {known})"
                        )
                        problems.append(RuleProblem(source.name, item, problem))
    return problems
