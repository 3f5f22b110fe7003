from __future__ import annotations

from decimal import Decimal as D

from pipeline.catalog import Catalog, parse_rules
from pipeline.rating.invoice import compute_invoice
from pipeline.rating.period import Period
from pipeline.rating.render import render_invoice_text

RULES = """
tenants: [{id: acme, plan: growth}]
products:
  - id: payments
    match: [{gateway: kong, api: payments-svc}]
    metrics: [{id: calls, aggregation: count}]
plans:
  - id: growth
    currency: USD
    versions:
      - effective_from: 2026-01-01
        minimum_commitment: "100.00"
        charges:
          - {model: flat, amount: "49.00", name: Platform fee}
          - {product: payments, metric: calls, model: graduated, name: Payment calls,
             tiers: [{up_to: 10000, unit_price: "0"}, {unit_price: "0.002"}]}
"""
CATALOG = Catalog.from_rules(parse_rules(RULES, "render.yaml"))


def test_text_invoice_has_aligned_amounts_and_totals() -> None:
    invoice = compute_invoice(
        CATALOG, "acme", Period.parse("2026-01"), {("payments", "calls"): D(25000)}
    )
    text = render_invoice_text(invoice)
    lines = text.splitlines()
    assert lines[0] == "Invoice for tenant acme, period 2026-01"
    assert "Plan growth (version effective 2026-01-01), currency USD" in lines[1]
    assert any("10000 x 0 + 15000 x 0.002" in line for line in lines)
    amount_rows = [
        line
        for line in lines
        if line.rstrip().endswith(("49.00", "30.00", "79.00", "21.00", "100.00"))
    ]
    # Every amount ends in the same column.
    assert len(amount_rows) == 5
    assert len({len(row) for row in amount_rows}) == 1
    assert lines[-1].split() == ["Total", "USD", "100.00"]
    assert "Minimum commitment true-up (minimum 100.00)" in text


def test_without_minimum_no_true_up_row() -> None:
    rules = RULES.replace('        minimum_commitment: "100.00"\n', "")
    catalog = Catalog.from_rules(parse_rules(rules, "render.yaml"))
    text = render_invoice_text(compute_invoice(catalog, "acme", Period.parse("2026-01"), {}))
    assert "true-up" not in text
    assert text.splitlines()[-1].split() == ["Total", "USD", "49.00"]
