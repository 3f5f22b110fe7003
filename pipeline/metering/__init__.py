"""The pure core of the stream workers (contract §5): tenancy, dedup, matching, meters.

No I/O here. The worker calls, per consumed message in partition order::

    assessment = metering.assess(fields)              # tenant, product, meter entries
    if assessment.tenant.tenant_id is not None:
        key = dedup_key(assessment.tenant.tenant_id, fields["idempotency_key"])
        decision = batch.decide(key, partition, offset, epoch_ms(fields["timestamp"]))
    # NEW / REDELIVERY: write the event and its entries (idempotent by key);
    # DUPLICATE: count it. After the batch is written: store batch.updates.
"""

from pipeline.metering.assess import Assessment, Fate, Metering
from pipeline.metering.conditions import parse_number
from pipeline.metering.dedup import (
    DEFAULT_WINDOW_MS,
    BatchDedup,
    Decision,
    DedupStateCorrupt,
    FirstCopy,
    Lookup,
    classify,
    decide_batch,
    dedup_key,
    epoch_ms,
    is_expired,
    split_dedup_key,
)
from pipeline.metering.matching import ProductMatcher
from pipeline.metering.meters import (
    MeterEntry,
    MeterError,
    MeterProblem,
    ProductMeters,
    aggregate_quantity,
    meter_entries,
    product_meters,
)
from pipeline.metering.tenancy import (
    QuarantineReason,
    TenantResolution,
    TenantResolver,
    resolve_tenant,
)

__all__ = [
    "DEFAULT_WINDOW_MS",
    "Assessment",
    "BatchDedup",
    "Decision",
    "DedupStateCorrupt",
    "Fate",
    "FirstCopy",
    "Lookup",
    "MeterEntry",
    "MeterError",
    "MeterProblem",
    "Metering",
    "ProductMatcher",
    "ProductMeters",
    "QuarantineReason",
    "TenantResolution",
    "TenantResolver",
    "aggregate_quantity",
    "classify",
    "decide_batch",
    "dedup_key",
    "epoch_ms",
    "is_expired",
    "meter_entries",
    "parse_number",
    "product_meters",
    "resolve_tenant",
    "split_dedup_key",
]
