"""Progress lines for long bench phases: a line every few seconds with the count so far."""

from __future__ import annotations

import time
from collections.abc import Callable

Say = Callable[[str], None]
Clock = Callable[[], float]


class Ticker:
    """Call it with the count done so far; it says a line at most every ``every_s`` seconds.

    Its clock starts at the first call (when the measured work has begun), so the rate it shows
    is that of the work since then: ``Ticker(say, "produced", total=1_000_000)`` called with
    20,000 and then, 8 s later, with 270,000 says ``  produced: 270,000/1,000,000 (27%) after
    8 s, 31,250/s``.
    """

    def __init__(
        self,
        say: Say,
        label: str,
        total: int | None = None,
        *,
        every_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.say, self.label, self.total, self.every_s, self.clock = (
            say,
            label,
            total,
            every_s,
            clock,
        )
        self.first: tuple[float, int] | None = None
        self.last = 0.0

    def __call__(self, done: int) -> None:
        now = self.clock()
        if self.first is None:
            self.first, self.last = (now, done), now
        elif now - self.last >= self.every_s:
            self.last = now
            started, baseline = self.first
            self.say(self.line(done, now - started, done - baseline))

    def line(self, done: int, elapsed_s: float, progressed: int) -> str:
        share = f"/{self.total:,} ({100 * done / self.total:.0f}%)" if self.total else ""
        rate = f", {progressed / elapsed_s:,.0f}/s" if elapsed_s > 0 else ""
        return f"  {self.label}: {done:,}{share} after {elapsed_s:.0f} s{rate}"
