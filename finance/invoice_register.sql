-- invoice_register: every invoice version of a billing period with its status and how it
-- relates to the version it revises: the list finance reconciles and pulls invoices from.
--
-- Parameters:
--   {period:String}  billing period 'YYYY-MM', e.g. '2026-03'
-- Columns: invoice_id ('<tenant>-<period>-v<version>'), tenant, version, status (draft |
--   finalized), is_latest (1 on the highest version of the tenant), currency, subtotal,
--   true_up, total, supersedes (the finalized invoice_id this version revises, '' if none),
--   difference_from_superseded (total minus the superseded total), billing_run, plan,
--   plan_version, computed_at, finalized_at (NULL for drafts).
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database,
--           "invoice_register", {"period": "2026-03"})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/invoice_register.sql |
--           clickhouse-client --param_period=2026-03
SELECT
    invoice_id, tenant, version, status, is_latest, currency, subtotal, true_up, total,
    supersedes, difference_from_superseded, billing_run, plan, plan_version, computed_at,
    finalized_at
FROM {database}.invoices_current
WHERE period = {period:String}
ORDER BY tenant, version;
