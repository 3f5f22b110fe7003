"""The store's wire format: JSONCompactColumns / JSONEachRow in, JSONCompact out, typed values.

The server adapter (:mod:`pipeline.store.server`) sends rows built here and reads results as
``JSONCompact`` (which carries each column's ClickHouse type in ``meta``), decoded here, so a
query returns exact Python values whatever server answers it.

Value mapping (Python -> ClickHouse on insert, ClickHouse -> Python on query):

* ``Decimal`` <-> ``Decimal(P, S)``: sent as a plain decimal string (never a float, never
  exponent notation); read back as ``Decimal`` with the column's scale (``1.50`` in a
  ``Decimal(18, 2)`` column comes back as ``Decimal('1.50')``).
* aware ``datetime`` <-> ``DateTime``/``DateTime64``: sent as ISO-8601 in UTC with microseconds;
  read back as UTC-aware ``datetime`` (``date_time_output_format='iso'`` makes the engine print
  UTC whatever the column's or server's time zone). Naive datetimes are refused. Precision
  beyond microseconds (``DateTime64(9)``) is truncated to microseconds on read.
* ``date`` <-> ``Date``/``Date32``; 64-bit and wider integers come back as ``int``;
  ``Map`` -> ``dict``, ``Array`` -> ``list``, ``Tuple`` -> ``tuple``, NULL -> ``None``.

Query parameters use ClickHouse's server-side ``{name:Type}`` placeholders; values are never
spliced into SQL text: :func:`normalize_param` reduces each to what clickhouse-connect sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from pipeline.errors import StoreError

Converter = Callable[[Any], Any]

# Settings every query runs with, so that :func:`decode_result` can restore
# exact types: decimals and 64-bit integers quoted (no float detour), trailing zeros kept,
# NaN/inf as strings, date-times in ISO-8601 UTC, tuples as arrays.
RESULT_SETTINGS: Mapping[str, str | int] = {
    "output_format_json_quote_decimals": 1,
    "output_format_decimal_trailing_zeros": 1,
    "output_format_json_quote_64bit_integers": 1,
    "output_format_json_quote_denormals": 1,
    "output_format_json_named_tuples_as_objects": 0,
    "date_time_output_format": "iso",
}

# Settings every insert runs with: ISO-8601 date-times with a zone suffix parse exactly, and a
# row key that names no column is an error (not silently dropped, which is ClickHouse's default).
# async_insert=0: an insert is acknowledged once its part is written, whatever the server's or
# the user's profile says (the sink commits Kafka offsets only after that; with async inserts an
# acknowledged insert could still be lost in the server's buffer, and dedup tokens change
# meaning).
# optimize_on_insert=0: a ReplacingMergeTree would otherwise collapse equal keys inside each
# inserted block, work done again by merges and by the FINAL that every read of these tables
# uses (copies of one key arrive in different inserts anyway). ~20 % less engine CPU per insert.
INSERT_SETTINGS: Mapping[str, str | int] = {
    "date_time_input_format": "best_effort",
    "input_format_skip_unknown_fields": 0,
    "optimize_on_insert": 0,
    "async_insert": 0,
}

RESULT_FORMAT = "JSONCompact"
INSERT_FORMAT = "JSONEachRow"
#: rows that all have the same keys in the same order go as one array per column under one
#: column list: the keys are not repeated per row, and the whole insert is one ``orjson.dumps``.
#: (Per-row dumps joined afterwards cost ~5x more on the worker's 5,000-row batches: each row's
#: bytes keep orjson's output buffer alive until the join.)
COMPACT_INSERT_FORMAT = "JSONCompactColumns"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- identifiers and literals ----------------------------------------------------------------


def qualified_table(table: str) -> str:
    """``db.table`` or ``table``, back-quoted; anything but plain identifiers is refused."""
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(
            f"table name {table!r} is not a plain identifier or database.table pair "
            "(letters, digits and underscores, not starting with a digit)"
        )
    return ".".join(f"`{part}`" for part in parts)


def quote_string(value: str) -> str:
    """A ClickHouse single-quoted string literal (for SETTINGS values, never for user data)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def settings_clause(settings: Mapping[str, str | int]) -> str:
    """``k = v, ...`` for a SETTINGS clause; string values are quoted, names must be identifiers."""
    parts = []
    for name, value in settings.items():
        if not _IDENTIFIER.match(name):
            raise ValueError(f"setting name {name!r} is not an identifier")
        rendered = str(value) if isinstance(value, int) else quote_string(value)
        parts.append(f"{name} = {rendered}")
    return ", ".join(parts)


# --- query parameters ----------------------------------------------------------------------


