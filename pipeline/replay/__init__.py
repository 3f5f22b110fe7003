"""Replay (rebilling) jobs and the event-log report (contract §7 and §8).

* :func:`run_replay` re-processes a period from the raw record (``event_log``) with the
  current catalog into a new billing run, shows what changed per tenant and invoice line, and
  can re-invoice (finalized invoices get a new version, never an in-place change).
* :func:`event_log_report` answers "did tenant Y's events from gateway X arrive, and what
  happened to each".

Both return reports with ``lines()`` (print-ready text) and ``to_json_dict()``.
"""

from pipeline.replay.diff import LineDiff, StoredInvoiceImpact, TenantDiff, diff_lines
from pipeline.replay.errors import ReplayError, ReplayMismatch
from pipeline.replay.event_log import EventLogReport, GatewayCounts, SampleEvent, event_log_report
from pipeline.replay.job import next_run_id, run_prefix, run_replay
from pipeline.replay.report import InvoiceAction, ReplayCounts, ReplayReport
from pipeline.replay.source import DEFAULT_CHUNK_ROWS, RawRecord, raw_records
from pipeline.replay.totals import RunTotals

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "EventLogReport",
    "GatewayCounts",
    "InvoiceAction",
    "LineDiff",
    "RawRecord",
    "ReplayCounts",
    "ReplayError",
    "ReplayMismatch",
    "ReplayReport",
    "RunTotals",
    "SampleEvent",
    "StoredInvoiceImpact",
    "TenantDiff",
    "diff_lines",
    "event_log_report",
    "next_run_id",
    "raw_records",
    "run_prefix",
    "run_replay",
]
