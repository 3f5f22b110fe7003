"""Reference copy of the gateway decoders as they were before the fast paths (commit 9a21f4a).

This package is a test oracle, not production code: the field readers, the five gateway decoders,
the canonical decoder, the dispatcher and the timestamp parsers exactly as they were when every
event went through the pydantic model and ``encode_event``, with only their imports pointed here.
``tests/ingest/decoders/test_fast_paths.py`` checks on generated payloads that the optimised
decoders give byte-identical records and identical rejection reasons. Do not optimise or fix it.
(One line of ``aws.py`` reads the request's decompression budget instead of the per-item cap
that replaced it; deliberate differences are listed in ``test_against_reference.py``.)

The original module docstring follows.

Gateway decoders: raw items of one batch -> canonical events or precise rejections.

:func:`decode_items` never raises for bad input: every item ends as one or more
:class:`DecodedItem` (an envelope can expand into several events, a ``CONTROL_MESSAGE`` into
none). The integration's gateway picks the decoder; an item that looks canonical (has
``idempotency_key`` and ``timestamp``) is decoded as a canonical event for any gateway.
Rejection reasons start with the decoder's name: ``kong: started_at must be epoch
milliseconds, got 'abc'``.
"""

from __future__ import annotations

from typing import Any

from pipeline.events import Gateway
from pipeline.ingest.body import item_bytes
from pipeline.ingest.errors import InvalidField
from tests.ingest.decoders.reference import apigee, aws, azure, canonical, kong, mulesoft
from tests.ingest.decoders.reference.canonical import looks_canonical
from tests.ingest.decoders.reference.context import (
    DecodedItem,
    Decoder,
    DecoderContext,
    EventOutcome,
    build_event,
)

DECODERS: dict[Gateway, Decoder] = {
    "kong": kong.decode,
    "apigee": apigee.decode,
    "aws": aws.decode,
    "azure": azure.decode,
    "mulesoft": mulesoft.decode,
}

__all__ = [
    "DECODERS",
    "DecodedItem",
    "Decoder",
    "DecoderContext",
    "EventOutcome",
    "build_event",
    "decode_item",
    "decode_items",
    "looks_canonical",
]


def decode_items(items: list[Any], ctx: DecoderContext) -> list[DecodedItem]:
    """Decode every item of a batch (positions are ``index``; see module doc)."""
    decoded: list[DecodedItem] = []
    for index, item in enumerate(items):
        decoded.extend(decode_item(index, item, ctx))
    return decoded


def decode_item(index: int, item: Any, ctx: DecoderContext) -> list[DecodedItem]:
    """Decode one item at position ``index``; never raises."""
    raw = item_bytes(item)
    is_canonical = looks_canonical(item)
    source = "canonical" if is_canonical else ctx.gateway
    decoder = canonical.decode if is_canonical else DECODERS[ctx.gateway]
    try:
        outcomes = decoder(item, ctx)
    except InvalidField as exc:
        outcomes = [EventOutcome(error=str(exc))]
    except Exception as exc:  # a decoder bug must never crash the edge: reject and dead-letter
        outcomes = [EventOutcome(error=f"internal decoder error ({type(exc).__name__}: {exc})")]
    return [
        DecodedItem(
            index=index,
            sub_index=outcome.sub_index,
            raw=outcome.raw if outcome.raw is not None else raw,
            event=outcome.event,
            error=None if outcome.error is None else f"{source}: {outcome.error}",
        )
        for outcome in outcomes
    ]
