"""Small helpers shared by the billing modules: the database name in SQL, periods."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pipeline.billing.errors import BillingError
from pipeline.rating import Period

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def bind_database(template: str, database: str) -> str:
    """``template`` with ``{database}`` replaced; the name must be a plain identifier.

    Only ``{database}`` is substituted: ``{name:Type}`` query parameters are left for the
    engine, so values never become SQL text.
    """
    if not _IDENTIFIER.match(database):
        raise BillingError(
            f"database name {database!r} is not a plain identifier (letters, digits, "
            "underscores, not starting with a digit); check PIPELINE_CLICKHOUSE_DATABASE",
            database=database,
        )
    return template.replace("{database}", database)


def as_period(period: Period | str) -> Period:
    """A Period from a Period or ``YYYY-MM`` text (InvalidPeriod names the expected format)."""
    return period if isinstance(period, Period) else Period.parse(period)


def require_aware(moment: datetime, what: str) -> datetime:
    """``moment`` in UTC if it is timezone-aware, else a BillingError naming ``what``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BillingError(
            f"{what} returned the naive datetime {moment.isoformat()}; "
            "pass a clock returning UTC-aware datetimes, e.g. lambda: datetime.now(UTC)",
            value=moment.isoformat(),
        )
    return moment.astimezone(UTC)
