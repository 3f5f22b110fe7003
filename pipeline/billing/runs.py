"""Billing runs: which run's meters an invoice is computed from, and the replay register.

The live stream writes billing run ``'live'``. A replay (contract §8) re-processes one period, for
all tenants or one, into its own run and then registers it with :func:`record_billing_run`
(only after all of its rows are written: a registered run is complete). For a tenant and
period, billing uses the newest registered replay whose scope is that tenant or all tenants,
else ``'live'``. The finance SQL (``usage_by_tenant_product.sql``, ``top_consumers.sql``)
applies the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pipeline.billing.common import as_period, bind_database, require_aware
from pipeline.billing.errors import BillingError
from pipeline.rating import Period
from pipeline.store import Store

LIVE_RUN = "live"
ALL_TENANTS = ""
RunKind = Literal["live", "replay"]

_NEWEST_COVERING_REPLAY = """
SELECT run_id
FROM {database}.billing_runs FINAL
WHERE kind = 'replay'
  AND period = {period:String}
  AND tenant IN ({tenant:String}, '')
ORDER BY created_at DESC, run_id DESC
LIMIT 1
"""

_RUNS_OF_PERIOD = """
SELECT run_id, kind, period, tenant, catalog_fingerprint, created_at, note
FROM {database}.billing_runs FINAL
WHERE period = {period:String}
ORDER BY created_at, run_id
"""


@dataclass(frozen=True)
class BillingRun:
    """One registered run. ``tenant`` is the scope: a canonical tenant id, or '' for all."""

    run_id: str
    kind: RunKind
    period: Period
    tenant: str
    catalog_fingerprint: str
    created_at: datetime
    note: str = ""

    def covers(self, tenant: str) -> bool:
        return self.tenant in (ALL_TENANTS, tenant)


def billing_run_for(store: Store, database: str, tenant: str, period: Period | str) -> str:
    """The run to bill ``tenant`` for ``period`` from: newest covering replay, else 'live'."""
    rows = store.query(
        bind_database(_NEWEST_COVERING_REPLAY, database),
        {"tenant": tenant, "period": str(as_period(period))},
    )
    return str(rows[0]["run_id"]) if rows else LIVE_RUN


def record_billing_run(store: Store, database: str, run: BillingRun) -> None:
    """Register ``run`` (idempotent: the same run id and scope collapse into one row).

    A replay job calls this after it has written all of its usage events and meter entries.
    """
    if not run.run_id or run.run_id != run.run_id.strip():
        raise BillingError(
            f"billing run id {run.run_id!r} must be non-empty without surrounding spaces",
            run_id=run.run_id,
        )
    if run.kind == "replay" and run.run_id == LIVE_RUN:
        raise BillingError(
            "a replay run cannot be called 'live' (that is the live stream's run); "
            "give the replay its own run id",
            run_id=run.run_id,
        )
    if run.kind not in ("live", "replay"):
        raise BillingError(
            f"billing run kind must be 'live' or 'replay', got {run.kind!r}",
            run_id=run.run_id,
            kind=run.kind,
        )
    created_at = require_aware(run.created_at, f"billing run {run.run_id} created_at")
    store.insert_rows(
        f"{bind_database('{database}', database)}.billing_runs",
        [
            {
                "run_id": run.run_id,
                "kind": run.kind,
                "period": str(run.period),
                "tenant": run.tenant,
                "catalog_fingerprint": run.catalog_fingerprint,
                "created_at": created_at,
                "note": run.note,
            }
        ],
    )


def billing_runs_of(store: Store, database: str, period: Period | str) -> list[BillingRun]:
    """Every registered run of ``period``, oldest first."""
    rows = store.query(bind_database(_RUNS_OF_PERIOD, database), {"period": str(as_period(period))})
    return [
        BillingRun(
            run_id=str(row["run_id"]),
            kind="replay" if row["kind"] == "replay" else "live",
            period=Period.parse(str(row["period"])),
            tenant=str(row["tenant"]),
            catalog_fingerprint=str(row["catalog_fingerprint"]),
            created_at=row["created_at"],
            note=str(row["note"]),
        )
        for row in rows
    ]
