"""Errors of the rating-rules catalog."""

from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError


class CatalogError(ConfigError):
    """The rules in ``rating_rules/*.yaml`` are invalid.

    The message names the file and the item (``<file>: <item>: <problem>``); ``fields`` holds
    ``file``, ``item`` and ``problem`` of the first problem and ``problems`` with all of them.
    """


class NoEffectivePlanVersion(CatalogError):
    """A plan has no version whose ``effective_from`` is on or before the billed period's start."""

    def __init__(self, message: str, *, plan: str, period: str, **fields: Any) -> None:
        super().__init__(message, plan=plan, period=period, **fields)
        self.plan = plan
        self.period = period


class RuleProblem:
    """One problem found in the rules: which file, which item, what is wrong."""

    __slots__ = ("file", "item", "problem")

    def __init__(self, file: str, item: str, problem: str) -> None:
        self.file = file
        self.item = item
        self.problem = problem

    def __str__(self) -> str:
        if self.item:
            return f"{self.file}: {self.item}: {self.problem}"
        return f"{self.file}: {self.problem}"

    def __repr__(self) -> str:
        return f"RuleProblem({self.file!r}, {self.item!r}, {self.problem!r})"

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "item": self.item, "problem": self.problem}


def catalog_error(problems: list[RuleProblem]) -> CatalogError:
    """One CatalogError listing every problem, one per line (the first one's facts as fields)."""
    if not problems:
        raise ValueError("catalog_error needs at least one problem")
    first = problems[0]
    return CatalogError(
        "\n".join(str(problem) for problem in problems),
        file=first.file,
        item=first.item,
        problem=first.problem,
        problems=[problem.as_dict() for problem in problems],
    )
