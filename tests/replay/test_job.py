"""Replay jobs against the engine: quarantine repair, rebilling finalized invoices, live writes
of the next period during a replay, dry runs.

The March scenario (tests/replay/support.py, prices of the test catalog: flat 10.00, calls
0.50 each, egress 2.00 per GB, active apps volume: up to 2 at 3, above at 2.5 each; minimum
20.00):

* acme via kong, header ``acme``: 6 calls (status 200), 0.25 GB each, apps app-2/app-1;
  delivered 1-2 times.
* acme via azure, header ``acme-azure`` (the broken catalog lacks this alias): 4 calls, one a
  503 (no call, still egress), 0.5 GB each, apps app-3/app-1; delivered 3, 2, 3, 1 times.
* globex via kong: 3 calls, 0.1 GB each, app-9; one delivered twice.
* one call with header ``nobody`` (twice) and one acme call to an unmapped API.

Billed live with the broken catalog, acme is 6 calls (3.00) + 1.5 GB (3.00) + 2 apps (6.00)
+ 10.00 = 22.00. With the alias, the 4 azure events add 3 calls, 2 GB and app-3: 9 calls
(4.50) + 3.5 GB (7.00) + 3 apps (7.50) + 10.00 = 29.00, +7.00. globex: 1.50 + 0.60 + 3.00 +
10.00 = 15.10, trued up to 20.00, in both runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal as D
from typing import Any

import orjson
import pytest

from pipeline.billing import (
    billing_run_for,
    billing_runs_of,
    finalize_invoice,
    invoice_tenant,
    invoice_versions,
    period_quantities,
)
from pipeline.rating import Period, UnknownTenant
from pipeline.replay import ReplayMismatch, TenantDiff, next_run_id, run_prefix, run_replay
from pipeline.store import Store
from tests.replay.support import (
    APRIL,
    MARCH,
    Clock,
    LiveStream,
    at,
    count,
    kong,
    march_calls,
    rules_catalog,
)

Fresh = tuple[Store, str]
BROKEN = rules_catalog(azure_alias=False)
FIXED = rules_catalog(azure_alias=True)

ACME_BEFORE = {
    ("payments", "calls"): D(6),
    ("payments", "egress_gb"): D("1.5"),
    ("payments", "active_apps"): D(2),
}
ACME_AFTER = {
    ("payments", "calls"): D(9),
    ("payments", "egress_gb"): D("3.5"),
    ("payments", "active_apps"): D(3),
}


def live_march(fresh: Fresh, catalog: Any = BROKEN) -> tuple[LiveStream, Clock]:
    store, database = fresh
    clock = Clock()
    stream = LiveStream(store, database, catalog, clock)
    assert stream.deliver(march_calls()) == 24
    return stream, clock


def line_table(diff: TenantDiff) -> list[tuple[Any, ...]]:
    return [
        (
            line.name,
            line.previous_quantity,
            line.new_quantity,
            line.previous_amount,
            line.new_amount,
            line.amount_difference,
        )
        for line in diff.lines
    ]


def run_rows(store: Store, database: str, table: str, run: str) -> list[tuple[Any, ...]]:
    """A run's rows without the columns that name the run or the time it was written."""
    skip = {"billing_run", "processed_at"}
    rows = store.query(
        f"SELECT * FROM {database}.{table} FINAL WHERE billing_run = {{run:String}}", {"run": run}
    )
    return sorted(tuple((k, str(v)) for k, v in row.items() if k not in skip) for row in rows)


# --- pure helpers -----------------------------------------------------------------------------


def test_run_ids_count_up_per_period_and_scope_only() -> None:
    prefix = run_prefix(Period.parse(MARCH), None)
    assert prefix == "replay-2026-03-all-"
    assert next_run_id(prefix, []) == "replay-2026-03-all-0001"
    assert next_run_id(prefix, ["replay-2026-03-all-0001", "replay-2026-03-all-0009"]) == (
        "replay-2026-03-all-0010"
    )
    acme = run_prefix(Period.parse(MARCH), "acme")
    # another tenant whose id starts like acme's, and other scopes, never count
    others = ["replay-2026-03-tenant-acme-eu-0007", "replay-2026-03-all-0003", "live"]
    assert next_run_id(acme, [*others, "replay-2026-03-tenant-acme-0002"]) == (
        "replay-2026-03-tenant-acme-0003"
    )
    assert next_run_id(prefix, ["replay-2026-03-all-9999"]) == "replay-2026-03-all-10000"


# --- quarantine repair ------------------------------------------------------------------------


