-- 0004: the fate `dead_letter` in the event-log view: events ClickHouse refused for good.
--
-- A consumed event whose row the engine refuses permanently (a value that does not fit its
-- column, a constraint, a parse error) is isolated by the stream worker instead of retried
-- forever (pipeline/worker/sink.py): its rows in the later tables are never written, so it is
-- never billed; its event_log row is rewritten with disposition 'dead_letter'
-- (quarantine_reason 'clickhouse_refused', the engine's message in quarantine_detail; the
-- last row inserted for a (topic, partition, offset) wins in event_log), and the original
-- record goes to the dead-letter topic. Before this view such an event would have shown as
-- billed (its first event_log row said 'first_copy').
--
-- The view is 0002's event_fates with one more fate, decided from the disposition like
-- 'quarantined':
--   dead_letter: ClickHouse refused the event (reason and detail say why);
-- copy_rank still counts every copy of a (tenant, idempotency key), dead-lettered ones too:
-- the first copy wins, so a later copy of a dead-lettered event is a duplicate, as the stream
-- decided it (its dedup state holds the dead-lettered first copy).
-- accepted = billed + unmapped + duplicate + quarantined + dead_letter, always.
-- (0002 is never edited: migrate() checks the checksums of applied files.)
CREATE OR REPLACE VIEW {database}.event_fates AS
SELECT
    source_topic, source_partition, source_offset, idempotency_key, integration_id, gateway,
    tenant_headers, tenant, event_time, product, quarantine_reason, quarantine_detail,
    disposition, processed_at,
    multiIf(disposition = 'quarantined', 'quarantined',
            disposition = 'dead_letter', 'dead_letter',
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
