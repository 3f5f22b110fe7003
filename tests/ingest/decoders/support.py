"""Helpers for the decoder tests."""

from collections.abc import Mapping
from typing import Any

from pipeline.events import CanonicalEvent, Gateway
from pipeline.ingest.decoders import DecodedItem, DecoderContext, decode_items


def context(
    gateway: Gateway, api_key_tenants: Mapping[str, str] | None = None, **kwargs: Any
) -> DecoderContext:
    return DecoderContext(
        integration_id=f"{gateway}-prod",
        gateway=gateway,
        api_key_tenants=api_key_tenants or {},
        **kwargs,
    )


def decode_one(gateway: Gateway, item: Any, **kwargs: Any) -> DecodedItem:
    results = decode_items([item], context(gateway, **kwargs))
    assert len(results) == 1, results
    return results[0]


def event_of(gateway: Gateway, item: Any, **kwargs: Any) -> CanonicalEvent:
    result = decode_one(gateway, item, **kwargs)
    assert result.event is not None, result.error
    return result.event


def error_of(gateway: Gateway, item: Any, **kwargs: Any) -> str:
    result = decode_one(gateway, item, **kwargs)
    assert result.error is not None, result.event
    return result.error
