"""Azure's fast path: not written yet, every batch is declined (general path)."""

from __future__ import annotations

from pipeline.ingest.decoders.context import DecoderContext


def fast_records(data: bytes, ctx: DecoderContext) -> list[tuple[bytes, bytes]] | None:
    """See :func:`pipeline.ingest.decoders.fast.fast_records`."""
    return None
