"""The worker's loop report: rates and shares of time, in words."""

from __future__ import annotations

from pipeline.worker.progress import LoopClock


def test_report_says_rate_batch_size_and_where_the_loop_waited() -> None:
    now = [0.0]
    clock = LoopClock(clock=lambda: now[0])
    clock.add("kafka", 1.0)
    clock.add("deciding", 6.0)
    clock.add("writes", 3.0)
    clock.decided(5000)
    clock.decided(5000)
    now[0] = 10.0
    line = clock.report()
    assert line is not None
    assert line.startswith("10,000 events in 10 s (1,000/s, 2 batches of ~5,000)")
    assert "kafka 10%, deciding 60%, writes 30%" in line
    # it starts over
    now[0] = 20.0
    assert clock.report() is None
    clock.decided(7)
    now[0] = 21.0
    assert "7 events in 1 s" in (clock.report() or "")
