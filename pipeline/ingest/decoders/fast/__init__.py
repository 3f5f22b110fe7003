"""Typed fast path: a whole batch of plain native events straight to Kafka records.

Gateway plugins send the same clean shape event after event. For such a batch, the general
path (``orjson.loads`` into dicts, the serialisability check, the gateway decoder's field
readers, :class:`~pipeline.ingest.decoders.DecodedItem` per item) costs the edge's event loop
about twice what the work needs. Here msgspec decodes the body's JSON array straight into small
typed structs holding only the fields the decoder reads (types checked in C, other fields
skipped unparsed), and one function per gateway turns each struct into its record's key and
value.

The contract, the same for every gateway (``FastPath``):

* ``fast_records(data, ctx)`` returns the ``(key, value)`` of every event of the decompressed
  body, in order, or ``None``: the batch is **declined** and the general path decides.
* It declines at the first thing outside the narrow clean shape: a body that is not a JSON
  array, a value of another type (a number sent as a string where the gateway sends a number,
  ``true`` for a count...), a missing required field, a value the general path would need to
  normalise or might reject, an item that looks canonical. Declining is always correct: it
  costs one more parse, nothing else.
* When it does not decline, the result is exactly what the general path gives for that body:
  every item accepted, the same keys and byte-identical values. ``tests/ingest/decoders/fast``
  checks this on generated, mutated and arbitrary payloads for each gateway.
* Two deliberate differences, both limits of orjson rather than faults of the input, in fields
  no decoder reads: a value nested more than 254 levels deep (the general path refuses the
  body because it could not dead-letter such items; orjson writes at most 254 levels) and a
  number beyond a double's range (valid JSON that orjson cannot read). A batch the fast path
  takes whole has nothing to dead-letter and never reads those fields. msgspec itself refuses
  values nested beyond ~1,000 levels, which declines.
* msgspec checks the syntax of the fields it skips as orjson does, except the UTF-8 of skipped
  strings: :func:`invalid_utf8` checks the whole body first.

Rejections, dead letters and reasons therefore always come from the general path.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.events import Gateway
from pipeline.ingest.decoders.context import DecoderContext
from pipeline.ingest.decoders.fast import apigee, aws, azure, kong, mulesoft
from pipeline.ingest.decoders.fast.values import invalid_utf8
from pipeline.ingest.errors import BodyTooLarge

KafkaRecords = list[tuple[bytes, bytes]]
"""``(key, value)`` of each event: the idempotency key (UTF-8) and the canonical event JSON."""
FastPath = Callable[[bytes, DecoderContext], KafkaRecords | None]

FAST_PATHS: dict[Gateway, FastPath] = {
    "kong": kong.fast_records,
    "apigee": apigee.fast_records,
    "aws": aws.fast_records,
    "azure": azure.fast_records,
    "mulesoft": mulesoft.fast_records,
}


def fast_records(data: bytes, ctx: DecoderContext) -> KafkaRecords | None:
    """The Kafka records of a batch of ``ctx``'s gateway, or ``None`` (declined; see module doc).

    Never raises: anything unexpected declines.
    """
    if not ctx.integration_id.strip() or invalid_utf8(data):
        return None
    try:
        return FAST_PATHS[ctx.gateway](data, ctx)
    except BodyTooLarge:  # nested data past the request's decompression budget: its 413
        raise
    except Exception:  # msgspec's decode errors, a string orjson cannot write, a bug: decline
        return None
