"""Bearer-key authentication of an ingest request: ``Authorization: Bearer <key>`` -> integration.

Keys are stored hashed in the catalog and compared in constant time there
(:meth:`pipeline.catalog.Catalog.integration_for_api_key`). A missing, malformed or unknown key
is one and the same :class:`Unauthenticated` error to the caller (401, no details); the reason is
kept as a field for logs and metrics, never the key itself.
"""

from __future__ import annotations

from typing import Final, Literal

from pipeline.catalog import Catalog, Integration
from pipeline.ingest.errors import IngestError

AuthFailure = Literal["missing", "malformed", "unknown"]

SCHEME: Final = "bearer"
MAX_KEY_LENGTH: Final = 4096


class Unauthenticated(IngestError):
    """No integration owns the request's key; the message reveals nothing about why."""

    def __init__(self, reason: AuthFailure) -> None:
        super().__init__("unauthorized", reason=reason)
        self.reason: AuthFailure = reason


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header (scheme case-insensitive)."""
    if authorization is None or not authorization.strip():
        raise Unauthenticated("missing")
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if (
        scheme.lower() != SCHEME
        or not key
        or len(key) > MAX_KEY_LENGTH
        or not key.isascii()  # also rules out undecodable header bytes (surrogate escapes)
        or not key.isprintable()
        or " " in key
    ):
        raise Unauthenticated("malformed")
    return key


def authenticate(catalog: Catalog, authorization: str | None) -> Integration:
    """The integration owning the request's bearer key, or :class:`Unauthenticated`."""
    integration = catalog.integration_for_api_key(bearer_key(authorization))
    if integration is None:
        raise Unauthenticated("unknown")
    return integration
