"""The one exception root of the project.

Every error the pipeline raises on purpose derives from :class:`PipelineError` and carries its
facts as fields (not only in the message), so that adapters can log them structurally and the
HTTP edge alone decides on a status code.
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """Root of all deliberate errors. ``fields`` holds the facts behind the message."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:
        return self.message


class ConfigError(PipelineError):
    """Settings or the rules catalog are invalid; the message says where and what to change."""


class InfrastructureError(PipelineError):
    """Kafka, ClickHouse or the local broker launcher could not do what was asked."""


class StoreError(InfrastructureError):
    """ClickHouse could not be reached or a statement failed."""


class BrokerLaunchError(InfrastructureError):
    """The local Apache Kafka broker could not be resolved, formatted or started."""


class ClickHouseLaunchError(InfrastructureError):
    """The local ClickHouse server (development and tests) could not be started."""
