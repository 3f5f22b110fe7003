"""The event-log question of contract §7: did the events from gateway X arrive under tenant Y, and
what happened to each (accepted, duplicate, quarantined, unmapped, billed, dead-lettered)?

Fates come from the ``event_fates`` view (decided from the data, exact after crashes). A
quarantined event has no tenant: it is attributed to the tenant when one of its raw X-Tenant-Id
values equals the tenant's id or one of its aliases in the given (current) catalog, trimmed
and case-insensitively, as tenant unification compares them. So after an alias is added, the
events it would have resolved show up under the tenant, as quarantined, until a replay.

``accepted`` is counted from ``event_log`` itself, not from the fates, so that the identity
accepted = billed + unmapped + duplicate + quarantined + dead_letter is a check, not a
tautology. ``dead_letter`` (migration 0004): events ClickHouse refused for good, isolated by
the stream worker (pipeline/worker/sink.py), never billed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.billing.common import as_period, bind_database
from pipeline.catalog import Catalog, normalize_tenant_key
from pipeline.events import GATEWAYS
from pipeline.rating import Period
from pipeline.replay.errors import ReplayError
from pipeline.replay.text import table, timestamp
from pipeline.store import Store

FATES = ("billed", "unmapped", "duplicate", "quarantined", "dead_letter")

_ACCEPTED = """
SELECT gateway, count() AS events
FROM {database}.event_log FINAL
WHERE tenant = {tenant:String} {filters}
GROUP BY gateway
"""
_FATES = """
SELECT gateway, fate, count() AS events
FROM {database}.event_fates
WHERE tenant = {tenant:String} AND fate != 'quarantined' {filters}
GROUP BY gateway, fate
"""
_QUARANTINED = """
SELECT gateway, quarantine_reason AS reason, tenant_headers, count() AS events
FROM {database}.event_log FINAL
WHERE disposition = 'quarantined' {filters}
GROUP BY gateway, reason, tenant_headers
"""
_SAMPLE = """
SELECT source_topic, source_partition, source_offset, idempotency_key, gateway, event_time,
       tenant_headers, fate, product, quarantine_reason
FROM {database}.event_fates
WHERE (tenant = {tenant:String}
       OR (disposition = 'quarantined' AND hasAny(tenant_headers, {headers:Array(String)})))
  {filters}
