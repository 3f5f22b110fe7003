"""The canonical usage event (contract §4) and its Kafka codec."""

from pipeline.events.codec import (
    EventFields,
    decode_event,
    decode_event_fields,
    describe_validation_error,
    encode_event,
)
from pipeline.events.errors import InvalidTimestamp, MalformedEvent
from pipeline.events.model import (
    EVENT_FIELDS,
    GATEWAYS,
    MAX_EVENT_INTEGER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    CanonicalEvent,
    Gateway,
)
from pipeline.events.record import EventRecord, encode_record
from pipeline.events.timestamps import ensure_utc, format_utc, from_epoch_millis, parse_iso8601

__all__ = [
    "EVENT_FIELDS",
    "GATEWAYS",
    "MAX_EVENT_INTEGER",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "CanonicalEvent",
    "EventFields",
    "EventRecord",
    "Gateway",
    "InvalidTimestamp",
    "MalformedEvent",
    "decode_event",
    "decode_event_fields",
    "describe_validation_error",
    "encode_event",
    "encode_record",
    "ensure_utc",
    "format_utc",
    "from_epoch_millis",
    "parse_iso8601",
]
