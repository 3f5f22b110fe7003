"""Replay of a closed month while the live worker processes the next month (contract §8).

March is billed live with an alias missing (part of acme's traffic quarantined as
``unknown_tenant``); then the alias is added and March is replayed while a live worker
consumes April. The replay run bills March's quarantined usage exactly once; April's live
meters stay exact; the live March rows are untouched.
"""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.catalog import load_catalog
from pipeline.devstack.processes import start_worker, stop_worker
from pipeline.devstack.traffic import sample_deliveries
from pipeline.replay import run_replay
from tests.support.stack import REPO, wait_drained
from tests.worker.support import Stack, expected_for

pytestmark = pytest.mark.integration


def test_replay_repairs_quarantine_while_live_worker_runs_next_month(
    stack: Stack,
    tmp_path: Path,
) -> None:
    march = sample_deliveries(300, seed=41, quarantine_share=0.15, key_prefix="mar")
    april = sample_deliveries(
        300, seed=42, start=datetime(2026, 4, 1, tzinfo=UTC), key_prefix="apr"
    )
    stack.produce(march)
    stack.run_until_drained()

    # The fix: the unknown header values become aliases of acme.
    fixed_rules = tmp_path / "rules"
    shutil.copytree(REPO / "rating_rules", fixed_rules)
    tenants = fixed_rules / "tenants.yaml"
    text = tenants.read_text()
    assert "aliases: [ACME-LEGACY, acme_eu]" in text
    tenants.write_text(
        text.replace(
            "aliases: [ACME-LEGACY, acme_eu]",
            "aliases: [ACME-LEGACY, acme_eu, unknown-1, unknown-2, unknown-3]",
        )
    )
    fixed = load_catalog(fixed_rules)
    old = expected_for(march)
    new_march = _expected_with(fixed, march)
    assert sum(old.quarantined.values()) > 0 and not new_march.quarantined

    # Live worker on April, replay of March at the same time.
    stack.produce(april, seed=43)
    worker = start_worker(stack.env(), stack.log())
    store = stack.store()
    try:
        outcome: dict[str, object] = {}

        def replay() -> None:
            outcome["report"] = run_replay(
                store, stack.database, fixed, "2026-03", clock=lambda: datetime.now(UTC)
            )

        thread = threading.Thread(target=replay)
        thread.start()
        thread.join(300)
        assert not thread.is_alive()
        wait_drained(stack.bootstrap, stack.name, stack.topic, alive=[worker], logs=[stack.log()])
        report = outcome["report"]
        run_id = report.run_id  # type: ignore[attr-defined]

        # The replay run: March with the fixed catalog, every event once.
        db = stack.database
        replayed = _meters(store, db, run_id, "2026-03")
        assert replayed == _nonzero(new_march.quantities, "2026-03")
        # Live: March as billed before (with the quarantine), April exact, nothing mixed in.
        assert _meters(store, db, "live", "2026-03") == _nonzero(old.quantities, "2026-03")
        assert _meters(store, db, "live", "2026-04") == _nonzero(
            expected_for(april).quantities, "2026-04"
        )
        assert _meters(store, db, run_id, "2026-04") == {}

        # Replaying again gives a new run with the same contents.
        again = run_replay(store, db, fixed, "2026-03", clock=lambda: datetime.now(UTC))
        assert again.run_id != run_id
        assert _meters(store, db, again.run_id, "2026-03") == replayed
    finally:
        stop_worker(worker)
        store.close()


def _expected_with(catalog, deliveries):  # type: ignore[no-untyped-def]
    from pipeline.devstack.traffic import canonical
    from tests.support.reference import expected_usage

    return expected_usage(catalog, [(canonical(d).model_dump(), d.copies) for d in deliveries])


def _nonzero(quantities, month):  # type: ignore[no-untyped-def]
    return {(t, p, m): q for (t, p, m, mo), q in quantities.items() if mo == month and q != 0}


def _meters(store, db, run, month):  # type: ignore[no-untyped-def]
    rows = store.query(
        f"SELECT tenant, product, metric, quantity FROM {db}.meters_monthly "
        "WHERE billing_run = {run:String} AND period = {month:String}",
        {"run": run, "month": month},
    )
    return {(r["tenant"], r["product"], r["metric"]): r["quantity"] for r in rows if r["quantity"]}