ORDER BY event_time DESC, source_topic, source_partition, source_offset
LIMIT {per_fate:UInt32} BY fate
"""


@dataclass(frozen=True)
class GatewayCounts:
    """Consumed copies of one gateway (or ``all``) under the tenant, by fate."""

    gateway: str
    accepted: int = 0
    billed: int = 0
    unmapped: int = 0
    duplicate: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    dead_letter: int = 0

    @property
    def quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())

    @property
    def adds_up(self) -> bool:
        """accepted = billed + unmapped + duplicate + quarantined + dead_letter."""
        return self.accepted == (
            self.billed + self.unmapped + self.duplicate + self.quarantined + self.dead_letter
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "accepted": self.accepted,
            "billed": self.billed,
            "unmapped": self.unmapped,
            "duplicate": self.duplicate,
            "quarantined": self.quarantined,
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
            "dead_letter": self.dead_letter,
            "adds_up": self.adds_up,
        }


@dataclass(frozen=True)
class SampleEvent:
    """One consumed copy with its fate."""

    idempotency_key: str
    gateway: str
    event_time: datetime
    header: str | None
    fate: str
    product: str | None
    reason: str
    source: str  # topic/partition/offset

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "gateway": self.gateway,
            "time": timestamp(self.event_time),
            "header": self.header,
            "fate": self.fate,
            "product": self.product,
            "reason": self.reason or None,
            "source": self.source,
        }


@dataclass(frozen=True)
class EventLogReport:
    """Per-gateway fates of one tenant's events, and a sample. See the module doc."""

    tenant: str
    known_tenant: bool
    names: tuple[str, ...]  # the header values that mean the tenant (id and aliases)
    gateway: str | None
    period: Period | None
    gateways: tuple[GatewayCounts, ...]
    sample: tuple[SampleEvent, ...]

    @property
    def total(self) -> GatewayCounts:
        reasons: Counter[str] = Counter()
        for counts in self.gateways:
            reasons.update(counts.quarantined_by_reason)
        return GatewayCounts(
            gateway="all",
            accepted=sum(c.accepted for c in self.gateways),
            billed=sum(c.billed for c in self.gateways),
            unmapped=sum(c.unmapped for c in self.gateways),
            duplicate=sum(c.duplicate for c in self.gateways),
            quarantined_by_reason=dict(reasons),
            dead_letter=sum(c.dead_letter for c in self.gateways),
        )

    def counts_for(self, gateway: str) -> GatewayCounts:
        for counts in self.gateways:
            if counts.gateway == gateway:
                return counts
        return GatewayCounts(gateway)

    def lines(self) -> list[str]:
        where = f"period {self.period}" if self.period else "all periods"
        which = f"gateway {self.gateway}" if self.gateway else "all gateways"
        names = ", ".join(self.names)
        head = f"Event log of tenant {self.tenant} ({where}, {which}); header values: {names}"
        if not self.known_tenant:
            head += " (not a tenant of the current rules: raw header value only)"
        out = [head]
        if not self.gateways:
            return [*out, "No consumed events under this tenant."]
        rows = [_count_row(counts) for counts in (*self.gateways, self.total)]
        headers = [
            "gateway",
            "accepted",
            "billed",
            "unmapped",
            "duplicate",
            "quarantined",
            "dead_letter",
        ]
        out.extend(table(headers, rows, indent="  "))
        for counts in self.gateways:
            if counts.quarantined_by_reason:
                reasons = ", ".join(
                    f"{reason} {n}" for reason, n in sorted(counts.quarantined_by_reason.items())
                )
                out.append(f"  quarantined on {counts.gateway}: {reasons}")
        if self.total.quarantined:
            out.append(
                "  (fates as the live stream decided them; a replay with the current rules "
                "bills the quarantined events that now resolve)"
            )
        problems = [c.gateway for c in (*self.gateways, self.total) if not c.adds_up]
        if problems:
            out.append(
                "  WARNING: accepted != billed + unmapped + duplicate + quarantined + dead_letter "
                "for " + ", ".join(problems)
            )
        if self.sample:
            out.append(f"Sample of {len(self.sample)} events (newest first, every fate shown):")
            out.extend(
                table(
                    ["time", "gateway", "key", "header", "fate", "product", "reason"],
                    [
                        [
                            timestamp(event.event_time),
                            event.gateway,
                            event.idempotency_key,
                            "-" if event.header is None else repr(event.header),
                            event.fate,
                            event.product or "-",
                            event.reason or "-",
                        ]
                        for event in self.sample
                    ],
                    indent="  ",
                    align="lllllll",
                )
            )
        return out

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "known_tenant": self.known_tenant,
            "header_values": list(self.names),
            "gateway": self.gateway,
            "period": None if self.period is None else str(self.period),
            "gateways": [counts.to_json_dict() for counts in self.gateways],
            "total": self.total.to_json_dict(),
            "sample": [event.to_json_dict() for event in self.sample],
        }


