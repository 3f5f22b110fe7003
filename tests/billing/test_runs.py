"""Which billing run an invoice is computed from, and the replay register."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.billing import BillingError, BillingRun, billing_run_for, billing_runs_of
from pipeline.billing.runs import record_billing_run
from pipeline.rating import Period
from pipeline.store import Store

Fresh = tuple[Store, str]
MARCH = Period.parse("2026-03")


def _run(run_id: str, tenant: str, day: int, period: Period = MARCH) -> BillingRun:
    return BillingRun(
        run_id=run_id,
        kind="replay",
        period=period,
        tenant=tenant,
        catalog_fingerprint="f" * 64,
        created_at=datetime(2026, 4, day, tzinfo=UTC),
        note=f"replay {run_id}",
    )


def test_a_run_covers_its_tenant_or_everyone() -> None:
    assert _run("r", "", 1).covers("acme")
    assert _run("r", "acme", 1).covers("acme")
    assert not _run("r", "globex", 1).covers("acme")


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (_run("", "", 1), "must be non-empty"),
        (_run(" r1", "", 1), "without surrounding spaces"),
        (_run("live", "", 1), "cannot be called 'live'"),
    ],
)
def test_bad_runs_are_refused_before_writing(run: BillingRun, message: str) -> None:
    with pytest.raises(BillingError, match=message):
        record_billing_run(object(), "db", run)  # type: ignore[arg-type]


def test_a_naive_creation_time_is_refused() -> None:
    naive = BillingRun("r1", "replay", MARCH, "", "f", datetime(2026, 4, 1))  # noqa: DTZ001
    with pytest.raises(BillingError, match="UTC-aware"):
        record_billing_run(object(), "db", naive)  # type: ignore[arg-type]


@pytest.mark.integration
def test_newest_covering_replay_else_live(fresh_database: Fresh) -> None:
    store, database = fresh_database
    assert billing_run_for(store, database, "acme", MARCH) == "live"

    record_billing_run(store, database, _run("all-1", "", 2))
    record_billing_run(store, database, _run("globex-1", "globex", 5))  # not acme's
    record_billing_run(store, database, _run("feb-1", "", 9, Period.parse("2026-02")))
    assert billing_run_for(store, database, "acme", MARCH) == "all-1"
    assert billing_run_for(store, database, "globex", "2026-03") == "globex-1"

    record_billing_run(store, database, _run("acme-1", "acme", 3))
    assert billing_run_for(store, database, "acme", MARCH) == "acme-1"
    record_billing_run(store, database, _run("all-2", "", 4))
    assert billing_run_for(store, database, "acme", MARCH) == "all-2"
    assert billing_run_for(store, database, "globex", MARCH) == "globex-1"
    assert billing_run_for(store, database, "acme", "2026-04") == "live"

    # A 'live' row (e.g. noting a fingerprint) is never chosen over 'live' itself.
    live = BillingRun("live", "live", MARCH, "", "f", datetime(2026, 4, 30, tzinfo=UTC))
    record_billing_run(store, database, live)
    assert billing_run_for(store, database, "acme", MARCH) == "all-2"


@pytest.mark.integration
def test_registering_a_run_twice_keeps_one_row(fresh_database: Fresh) -> None:
    store, database = fresh_database
    record_billing_run(store, database, _run("all-1", "", 2))
    record_billing_run(store, database, _run("all-1", "", 2))
    [run] = billing_runs_of(store, database, MARCH)
    assert run == _run("all-1", "", 2)
    assert billing_runs_of(store, database, "2026-02") == []
