"""Billing periods: calendar months in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pipeline.rating.errors import InvalidPeriod

_PERIOD = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month in UTC, written ``YYYY-MM``; covers ``start <= t < end``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise InvalidPeriod(
                f"invalid billing period month {self.month}: expected 01-12",
                year=self.year,
                month=self.month,
            )
        if not 1 <= self.year <= 9998:
            raise InvalidPeriod(
                f"invalid billing period year {self.year}: expected 0001-9998",
                year=self.year,
                month=self.month,
            )

    @classmethod
    def parse(cls, text: str) -> Period:
        """``"2026-01"`` -> Period(2026, 1). Raises InvalidPeriod with the expected format."""
        match = _PERIOD.fullmatch(text.strip())
        if match is None:
            raise InvalidPeriod(
                f"invalid billing period {text!r}: expected YYYY-MM, e.g. 2026-01", text=text
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, timestamp: datetime) -> Period:
        """The period an event with this (timezone-aware) timestamp belongs to."""
        utc = _as_utc(timestamp)
        return cls(utc.year, utc.month)

    @property
    def start(self) -> datetime:
        """First instant of the month, UTC (inclusive)."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """First instant of the next month, UTC (exclusive)."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)

    @property
    def start_date(self) -> date:
        return date(self.year, self.month, 1)

    def contains(self, timestamp: datetime) -> bool:
        """Whether a timezone-aware timestamp falls in this month (UTC)."""
        return self.start <= _as_utc(timestamp) < self.end

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def _as_utc(timestamp: datetime) -> datetime:
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise InvalidPeriod(
            f"timestamp {timestamp.isoformat()} has no timezone; event times must be UTC-aware",
            timestamp=timestamp.isoformat(),
        )
    return timestamp.astimezone(UTC)