@pytest.mark.integration
def test_replay_bills_events_quarantined_for_a_missing_alias_once(fresh_database: Fresh) -> None:
    store, database = fresh_database
    _stream, clock = live_march(fresh_database)
    assert period_quantities(store, database, "acme", MARCH, "live") == ACME_BEFORE
    quarantined = count(
        store,
        f"SELECT count() AS c FROM {database}.quarantine WHERE reason = 'unknown_tenant'",
    )
    assert quarantined == 9 + 2  # every copy of the 4 azure events, and 'nobody' twice
    messages: list[str] = []

    report = run_replay(
        store, database, FIXED, MARCH, clock=clock, progress=messages.append, chunk_rows=5
    )

    run = "replay-2026-03-all-0001"
    assert (report.run_id, report.registered, report.dry_run) == (run, True, False)
    assert billing_run_for(store, database, "acme", MARCH) == run
    assert billing_run_for(store, database, "globex", MARCH) == run
    # billed once although delivered 3, 2, 3 and 1 times
    assert period_quantities(store, database, "acme", MARCH, run) == ACME_AFTER
    azure_rows = count(
        store,
        f"SELECT count() AS c FROM {database}.usage_events FINAL "
        f"WHERE billing_run = '{run}' AND gateway = 'azure'",
    )
    assert azure_rows == 4
    counts = report.counts
    assert (counts.copies_read, counts.first_copies, counts.duplicates) == (24, 14, 8)
    assert dict(counts.quarantined) == {"unknown_tenant": 2}
    assert (counts.usage_events, counts.billed, counts.unmapped) == (14, 13, 1)
    assert counts.meter_entries == 18 + 11 + 9
    assert counts.repaired == 4
    # the raw record is not changed by a replay
    assert count(store, f"SELECT count() AS c FROM {database}.event_log FINAL") == 24

    acme = report.diff_for("acme")
    assert (acme.previous_run, acme.new_run, acme.currency) == ("live", run, "USD")
    assert line_table(acme) == [
        ("Platform fee", None, None, D("10.00"), D("10.00"), D(0)),
        ("Payment calls", D(6), D(9), D("3.00"), D("4.50"), D("1.50")),
        ("Egress", D("1.5"), D("3.5"), D("3.00"), D("7.00"), D("4.00")),
        ("Active apps", D(2), D(3), D("6.00"), D("7.50"), D("1.50")),
    ]
    assert (acme.previous_total, acme.new_total, acme.difference) == (
        D("22.00"),
        D("29.00"),
        D("7.00"),
    )
    assert acme.changed and acme.stored is None
    globex = report.diff_for("globex")
    assert not globex.changed
    assert (globex.previous_total, globex.new_total) == (D("20.00"), D("20.00"))
    assert report.totals() == {"USD": (D("42.00"), D("49.00"))}

    text = "\n".join(report.lines())
    assert f"billing run {run} (registered" in text
    assert "Payment calls" in text and "+1.50 USD" in text and "+7.00 USD" in text
    assert "globex (USD): previous run live -> " + run + ": no change" in text
    assert "USD: 42.00 USD -> 49.00 USD (+7.00 USD)" in text
    assert "4 events quarantined live are now resolved" in text
    assert messages[0].startswith("replaying 2026-03 for all tenants into billing run " + run)
    assert any(m.startswith("24 copies read") for m in messages)
    json = orjson.loads(orjson.dumps(report.to_json_dict()))  # plain JSON: no Decimal inside
    assert json["tenants"][0]["tenant"] == "acme"
    assert json["tenants"][0]["difference"] == "7.00"
    assert json["totals"]["USD"] == {"previous": "42.00", "new": "49.00", "difference": "7.00"}

    # the same replay again: a new run with the same contents and nothing to show
    again = run_replay(store, database, FIXED, MARCH, clock=clock)
    assert again.run_id == "replay-2026-03-all-0002"
    assert billing_run_for(store, database, "acme", MARCH) == again.run_id
    assert [diff.tenant for diff in again.diffs] == ["acme", "globex"]
    assert not any(diff.changed for diff in again.diffs)
    assert all(diff.previous_run == run for diff in again.diffs)
    assert again.totals() == {"USD": (D("49.00"), D("49.00"))}
    for table in ("usage_events", "meter_entries"):
        first = run_rows(store, database, table, run)
        assert first and first == run_rows(store, database, table, again.run_id)
    assert [r.run_id for r in billing_runs_of(store, database, MARCH)] == [run, again.run_id]


