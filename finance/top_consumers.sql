-- top_consumers: the consumers (app, client or subscription id of contract §4) with the most
-- billed events in a billing period, per tenant and product.
--
-- Parameters:
--   {period:String}       billing period 'YYYY-MM', e.g. '2026-03'
--   {billing_run:String}  '' = for each tenant the run its invoice uses (the newest replay
--                         registered for that tenant or for all tenants, else 'live');
--                         or one run id for every tenant, e.g. 'live'
--   {top:UInt32}          how many rows to return, e.g. 20
-- Columns: tenant, consumer ('' when the gateway reported none), product, events (unique
--   events matched to the product: duplicates are never in usage_events, unmapped events
--   have no product), first_event, last_event, billing_run.
-- Each event is read once per key (first processed copy), as every finance query does.
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database, "top_consumers",
--           {"period": "2026-03", "billing_run": "", "top": 20})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/top_consumers.sql |
--           clickhouse-client --param_period=2026-03 --param_billing_run='' --param_top=20
WITH
    period_tenants AS
    (
        SELECT DISTINCT tenant
        FROM {database}.usage_events
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
    ),
    events AS
    (
        SELECT
            billing_run, tenant, idempotency_key,
            argMin(event_time, processed_at) AS first_time,
            argMin(consumer, processed_at) AS first_consumer,
            argMin(product, processed_at) AS first_product
        FROM {database}.usage_events
        -- The period's partition only; within it, one row per key (the first processed).
        WHERE toStartOfMonth(event_time) = toDate(concat({period:String}, '-01'))
        GROUP BY billing_run, tenant, idempotency_key
    )
SELECT
    e.tenant AS tenant,
    ifNull(e.first_consumer, '') AS consumer,
    assumeNotNull(e.first_product) AS product,
    count() AS events,
    min(e.first_time) AS first_event,
    max(e.first_time) AS last_event,
    any(e.billing_run) AS billing_run
FROM events AS e
INNER JOIN chosen_runs AS c ON c.tenant = e.tenant AND c.billing_run = e.billing_run
WHERE e.first_product IS NOT NULL
GROUP BY tenant, consumer, product
ORDER BY events DESC, tenant, consumer, product
LIMIT {top:UInt32};
