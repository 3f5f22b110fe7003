"""The finance queries shipped as documented SQL files in ``finance/`` (contract §7).

Each file holds one query: a header comment (what it answers, its parameters, how to run it),
``{database}`` where the database name goes, and ClickHouse ``{name:Type}`` parameters for
every value. :func:`run_finance_query` substitutes the database name only, checks that the
parameters given are exactly the ones the query declares, and lets the engine bind them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.billing.common import bind_database
from pipeline.billing.errors import FinanceQueryError
from pipeline.rating import Period
from pipeline.store import Store

#: The repository's ``finance/`` directory (next to ``pipeline/``).
FINANCE_DIR = Path(__file__).resolve().parents[2] / "finance"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")


def finance_query_names(directory: Path = FINANCE_DIR) -> list[str]:
    """The names of the shipped queries (file names without ``.sql``), sorted."""
    return sorted(path.stem for path in directory.glob("*.sql") if _NAME.match(path.stem))


def load_finance_query(name: str, directory: Path = FINANCE_DIR) -> str:
    """The SQL text of query ``name`` as shipped (``{database}`` not yet substituted)."""
    known = finance_query_names(directory)
    if name not in known:
        raise FinanceQueryError(
            f"no finance query named {name!r} in {directory} (known: {', '.join(known)})",
            query=name,
            directory=str(directory),
        )
    return (directory / f"{name}.sql").read_text(encoding="utf-8")


def finance_query_summary(name: str, directory: Path = FINANCE_DIR) -> str:
    """The first sentence line of the query's header, e.g. for a ``--list`` output."""
    for line in load_finance_query(name, directory).splitlines():
        text = line.strip().removeprefix("--").strip()
        if text:
            return text
    return name


def query_parameters(sql: str) -> dict[str, str]:
    """``{name: ClickHouse type}`` of every ``{name:Type}`` parameter in the SQL code.

    Comment lines are skipped, so a header may name parameters without declaring them.
    """
    code = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    found: dict[str, str] = {}
    for match in _PARAMETER.finditer(code):
        name, type_name = match.group(1), match.group(2).strip()
        if found.setdefault(name, type_name) != type_name:
            raise FinanceQueryError(
                f"parameter {name} is declared with two types, {found[name]} and {type_name}",
                parameter=name,
            )
    return found


def run_finance_query(
    store: Store,
    database: str,
    name: str,
    params: Mapping[str, object],
    *,
    directory: Path = FINANCE_DIR,
) -> list[dict[str, Any]]:
    """Run finance query ``name`` on ``database`` with ``params``; rows as dicts.

    The parameters must be exactly those the query declares (missing or unknown names raise
    FinanceQueryError listing the expected ones with their types). A ``period`` may be given
    as a :class:`Period` or ``YYYY-MM`` text; it is checked before the query runs.
    """
    sql = load_finance_query(name, directory)
    expected = query_parameters(sql)
    missing = sorted(set(expected) - set(params))
    unknown = sorted(set(params) - set(expected))
    if missing or unknown:
        wanted = ", ".join(f"{key} ({kind})" for key, kind in sorted(expected.items()))
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown {', '.join(unknown)}")
        raise FinanceQueryError(
            f"finance query {name}: {'; '.join(problems)}. It takes: {wanted}",
            query=name,
            missing=missing,
            unknown=unknown,
        )
    bound = dict(params)
    if "period" in bound:
        period = bound["period"]
        bound["period"] = str(period if isinstance(period, Period) else Period.parse(str(period)))
    statement = bind_database(sql, database).rstrip().rstrip(";")
    return store.query(statement, bound)
