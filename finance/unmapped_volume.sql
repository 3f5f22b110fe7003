-- unmapped_volume: events of a billing period that matched no product (kept, never billed),
-- by gateway, API and route: which match rules the rating rules are missing.
--
-- Parameters:
--   {period:String}  billing period 'YYYY-MM', e.g. '2026-03'
-- Columns: gateway, api, route (from the canonical event; '' when the gateway sent none),
--   events (unmapped events: first copies only, duplicates are not counted), tenants
--   (distinct tenants), integrations (sorted integration ids), first_event, last_event.
-- Reads the live event log (view event_fates decides the fate of each copy), so a catalog
-- fix shows here only for events that arrive after it; a replay rebills the period.
-- Run:
--   Python: pipeline.billing.finance.run_finance_query(store, database,
--           "unmapped_volume", {"period": "2026-03"})
--   clickhouse-client: sed 's/{database}/pipeline/g' finance/unmapped_volume.sql |
--           clickhouse-client --param_period=2026-03
SELECT
    gateway,
    ifNull(JSONExtract(payload, 'api', 'Nullable(String)'), '') AS api,
    ifNull(JSONExtract(payload, 'route', 'Nullable(String)'), '') AS route,
    count() AS events,
    uniqExact(tenant) AS tenants,
    arraySort(groupUniqArray(integration_id)) AS integrations,
    min(event_time) AS first_event,
    max(event_time) AS last_event
FROM {database}.event_log FINAL
WHERE (source_topic, source_partition, source_offset) IN
(
    SELECT source_topic, source_partition, source_offset
    FROM {database}.event_fates
    WHERE fate = 'unmapped'
      AND toStartOfMonth(event_time) = toDate(concat({period:String}, '-01'))
)
GROUP BY gateway, api, route
ORDER BY events DESC, gateway, api, route;
