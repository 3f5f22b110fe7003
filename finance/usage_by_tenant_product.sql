-- usage_by_tenant_product: how much each tenant used of each product metric in a billing
-- period, from the same meters and the same billing run the invoices are computed from.
--
-- Parameters:
--   {period:String}       billing period 'YYYY-MM' (calendar month, UTC), e.g. '2026-03'
--   {billing_run:String}  '' = for each tenant the run its invoice uses (the newest replay
--                         registered for that tenant or for all tenants, else 'live');
--                         or one run id for every tenant, e.g. 'live'
-- Columns: tenant, product, metric, aggregation, billing_run, quantity (the billed unit:
--   raw_quantity / divide_by, shown with 9 decimals; invoices divide exactly), raw_quantity
--   (count, sum, max or distinct count before divide_by), divide_by, entries (metered events).
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database,
--           "usage_by_tenant_product", {"period": "2026-03", "billing_run": ""})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/usage_by_tenant_product.sql |
--           clickhouse-client --param_period=2026-03 --param_billing_run=''
WITH
    period_tenants AS
    (
        SELECT DISTINCT tenant
        FROM {database}.meter_entries
        WHERE toStartOfMonth(event_time) = toDate(concat({period:String}, '-01'))
    ),
    replays AS
    (
        SELECT tenant AS scope, run_id, created_at
        FROM {database}.billing_runs FINAL
        WHERE kind = 'replay' AND period = {period:String}
    ),
    chosen_runs AS
    (
        SELECT tenant, argMax(run_id, (created_at, run_id)) AS billing_run
        FROM
        (
            SELECT tenant, 'live' AS run_id, toDateTime64(0, 6, 'UTC') AS created_at
            FROM period_tenants
            UNION ALL
            SELECT t.tenant AS tenant, r.run_id AS run_id, r.created_at AS created_at
            FROM period_tenants AS t
            CROSS JOIN replays AS r
            WHERE r.scope IN ('', t.tenant)
        )
        WHERE {billing_run:String} = ''
        GROUP BY tenant
        UNION ALL
        SELECT tenant, {billing_run:String} AS billing_run
        FROM period_tenants
        WHERE {billing_run:String} != ''
    )
SELECT
    m.tenant AS tenant, m.product AS product, m.metric AS metric,
    m.aggregation AS aggregation, m.billing_run AS billing_run,
    m.quantity AS quantity, m.raw_quantity AS raw_quantity, m.divide_by AS divide_by,
    m.entries AS entries
FROM {database}.meters_monthly AS m
INNER JOIN chosen_runs AS c ON c.tenant = m.tenant AND c.billing_run = m.billing_run
WHERE m.period = {period:String}
ORDER BY tenant, product, metric;
