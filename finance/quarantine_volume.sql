-- quarantine_volume: events held in quarantine (no canonical tenant could be resolved) in a
-- billing period, by integration and reason: what to fix in the rating rules (an alias, a
-- default_tenant, allowed_tenants) before replaying the period.
--
-- Parameters:
--   {period:String}  billing period 'YYYY-MM', e.g. '2026-03'
-- Columns: integration_id, gateway, reason (unknown_integration | missing_tenant |
--   unknown_tenant | conflicting_tenants | tenant_not_allowed), copies (every consumed copy),
--   events (distinct idempotency keys), tenant_headers (up to 10 distinct X-Tenant-Id values
--   seen, sorted), example_detail (one detail message), first_event, last_event.
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database,
--           "quarantine_volume", {"period": "2026-03"})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/quarantine_volume.sql |
--           clickhouse-client --param_period=2026-03
SELECT
    integration_id,
    gateway,
    reason,
    count() AS copies,
    uniqExact(idempotency_key) AS events,
    arraySort(groupUniqArrayArray(10)(tenant_headers)) AS tenant_headers,
    min(detail) AS example_detail,
    min(event_time) AS first_event,
    max(event_time) AS last_event
FROM {database}.quarantine
WHERE toStartOfMonth(event_time) = toDate(concat({period:String}, '-01'))
GROUP BY integration_id, gateway, reason
ORDER BY copies DESC, integration_id, reason;
