"""Progress lines: at most one every few seconds, with the count and the rate since it began."""

from __future__ import annotations

from pipeline.devstack.bench.progress import Ticker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_share_and_rate_since_the_first_call() -> None:
    said: list[str] = []
    clock = FakeClock()
    tick = Ticker(said.append, "produced", 1_000_000, every_s=5.0, clock=clock)
    clock.now = 130.0  # setup time before the work starts is not counted
    tick(20_000)
    clock.now = 134.0
    tick(150_000)
    assert said == []  # less than 5 s since the start
    clock.now = 138.0
    tick(270_000)
    clock.now = 140.0
    tick(330_000)  # 2 s after the last line: quiet
    clock.now = 143.0
    tick(420_000)
    assert said == [
        "  produced: 270,000/1,000,000 (27%) after 8 s, 31,250/s",
        "  produced: 420,000/1,000,000 (42%) after 13 s, 30,769/s",
    ]


def test_without_a_total_it_says_the_count_alone() -> None:
    said: list[str] = []
    clock = FakeClock()
    tick = Ticker(said.append, "committed", every_s=1.0, clock=clock)
    tick(0)
    clock.now += 2
    tick(500)
    assert said == ["  committed: 500 after 2 s, 250/s"]
