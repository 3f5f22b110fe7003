"""The invoice flow against the engine: amounts worked out by hand from inserted rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.billing import (
    BillingError,
    BillingRun,
    InvoiceNotFound,
    finalize_invoice,
    invoice_all,
    invoice_tenant,
    load_invoice,
    record_billing_run,
)
from pipeline.billing.invoicing import (
    canonical_tenant,
    money,
    same_amounts,
    signed_money,
    subscribed_tenants,
)
from pipeline.rating import Period, UnknownTenant, compute_invoice
from pipeline.store import Store
from tests.billing.rows import (
    MARCH,
    Clock,
    Usage,
    acme_march_across_three_gateways,
    at,
    catalog,
    write_usage,
)

Fresh = tuple[Store, str]


def _count(store: Store, sql: str) -> int:
    [row] = store.query(sql)
    return int(row["c"])


# --- pure helpers -----------------------------------------------------------------------------


def test_money_and_signed_differences_use_the_currency_minor_unit() -> None:
    assert money(D("73.6"), "USD") == "73.60 USD"
    assert money(D("1245"), "JPY") == "1245 JPY"
    assert signed_money(D("0.5"), "USD") == "+0.50 USD"
    assert signed_money(D("-0.50"), "USD") == "-0.50 USD"
    assert signed_money(D("-3"), "JPY") == "-3 JPY"
    assert signed_money(D("0.0000"), "USD") == "0.00 USD"


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2))
def test_signed_money_reads_back_as_the_amount(amount: D) -> None:
    text, currency = signed_money(amount, "USD").split(" ")
    assert currency == "USD"
    assert D(text) == amount
    assert text.startswith("+") == (amount > 0)


def test_canonical_tenant_resolves_aliases_and_refuses_strangers() -> None:
    rules = catalog()
    assert canonical_tenant(rules, "acme") == "acme"
    assert canonical_tenant(rules, " acme-legacy ") == "acme"
    with pytest.raises(UnknownTenant, match="'nobody'"):
        canonical_tenant(rules, "nobody")


def test_subscribed_tenants_skip_plans_not_yet_in_effect() -> None:
    rules = catalog()
    assert subscribed_tenants(rules, Period.parse(MARCH)) == ["acme", "globex", "hooli", "initech"]
    assert "soylent" in subscribed_tenants(rules, Period.parse("2027-01"))


def test_same_amounts_ignores_quantities_but_not_amounts() -> None:
    march = Period.parse(MARCH)
    base = compute_invoice(catalog(), "acme", march, {("payments", "calls"): D(5)})
    more_free_calls = compute_invoice(catalog(), "acme", march, {("payments", "calls"): D(9)})
    billed_calls = compute_invoice(catalog(), "acme", march, {("payments", "calls"): D(11)})
    assert same_amounts(base, more_free_calls)  # both within the 10 free calls
    assert not same_amounts(base, billed_calls)


# --- the flow against the engine ---------------------------------------------------------------


@pytest.mark.integration
def test_one_invoice_for_usage_through_three_gateways(fresh_database: Fresh) -> None:
    store, database = fresh_database
    usage = acme_march_across_three_gateways()
    write_usage(store, database, usage)
    # Noise that must not count: a redelivered meter entry (same key), another tenant, another
    # month, another billing run, an unmapped event.
    write_usage(store, database, [usage[0]])
    write_usage(
        store,
        database,
        [
            Usage("g-1", "kong", at(5), tenant="globex", headers=("globex",)),
            Usage("feb-1", "kong", at(28, month=2)),
            Usage("apr-1", "kong", datetime(2026, 4, 1, tzinfo=UTC)),
            Usage("r-1", "kong", at(6), billing_run="replay-x"),
            Usage("u-1", "kong", at(7), product=None, api="unknown-svc"),
        ],
    )

    stored = invoice_tenant(store, database, catalog(), "ACME-LEGACY", MARCH, clock=Clock())

    # By hand: 20 calls -> 10 free + 10 x 0.25 = 2.50; egress 2.5 GB - 1 included = 1.5 x 0.09
    # = 0.135 -> 0.14; 3 active apps -> volume tier 2: 3 x 4 + 10 = 22.00; platform fee 49.00.
    # Subtotal 73.64 is above the 60.00 minimum: no true-up.
    assert [(line.name, line.quantity, line.amount) for line in stored.lines] == [
        ("Platform fee", None, D("49.00")),
        ("Payment calls", D(20), D("2.50")),
        ("payments egress_gb", D("2.5"), D("0.14")),
        ("payments active_apps", D(3), D("22.00")),
    ]
    assert stored.total == D("73.64")
    assert stored.invoice.true_up == D("0.00")
    assert (stored.invoice_id, stored.version, stored.status) == ("acme-2026-03-v1", 1, "draft")
    assert stored.billing_run == "live"
    assert stored.action == "created"
    assert stored.outcome == "created draft v1: total 73.64 USD"

    loaded = load_invoice(store, database, "acme", MARCH)
    assert loaded.invoice == stored.invoice
    assert loaded.computed_at == datetime(2026, 4, 1, 9, tzinfo=UTC)
    assert loaded.finalized_at is None
    assert loaded.catalog_fingerprint == catalog().fingerprint
    document = loaded.to_json_dict()
    assert document["total"] == "73.64"
    assert document["invoice_id"] == "acme-2026-03-v1"
    assert document["lines"][2]["quantity"] == "2.5"


@pytest.mark.integration
def test_recomputing_a_draft_replaces_it_and_leaves_no_lines_behind(fresh_database: Fresh) -> None:
    store, database = fresh_database
    clock = Clock()
    first = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    # No usage yet: 49.00 platform fee, usage lines at 0, true-up 11.00 to the 60.00 minimum.
    assert [line.kind for line in first.lines] == ["flat", "usage", "usage", "usage", "true_up"]
    assert first.total == D("60.00")
    assert first.invoice.true_up == D("11.00")

    write_usage(store, database, acme_march_across_three_gateways())
    second = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)

    assert (second.version, second.revision, second.action) == (1, 2, "recomputed")
    assert second.outcome == "recomputed draft v1: total 73.64 USD (was 60.00 USD)"
    loaded = load_invoice(store, database, "acme", MARCH)
    assert [line.kind for line in loaded.lines] == ["flat", "usage", "usage", "usage"]
    assert loaded.total == D("73.64")
    assert loaded.computed_at == datetime(2026, 4, 1, 9, 0, 1, tzinfo=UTC)
    assert _count(store, f"SELECT count() AS c FROM {database}.invoices FINAL") == 1
    # The 5 lines of revision 1 stay stored as history but are never current.
    assert _count(store, f"SELECT count() AS c FROM {database}.invoice_lines") == 9
    current = store.query(
        f"SELECT kind, amount FROM {database}.invoice_lines_current ORDER BY line_no"
    )
    assert [row["amount"] for row in current] == [D("49"), D("2.5"), D("0.14"), D("22")]

    store.command(f"OPTIMIZE TABLE {database}.invoices FINAL")
    again = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    assert again.outcome == "recomputed draft v1: total 73.64 USD (unchanged)"
    assert load_invoice(store, database, "acme", MARCH).revision == 3


@pytest.mark.integration
def test_finalize_then_price_change_makes_v2_and_keeps_v1(fresh_database: Fresh) -> None:
    store, database = fresh_database
    clock = Clock()
    write_usage(store, database, acme_march_across_three_gateways())
    invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    final = finalize_invoice(store, database, "acme", MARCH, clock=clock)
    assert (final.status, final.action) == ("finalized", "finalized")
    assert final.outcome == "finalized v1: total 73.64 USD"
    assert final.finalized_at == datetime(2026, 4, 1, 9, 0, 1, tzinfo=UTC)
    v1_lines = load_invoice(store, database, "acme", MARCH).lines

    unchanged = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    assert unchanged.action == "unchanged"
    assert unchanged.outcome.startswith("unchanged: finalized v1 still matches")
    assert _count(store, f"SELECT count() AS c FROM {database}.invoices") == 2  # nothing written

    # Price per call above 10 goes from 0.25 to 0.30: 10 x 0.30 = 3.00, total 74.14, +0.50.
    repriced = catalog(call_price="0.30")
    v2 = invoice_tenant(store, database, repriced, "acme", MARCH, clock=clock)
    assert (v2.version, v2.status, v2.action) == (2, "draft", "revised")
    assert v2.invoice_id == "acme-2026-03-v2"
    assert v2.supersedes == "acme-2026-03-v1"
    assert v2.difference_from_superseded == D("0.50")
    assert v2.total == D("74.14")
    assert v2.outcome == "created v2 revising finalized v1: +0.50 USD (total 74.14 USD)"

    v1 = load_invoice(store, database, "acme", MARCH, version=1)
    assert (v1.status, v1.total, v1.lines) == ("finalized", D("73.64"), v1_lines)
    assert v1.finalized_at == final.finalized_at
    assert load_invoice(store, database, "acme", MARCH).version == 2

    # A recompute of the revising draft keeps its link and difference.
    again = invoice_tenant(store, database, repriced, "acme", MARCH, clock=clock)
    assert (again.version, again.revision, again.supersedes) == (2, 2, "acme-2026-03-v1")
    assert again.difference_from_superseded == D("0.50")
    assert again.outcome.endswith("; +0.50 USD against finalized v1")

    v2_final = finalize_invoice(store, database, "acme", MARCH, clock=clock)
    assert v2_final.outcome == "finalized v2: total 74.14 USD (revises v1: +0.50 USD)"
    twice = finalize_invoice(store, database, "acme", MARCH, clock=clock)
    assert twice.action == "already_finalized"
    assert twice.finalized_at == v2_final.finalized_at

    # Back to the old price: v3 revises v2 by -0.50.
    v3 = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    assert (v3.version, v3.supersedes) == (3, "acme-2026-03-v2")
    assert v3.outcome == "created v3 revising finalized v2: -0.50 USD (total 73.64 USD)"
    register = store.query(
        f"SELECT version, status, total FROM {database}.invoices FINAL ORDER BY version"
    )
    assert [(r["version"], r["status"], r["total"]) for r in register] == [
        (1, "finalized", D("73.64")),
        (2, "finalized", D("74.14")),
        (3, "draft", D("73.64")),
    ]


@pytest.mark.integration
def test_late_usage_after_finalizing_revises_the_invoice(fresh_database: Fresh) -> None:
    store, database = fresh_database
    clock = Clock()
    write_usage(store, database, acme_march_across_three_gateways())
    invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    finalize_invoice(store, database, "acme", MARCH, clock=clock)
    # Two late calls through kong: 22 calls -> 12 x 0.25 = 3.00, total 74.14.
    write_usage(store, database, [Usage("late-1", "kong", at(30)), Usage("late-2", "kong", at(31))])
    v2 = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=clock)
    assert (v2.version, v2.difference_from_superseded, v2.total) == (2, D("0.50"), D("74.14"))


@pytest.mark.integration
def test_zero_usage_tenant_pays_flat_fee_and_true_up(fresh_database: Fresh) -> None:
    store, database = fresh_database
    stored = invoice_tenant(store, database, catalog(), "hooli", MARCH, clock=Clock())
    # 49.00 platform fee, nothing else; the 60.00 minimum adds an 11.00 true-up line.
    assert [(line.kind, line.amount) for line in stored.lines] == [
        ("flat", D("49.00")),
        ("usage", D("0.00")),
        ("usage", D("0.00")),
        ("usage", D("0.00")),
        ("true_up", D("11.00")),
    ]
    loaded = load_invoice(store, database, "hooli", MARCH)
    assert (loaded.invoice.subtotal, loaded.invoice.true_up, loaded.total) == (
        D("49.00"),
        D("11.00"),
        D("60.00"),
    )
    assert loaded.invoice.minimum_commitment == D("60.00")
    assert loaded.lines[-1].unit_description == "minimum commitment 60.00"


@pytest.mark.integration
def test_jpy_invoice_rounds_each_line_to_whole_yen(fresh_database: Fresh) -> None:
    store, database = fresh_database
    usage = [
        Usage(f"jp-{n}", "kong", at(n), tenant="initech", headers=("initech",)) for n in range(1, 8)
    ]
    usage[0] = replace(usage[0], response_bytes=2_000_000_000)
    usage[1] = replace(usage[1], response_bytes=1_000_000_000)
    write_usage(store, database, usage)
    stored = invoice_tenant(store, database, catalog(), "initech", MARCH, clock=Clock())
    # 7 calls x 0.5 = 3.5 -> 4 yen; 3 GB x 13.5 = 40.5 -> 41 yen (half-up); fee 1200.
    assert [line.amount for line in stored.lines] == [D("1200"), D("4"), D("41")]
    assert stored.total == D("1245")
    loaded = load_invoice(store, database, "initech", MARCH)
    assert loaded.currency == "JPY"
    assert [str(line.amount) for line in loaded.lines] == ["1200", "4", "41"]
    assert str(loaded.total) == "1245"
    assert loaded.to_json_dict()["total"] == "1245"


@pytest.mark.integration
def test_a_registered_replay_run_bills_instead_of_live(fresh_database: Fresh) -> None:
    store, database = fresh_database
    write_usage(store, database, acme_march_across_three_gateways())
    replayed = [Usage(f"re-{n}", "kong", at(n), billing_run="replay-7") for n in range(1, 13)]
    write_usage(store, database, replayed)
    record_billing_run(
        store,
        database,
        BillingRun(
            run_id="replay-7",
            kind="replay",
            period=Period.parse(MARCH),
            tenant="acme",
            catalog_fingerprint=catalog().fingerprint,
            created_at=datetime(2026, 4, 2, tzinfo=UTC),
        ),
    )
    stored = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=Clock())
    # 12 calls: 2 x 0.25 = 0.50; 49.00 fee; 49.50 < 60.00 minimum -> true-up 10.50.
    assert stored.billing_run == "replay-7"
    assert stored.total == D("60.00")
    assert stored.lines[1].amount == D("0.50")
    assert stored.outcome == "created draft v1: total 60.00 USD, billing run replay-7"
    live = invoice_tenant(
        store, database, catalog(), "acme", MARCH, clock=Clock(), billing_run="live"
    )
    assert (live.billing_run, live.total) == ("live", D("73.64"))


@pytest.mark.integration
def test_invoice_all_covers_usage_subscribed_and_reports_failures(fresh_database: Fresh) -> None:
    store, database = fresh_database
    write_usage(store, database, acme_march_across_three_gateways())
    write_usage(
        store,
        database,
        [
            Usage("jp-1", "kong", at(3), tenant="initech", headers=("initech",)),
            Usage("ghost-1", "kong", at(3), tenant="ghost", headers=("ghost",)),
        ],
    )
    report = invoice_all(store, database, catalog(), MARCH, clock=Clock())
    assert [stored.tenant for stored in report.invoices] == ["acme", "globex", "hooli", "initech"]
    # acme: usage through three gateways; globex, hooli: no usage, fee 49.00 + true-up 11.00;
    # initech: 1 call x 0.5 = 0.5 -> 1 yen (half-up) + 1200 fee = 1201 (above the 1000 minimum).
    assert [stored.total for stored in report.invoices] == [
        D("73.64"),
        D("60.00"),
        D("60.00"),
        D("1201"),
    ]
    assert [line.amount for line in report.invoices[3].lines] == [D("1200"), D("1"), D("0")]
    [failure] = report.failures
    assert failure.tenant == "ghost"
    assert isinstance(failure.error, UnknownTenant)
    assert report.lines()[0] == "acme: created draft v1: total 73.64 USD"
    assert report.lines()[1] == (
        "ghost: FAILED: no tenant has the id or alias 'ghost' in the rating rules"
    )
    # `invoice --all --json` printed a report with a failure by crashing (an exception object
    # is not JSON): the report is JSON-ready now
    document = orjson.loads(orjson.dumps(report.to_json_dict()))
    assert document["failures"] == [
        {
            "tenant": "ghost",
            "error": "no tenant has the id or alias 'ghost' in the rating rules",
            "kind": "UnknownTenant",
        }
    ]
    assert [i["tenant"] for i in document["invoices"]] == ["acme", "globex", "hooli", "initech"]
    again = invoice_all(store, database, catalog(), MARCH, clock=Clock())
    assert {stored.action for stored in again.invoices} == {"recomputed"}


@pytest.mark.integration
def test_finalize_without_an_invoice_says_what_to_run(fresh_database: Fresh) -> None:
    store, database = fresh_database
    with pytest.raises(InvoiceNotFound, match=r"python -m pipeline invoice --tenant acme"):
        finalize_invoice(store, database, "acme", MARCH, clock=Clock())


@pytest.mark.integration
def test_a_currency_change_cannot_revise_a_finalized_invoice(fresh_database: Fresh) -> None:
    store, database = fresh_database
    clock = Clock()
    invoice_tenant(store, database, catalog(), "hooli", MARCH, clock=clock)
    finalize_invoice(store, database, "hooli", MARCH, clock=clock)
    moved = catalog(hooli_plan="tokyo")
    with pytest.raises(BillingError, match="plan currency changed"):
        invoice_tenant(store, database, moved, "hooli", MARCH, clock=clock)


@pytest.mark.integration
def test_a_naive_clock_is_refused(fresh_database: Fresh) -> None:
    store, database = fresh_database
    with pytest.raises(BillingError, match="UTC-aware"):
        invoice_tenant(
            store,
            database,
            catalog(),
            "acme",
            MARCH,
            clock=lambda: datetime(2026, 4, 1),  # noqa: DTZ001
        )


@pytest.mark.integration
def test_two_invoice_runs_and_a_finalize_at_once_leave_one_finalized_version_that_stays(
    fresh_database: Fresh,
) -> None:
    """Operators run `invoice` and `invoice --finalize` for one tenant at the same time: racing
    draft writes must never replace the finalized state, and its lines must stay its own."""
    import threading

    from pipeline.billing.stored import invoice_versions

    store, database = fresh_database
    write_usage(store, database, acme_march_across_three_gateways())
    invoice_tenant(store, database, catalog(), "acme", MARCH, clock=Clock())
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def run(task: str) -> None:
        try:
            start.wait()
            for _ in range(5):
                if task == "finalize":
                    finalize_invoice(store, database, "acme", MARCH, clock=Clock())
                else:
                    invoice_tenant(store, database, catalog(), "acme", MARCH, clock=Clock())
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in ("invoice", "invoice", "finalize")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    versions = invoice_versions(store, database, "acme", MARCH)
    finalized = [v for v in versions if v.status == "finalized"]
    assert len(finalized) == 1, [(v.version, v.status) for v in versions]
    kept = load_invoice(store, database, "acme", MARCH, finalized[0].version)
    expected = compute_invoice(catalog(), "acme", Period.parse("2026-03"), {})
    assert kept.total == sum(line.amount for line in kept.invoice.lines_with_true_up())
    assert kept.total != expected.total  # the usage is on it
    # afterwards: the same usage, so nothing changes; the finalized version stays as it was
    again = invoice_tenant(store, database, catalog(), "acme", MARCH, clock=Clock())
    assert again.action in ("unchanged", "recomputed")
    after = load_invoice(store, database, "acme", MARCH, finalized[0].version)
    assert (after.status, after.total) == ("finalized", kept.total)
    assert after.invoice.lines == kept.invoice.lines
    assert all(v.status == "draft" for v in invoice_versions(store, database, "acme", MARCH)
               if v.version != finalized[0].version)  # fmt: skip
