"""pipeline.logs: repeated library messages are held back, not lost from view."""

from __future__ import annotations

import io
import logging

from pipeline.logs import RepeatedMessageFilter, configure_logging


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_a_repeated_template_passes_once_per_interval_and_then_says_how_many_were_held() -> None:
    now = [100.0]
    quiet = RepeatedMessageFilter(interval_s=10, clock=lambda: now[0])
    template = "Failed fetch messages from %s: %s"
    assert quiet.filter(_record("aiokafka", template, 1, "down"))
    assert not quiet.filter(_record("aiokafka", template, 1, "down again"))
    assert not quiet.filter(_record("aiokafka", template, 1, "still down"))
    # another template or another logger is not held back
    assert quiet.filter(_record("aiokafka", "Heartbeat failed for group %s", "g"))
    assert quiet.filter(_record("aiokafka.conn", template, 1, "down"))
    now[0] = 110.5
    record = _record("aiokafka", template, 1, "back?")
    assert quiet.filter(record)
    assert record.getMessage() == (
        "Failed fetch messages from 1: back? (2 similar lines in the last 10 s)"
    )


def test_configured_processes_hold_back_a_flood_of_one_message() -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    try:
        for attempt in range(200):
            logging.getLogger("aiokafka.consumer.fetcher").warning("Failed fetch: %d", attempt)
    finally:
        configure_logging("INFO")
    lines = [line for line in out.getvalue().splitlines() if "Failed fetch" in line]
    assert len(lines) == 1 and "Failed fetch: 0" in lines[0]


def test_structured_events_pass_untouched() -> None:
    quiet = RepeatedMessageFilter(interval_s=10, clock=lambda: 0.0)
    event = {"event": "request", "status": 202}
    for _ in range(3):
        record = _record("pipeline.ingest", "")
        record.msg = event
        assert quiet.filter(record)
        assert record.msg == {"event": "request", "status": 202}


def test_structlog_lines_are_written_through_the_filter() -> None:
    from pipeline.logs import get_logger

    out = io.StringIO()
    configure_logging("INFO", stream=out)
    try:
        log = get_logger("pipeline.test")
        log.info("accepted", events=3)
        log.info("accepted", events=4)
    finally:
        configure_logging("INFO")
    assert out.getvalue().count("accepted") == 2