def _utc_text(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(
            f"naive datetime {value.isoformat()} has no time zone; pass a UTC-aware one"
        )
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise TypeError(f"decimal {value} is not finite")
    return format(value, "f")


def normalize_param(value: object) -> object:
    """A parameter value reduced to ``None``, ``str``, ``int``, ``float`` or lists of those.

    Decimals become plain decimal strings, aware datetimes UTC ``YYYY-MM-DD HH:MM:SS.ffffff``
    (parsed by ``DateTime``/``DateTime64`` parameters in the engine's time zone: declare the
    parameter as ``DateTime64(6, 'UTC')``), dates ISO, booleans ``true``/``false``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [normalize_param(item) for item in items]
    raise TypeError(f"query parameter of type {type(value).__name__} is not supported")


# --- rows in ---------------------------------------------------------------------------------


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(f"naive datetime {value.isoformat()} has no time zone")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"value of type {type(value).__name__} cannot be stored")


_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Rows as JSONEachRow bytes. A key missing from a row takes the column's default.

    A value that cannot be stored raises ``TypeError`` naming the row (0-based) and the cause.
    """
    return _json_lines(rows)


def encode_compact_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], bytes] | None:
    """(columns, JSONCompactColumns bytes) when every row has the first row's keys in the same
    order; None otherwise (then use :func:`encode_rows`). Same value encoding and errors."""
    if not rows:
        return None
    columns = tuple(rows[0])
    if any(tuple(row) != columns for row in rows):
        return None
    return columns, encode_columns([tuple(row.values()) for row in rows], len(columns))


def encode_columns(rows: Sequence[Sequence[Any]], width: int) -> bytes:
    """Value rows of ``width`` values as JSONCompactColumns (one JSON array per column), in one
    ``orjson.dumps``. A row of another width raises ``ValueError``, a value that cannot be stored
    ``TypeError``, each naming the row (0-based)."""
    try:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * width
    except ValueError:
        columns = []
    if len(columns) != width:
        for number, row in enumerate(rows):
            if len(row) != width:
                raise ValueError(f"row {number} has {len(row)} values for {width} columns")
    try:
        return orjson.dumps(columns, default=_default, option=_DUMP_OPTIONS)
    except orjson.JSONEncodeError:
        _json_lines(rows)  # raises TypeError naming the row
        raise


def _json_lines(items: Iterable[Any]) -> bytes:
    """One JSON line per item (a row object or a value list), newline-terminated; a value that
    cannot be stored raises ``TypeError`` naming the row (0-based) and the cause."""
    lines = []
    for number, item in enumerate(items):
        try:
            lines.append(orjson.dumps(item, default=_default, option=_DUMP_OPTIONS))
        except orjson.JSONEncodeError as error:
            raise TypeError(f"row {number}: {error.__cause__ or error}") from error
    lines.append(b"")
    return b"\n".join(lines)


def column_list(columns: Sequence[str]) -> tuple[str, ...]:
    """Validated column names (plain identifiers); ValueError names the first bad one."""
    for column in columns:
        if not _IDENTIFIER.match(column):
            raise ValueError(f"column name {column!r} is not a plain identifier")
    return tuple(columns)


@dataclass(frozen=True)
class InsertPlan:
    """One insert, ready to send: quoted table, settings, payload; with ``columns``
    the payload is JSONCompactColumns in that column order, without it JSONEachRow."""

    table_sql: str
    settings: Mapping[str, str | int]
    payload: bytes
    columns: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        return COMPACT_INSERT_FORMAT if self.columns else INSERT_FORMAT

    @property
    def statement(self) -> str:
        """``INSERT INTO <table> [(columns)] SETTINGS ...`` without FORMAT: what an error quotes
        as the statement (the server receives table, columns, settings and format separately)."""
        columns = f" ({', '.join(self.columns)})" if self.columns else ""
        return f"INSERT INTO {self.table_sql}{columns} SETTINGS {settings_clause(self.settings)}"


def plan_insert(
    table: str, rows: Sequence[Mapping[str, Any]], dedup_token: str | None, *, engine: str
) -> InsertPlan:
    """Validate and encode an insert; bad names or values raise :class:`StoreError`."""

    def encode() -> tuple[tuple[str, ...], bytes]:
        compact = encode_compact_rows(rows)
        if compact is None:
            return (), encode_rows(rows)
        return column_list(compact[0]), compact[1]

    return _plan(table, encode, dedup_token, engine)


def plan_columns_insert(
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    dedup_token: str | None,
    *,
    engine: str,
) -> InsertPlan:
    """:func:`plan_insert` for rows that are already value lists in ``columns`` order (the
    worker's hot path: no dict per row). A row of another length raises :class:`StoreError`."""

    def encode() -> tuple[tuple[str, ...], bytes]:
        names = column_list(columns)
        return names, encode_columns(rows, len(names))

    return _plan(table, encode, dedup_token, engine)