@pytest.mark.integration
def test_a_one_tenant_replay_writes_only_that_tenant(fresh_database: Fresh) -> None:
    store, database = fresh_database
    _stream, clock = live_march(fresh_database)

    report = run_replay(store, database, FIXED, MARCH, clock=clock, tenant=" acme-legacy ")

    run = "replay-2026-03-tenant-acme-0001"
    assert (report.tenant, report.run_id) == ("acme", run)
    assert [diff.tenant for diff in report.diffs] == ["acme"]
    assert report.diff_for("acme").difference == D("7.00")
    assert report.counts.other_tenants == 3
    tenants = store.query(
        f"SELECT DISTINCT tenant FROM {database}.usage_events WHERE billing_run = '{run}'"
    )
    assert tenants == [{"tenant": "acme"}]
    assert billing_run_for(store, database, "acme", MARCH) == run
    assert billing_run_for(store, database, "globex", MARCH) == "live"
    assert "3 events of other tenants skipped" in "\n".join(report.lines())
    with pytest.raises(UnknownTenant, match="'nobody'"):
        run_replay(store, database, FIXED, MARCH, clock=clock, tenant="nobody")


# --- rebilling a finalized invoice ------------------------------------------------------------


@pytest.mark.integration
def test_price_change_replay_and_reinvoice_revise_a_finalized_invoice(
    fresh_database: Fresh,
) -> None:
    store, database = fresh_database
    _stream, clock = live_march(fresh_database, FIXED)  # the alias was right from the start
    draft = invoice_tenant(store, database, FIXED, "acme", MARCH, clock=clock)
    assert draft.total == D("29.00")
    finalize_invoice(store, database, "acme", MARCH, clock=clock)
    pricier = rules_catalog(azure_alias=True, call_price="0.75")

    report = run_replay(store, database, pricier, MARCH, clock=clock, reinvoice=True)

    # usage did not change: both sides at the new price, no line changes
    acme = report.diff_for("acme")
    assert not acme.changed
    assert (acme.previous_total, acme.new_total) == (D("31.25"), D("31.25"))
    # the stored invoice is what changes: 9 calls x 0.25 more
    assert acme.stored is not None
    assert (acme.stored.invoice_id, acme.stored.status, acme.stored.billing_run) == (
        "acme-2026-03-v1",
        "finalized",
        "live",
    )
    assert (acme.stored.total, acme.stored.difference) == (D("29.00"), D("2.25"))
    assert report.invoices is not None
    actions = {a.tenant: (a.action, a.invoice_id) for a in report.invoices}
    assert actions == {
        "acme": ("revised", "acme-2026-03-v2"),
        "globex": ("created", "globex-2026-03-v1"),
    }

    v1, v2 = invoice_versions(store, database, "acme", MARCH)
    assert (v1.status, v1.total, v1.billing_run) == ("finalized", D("29.00"), "live")
    assert [line.amount for line in v1.lines] == [D("10.00"), D("4.50"), D("7.00"), D("7.50")]
    assert (v2.status, v2.total, v2.billing_run) == ("draft", D("31.25"), report.run_id)
    assert (v2.supersedes, v2.difference_from_superseded) == ("acme-2026-03-v1", D("2.25"))
    assert [line.amount for line in v2.lines] == [D("10.00"), D("6.75"), D("7.00"), D("7.50")]
    text = "\n".join(report.lines())
    assert "stored invoice acme-2026-03-v1 (finalized, run live): 29.00 USD" in text
    assert "31.25 USD (+2.25 USD)" in text
    assert "invoice: created v2 revising finalized v1: +2.25 USD" in text
    assert report.to_json_dict()["invoices"][0]["action"] == "revised"


# --- live writes of the next period during a replay -------------------------------------------


@pytest.mark.integration
def test_live_rows_of_the_next_period_written_during_a_replay(fresh_database: Fresh) -> None:
    store, database = fresh_database
    stream, clock = live_march(fresh_database)
    april = [
        kong(f"apr{n}", "acme", at(n, month=4), 2, response_bytes=1_000_000_000, consumer="app-5")
        for n in range(1, 6)
    ]
    pending = list(april)

    def live_between_chunks(_message: str) -> None:
        if pending:  # the live worker keeps going: one April call (2 copies) per chunk
            stream.deliver([pending.pop(0)], batch_size=1)

    report = run_replay(
        store, database, FIXED, MARCH, clock=clock, progress=live_between_chunks, chunk_rows=5
    )

    assert not pending
    assert report.counts.copies_read == 24  # March only, although April kept arriving
    assert period_quantities(store, database, "acme", MARCH, report.run_id) == ACME_AFTER
    outside = count(
        store,
        f"SELECT count() AS c FROM {database}.usage_events "
        f"WHERE billing_run = '{report.run_id}' AND toYYYYMM(event_time) != 202603",
    )
    assert outside == 0
    # the live April meters are exact: 5 calls, 5 GB, one app; the live March ones untouched
    assert period_quantities(store, database, "acme", APRIL, "live") == {
        ("payments", "calls"): D(5),
        ("payments", "egress_gb"): D(5),
        ("payments", "active_apps"): D(1),
    }
    assert period_quantities(store, database, "acme", MARCH, "live") == ACME_BEFORE
    assert billing_run_for(store, database, "acme", APRIL) == "live"
    assert count(store, f"SELECT count() AS c FROM {database}.event_log FINAL") == 24 + 10


