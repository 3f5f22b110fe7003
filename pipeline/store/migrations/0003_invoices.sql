-- 0003: billing runs, invoices and invoice lines (SPEC 6-8), plus two views finance reads.
-- Written by pipeline/billing; see that package for the flow (draft -> finalized -> revision).
--
-- billing_runs: one row per replay (rebilling) run, the register billing reads to pick the
-- meters an invoice is computed from. A replay job inserts its row AFTER it has written all of
-- its usage_events and meter_entries: a row here means "this run is complete and authoritative
-- for its period and tenant scope". The live stream is the implicit run 'live' and needs no row
-- (a 'live' row is allowed, e.g. to note a catalog fingerprint, and is never chosen over a
-- replay). For a tenant and period, billing uses the newest replay run whose scope is that
-- tenant or all tenants (tenant = ''), else 'live'.
-- ENGINE ReplacingMergeTree without a version, ORDER BY (period, tenant, run_id):
--   the key is the run's identity within its scope, so registering the same run twice (a
--   replay job re-run, SPEC 8: same replay, same result) collapses into one row; the lookup
--   "runs of this period covering this tenant" reads a contiguous key range.
-- No PARTITION BY: a few rows per period; one partition keeps merges (and FINAL) trivial.
CREATE TABLE IF NOT EXISTS {database}.billing_runs
(
    run_id String,
    kind LowCardinality(String),
    period String,
    tenant String,
    catalog_fingerprint String,
    created_at DateTime64(6, 'UTC'),
    note String
)
ENGINE = ReplacingMergeTree
ORDER BY (period, tenant, run_id);

-- invoices: one row per STATE of an invoice version. An invoice is identified by (tenant,
-- period, version); invoice_id = '<tenant>-<period>-v<version>' is derived from that key.
--   * A draft is recomputed in place: the same version gets a new row with revision + 1 (and
--     new lines under that revision, see invoice_lines).
--   * Finalizing writes one more row for the same version with status 'finalized'. From then
--     on the version is never written again; a rebill creates version + 1 as a draft that
--     `supersedes` the finalized one and records `difference_from_superseded` (its total minus
--     the superseded total, in the invoice currency).
-- ENGINE ReplacingMergeTree(row_rank), ORDER BY (tenant, period, version):
--   the key is the invoice version, so FINAL (or a merge) keeps exactly one state per version:
--   the one with the highest row_rank. row_rank is MATERIALIZED from the row itself, so no
--   writer can get it wrong: a finalized row ranks 2^32 + revision, above every draft row
--   (revision is a UInt32), so a stale or racing draft write can never replace a finalized
--   version, even on merge; among drafts the latest revision wins. The key prefix
--   (tenant, period) is also what every read filters on.
-- PARTITION BY period: every state of one invoice has the same period, so states always
--   meet in one partition and merge (ReplacingMergeTree only replaces within a partition);
--   a period is the unit finance reads and the unit a replay rebills. Periods are months, so
--   the partition count grows by 12 a year.
-- Money columns are Decimal(38, 4): exact, with room for every supported currency's minor
--   unit (JPY 0, USD/EUR/GBP 2) and 34 integer digits.
CREATE TABLE IF NOT EXISTS {database}.invoices
(
    invoice_id String,
    tenant LowCardinality(String),
    period String,
    version UInt32,
    revision UInt32,
    status LowCardinality(String),
    billing_run LowCardinality(String),
    catalog_fingerprint String,
    plan LowCardinality(String),
    plan_version Date,
    currency LowCardinality(String),
    subtotal Decimal(38, 4),
    minimum_commitment Nullable(Decimal(38, 4)),
    true_up Decimal(38, 4),
    total Decimal(38, 4),
    line_count UInt16,
    supersedes String,
    difference_from_superseded Decimal(38, 4),
    computed_at DateTime64(6, 'UTC'),
    finalized_at Nullable(DateTime64(6, 'UTC')),
    row_rank UInt64 MATERIALIZED if(status = 'finalized', 4294967296, 0) + revision
)
ENGINE = ReplacingMergeTree(row_rank)
PARTITION BY period
ORDER BY (tenant, period, version);

-- invoice_lines: the lines of one computation (revision) of an invoice version, numbered
-- 1..line_count: the plan's charges in plan order, then the minimum-commitment true-up line
-- when there is one, so the amounts of a computation add up to its invoice total.
-- ENGINE ReplacingMergeTree, ORDER BY (tenant, period, version, revision, line_no):
--   the computation (revision) is part of the key, so recomputing a draft never overwrites
--   the lines of an earlier revision in place and a shorter recomputation cannot inherit
--   lines of a longer one: readers take only the lines whose revision is the invoice row's
--   revision and whose line_no <= its line_count (view invoice_lines_current). Rewriting the
--   same computation (a retried write) collapses by key. Lines of replaced draft revisions
--   stay stored as history and are never read as current.
-- PARTITION BY period: same as invoices, lines and their invoice live in one partition.
-- quantity / billable are Decimal(38, 9): the metric quantity shown on the line, rounded
--   half-even to 9 decimals when the exact quantity has more (e.g. bytes / 3); the amount is
--   always computed from the exact quantity.
CREATE TABLE IF NOT EXISTS {database}.invoice_lines
(
    invoice_id String,
    tenant LowCardinality(String),
    period String,
    version UInt32,
    revision UInt32,
    line_no UInt16,
    kind LowCardinality(String),
    name String,
    product LowCardinality(Nullable(String)),
    metric LowCardinality(Nullable(String)),
    quantity Nullable(Decimal(38, 9)),
    billable Nullable(Decimal(38, 9)),
    unit_description String,
    amount Decimal(38, 4)
)
ENGINE = ReplacingMergeTree
PARTITION BY period
ORDER BY (tenant, period, version, revision, line_no);

-- invoices_current: the current state of every invoice version (draft or finalized), with
-- is_latest = 1 on the highest version of each tenant and period.
CREATE VIEW IF NOT EXISTS {database}.invoices_current AS
SELECT
    *,
    version = max(version) OVER (PARTITION BY tenant, period) AS is_latest
FROM {database}.invoices FINAL;

-- invoice_lines_current: the lines of each invoice version's current state, with the
-- invoice's status and currency. Summing amounts here never counts a replaced draft twice.
CREATE VIEW IF NOT EXISTS {database}.invoice_lines_current AS
SELECT
    l.invoice_id AS invoice_id, l.tenant AS tenant, l.period AS period, l.version AS version,
    l.revision AS revision, l.line_no AS line_no, l.kind AS kind, l.name AS name,
    l.product AS product, l.metric AS metric, l.quantity AS quantity, l.billable AS billable,
    l.unit_description AS unit_description, l.amount AS amount,
    i.status AS status, i.currency AS currency
FROM {database}.invoice_lines AS l FINAL
INNER JOIN
(
    SELECT tenant, period, version, revision, line_count, status, currency
    FROM {database}.invoices FINAL
) AS i
    ON l.tenant = i.tenant AND l.period = i.period AND l.version = i.version
    AND l.revision = i.revision
WHERE l.line_no <= i.line_count;
