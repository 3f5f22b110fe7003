"""Structured logs for every process: structlog over the standard ``logging`` module.

``configure_logging(level, json=...)`` routes both structlog loggers (``get_logger``) and plain
stdlib loggers (aiokafka, aiohttp) through one handler on stderr, so a process writes one
format: ``key=value`` lines for people (``json=False``) or one JSON object per line for a log
pipeline (``json=True``). Every line carries ``timestamp`` (ISO-8601 UTC), ``level`` and
``logger``.

Secrets never reach the output: fields named like credentials (``authorization``, ``api_key``,
``token``, ``password``, ...) are replaced with ``"[redacted]"`` whatever logged them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

SECRET_FIELDS = frozenset(
    {"authorization", "api_key", "apikey", "key_plaintext", "token", "password", "secret"}
)
REDACTED = "[redacted]"


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace the value of any credential-like field (see :data:`SECRET_FIELDS`)."""
    for name in event_dict.keys() & SECRET_FIELDS:
        event_dict[name] = REDACTED
    return event_dict


def _json_dumps(value: MutableMapping[str, Any], **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    level: int | str = "INFO", json: bool = False, *, stream: TextIO | None = None
) -> None:
    """Set up structlog and the root stdlib logger (idempotent: replaces earlier handlers)."""
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger named ``name`` (usually ``__name__``)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
