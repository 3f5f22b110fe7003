"""Rendering of replay reports: failures, incomparable previous runs, scopes (pure)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

from pipeline.billing import TenantFailure
from pipeline.rating import Period, UnknownTenant, compute_invoice
from pipeline.replay import InvoiceAction, ReplayCounts, ReplayReport, TenantDiff, diff_lines
from tests.replay.support import rules_catalog

MARCH = Period(2026, 3)
CATALOG = rules_catalog(azure_alias=True)


def report(**overrides: object) -> ReplayReport:
    new = compute_invoice(CATALOG, "acme", MARCH, {("payments", "calls"): D(30)})
    diff = TenantDiff(
        "acme",
        "USD",
        "live",
        "replay-2026-03-tenant-acme-0001",
        None,
        new,
        diff_lines(None, new),
        previous_problem="meters of payments/calls ... two aggregations",
    )
    fields: dict[str, object] = {
        "period": MARCH,
        "tenant": "acme",
        "run_id": "replay-2026-03-tenant-acme-0001",
        "dry_run": False,
        "registered": True,
        "catalog_fingerprint": "f" * 64,
        "counts": ReplayCounts(copies_read=40, first_copies=30, quarantined=Counter(x=2)),
        "diffs": (diff,),
        "failures": (TenantFailure("gone", UnknownTenant("no tenant has the id 'gone'")),),
        "invoices": (InvoiceAction("acme", "failed", "", error="plan currency changed"),),
    }
    fields.update(overrides)
    return ReplayReport(**fields)  # type: ignore[arg-type]


def test_an_incomparable_previous_run_and_failures_are_spelled_out() -> None:
    text = "\n".join(report().lines())
    assert "Replay of 2026-03 for tenant acme: billing run replay-2026-03-tenant-acme-0001" in text
    assert "previous run not comparable: meters of payments/calls" in text
    assert "Total" in text and "25.00 USD" in text  # 10.00 + 30 x 0.50
    assert "gone: NOT COMPARED: no tenant has the id 'gone'" in text
    assert "invoice: FAILED: plan currency changed" in text
    assert "2 still quarantined (x 2)" in text
    assert "Totals: 1 of 1 tenant(s) changed, 1 not compared" in text
    json = report().to_json_dict()
    assert json["tenants"][0]["previous_total"] is None
    assert json["tenants"][0]["difference"] is None
    assert json["failures"] == [{"tenant": "gone", "error": "no tenant has the id 'gone'"}]
    assert json["totals"] == {}  # no tenant with both sides
    assert json["invoices"][0]["error"] == "plan currency changed"


def test_an_unregistered_run_says_billing_did_not_switch() -> None:
    assert "NOT registered" in report(registered=False).lines()[0]
    assert report(invoices=None).to_json_dict()["invoices"] is None
