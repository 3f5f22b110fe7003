"""What a replay did: counts, the per-tenant diff, invoice actions; as text and as JSON (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.billing import TenantFailure
from pipeline.billing.invoicing import money, signed_money
from pipeline.catalog.values import plain
from pipeline.rating import Period
from pipeline.replay.diff import TenantDiff
from pipeline.replay.text import quantity, signed_quantity, table

PREVIOUS_BASIS = (
    "Previous = the run each tenant was billed from before this replay, rated with the current "
    "rules; so the differences are what the replay changed in usage (prices are the same on "
    "both sides). The stored invoice, which may also differ by price changes, is compared on "
    "its own line."
)


@dataclass
class ReplayCounts:
    """Events of the raw record the replay read and what it made of them.

    ``first_copies``, ``duplicates``, ``quarantined`` and ``malformed`` cover every tenant;
    ``usage_events``, ``billed``, ``unmapped``, ``meter_entries`` and ``repaired`` only the
    replay's scope (all tenants, or the one tenant).
    """

    copies_read: int = 0
    first_copies: int = 0
    duplicates: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    usage_events: int = 0
    billed: int = 0
    unmapped: int = 0
    meter_entries: int = 0
    #: first copies in scope that the live worker had quarantined (repaired by the catalog fix)
    repaired: int = 0
    #: first copies resolving to other tenants (a one-tenant replay skips them)
    other_tenants: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "copies_read": self.copies_read,
            "first_copies": self.first_copies,
            "duplicates": self.duplicates,
            "quarantined": dict(sorted(self.quarantined.items())),
            "malformed": self.malformed,
            "usage_events": self.usage_events,
            "billed": self.billed,
            "unmapped": self.unmapped,
            "meter_entries": self.meter_entries,
            "repaired_from_quarantine": self.repaired,
            "other_tenants": self.other_tenants,
        }


@dataclass(frozen=True)
class InvoiceAction:
    """What re-invoicing did for one tenant after the replay (``error`` set when it failed)."""

    tenant: str
    action: str
    outcome: str
    invoice_id: str = ""
    error: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "action": self.action,
            "invoice_id": self.invoice_id or None,
            "outcome": self.outcome,
            "error": self.error or None,
        }


@dataclass(frozen=True)
class ReplayReport:
    """The result of :func:`pipeline.replay.run_replay`. ``tenant`` None = all tenants."""

    period: Period
    tenant: str | None
    run_id: str
    dry_run: bool
    registered: bool
    catalog_fingerprint: str
    counts: ReplayCounts
    diffs: tuple[TenantDiff, ...]
    failures: tuple[TenantFailure, ...] = ()
    #: None when re-invoicing was not asked for
    invoices: tuple[InvoiceAction, ...] | None = None

    @property
    def scope(self) -> str:
        return "all tenants" if self.tenant is None else f"tenant {self.tenant}"

    def diff_for(self, tenant: str) -> TenantDiff:
        for diff in self.diffs:
            if diff.tenant == tenant:
                return diff
        raise KeyError(tenant)

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (previous total, new total) over the tenants with both sides."""
        sums: dict[str, tuple[Decimal, Decimal]] = {}
        for diff in self.diffs:
            if diff.previous is None:
                continue
            before, after = sums.get(diff.currency, (Decimal(0), Decimal(0)))
            sums[diff.currency] = (before + diff.previous_total, after + diff.new_total)
        return dict(sorted(sums.items()))

    # --- text -------------------------------------------------------------------------------
    def lines(self) -> list[str]:
        out = [self._headline(), self._read_line(), self._written_line(), PREVIOUS_BASIS, ""]
        for diff in self.diffs:
            out.extend(_tenant_lines(diff))
            action = self._action_of(diff.tenant)
            if action is not None:
                out.append(f"  invoice: {action}")
            out.append("")
        for failure in self.failures:
            out.append(f"{failure.tenant}: NOT COMPARED: {failure.error}")
        changed = sum(1 for diff in self.diffs if diff.changed)
        out.append(
            f"Totals: {changed} of {len(self.diffs)} tenant(s) changed"
            + ("" if not self.failures else f", {len(self.failures)} not compared")
        )
        for currency, (before, after) in self.totals().items():
            out.append(
                f"  {currency}: {money(before, currency)} -> {money(after, currency)} "
                f"({signed_money(after - before, currency)})"
            )
        return out

    def _headline(self) -> str:
        if self.dry_run:
            return (
                f"DRY RUN: replay of {self.period} for {self.scope} with the current rules; "
                f"nothing written, no run registered (it would be billing run {self.run_id})"
            )
        state = (
            "registered: invoices of the period now use it"
            if self.registered
            else "NOT registered: billing still uses the previous run"
        )
        return f"Replay of {self.period} for {self.scope}: billing run {self.run_id} ({state})"

    def _read_line(self) -> str:
        counts = self.counts
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.quarantined.items()))
        quarantined = sum(counts.quarantined.values())
        return (
            f"Raw record: {counts.copies_read} consumed copies in event_log; "
            f"{counts.first_copies} first copies, {counts.duplicates} duplicates, "
            f"{quarantined} still quarantined"
            + (f" ({reasons})" if reasons else "")
            + (f", {counts.malformed} malformed" if counts.malformed else "")
        )

    def _written_line(self) -> str:
        counts = self.counts
        verb = "Would write" if self.dry_run else "Wrote"
        text = (
            f"{verb} {counts.usage_events} usage events ({counts.billed} billed, "
            f"{counts.unmapped} unmapped) and {counts.meter_entries} meter entries; "
            f"{counts.repaired} events quarantined live are now resolved"
        )
        if self.tenant is not None:
            text += f"; {counts.other_tenants} events of other tenants skipped"
        return text

    def _action_of(self, tenant: str) -> str | None:
        for action in self.invoices or ():
            if action.tenant == tenant:
                return action.outcome if not action.error else f"FAILED: {action.error}"
        return None

    # --- JSON -------------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "tenant": self.tenant,
            "billing_run": self.run_id,
            "dry_run": self.dry_run,
            "registered": self.registered,
            "catalog_fingerprint": self.catalog_fingerprint,
            "counts": self.counts.to_json_dict(),
            "previous_basis": PREVIOUS_BASIS,
            "tenants": [diff.to_json_dict() for diff in self.diffs],
            "failures": [
                {"tenant": failure.tenant, "error": str(failure.error)} for failure in self.failures
            ],
            "totals": {
                currency: {
                    "previous": plain(before),
                    "new": plain(after),
                    "difference": plain(after - before),
                }
                for currency, (before, after) in self.totals().items()
            },
            "invoices": None
            if self.invoices is None
            else [action.to_json_dict() for action in self.invoices],
        }


