"""Gateway decoders: raw items of one batch -> canonical events or precise rejections.

:func:`decode_items` never raises for bad input: every item ends as one or more
:class:`DecodedItem` (an envelope can expand into several events, a ``CONTROL_MESSAGE`` into
none; an :class:`~pipeline.ingest.items.UnparsedItem` is its own rejection). The one exception
is :class:`~pipeline.ingest.errors.BodyTooLarge` when nested data (AWS's gzip) would take the
request past its decompression budget: the whole request is refused (413).

The integration's gateway picks the decoder; an item that looks canonical (has
``idempotency_key`` and ``timestamp``) is decoded as a canonical event for any gateway.
Rejection reasons start with the decoder's name: ``kong: started_at must be epoch
milliseconds, got 'abc'``.

Speed (this runs for every event the edge receives): an accepted event comes out as an
:class:`~pipeline.events.EventRecord`, validated and already encoded as its Kafka record by
:func:`build_event` without pydantic (the model is built from it only when someone reads
``DecodedItem.event``); an item's raw bytes are serialised only when asked for (dead letters);
the field readers take inline fast paths for the forms plugins send. Results, record bytes and
reasons are those of the original pydantic-and-``encode_event`` code, which is kept as a frozen
reference under ``tests/ingest/decoders/reference/`` and compared on generated payloads.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pipeline.events import Gateway
from pipeline.ingest.decoders import apigee, aws, azure, canonical, kong, mulesoft
from pipeline.ingest.decoders.canonical import looks_canonical
from pipeline.ingest.decoders.context import (
    DecodedItem,
    Decoder,
    DecoderContext,
    EventOutcome,
    build_event,
    decided_item,
)
from pipeline.ingest.errors import BodyTooLarge, InvalidField
from pipeline.ingest.items import UnparsedItem

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


# Gateway decoders that always yield exactly one event, and the module function that decodes it
# (``decode`` is ``[EventOutcome(decode_event(item, ctx))]``): the batch loop calls it directly.
_ONE_EVENT: dict[Decoder, tuple[ModuleType, str]] = {
    kong.decode: (kong, "decode_event"),
    apigee.decode: (apigee, "decode_event"),
    mulesoft.decode: (mulesoft, "decode_event"),
}


def decode_items(items: list[Any], ctx: DecoderContext) -> list[DecodedItem]:
    """Decode every item of a batch (positions are ``index``; see module doc)."""
    decoded: list[DecodedItem] = []
    append = decoded.append
    native = DECODERS[ctx.gateway]
    single = _ONE_EVENT.get(native)
    native_event = None if single is None else getattr(*single)
    canonical_event = canonical.decode_event
    gateway = ctx.gateway
    for index, item in enumerate(items):
        if type(item) is UnparsedItem:  # not JSON on its own (the body's parser split it off)
            append(DecodedItem(index, item.raw, error=item.reason))
            continue
        if looks_canonical(item):
            source, decode_one = "canonical", canonical_event
        elif native_event is not None:
            source, decode_one = gateway, native_event
        else:
            decoded.extend(decode_item(index, item, ctx, native))
            continue
        try:
            record = decode_one(item, ctx)
        except InvalidField as exc:
            append(decided_item(index, None, None, f"{source}: {exc}", item))
        except BodyTooLarge:  # the request's decompression budget: the whole request is 413
            raise
        except Exception as exc:  # a decoder bug must never crash the edge: reject, dead-letter
            error = f"{source}: internal decoder error ({type(exc).__name__}: {exc})"
            append(decided_item(index, None, None, error, item))
        else:
            append(decided_item(index, None, record, None, item))
    return decoded


def decode_item(
    index: int, item: Any, ctx: DecoderContext, native: Decoder | None = None
) -> list[DecodedItem]:
    """Decode one item at position ``index``; never raises.

    ``native`` is the integration's gateway decoder (looked up in :data:`DECODERS` if omitted).
    """
    decoder: Decoder
    if looks_canonical(item):
        source, decoder = "canonical", canonical.decode
    else:
        source, decoder = ctx.gateway, native or DECODERS[ctx.gateway]
    if type(item) is UnparsedItem:
        return [DecodedItem(index, item.raw, error=item.reason)]
    try:
        outcomes = decoder(item, ctx)
    except InvalidField as exc:
        outcomes = [EventOutcome(error=str(exc))]
    except BodyTooLarge:
        raise
    except Exception as exc:  # a decoder bug must never crash the edge: reject and dead-letter
        outcomes = [EventOutcome(error=f"internal decoder error ({type(exc).__name__}: {exc})")]
    results = []
    for record, error, sub_index, raw_item in outcomes:
        source_item = item if raw_item is None else raw_item
        if (record is None) == (error is None):
            raise ValueError("a decoder outcome holds exactly one of record and error")
        reason = None if error is None else f"{source}: {error}"
        results.append(decided_item(index, sub_index, record, reason, source_item))
    return results