# --- dry run ----------------------------------------------------------------------------------


TABLES = ("event_log", "usage_events", "meter_entries", "billing_runs", "invoices", "invoice_lines")


def table_counts(store: Store, database: str) -> dict[str, int]:
    return {t: count(store, f"SELECT count() AS c FROM {database}.{t}") for t in TABLES}


@pytest.mark.integration
def test_dry_run_writes_nothing_and_shows_the_diff_the_replay_then_makes(
    fresh_database: Fresh,
) -> None:
    store, database = fresh_database
    _stream, clock = live_march(fresh_database)
    invoice_tenant(store, database, BROKEN, "acme", MARCH, clock=clock)
    before = table_counts(store, database)

    dry = run_replay(store, database, FIXED, MARCH, clock=clock, dry_run=True, reinvoice=True)

    assert table_counts(store, database) == before
    assert (dry.dry_run, dry.registered, dry.invoices) == (True, False, None)
    assert billing_run_for(store, database, "acme", MARCH) == "live"
    assert dry.run_id == "replay-2026-03-all-0001"
    assert dry.diff_for("acme").difference == D("7.00")
    stored = dry.diff_for("acme").stored
    assert stored is not None and (stored.status, stored.difference) == ("draft", D("7.00"))
    assert dry.lines()[0].startswith("DRY RUN: replay of 2026-03 for all tenants")
    assert "Would write 14 usage events" in "\n".join(dry.lines())

    real = run_replay(store, database, FIXED, MARCH, clock=clock)

    assert real.run_id == dry.run_id
    assert real.diffs == dry.diffs
    assert real.counts == dry.counts


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_broken_record_and_inconsistent_previous_meters_do_not_stop_the_replay(
    fresh_database: Fresh,
) -> None:
    store, database = fresh_database
    _stream, clock = live_march(fresh_database)
    broken = {
        "source_topic": "usage.events",
        "source_partition": 0,
        "source_offset": 999,
        "idempotency_key": "bad",
        "integration_id": "kong-prod",
        "gateway": "kong",
        "tenant_headers": [],
        "tenant": None,
        "event_time": at(30),
        "disposition": "first_copy",
        "quarantine_reason": "",
        "quarantine_detail": "",
        "product": None,
        "payload": "{not json",
        "processed_at": at(30),
    }
    store.insert_rows(f"{database}.event_log", [broken])
    # the live run metered acme's calls with another aggregation once (rules changed mid-month)
    store.insert_rows(
        f"{database}.meter_entries",
        [
            {
                "billing_run": "live",
                "tenant": "acme",
                "product": "payments",
                "metric": "calls",
                "aggregation": "sum",
                "idempotency_key": "odd",
                "event_time": at(2),
                "value": D(1),
                "distinct_value": None,
                "divide_by": D(1),
            }
        ],
    )

    report = run_replay(store, database, FIXED, MARCH, clock=clock)

    assert (report.counts.copies_read, report.counts.malformed) == (25, 1)
    acme = report.diff_for("acme")
    assert acme.previous is None and "two aggregations" in acme.previous_problem
    assert acme.new_total == D("29.00")
    assert period_quantities(store, database, "acme", MARCH, report.run_id) == ACME_AFTER
    assert "previous run not comparable" in "\n".join(report.lines())
    assert "1 malformed" in report.lines()[1]


class DroppingStore:
    """Passes everything through except globex's meter entries (a lost write)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    @property
    def engine(self) -> str:
        return self.inner.engine

    def command(self, sql: str) -> None:
        self.inner.command(sql)

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        return self.inner.query(sql, params)

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, dedup_token: str | None = None
    ) -> None:
        if table.endswith(".meter_entries"):
            rows = [row for row in rows if row["tenant"] != "globex"]
        if rows:
            self.inner.insert_rows(table, rows, dedup_token=dedup_token)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.integration
def test_written_meters_that_differ_from_the_computed_ones_leave_the_run_unregistered(
    fresh_database: Fresh,
) -> None:
    store, database = fresh_database
    _stream, clock = live_march(fresh_database)

    with pytest.raises(ReplayMismatch, match=r"tenant\(s\) globex; the run was NOT registered"):
        run_replay(DroppingStore(store), database, FIXED, MARCH, clock=clock)

    assert billing_runs_of(store, database, MARCH) == []
    assert billing_run_for(store, database, "acme", MARCH) == "live"
    # the aborted run's rows keep their number: the next replay takes the next one
    again = run_replay(store, database, FIXED, MARCH, clock=clock)
    assert again.run_id == "replay-2026-03-all-0002"
    assert billing_run_for(store, database, "globex", MARCH) == again.run_id
