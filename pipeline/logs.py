"""Structured logs for every process: structlog over the standard ``logging`` module.

``configure_logging(level, json=...)`` routes both structlog loggers (``get_logger``) and plain
stdlib loggers (aiokafka, aiohttp) through one handler on stderr, so a process writes one
format: ``key=value`` lines for people (``json=False``) or one JSON object per line for a log
pipeline (``json=True``). Every line carries ``timestamp`` (ISO-8601 UTC), ``level`` and
``logger``.

Secrets never reach the output: fields named like credentials (``authorization``, ``api_key``,
``token``, ``password``, ...) are replaced with ``"[redacted]"`` whatever logged them.

A message repeated by the same logger is written at most once per 10 s (with the number held
back): a client library retrying against a broker that is down must not flood the log.
"""

from __future__ import annotations

import logging
import sys
import time
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
    handler.addFilter(RepeatedMessageFilter())
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


class RepeatedMessageFilter(logging.Filter):
    """Let each message template of a logger through at most once per ``interval_s``.

    aiokafka logs every failed fetch, produce and coordinator request while a broker is down
    (about 200 lines a second from one worker); one line per kind and interval says the same.
    The next line that passes tells how many were held back.
    """

    def __init__(self, interval_s: float = 10.0, clock: Any = None) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock or time.monotonic
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True  # structlog's own events (a dict): ours, already deliberate
        key = (record.name, record.msg)
        now = self._clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        held = seen[1] if seen is not None else 0
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} similar lines in the last {self.interval_s:.0f} s)"
        return True