def _tenant_lines(diff: TenantDiff) -> list[str]:
    currency = diff.currency
    head = f"{diff.tenant} ({currency}): previous run {diff.previous_run} -> {diff.new_run}"
    if not diff.changed:  # one line: the lines are the same on both sides
        out = [f"{head}: no change (total {money(diff.new_total, currency)})"]
        out.extend(_stored_lines(diff))
        return out
    out = [head]
    if diff.previous is None:
        out.append(f"  previous run not comparable: {diff.previous_problem}")
    rows = [
        [
            line.name,
            quantity(line.previous_quantity),
            quantity(line.new_quantity),
            signed_quantity(line.quantity_difference),
            money(line.previous_amount, currency),
            money(line.new_amount, currency),
            signed_money(line.amount_difference, currency),
        ]
        for line in diff.lines
    ]
    rows.append(
        [
            "Total",
            "",
            "",
            "",
            "-" if diff.previous is None else money(diff.previous_total, currency),
            money(diff.new_total, currency),
            "-" if diff.previous is None else signed_money(diff.difference, currency),
        ]
    )
    headers = ["line", "qty before", "qty after", "qty change", "before", "after", "change"]
    out.extend(table(headers, rows, indent="  "))
    out.extend(_stored_lines(diff))
    return out


def _stored_lines(diff: TenantDiff) -> list[str]:
    stored = diff.stored
    if stored is None:
        return []
    difference = stored.difference
    change = (
        signed_money(difference, stored.currency)
        if difference is not None
        else f"currency changes from {stored.currency}"
    )
    return [
        f"  stored invoice {stored.invoice_id} ({stored.status}, run {stored.billing_run}): "
        f"{money(stored.total, stored.currency)}; from this run it would be "
        f"{money(stored.new_total, stored.new_currency)} ({change})"
    ]