def event_log_report(
    store: Store,
    database: str,
    catalog: Catalog,
    tenant: str,
    *,
    gateway: str | None = None,
    period: Period | str | None = None,
    sample: int = 10,
) -> EventLogReport:
    """Fates of ``tenant``'s consumed events per gateway, and up to ``sample`` of them.

    ``tenant`` is a catalog tenant id or alias; any other value is taken as a raw header
    value (its quarantined events, under a tenant id no longer in the rules: its events).
    """
    if gateway is not None and gateway not in GATEWAYS:
        raise ReplayError(
            f"unknown gateway {gateway!r}; expected one of {', '.join(GATEWAYS)}",
            gateway=gateway,
        )
    if sample < 0:
        raise ReplayError(f"sample size must be 0 or more, got {sample}", sample=sample)
    month = None if period is None else as_period(period)
    found = catalog.tenant(tenant.strip()) or catalog.tenant_for_header(tenant)
    tenant_id = found.id if found else tenant.strip()
    names = (found.id, *found.aliases) if found else (tenant_id,)
    filters, params = _filters(gateway, month)
    params["tenant"] = tenant_id

    def run(template: str, extra: dict[str, object] | None = None) -> list[dict[str, Any]]:
        sql = bind_database(template, database).replace("{filters}", filters)
        return store.query(sql, {**params, **(extra or {})})

    accepted: Counter[str] = Counter()
    fates: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    for row in run(_ACCEPTED):
        accepted[str(row["gateway"])] += int(row["events"])
    for row in run(_FATES):
        fates.setdefault(str(row["gateway"]), Counter())[str(row["fate"])] += int(row["events"])
    wanted = {normalize_tenant_key(name) for name in names}
    matched_headers: set[str] = set()
    for row in run(_QUARANTINED):
        headers = [str(h) for h in row["tenant_headers"]]
        hits = [h for h in headers if normalize_tenant_key(h) in wanted]
        if not hits:
            continue
        matched_headers.update(hits)
        name = str(row["gateway"])
        accepted[name] += int(row["events"])
        reasons.setdefault(name, Counter())[str(row["reason"])] += int(row["events"])
    gateways = tuple(
        GatewayCounts(
            gateway=name,
            accepted=accepted[name],
            billed=fates.get(name, Counter())["billed"],
            unmapped=fates.get(name, Counter())["unmapped"],
            duplicate=fates.get(name, Counter())["duplicate"],
            quarantined_by_reason=dict(reasons.get(name, Counter())),
            dead_letter=fates.get(name, Counter())["dead_letter"],
        )
        for name in sorted(set(accepted) | set(fates) | set(reasons))
    )
    picked: tuple[SampleEvent, ...] = ()
    if sample and gateways:
        rows = run(_SAMPLE, {"headers": sorted(matched_headers), "per_fate": sample})
        picked = _pick(rows, sample)
    return EventLogReport(
        tenant=tenant_id,
        known_tenant=found is not None,
        names=names,
        gateway=gateway,
        period=month,
        gateways=gateways,
        sample=picked,
    )


def _count_row(counts: GatewayCounts) -> list[str]:
    return [
        counts.gateway,
        str(counts.accepted),
        str(counts.billed),
        str(counts.unmapped),
        str(counts.duplicate),
        str(counts.quarantined),
        str(counts.dead_letter),
    ]


def _filters(gateway: str | None, period: Period | None) -> tuple[str, dict[str, object]]:
    sql = ""
    params: dict[str, object] = {}
    if period is not None:
        sql += (
            " AND event_time >= {start:DateTime64(6, 'UTC')}"
            " AND event_time < {end:DateTime64(6, 'UTC')}"
        )
        params.update(start=period.start, end=period.end)
    if gateway is not None:
        sql += " AND gateway = {gateway:String}"
        params["gateway"] = gateway
    return sql, params


def _pick(rows: list[dict[str, Any]], size: int) -> tuple[SampleEvent, ...]:
    """Up to ``size`` events, taking the newest of each fate in turn; shown newest first, the
    copies of one instant in consumption order."""
    by_fate: dict[str, list[tuple[SampleEvent, tuple[str, int, int]]]] = {}
    for row in rows:  # newest first within each fate
        headers = [str(h) for h in row["tenant_headers"]]
        coordinates = (
            str(row["source_topic"]),
            int(row["source_partition"]),
            int(row["source_offset"]),
        )
        event = SampleEvent(
            idempotency_key=str(row["idempotency_key"]),
            gateway=str(row["gateway"]),
            event_time=row["event_time"],
            header=headers[0] if headers else None,
            fate=str(row["fate"]),
            product=None if row["product"] is None else str(row["product"]),
            reason=str(row["quarantine_reason"]),
            source="/".join(map(str, coordinates)),
        )
        by_fate.setdefault(event.fate, []).append((event, coordinates))
    order = (*FATES, *sorted(set(by_fate) - set(FATES)))
    queues = [by_fate[fate] for fate in order if fate in by_fate]
    chosen: list[tuple[SampleEvent, tuple[str, int, int]]] = []
    depth = 0
    while len(chosen) < size and any(depth < len(queue) for queue in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < size:
                chosen.append(queue[depth])
        depth += 1
    chosen.sort(key=lambda picked: picked[1])
    chosen.sort(key=lambda picked: picked[0].event_time, reverse=True)  # stable
    return tuple(event for event, _coordinates in chosen)
