-- 0002: the event log (every consumed copy, the raw record for replay), per-event meter
-- entries, and the rollups finance reads. See docs/topology.md for the whole data flow.
--
-- event_log: one row per Kafka message the stream workers consumed from the events topic,
-- duplicates and quarantined events included, with the canonical event as it was in Kafka
-- (`payload`). It is at once
--   * the durable raw archive that replay re-processes (Kafka retention is not enough), and
--   * the ground truth for fates: the first copy of a (tenant, idempotency key) is the one
--     with the lowest (source_partition, source_offset); every later copy is a duplicate.
--     Copies of one key always share a partition (the events topic is keyed by idempotency
--     key), so "lowest offset" is "arrived first".
-- ORDER BY (source_topic, source_partition, source_offset): a Kafka message's coordinates are
--   its identity; a redelivered message (worker crash or rebalance before the offset commit)
--   is rewritten with the same coordinates and collapses into one row.
-- PARTITION BY toYYYYMM(event_time): a partition is a billing period; replay reads one.
-- The skip index serves the event-log questions by tenant inside one month.
CREATE TABLE IF NOT EXISTS {database}.event_log
(
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    idempotency_key String,
    integration_id LowCardinality(String),
    gateway LowCardinality(String),
    tenant_headers Array(String),
    tenant LowCardinality(Nullable(String)),
    event_time DateTime64(6, 'UTC'),
    disposition LowCardinality(String),
    quarantine_reason LowCardinality(String),
    quarantine_detail String,
    product LowCardinality(Nullable(String)),
    payload String,
    processed_at DateTime64(3, 'UTC'),
    INDEX idx_tenant tenant TYPE set(1000) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (source_topic, source_partition, source_offset);

-- meter_entries: what one unique, matched event contributes to each metric of its product
-- (computed by pipeline/metering from the catalog: count -> 1, sum/max -> the field's value,
-- unique_count -> distinct_value). Written only for the first copy of an event.
-- ORDER BY (billing_run, tenant, product, metric, idempotency_key): the dedup key per metric,
--   so a rewritten entry (redelivery) or a late duplicate beyond the stream's dedup window
--   collapses instead of counting twice; it is also the rollups' GROUP BY prefix.
-- PARTITION BY toYYYYMM(event_time): billing period, as above.
-- `value` is Decimal(38, 9): exact sums of byte counts up to 10^29 and attribute values with
-- up to 9 fractional digits; `divide_by` is applied once to the period total, never per entry.
CREATE TABLE IF NOT EXISTS {database}.meter_entries
(
    billing_run LowCardinality(String),
    tenant LowCardinality(String),
    product LowCardinality(String),
    metric LowCardinality(String),
    aggregation LowCardinality(String),
    idempotency_key String,
    event_time DateTime64(6, 'UTC'),
    value Nullable(Decimal(38, 9)),
    distinct_value Nullable(String),
    divide_by Decimal(38, 9)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (billing_run, tenant, product, metric, idempotency_key);

-- Rollups are views over the deduplicated entries, never pre-aggregated states: an aggregate
-- cannot un-count a duplicate (SPEC 11), and unique_count and max cannot be summed from hours
-- into months. Each bucket size is computed from the entries directly, so hour, day and month
-- agree with each other and with the invoice by construction. `raw_quantity` is the sum / max /
-- distinct count before divide_by; `quantity` = raw_quantity / divide_by (what is billed).
CREATE VIEW IF NOT EXISTS {database}.meters AS
SELECT
    billing_run, tenant, product, metric, aggregation,
    toStartOfHour(event_time) AS bucket,
    multiIf(aggregation = 'max', max(value),
            aggregation = 'unique_count', toDecimal128(uniqExact(distinct_value), 9),
            sum(value)) AS raw_quantity,
    any(divide_by) AS divide_by,
    raw_quantity / divide_by AS quantity,
    count() AS entries
FROM {database}.meter_entries FINAL
GROUP BY billing_run, tenant, product, metric, aggregation, bucket;

CREATE VIEW IF NOT EXISTS {database}.meters_daily AS
SELECT
    billing_run, tenant, product, metric, aggregation,
    toStartOfDay(event_time) AS bucket,
    multiIf(aggregation = 'max', max(value),
            aggregation = 'unique_count', toDecimal128(uniqExact(distinct_value), 9),
            sum(value)) AS raw_quantity,
    any(divide_by) AS divide_by,
    raw_quantity / divide_by AS quantity,
    count() AS entries
FROM {database}.meter_entries FINAL
GROUP BY billing_run, tenant, product, metric, aggregation, bucket;

CREATE VIEW IF NOT EXISTS {database}.meters_monthly AS
SELECT
    billing_run, tenant, product, metric, aggregation,
    toStartOfMonth(event_time) AS bucket,
    formatDateTime(event_time, '%Y-%m') AS period,
    multiIf(aggregation = 'max', max(value),
            aggregation = 'unique_count', toDecimal128(uniqExact(distinct_value), 9),
            sum(value)) AS raw_quantity,
    any(divide_by) AS divide_by,
    raw_quantity / divide_by AS quantity,
    count() AS entries
FROM {database}.meter_entries FINAL
GROUP BY billing_run, tenant, product, metric, aggregation, bucket, period;

-- event_fates: the event-log view. Every consumed copy with its fate, decided from the data
-- (not from the worker's in-memory decision, so it stays exact after crashes and state loss):
--   quarantined: the tenant could not be resolved (reason and detail say why);
--   duplicate:   not the first copy of its (tenant, idempotency key);
--   unmapped:    the first copy, but no product matched;
--   billed:      the first copy, matched to a product.
-- accepted = billed + unmapped + duplicate + quarantined, always.
CREATE VIEW IF NOT EXISTS {database}.event_fates AS
SELECT
    source_topic, source_partition, source_offset, idempotency_key, integration_id, gateway,
    tenant_headers, tenant, event_time, product, quarantine_reason, quarantine_detail,
    disposition, processed_at,
    multiIf(disposition = 'quarantined', 'quarantined',
            copy_rank > 1, 'duplicate',
            product IS NULL, 'unmapped',
            'billed') AS fate
FROM
(
    SELECT *,
        row_number() OVER (PARTITION BY tenant, idempotency_key
                           ORDER BY source_partition, source_offset) AS copy_rank
    FROM {database}.event_log FINAL
);

-- quarantine: events whose tenant could not be resolved, with the reason; re-processed by a
-- replay after the catalog is fixed.
CREATE VIEW IF NOT EXISTS {database}.quarantine AS
SELECT
    source_topic, source_partition, source_offset, idempotency_key, integration_id, gateway,
    tenant_headers, event_time, quarantine_reason AS reason, quarantine_detail AS detail,
    payload, processed_at
FROM {database}.event_log FINAL
WHERE disposition = 'quarantined';
