"""Unit tests of the wire format: parameters, row encoding, typed result decoding."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import StoreError
from pipeline.store import codec

# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("it's \\ 'quoted'", "it's \\ 'quoted'"),  # text stays text: the server binds it
        (None, None),
        (42, 42),
        (True, "true"),
        (False, "false"),
        (Decimal("1.50"), "1.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.000001"), "-0.000001"),
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02 03:04:05.123456"),
        (
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02 03:04:05.000000",
        ),
        (date(2026, 2, 28), "2026-02-28"),
        (["a", Decimal("2.5"), None], ["a", "2.5", None]),
        (("x",), ["x"]),
        (frozenset({"b", "a"}), ["a", "b"]),
    ],
)
def test_normalize_param_reduces_values_to_what_the_client_sends(
    value: object, expected: object
) -> None:
    assert codec.normalize_param(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1),  # noqa: DTZ001 - the naive value under test
        Decimal("NaN"),
        Decimal("Infinity"),
        object(),
        {"a": 1},
        b"bytes",
    ],
)
def test_normalize_param_refuses_unsafe_or_ambiguous_values(value: object) -> None:
    with pytest.raises(TypeError):
        codec.normalize_param(value)


def test_bind_params_reports_the_parameter_that_cannot_be_bound() -> None:
    with pytest.raises(StoreError, match="'when'") as caught:
        codec.bind_params(
            {"ok": 1, "when": datetime(2026, 1, 1)},  # noqa: DTZ001 - naive on purpose
            codec.normalize_param,
            sql="SELECT {when:DateTime}",
            engine="server",
        )
    assert caught.value.fields["parameter"] == "when"
    assert caught.value.fields["engine"] == "server"


def test_normalize_param_keeps_strings_raw_for_the_client_to_escape() -> None:
    assert codec.normalize_param("a'b\\c") == "a'b\\c"
    assert codec.normalize_param([Decimal("0.10"), None]) == ["0.10", None]
    assert codec.normalize_param({2, 1}) == [1, 2]


# --- identifiers and settings ----------------------------------------------------------------


def test_qualified_table_quotes_plain_identifiers() -> None:
    assert codec.qualified_table("metering.usage_events") == "`metering`.`usage_events`"
    assert codec.qualified_table("t1") == "`t1`"


@pytest.mark.parametrize("name", ["a.b.c", "db.`t`", "t; DROP", "1abc", "", "db."])
def test_qualified_table_refuses_anything_but_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        codec.qualified_table(name)


def test_settings_clause_quotes_strings_and_escapes_tokens() -> None:
    clause = codec.settings_clause({"a": 1, "insert_deduplication_token": "p:0:1-9 'x' \\"})
    assert clause == "a = 1, insert_deduplication_token = 'p:0:1-9 \\'x\\' \\\\'"


# --- rows in ---------------------------------------------------------------------------------


def test_encode_rows_writes_exact_decimals_utc_times_and_nulls() -> None:
    payload = codec.encode_rows(
        [
            {
                "amount": Decimal("0.10"),
                "big": Decimal("12345678901234567890.123456789"),
                "at": datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
                "day": date(2026, 3, 1),
                "map": {"tokens": "12"},
                "missing": None,
                "u64": 2**64 - 1,
            },
            {"amount": Decimal("1E+2")},
        ]
    )
    lines = payload.split(b"\n")
    assert lines[-1] == b""
    first = orjson.loads(lines[0])
    assert first == {
        "amount": "0.10",
        "big": "12345678901234567890.123456789",
        "at": "2026-03-01T00:00:00.000000Z",
        "day": "2026-03-01",
        "map": {"tokens": "12"},
        "missing": None,
        "u64": 2**64 - 1,
    }
    assert orjson.loads(lines[1]) == {"amount": "100"}


def test_plan_insert_refuses_naive_datetimes_with_a_store_error() -> None:
    with pytest.raises(StoreError, match="naive datetime") as caught:
        codec.plan_insert(
            "db.t",
            [{"at": datetime(2026, 1, 1)}],  # noqa: DTZ001 - naive on purpose
            None,
            engine="server",
        )
    assert caught.value.fields["table"] == "db.t"


def test_plan_insert_adds_the_dedup_token_to_the_settings() -> None:
    plan = codec.plan_insert("db.t", [{"a": 1}], "events:3:100-199", engine="server")
    assert plan.settings["insert_deduplication_token"] == "events:3:100-199"
    assert plan.statement.startswith("INSERT INTO `db`.`t` (a) SETTINGS ")
    assert "insert_deduplication_token = 'events:3:100-199'" in plan.statement
    assert "input_format_skip_unknown_fields = 0" in plan.statement


# --- results out -----------------------------------------------------------------------------


def _payload(meta: list[tuple[str, str]], rows: list[list[object]]) -> bytes:
    return orjson.dumps(
        {"meta": [{"name": n, "type": t} for n, t in meta], "data": rows, "rows": len(rows)}
    )


def test_decode_result_restores_types_from_meta() -> None:
    payload = _payload(
        [
            ("amount", "Decimal(18, 6)"),
            ("maybe", "Nullable(Decimal(10, 2))"),
            ("at", "DateTime64(6, 'UTC')"),
            ("at9", "DateTime64(9, 'Europe/Berlin')"),
            ("plain", "DateTime"),
            ("day", "Date32"),
            ("u64", "UInt64"),
            ("i128", "Int128"),
            ("small", "UInt16"),
            ("f", "Float64"),
            ("nan", "Float32"),
            ("flag", "Bool"),
            ("method", "LowCardinality(Nullable(String))"),
            ("attributes", "Map(String, String)"),
            ("by_code", "Map(UInt16, Decimal(9, 3))"),
            ("list", "Array(Nullable(UInt64))"),
            ("pair", "Tuple(UInt64, Decimal(9, 2))"),
            ("named", "Tuple(calls UInt64, peak Nullable(UInt64))"),
            ("simple", "SimpleAggregateFunction(sum, UInt64)"),
            ("other", "UUID"),
        ],
        [
            [
                "1.500000",
                None,
                "2026-01-02T03:04:05.123456Z",
                "2026-01-02T03:04:05.123456789Z",
                "2026-01-02T03:04:05Z",
                "1969-12-31",
                "18446744073709551615",
                "-170141183460469231731687303715884105728",
                7,
                0.25,
                "nan",
                True,
                None,
                {"tokens": "12"},
                {"200": "1.250"},
                ["1", None],
                ["5", "0.10"],
                ["3", None],
                "9",
                "6f1c0a64-0000-0000-0000-000000000000",
            ]
        ],
    )
    [row] = codec.decode_result(payload)
    assert row["amount"] == Decimal("1.500000")
    assert str(row["amount"]) == "1.500000"
    assert row["maybe"] is None
    assert row["at"] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert row["at9"] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert row["plain"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["day"] == date(1969, 12, 31)
    assert row["u64"] == 2**64 - 1
    assert row["i128"] == -(2**127)
    assert row["small"] == 7
    assert row["f"] == 0.25
    assert row["nan"] != row["nan"]
    assert row["flag"] is True
    assert row["method"] is None
    assert row["attributes"] == {"tokens": "12"}
    assert row["by_code"] == {200: Decimal("1.250")}
    assert row["list"] == [1, None]
    assert row["pair"] == (5, Decimal("0.10"))
    assert row["named"] == (3, None)
    assert row["simple"] == 9
    assert row["other"] == "6f1c0a64-0000-0000-0000-000000000000"
    assert list(row) == [
        "amount", "maybe", "at", "at9", "plain", "day", "u64", "i128", "small", "f", "nan",
        "flag", "method", "attributes", "by_code", "list", "pair", "named", "simple", "other",
    ]  # fmt: skip


def test_decode_result_of_an_empty_payload_is_no_rows() -> None:
    assert codec.decode_result(b"") == []
    assert codec.decode_result(b"\n") == []
    assert codec.decode_result(_payload([("x", "UInt8")], [])) == []


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        ("String, String", ["String", "String"]),
        ("6, 'UTC'", ["6", "'UTC'"]),
        ("String, Map(String, Array(UInt8))", ["String", "Map(String, Array(UInt8))"]),
        ("DateTime64(3, 'Etc/GMT+1'), Enum8('a,b' = 1, 'c)' = 2)", [
            "DateTime64(3, 'Etc/GMT+1')", "Enum8('a,b' = 1, 'c)' = 2)",
        ]),
        ("Enum8('it\\'s, ok' = 1), UInt8", ["Enum8('it\\'s, ok' = 1)", "UInt8"]),
    ],
)  # fmt: skip
def test_split_type_args_splits_only_top_level_commas(args: str, parts: list[str]) -> None:
    assert codec.split_type_args(args) == parts


@given(
    st.decimals(
        min_value=Decimal("-99999999999999999999"),
        max_value=Decimal("99999999999999999999"),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_decimals_survive_encode_and_decode_exactly(value: Decimal) -> None:
    encoded = orjson.loads(codec.encode_rows([{"v": value}]))["v"]
    decoded = codec.converter_for("Decimal(38, 6)")(encoded)
    assert decoded == value
    assert isinstance(decoded, Decimal)


def test_uniform_rows_are_planned_as_one_array_per_column_under_one_column_list() -> None:
    rows = [
        {"a": 1, "at": datetime(2026, 3, 1, tzinfo=UTC), "m": Decimal("0.50")},
        {"a": 2, "at": datetime(2026, 3, 2, tzinfo=UTC), "m": None},
    ]
    plan = codec.plan_insert("db.t", rows, None, engine="server")
    assert plan.columns == ("a", "at", "m")
    assert plan.format == "JSONCompactColumns"
    assert plan.statement.startswith("INSERT INTO `db`.`t` (a, at, m) SETTINGS ")
    assert orjson.loads(plan.payload) == [
        [1, 2],
        ["2026-03-01T00:00:00.000000Z", "2026-03-02T00:00:00.000000Z"],
        ["0.50", None],
    ]


def test_value_rows_are_checked_for_width_before_they_become_columns() -> None:
    # zip would silently cut every row to the shortest one: a lost value must be an error.
    for rows, bad in (([(1, 2), (3,)], 1), ([(1,), (2,)], 0), ([(1, 2), (3, 4, 5)], 1)):
        with pytest.raises(StoreError, match=f"row {bad} has .* values for 2 columns"):
            codec.plan_columns_insert("db.t", ("a", "b"), rows, None, engine="server")
    assert orjson.loads(codec.encode_columns([], 2)) == [[], []]


def test_column_rows_name_the_row_that_cannot_be_stored() -> None:
    with pytest.raises(StoreError, match="row 2: value of type object"):
        codec.plan_columns_insert(
            "db.t", ("a", "b"), [(1, "x"), (2, "y"), (3, object())], None, engine="server"
        )


def test_rows_with_other_keys_or_order_fall_back_to_json_each_row() -> None:
    for rows in ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], [{"a": 1}, {"a": 1, "b": 2}]):
        plan = codec.plan_insert("db.t", rows, None, engine="server")
        assert plan.columns == ()
        assert plan.format == "JSONEachRow"
        assert "(" not in plan.statement.split("SETTINGS")[0]
        assert orjson.loads(plan.payload.split(b"\n")[1]) == rows[1]


def test_compact_rows_name_the_row_that_cannot_be_stored() -> None:
    with pytest.raises(StoreError, match="row 1: value of type object"):
        codec.plan_insert("db.t", [{"a": 1}, {"a": object()}], None, engine="server")


def test_column_names_must_be_plain_identifiers() -> None:
    assert codec.column_list(["a", "b_2"]) == ("a", "b_2")
    with pytest.raises(ValueError, match="'a; DROP'"):
        codec.column_list(["a; DROP"])
