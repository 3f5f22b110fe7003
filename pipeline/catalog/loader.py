"""Read ``rating_rules/*.yaml`` into a Catalog, reporting problems by file and item."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pipeline.catalog.catalog import Catalog, RulesSource, build_catalog
from pipeline.catalog.errors import RuleProblem, catalog_error
from pipeline.catalog.plans import CHARGE_MODELS
from pipeline.catalog.rules import TOP_LEVEL_KEYS, RulesFile

RULES_GLOB = "*.yaml"


class _RulesYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads floats as exact Decimals and rejects duplicate mapping keys."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        number = Decimal(text)
    except InvalidOperation:  # .inf, .nan and the like: validators reject them with context
        return loader.construct_yaml_float(node)
    return number


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_RulesYamlLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_RulesYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_catalog(rules_dir: Path) -> Catalog:
    """Read every ``*.yaml`` in ``rules_dir`` (sorted by name), merge and cross-check them.

    Raises CatalogError naming the file and item of every problem found.
    """
    if not rules_dir.is_dir():
        raise catalog_error(
            [RuleProblem(str(rules_dir), "", "rules directory not found (set PIPELINE_RULES_DIR)")]
        )
    paths = sorted(rules_dir.glob(RULES_GLOB))
    if not paths:
        raise catalog_error([RuleProblem(str(rules_dir), "", f"no {RULES_GLOB} rules files")])
    sources: list[RulesSource] = []
    problems: list[RuleProblem] = []
    for path in paths:
        try:
            sources.append(RulesSource(str(path), _parse(_read(path), str(path))))
        except _FileProblems as failed:
            problems += failed.problems
    if problems:
        raise catalog_error(problems)
    return build_catalog(sources)


def parse_rules(text: str, source: str) -> RulesFile:
    """Validate one rules file's YAML text; raises CatalogError naming ``source`` and the item."""
    try:
        return _parse(text, source)
    except _FileProblems as failed:
        raise catalog_error(failed.problems) from None


class _FileProblems(Exception):
    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _FileProblems([RuleProblem(str(path), "", f"cannot read the file: {exc}")]) from None


def _parse(text: str, source: str) -> RulesFile:
    try:
        raw = yaml.load(text, Loader=_RulesYamlLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _FileProblems([RuleProblem(source, "", _yaml_problem(exc))]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        expected = ", ".join(TOP_LEVEL_KEYS)
        problem = (
            f"expected a mapping with the keys {expected} at the top, got {type(raw).__name__}"
        )
        raise _FileProblems([RuleProblem(source, "", problem)])
    try:
        return RulesFile.model_validate(raw)
    except ValidationError as exc:
        errors = _without_follow_up_errors(exc.errors())
        raise _FileProblems([_problem(source, raw, error) for error in errors]) from None


def _without_follow_up_errors(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop a list's ``too_short`` when it is only caused by invalid items reported below it."""
    kept: list[ErrorDetails] = []
    for error in errors:
        loc = tuple(error["loc"])
        caused_by_items = any(
            tuple(other["loc"])[: len(loc)] == loc and len(other["loc"]) > len(loc)
            for other in errors
        )
        if error["type"] == "too_short" and caused_by_items:
            continue
        kept.append(error)
    return kept


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{context}: {problem}" if context else problem
    return f"YAML syntax error{where}: {detail}"


# --- turning a pydantic error location into "plan 'growth' version 2026-01-01 charge #2" ------

_COLLECTION_LABELS = {
    "tenants": "tenant",
    "integrations": "integration",
    "products": "product",
    "plans": "plan",
    "versions": "version",
    "charges": "charge",
    "match": "match rule",
    "metrics": "metric",
    "tiers": "tier",
}
_NAMED_BY = {
    "tenants": "id",
    "integrations": "id",
    "products": "id",
    "plans": "id",
    "metrics": "id",
    "versions": "effective_from",
}


def _element_label(collection: str, element: object, index: int) -> str:
    label = _COLLECTION_LABELS[collection]
    key = _NAMED_BY.get(collection)
    name = element.get(key) if key and isinstance(element, dict) else None
    if collection == "versions" and name is not None:
        return f"{label} {name}"
    if isinstance(name, str | int) and not isinstance(name, bool):
        return f"{label} '{name}'"
    return f"{label} #{index + 1}"


def _locate(raw: object, loc: tuple[int | str, ...]) -> tuple[list[str], list[str]]:
    """Split an error location into item labels and the field path inside the item."""
    items: list[str] = []
    fields: list[str] = []
    node: object = raw
    collection: str | None = None
    after_charge = False
    for segment in loc:
        if isinstance(segment, int):
            element = node[segment] if isinstance(node, list) and segment < len(node) else None
            if collection is not None and not fields:
                items.append(_element_label(collection, element, segment))
            else:
                fields.append(f"[{segment + 1}]")
            after_charge = collection == "charges"
            node, collection = element, None
            continue
        if collection is not None:  # a collection name not followed by an index
            fields.append(collection)
            collection = None
        if after_charge and segment in CHARGE_MODELS:  # the discriminated-union tag
            after_charge = False
            continue
        after_charge = False
        child = node.get(segment) if isinstance(node, dict) else None
        if segment in _COLLECTION_LABELS and isinstance(child, list) and not fields:
            collection = segment
        else:
            fields.append(segment)
        node = child
    if collection is not None:
        fields.append(collection)
    return items, fields


def _problem(source: str, raw: object, error: ErrorDetails) -> RuleProblem:
    items, fields = _locate(raw, tuple(error["loc"]))
    kind = error["type"]
    message = error["msg"]
    if kind in ("extra_forbidden", "missing") and fields:
        key = fields.pop()
        if kind == "missing":
            text = f"missing required key '{key}'"
        elif items or fields:
            text = f"unknown key '{key}'"
        else:
            text = f"unknown top-level key '{key}' (expected {', '.join(TOP_LEVEL_KEYS)})"
    elif kind == "union_tag_not_found":
        text = f"missing required key 'model' (one of {', '.join(CHARGE_MODELS)})"
    elif kind == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag")
        text = f"unknown model '{tag}' (expected one of {', '.join(CHARGE_MODELS)})"
    elif kind == "too_short":
        minimum = (error.get("ctx") or {}).get("min_length", 1)
        text = f"needs at least {minimum} entr{'y' if minimum == 1 else 'ies'}"
    elif kind == "value_error":
        text = message.removeprefix("Value error, ")
    else:
        value = error.get("input")
        shown = isinstance(value, str | int | float | Decimal) or value is None
        text = f"{message} (got {value!r})" if shown else message
    if fields:
        text = f"{'.'.join(fields).replace('.[', '[')}: {text}"
    return RuleProblem(source, " ".join(items), text)
