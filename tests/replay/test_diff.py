"""Invoice line diffs: matching lines, one-sided lines, totals (pure)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pipeline.rating import Invoice, Period, compute_invoice
from pipeline.replay import LineDiff, StoredInvoiceImpact, TenantDiff, diff_lines
from tests.replay.support import rules_catalog

MARCH = Period(2026, 3)
CATALOG = rules_catalog(azure_alias=True)


def invoice(calls: int, egress: str = "0", apps: int = 0) -> Invoice:
    return compute_invoice(
        CATALOG,
        "acme",
        MARCH,
        {
            ("payments", "calls"): D(calls),
            ("payments", "egress_gb"): D(egress),
            ("payments", "active_apps"): D(apps),
        },
    )


def test_lines_match_by_product_and_metric_and_the_true_up_may_be_one_sided() -> None:
    small = invoice(2)  # 10.00 + 1.00 = 11.00, trued up by 9.00 to the 20.00 minimum
    large = invoice(30, "1.25", 3)  # 10.00 + 15.00 + 2.50 + 7.50 = 35.00, no true-up

    lines = diff_lines(small, large)

    assert [(d.name, d.previous_amount, d.new_amount) for d in lines] == [
        ("Platform fee", D("10.00"), D("10.00")),
        ("Payment calls", D("1.00"), D("15.00")),
        ("Egress", D("0.00"), D("2.50")),
        ("Active apps", D("0.00"), D("7.50")),
        ("Minimum commitment true-up", D("9.00"), D(0)),
    ]
    calls = lines[1]
    assert (calls.product, calls.metric, calls.quantity_difference) == ("payments", "calls", D(28))
    true_up = lines[-1]
    assert (true_up.kind, true_up.quantity_difference, true_up.amount_difference) == (
        "true_up",
        None,
        D("-9.00"),
    )
    assert not lines[0].changed and lines[1].changed


def test_without_a_previous_invoice_every_line_is_new() -> None:
    lines = diff_lines(None, invoice(4))
    assert all(d.previous_quantity is None and d.previous_amount == 0 for d in lines)
    assert lines[1].quantity_difference == 4


@given(
    st.tuples(st.integers(0, 10**6), st.decimals(0, 10**4, places=3), st.integers(0, 50)),
    st.tuples(st.integers(0, 10**6), st.decimals(0, 10**4, places=3), st.integers(0, 50)),
)
def test_line_differences_add_up_to_the_total_difference(
    before: tuple[int, D, int], after: tuple[int, D, int]
) -> None:
    previous, new = (
        invoice(before[0], str(before[1]), before[2]),
        invoice(after[0], str(after[1]), after[2]),
    )
    lines = diff_lines(previous, new)
    diff = TenantDiff("acme", "USD", "live", "replay-x", previous, new, lines)
    assert sum((d.amount_difference for d in lines), D(0)) == diff.difference
    assert diff.changed == (before != after)
    json = diff.to_json_dict()
    assert D(json["difference"]) == new.total - previous.total
    assert all(isinstance(line["amount_difference"], str) for line in json["lines"])


def test_stored_invoice_impact_has_no_difference_across_currencies() -> None:
    same = StoredInvoiceImpact(
        "acme-2026-03-v1", "finalized", "live", "USD", D("20"), D("25"), "USD"
    )
    other = StoredInvoiceImpact(
        "acme-2026-03-v1", "finalized", "live", "EUR", D("20"), D("25"), "USD"
    )
    assert same.difference == D("5")
    assert other.difference is None
    assert other.to_json_dict()["difference"] is None


def test_a_line_only_in_the_previous_invoice_is_kept() -> None:
    gone = LineDiff("usage", "Old", "payments", "calls", D(3), None, D("1.50"), D(0))
    assert gone.quantity_difference == D(-3)
    assert gone.amount_difference == D("-1.50")
