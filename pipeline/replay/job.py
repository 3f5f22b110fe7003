"""Replay (rebilling) jobs, contract §8: re-process a period from the raw record into a new run.

Flow of :func:`run_replay`:

1. Pick the run id ``replay-<period>-all-<n>`` or ``replay-<period>-tenant-<id>-<n>``, n one
   above every run of that scope already registered or written (an aborted replay's rows keep
   their number and are never registered, so they are never billed nor reused).
2. Stream the period's ``event_log`` rows (:mod:`pipeline.replay.source`) through the live
   worker's own :class:`~pipeline.worker.batch.BatchProcessor` with the CURRENT catalog, a fresh
   in-memory dedup state and the new run id; keep only ``usage_events`` and ``meter_entries``
   rows of the scope and write them, chunk by chunk (the raw record itself is never changed).
   Dedup still applies: events quarantined live that resolve now are billed exactly once.
3. Compare, per tenant, the run billing used until now with the new run, both rated with the
   current rules (:mod:`pipeline.replay.diff`); check that the meters read back from the new
   run equal what was computed in memory.
4. Register the run (:func:`pipeline.billing.record_billing_run`): from then on
   :func:`pipeline.billing.billing_run_for` picks it for the period and scope.
5. With ``reinvoice``, invoice every compared tenant again; a finalized invoice gets a new
   version that supersedes it with the difference (:func:`pipeline.billing.invoice_tenant`).

A dry run does 1-3 in memory (nothing written, nothing registered). Same raw record and same
catalog give a run with the same contents, and an empty diff against the previous replay.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.billing import (
    ALL_TENANTS,
    BillingRun,
    TenantFailure,
    billing_run_for,
    billing_runs_of,
    invoice_tenant,
    latest_invoice,
    period_quantities,
    record_billing_run,
    tenants_with_usage,
)
from pipeline.billing.common import as_period, bind_database, require_aware
from pipeline.billing.invoicing import canonical_tenant
from pipeline.billing.stored import invoiced_tenants
from pipeline.catalog import Catalog
from pipeline.errors import PipelineError
from pipeline.rating import MetricKey, Period, compute_invoice
from pipeline.replay.diff import StoredInvoiceImpact, TenantDiff, diff_lines
from pipeline.replay.errors import ReplayMismatch
from pipeline.replay.report import InvoiceAction, ReplayCounts, ReplayReport
from pipeline.replay.source import DEFAULT_CHUNK_ROWS, RawRecord, raw_records
from pipeline.replay.totals import RunTotals
from pipeline.store import Store
from pipeline.worker.batch import BatchProcessor, BatchResult, ConsumedMessage

Clock = Callable[[], datetime]
Progress = Callable[[str], None]

#: The replay's dedup never forgets a key: it is exact over the whole period.
NEVER_EXPIRES_MS = sys.maxsize // 2

_WRITTEN_RUNS = """
SELECT DISTINCT billing_run AS run FROM {database}.usage_events
WHERE startsWith(billing_run, {prefix:String})
UNION DISTINCT
SELECT DISTINCT billing_run AS run FROM {database}.meter_entries
WHERE startsWith(billing_run, {prefix:String})
"""


def run_prefix(period: Period, tenant: str | None) -> str:
    """``replay-2026-03-all-`` or ``replay-2026-03-tenant-acme-``."""
    scope = "all" if tenant is None else f"tenant-{tenant}"
    return f"replay-{period}-{scope}-"


def next_run_id(prefix: str, existing: Sequence[str]) -> str:
    """``<prefix><n>`` with n (4 digits or more) one above the highest of ``existing`` that has
    exactly this prefix followed by digits (so tenant ``acme`` never counts ``acme-eu``'s runs).

    Zero-padding keeps run ids of one scope in numeric order as text, which is the tie-break of
    :func:`pipeline.billing.billing_run_for` for runs registered at the same instant.
    """
    numbers = [
        int(run[len(prefix) :])
        for run in existing
        if run.startswith(prefix) and run[len(prefix) :].isdigit() and run[len(prefix) :].isascii()
    ]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


def run_replay(
    store: Store,
    database: str,
    catalog: Catalog,
    period: Period | str,
    *,
    clock: Clock,
    tenant: str | None = None,
    dry_run: bool = False,
    reinvoice: bool = False,
    progress: Progress | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ReplayReport:
    """Replay ``period`` (``YYYY-MM`` or a Period) for all tenants or ``tenant`` (id or alias)
    with ``catalog``; see the module doc. ``reinvoice`` is ignored by a dry run.

    Raises UnknownTenant (``tenant`` not in the catalog), ReplayMismatch (the written meters
    differ from the computed ones: the run is left unregistered), StoreError.
    """
    month = as_period(period)
    scope = None if tenant is None else canonical_tenant(catalog, tenant)
    say = progress or (lambda _message: None)
    run_id = _new_run_id(store, database, month, scope)
    say(
        f"{'dry run: ' if dry_run else ''}replaying {month} for "
        f"{'all tenants' if scope is None else 'tenant ' + scope} into billing run {run_id}"
    )
    counts, totals = _reprocess(
        store, database, catalog, month, scope, run_id, dry_run, clock, say, chunk_rows
    )
    candidates = (
        [scope] if scope is not None else _tenants_to_compare(store, database, month, totals)
    )
    diffs, failures = _compare(
        store, database, catalog, month, candidates, run_id, totals, dry_run=dry_run
    )
    registered = False
    invoices: tuple[InvoiceAction, ...] | None = None
    if not dry_run:
        record_billing_run(
            store,
            database,
            BillingRun(
                run_id=run_id,
                kind="replay",
                period=month,
                tenant=ALL_TENANTS if scope is None else scope,
                catalog_fingerprint=catalog.fingerprint,
                created_at=require_aware(clock(), "the replay clock"),
                note=f"replay of {counts.copies_read} consumed copies from event_log: "
                f"{counts.usage_events} usage events, {counts.meter_entries} meter entries",
            ),
        )
        registered = True
        say(f"registered billing run {run_id} for {month}")
        if reinvoice:
            invoices = _reinvoice(store, database, catalog, month, diffs, clock, say)
    return ReplayReport(
        period=month,
        tenant=scope,
        run_id=run_id,
        dry_run=dry_run,
        registered=registered,
        catalog_fingerprint=catalog.fingerprint,
        counts=counts,
        diffs=tuple(diffs),
        failures=tuple(failures),
        invoices=invoices,
    )


def _new_run_id(store: Store, database: str, period: Period, scope: str | None) -> str:
    prefix = run_prefix(period, scope)
    registered = [run.run_id for run in billing_runs_of(store, database, period)]
    written = store.query(bind_database(_WRITTEN_RUNS, database), {"prefix": prefix})
    return next_run_id(prefix, [*registered, *(str(row["run"]) for row in written)])


def _reprocess(
    store: Store,
    database: str,
    catalog: Catalog,
    period: Period,
    scope: str | None,
    run_id: str,
    dry_run: bool,
    clock: Clock,
    say: Progress,
    chunk_rows: int,
) -> tuple[ReplayCounts, RunTotals]:
    processor = BatchProcessor(
        catalog,
        clock=clock,
        window_ms=NEVER_EXPIRES_MS,
        billing_run=run_id,
        check_offsets=False,  # a month's slice of each partition is not contiguous
    )
    state: dict[bytes, bytes] = {}  # dedup key -> first copy, for the whole period

    def lookup(_partition: int, key: bytes) -> bytes | None:
        return state.get(key)

    counts = ReplayCounts()
    totals = RunTotals()
    for chunk in raw_records(store, database, period, chunk_rows):
        messages = [
            ConsumedMessage(record.topic, record.partition, record.offset, record.payload.encode())
            for record in chunk
        ]
        result = processor.process(messages, lookup)
        for _index, key, first in result.new_first_copies:
            state[key] = first
        usage = _in_scope(result.sink_batch.dicts("usage_events"), scope)
        entries = _in_scope(result.sink_batch.dicts("meter_entries"), scope)
        _count(counts, chunk, result, usage, len(entries))
        totals.add_usage(usage)
        totals.add_entries(entries)
        if not dry_run:
            if usage:
                store.insert_rows(f"{bind_database('{database}', database)}.usage_events", usage)
            if entries:
                store.insert_rows(f"{bind_database('{database}', database)}.meter_entries", entries)
        last = chunk[-1]
        say(
            f"{counts.copies_read} copies read (through {last.topic}/{last.partition}/"
            f"{last.offset}): {counts.usage_events} usage events, {counts.meter_entries} meter "
            f"entries {'computed' if dry_run else 'written'}"
        )
    return counts, totals


def _in_scope(rows: list[dict[str, Any]], scope: str | None) -> list[dict[str, Any]]:
    return rows if scope is None else [row for row in rows if row["tenant"] == scope]


def _count(
    counts: ReplayCounts,
    chunk: Sequence[RawRecord],
    result: BatchResult,
    usage: Sequence[Mapping[str, Any]],
    entries: int,
) -> None:
    decisions = result.decisions
    counts.copies_read += len(chunk)
    counts.first_copies += decisions.get("first_copy", 0)
    counts.duplicates += decisions.get("duplicate", 0)
    counts.malformed += decisions.get("dead_letter", 0)
    for record in result.quarantined:
        counts.quarantined[dict(record.headers).get("reason", b"?").decode()] += 1
    counts.other_tenants += len(result.sink_batch.usage_events) - len(usage)
    counts.usage_events += len(usage)
    counts.billed += sum(1 for row in usage if row["fate"] == "billed")
    counts.unmapped += sum(1 for row in usage if row["fate"] == "unmapped")
    counts.meter_entries += entries
    quarantined_live = {
        (record.partition, record.offset)
        for record in chunk
        if record.live_disposition == "quarantined"
    }
    if quarantined_live:
        counts.repaired += sum(
            1
            for row in usage
            if (row["source_partition"], row["source_offset"]) in quarantined_live
        )


def _tenants_to_compare(
    store: Store, database: str, period: Period, totals: RunTotals
) -> list[str]:
    """Tenants with usage in the new run or any earlier run of the period, or an invoice."""
    tenants = totals.tenants()
    tenants.update(tenants_with_usage(store, database, period, None))
    tenants.update(invoiced_tenants(store, database, period))
    return sorted(tenants)


def _compare(
    store: Store,
    database: str,
    catalog: Catalog,
    period: Period,
    tenants: Sequence[str],
    run_id: str,
    totals: RunTotals,
    *,
    dry_run: bool,
) -> tuple[list[TenantDiff], list[TenantFailure]]:
    diffs: list[TenantDiff] = []
    failures: list[TenantFailure] = []
    mismatches: list[str] = []
    for tenant in tenants:
        computed = totals.quantities(tenant)
        if not dry_run:
            written = period_quantities(store, database, tenant, period, run_id)
            if _nonzero(written) != _nonzero(computed):
                mismatches.append(tenant)
                continue
        try:
            new = compute_invoice(catalog, tenant, period, computed)
        except PipelineError as error:
            failures.append(TenantFailure(tenant, error))
            continue
        previous_run = billing_run_for(store, database, tenant, period)
        problem = ""
        try:
            previous = compute_invoice(
                catalog,
                tenant,
                period,
                period_quantities(store, database, tenant, period, previous_run),
            )
        except PipelineError as error:
            previous, problem = None, str(error)
        current = latest_invoice(store, database, tenant, period)
        stored = (
            None
            if current is None
            else StoredInvoiceImpact(
                invoice_id=current.invoice_id,
                status=current.status,
                billing_run=current.billing_run,
                currency=current.currency,
                total=current.total,
                new_total=new.total,
                new_currency=new.currency,
            )
        )
        diffs.append(
            TenantDiff(
                tenant=tenant,
                currency=new.currency,
                previous_run=previous_run,
                new_run=run_id,
                previous=previous,
                new=new,
                lines=diff_lines(previous, new),
                stored=stored,
                previous_problem=problem,
            )
        )
    if mismatches:
        raise ReplayMismatch(
            f"the meters written for billing run {run_id} ({period}) differ from the replay's "
            f"own totals for tenant(s) {', '.join(mismatches)}; the run was NOT registered and "
            "billing still uses the previous run. Check for another replay of the same period "
            "and scope running at the same time, then replay again",
            billing_run=run_id,
            period=str(period),
            tenants=mismatches,
        )
    return diffs, failures


def _nonzero(quantities: Mapping[MetricKey, Decimal]) -> dict[MetricKey, Decimal]:
    return {key: value for key, value in quantities.items() if value}


def _reinvoice(
    store: Store,
    database: str,
    catalog: Catalog,
    period: Period,
    diffs: Sequence[TenantDiff],
    clock: Clock,
    say: Progress,
) -> tuple[InvoiceAction, ...]:
    actions: list[InvoiceAction] = []
    for diff in diffs:
        try:
            stored = invoice_tenant(store, database, catalog, diff.tenant, period, clock=clock)
        except PipelineError as error:
            actions.append(InvoiceAction(diff.tenant, "failed", "", error=str(error)))
            say(f"invoice of {diff.tenant} for {period} FAILED: {error}")
            continue
        actions.append(
            InvoiceAction(diff.tenant, stored.action, stored.outcome, invoice_id=stored.invoice_id)
        )
        say(f"invoice of {diff.tenant} for {period}: {stored.outcome}")
    return tuple(actions)