def _plan(
    table: str,
    encode: Callable[[], tuple[tuple[str, ...], bytes]],
    dedup_token: str | None,
    engine: str,
) -> InsertPlan:
    try:
        table_sql = qualified_table(table)
        columns, payload = encode()
    except (TypeError, ValueError) as error:
        raise StoreError(
            f"cannot insert into {table}: {error}", engine=engine, table=table, sql=None
        ) from error
    settings: dict[str, str | int] = dict(INSERT_SETTINGS)
    if dedup_token is not None:
        settings["insert_deduplication_token"] = dedup_token
    return InsertPlan(table_sql=table_sql, settings=settings, payload=payload, columns=columns)


def bind_params(
    params: Mapping[str, object] | None,
    render: Callable[[object], object],
    *,
    sql: str,
    engine: str,
) -> dict[str, Any]:
    """``render`` every parameter value; an unsupported value raises :class:`StoreError`."""
    bound: dict[str, Any] = {}
    for name, value in (params or {}).items():
        try:
            bound[name] = render(value)
        except TypeError as error:
            raise StoreError(
                f"query parameter {name!r} cannot be bound: {error}",
                engine=engine,
                parameter=name,
                sql=excerpt(sql),
            ) from error
    return bound


def excerpt(sql: str, limit: int = 2000) -> str:
    """The statement as carried in error fields: whole if short, else its head."""
    return sql if len(sql) <= limit else sql[:limit] + " ..."


# --- results out -----------------------------------------------------------------------------


def decode_result(payload: bytes) -> list[dict[str, Any]]:
    """``JSONCompact`` bytes -> rows as dicts with typed values; empty payload -> no rows."""
    if not payload.strip():
        return []
    document = orjson.loads(payload)
    meta: Sequence[Mapping[str, str]] = document["meta"]
    names = [column["name"] for column in meta]
    converters = [converter_for(column["type"]) for column in meta]
    columns = list(zip(names, converters, strict=True))
    return [
        {name: convert(value) for (name, convert), value in zip(columns, row, strict=True)}
        for row in document["data"]
    ]


def split_type_args(args: str) -> list[str]:
    """Split ``A, B(C, D), 'x,y'`` at top-level commas."""
    parts: list[str] = []
    depth, start, quoted, index = 0, 0, False, 0
    while index < len(args):
        char = args[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(args[start:index].strip())
            start = index + 1
        index += 1
    tail = args[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _identity(value: Any) -> Any:
    return value


def _to_decimal(value: Any) -> Decimal:
    return Decimal(value) if isinstance(value, str) else Decimal(str(value))


def _to_datetime(value: Any) -> datetime:
    text: str = value
    if text.endswith("Z"):
        text = text[:-1]
    head, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(f"{head}.{fraction[:6]}" if fraction else head)
    return parsed.replace(tzinfo=UTC)


_SCALARS: Mapping[str, Converter] = {
    **{name: int for name in ("Int64", "UInt64", "Int128", "UInt128", "Int256", "UInt256")},
    **{name: int for name in ("Int8", "Int16", "Int32", "UInt8", "UInt16", "UInt32")},
    "Float32": float,
    "Float64": float,
    "BFloat16": float,
    "Bool": bool,
    "Date": date.fromisoformat,
    "Date32": date.fromisoformat,
    "DateTime": _to_datetime,
    "DateTime64": _to_datetime,
    "Decimal": _to_decimal,
    "Decimal32": _to_decimal,
    "Decimal64": _to_decimal,
    "Decimal128": _to_decimal,
    "Decimal256": _to_decimal,
}


def _nullable(inner: Converter) -> Converter:
    return lambda value: None if value is None else inner(value)


def _array(inner: Converter) -> Converter:
    return lambda value: [inner(item) for item in value]


def _map(key: Converter, item: Converter) -> Converter:
    return lambda value: {key(k): item(v) for k, v in value.items()}


def _tuple(elements: Sequence[Converter]) -> Converter:
    return lambda value: tuple(convert(item) for convert, item in zip(elements, value, strict=True))


@lru_cache(maxsize=512)
def converter_for(type_name: str) -> Converter:
    """The function turning one JSONCompact value of ClickHouse type ``type_name`` into Python."""
    name, _, rest = type_name.strip().partition("(")
    args = split_type_args(rest[:-1]) if rest else []
    if name == "Nullable":
        return _nullable(converter_for(args[0]))
    if name == "LowCardinality":
        return converter_for(args[0])
    if name == "SimpleAggregateFunction":
        return converter_for(args[1])
    if name == "Array":
        return _array(converter_for(args[0]))
    if name == "Map":
        return _map(converter_for(args[0]), converter_for(args[1]))
    if name == "Tuple":
        # Named elements look like ``name Type``; the type is the last word group.
        element_types = [_tuple_element_type(arg) for arg in args]
        return _tuple([converter_for(element) for element in element_types])
    return _SCALARS.get(name, _identity)


_NAMED_ELEMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s+(\S.*)$")


def _tuple_element_type(arg: str) -> str:
    """``name Type`` -> ``Type``; an unnamed element (a bare type) has no space at its head."""
    match = _NAMED_ELEMENT.match(arg)
    return match.group(1) if match else arg
