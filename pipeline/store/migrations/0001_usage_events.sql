-- 0001: usage_events, every unique usage event with its fate.
--
-- One row per (billing run, canonical tenant, idempotency key): the SPEC 5 dedup key within a
-- billing run. The live stream writes run 'live'; a replay (rebilling) writes its own run, so
-- it never collapses into, or replaces, what the live stream wrote. The stream workers
-- write the first copy of each key here with its fate (billed, unmapped, ...). Later copies
-- (fate duplicate) belong in the event log, never here: in this table they would collapse
-- into, and could replace, the first copy's row.
--
-- ENGINE ReplacingMergeTree without a version column, ORDER BY (billing_run, tenant,
-- idempotency_key):
--   the sorting key is the dedup key, so a redelivered row (a worker retried its insert after
--   a crash or a Kafka rebalance) collapses into one row on merge, and `FINAL`, or an
--   argMin(..., processed_at) grouped by the key, reads exactly one row per event before the
--   merge happens. Without a version, ReplacingMergeTree keeps the last inserted copy; that is
--   harmless because the copies written here for one key are redeliveries of the same
--   decision (same event, same fate) and differ at most in processed_at. No
--   ReplacingMergeTree(source_offset): the version must not let a later copy win.
--
-- PARTITION BY toYYYYMM(event_time): a partition is a billing period (calendar month in UTC,
--   SPEC 6), so a replay can drop or rewrite one period without touching the others.
--   Caveat: background merges only collapse rows within one partition. Two copies of a key
--   whose timestamps fall in different months stay stored as two rows for good. A `FINAL`
--   read still returns one of them (it merges across partitions unless
--   do_not_merge_across_partitions_select_final is set), but not a chosen one. Such copies are
--   prevented by the stream dedup (it decides on the key alone, whatever the timestamp), and
--   the finance queries read one row per key (argMin by key, first processed wins), not raw
--   rows or per-partition sums.
--
-- No non_replicated_deduplication_window: the key already makes inserts idempotent here, and
--   a block-hash window would silently drop a byte-identical block re-inserted after a replay
--   dropped its partition.
CREATE TABLE IF NOT EXISTS {database}.usage_events
(
    tenant LowCardinality(String),
    idempotency_key String,
    gateway LowCardinality(String),
    integration_id LowCardinality(String),
    tenant_header Nullable(String),
    event_time DateTime64(6, 'UTC'),
    api Nullable(String),
    route Nullable(String),
    method LowCardinality(Nullable(String)),
    status Nullable(UInt16),
    request_bytes Nullable(UInt64),
    response_bytes Nullable(UInt64),
    latency_ms Nullable(UInt64),
    consumer Nullable(String),
    attributes Map(String, String),
    product Nullable(String),
    fate LowCardinality(String),
    billing_run LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    processed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (billing_run, tenant, idempotency_key);
