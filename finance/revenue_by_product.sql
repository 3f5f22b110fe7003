-- revenue_by_product: what a billing period's invoices bill, per currency and product, from
-- each tenant's latest FINALIZED invoice version, or its latest draft when none is finalized.
--
-- Parameters:
--   {period:String}  billing period 'YYYY-MM', e.g. '2026-03'
-- Columns: currency (amounts of different currencies are never added), product ('' for
--   lines that belong to no product: flat fees and the minimum-commitment true-up), kind
--   (flat | usage | true_up), amount (exact, Decimal(38, 4)), tenants (how many invoices have
--   such a line), draft_tenants (of those, how many are still drafts: not final revenue).
-- Lines are read through the view invoice_lines_current, so a recomputed draft's replaced
-- lines never count; a revising draft (v2 of a finalized v1) does not count until finalized.
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database,
--           "revenue_by_product", {"period": "2026-03"})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/revenue_by_product.sql |
--           clickhouse-client --param_period=2026-03
WITH
    chosen AS
    (
        SELECT
            tenant,
            if(countIf(status = 'finalized') > 0,
               maxIf(version, status = 'finalized'),
               max(version)) AS version
        FROM {database}.invoices FINAL
        WHERE period = {period:String}
        GROUP BY tenant
    )
SELECT
    l.currency AS currency,
    ifNull(l.product, '') AS product,
    l.kind AS kind,
    sum(l.amount) AS amount,
    uniqExact(l.tenant) AS tenants,
    uniqExactIf(l.tenant, l.status = 'draft') AS draft_tenants
FROM {database}.invoice_lines_current AS l
INNER JOIN chosen AS c ON c.tenant = l.tenant AND c.version = l.version
WHERE l.period = {period:String}
GROUP BY currency, product, kind
ORDER BY currency, amount DESC, product, kind;
