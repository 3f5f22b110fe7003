-- usage_by_gateway_for_tenant: the multi-gateway check. Did the events a tenant sent through
-- each gateway arrive, and what happened to each copy? One row per gateway and integration,
-- counted from the event log (every consumed copy, view event_fates), for one billing period.
--
-- Parameters:
--   {tenant:String}                 canonical tenant id, e.g. 'acme'
--   {tenant_aliases:Array(String)}  the tenant's aliases from the rating rules, [] if none.
--                                   Quarantined copies have no canonical tenant; they count
--                                   here when one of their X-Tenant-Id values is the id or an
--                                   alias (trimmed, case-insensitive), e.g. a tenant the
--                                   integration may not report for.
--   {period:String}                 billing period 'YYYY-MM', e.g. '2026-03'
-- Columns: gateway, integration_id, accepted (every copy consumed), billed (first copy,
--   matched to a product), duplicate (later copies of a key), quarantined, unmapped (first
--   copy, no product matched), dead_letter (ClickHouse refused the event for good: isolated
--   by the stream worker, never billed, the record on the dead-letter topic), unique_events
--   (distinct idempotency keys), first_event, last_event.
--   Always accepted = billed + duplicate + quarantined + unmapped + dead_letter.
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database,
--           "usage_by_gateway_for_tenant",
--           {"tenant": "acme", "tenant_aliases": ["ACME-LEGACY"], "period": "2026-03"})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/usage_by_gateway_for_tenant.sql |
--           clickhouse-client --param_tenant=acme --param_tenant_aliases="['ACME-LEGACY']"
--           --param_period=2026-03
SELECT
    gateway,
    integration_id,
    count() AS accepted,
    countIf(fate = 'billed') AS billed,
    countIf(fate = 'duplicate') AS duplicate,
    countIf(fate = 'quarantined') AS quarantined,
    countIf(fate = 'unmapped') AS unmapped,
    countIf(fate = 'dead_letter') AS dead_letter,
    uniqExact(idempotency_key) AS unique_events,
    min(event_time) AS first_event,
    max(event_time) AS last_event
FROM {database}.event_fates
WHERE toStartOfMonth(event_time) = toDate(concat({period:String}, '-01'))
  AND (
        tenant = {tenant:String}
        OR (
            fate = 'quarantined'
            AND hasAny(
                arrayMap(h -> lowerUTF8(trimBoth(h)), tenant_headers),
                arrayMap(n -> lowerUTF8(trimBoth(n)),
                         arrayConcat([{tenant:String}], {tenant_aliases:Array(String)}))
            )
        )
      )
GROUP BY gateway, integration_id
ORDER BY gateway, integration_id;
