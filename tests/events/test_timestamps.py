from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.events import (
    InvalidTimestamp,
    ensure_utc,
    format_utc,
    from_epoch_millis,
    parse_iso8601,
)
from pipeline.events.timestamps import _from_epoch_millis, _parse_iso8601


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-15T10:00:00Z", datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
        ("2026-01-15T10:00:00.1234567Z", datetime(2026, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-15T10:00:00.9999999Z", datetime(2026, 1, 15, 10, 0, 0, 999999, tzinfo=UTC)),
        ("2026-01-15T10:00:00.123456789+00:00", datetime(2026, 1, 15, 10, 0, 0, 123456, UTC)),
        ("2026-01-15T10:00:00.5Z", datetime(2026, 1, 15, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-01-15 12:30:00+02:30", datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
        ("2026-01-15T05:00:00-0500", datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
        ("2026-01-15T10:00Z", datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
        (" 2026-01-15T10:00:00z ", datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
    ],
)
def test_parse_iso8601_accepts_gateway_forms_and_truncates_to_microseconds(
    text: str, expected: datetime
) -> None:
    parsed = parse_iso8601(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_seven_fraction_digits_never_round_into_the_next_period() -> None:
    assert parse_iso8601("2026-01-31T23:59:59.9999999Z").month == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-01-15T10:00:00", "must include a UTC offset"),
        ("2026-01-15", "must be ISO-8601"),
        ("15/Jan/2026:10:00:00 +0000", "must be ISO-8601"),
        ("2026-02-30T10:00:00Z", "is not a real date and time"),
        ("2026-01-15T25:00:00Z", "is not a real date and time"),
        ("2026-01-15T10:00:00+25:00", "is not a real date and time"),
        ("1999-12-31T23:59:59Z", "year 1999 is outside 2000..2100"),
        ("2101-01-01T00:00:00Z", "year 2101 is outside 2000..2100"),
    ],
)
def test_parse_iso8601_rejects_with_reason(text: str, problem: str) -> None:
    with pytest.raises(InvalidTimestamp, match=problem):
        parse_iso8601(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1768471200000, datetime(2026, 1, 15, 10, 0, tzinfo=UTC)),
        ("1768471200123", datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)),
        (" 1768471200123 ", datetime(2026, 1, 15, 10, 0, 0, 123000, tzinfo=UTC)),
        (1768471200123.4567, datetime(2026, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)),
        ("1768471200123.4567", datetime(2026, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_from_epoch_millis(value: int | float | str, expected: datetime) -> None:
    assert from_epoch_millis(value) == expected


def test_epoch_seconds_are_recognised_as_a_unit_mistake() -> None:
    with pytest.raises(InvalidTimestamp, match="looks like epoch seconds"):
        from_epoch_millis(1768471200)


@pytest.mark.parametrize("value", ["abc", "", "1e12", True, float("nan"), -5, 10**20])
def test_from_epoch_millis_rejects(value: object) -> None:
    with pytest.raises(InvalidTimestamp):
        from_epoch_millis(value)  # type: ignore[arg-type]


def test_ensure_utc_refuses_naive_and_converts_offsets() -> None:
    with pytest.raises(InvalidTimestamp, match="naive"):
        ensure_utc(datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert ensure_utc(plus_two) == datetime(2026, 1, 1, tzinfo=UTC)
    assert ensure_utc(plus_two).tzinfo is UTC


def test_format_utc_always_prints_six_digits_and_z() -> None:
    assert format_utc(datetime(2026, 1, 15, 10, 0, tzinfo=UTC)) == "2026-01-15T10:00:00.000000Z"
    local = datetime(2026, 1, 15, 11, 0, 0, 42, tzinfo=timezone(timedelta(hours=1)))
    assert format_utc(local) == "2026-01-15T10:00:00.000042Z"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2100, 12, 31, 23, 59, 59),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_format_then_parse_round_trips(moment: datetime) -> None:
    assert parse_iso8601(format_utc(moment)) == moment


@given(st.integers(min_value=946684800000, max_value=4133980799999))
def test_epoch_millis_round_trip(millis: int) -> None:
    moment = from_epoch_millis(millis)
    assert (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == millis
    assert from_epoch_millis(str(millis)) == moment


# --- fast paths against the general code (which is the code as it was before them) ------------


def _outcome(parse: object, value: object) -> object:
    try:
        result = parse(value)  # type: ignore[operator]
    except InvalidTimestamp as exc:
        return ("refused", exc.problem)
    assert isinstance(result, datetime)
    return (result, result.tzinfo)


DIGIT = st.sampled_from("0123456789")
ISO_PIECES = st.tuples(
    st.text(DIGIT, min_size=4, max_size=4) | st.sampled_from(["1999", "2000", "2100", "2101"]),
    st.text(DIGIT, min_size=2, max_size=2),
    st.text(DIGIT, min_size=2, max_size=2),
    st.sampled_from(["T", "t", " ", "_"]),
    st.text(DIGIT, min_size=2, max_size=2),
    st.text(DIGIT, min_size=2, max_size=2),
    st.text(DIGIT, min_size=2, max_size=2),
    st.sampled_from(["", ".", ","])
    | st.text(DIGIT, min_size=1, max_size=12).map(lambda f: "." + f),
    st.sampled_from(["Z", "z", "", "+00:00", "-05:00", "+0530", " Z", "Z "]),
)
ISO_TEXTS = (
    ISO_PIECES.map(lambda p: f"{p[0]}-{p[1]}-{p[2]}{p[3]}{p[4]}:{p[5]}:{p[6]}{p[7]}{p[8]}")
    | st.datetimes(
        min_value=datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2110, 1, 1),  # noqa: DTZ001
    ).map(lambda d: d.isoformat() + "Z")
    | st.text(st.sampled_from("0123456789-T:.Z+ \u0661\uff10"), max_size=30)
)


@given(ISO_TEXTS)
def test_parse_iso8601_fast_path_equals_the_general_parser(text: str) -> None:
    assert _outcome(parse_iso8601, text) == _outcome(_parse_iso8601, text)


EPOCH_VALUES = (
    st.integers(min_value=-(10**15), max_value=10**15)
    | st.integers(min_value=946684800000 - 5, max_value=946684800000 + 5)
    | st.integers(min_value=4133980800000 - 5, max_value=4133980800000 + 5)
    | st.integers().map(str)
    | st.integers(min_value=0, max_value=10**14).map(lambda n: f" {n} ")
    | st.text(st.sampled_from("0123456789.+- \u0661\u0662"), max_size=22)
    | st.just("9" * 5000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
)


@given(EPOCH_VALUES)
def test_from_epoch_millis_fast_path_equals_the_general_code(value: object) -> None:
    assert _outcome(from_epoch_millis, value) == _outcome(_from_epoch_millis, value)


def _format_utc_reference(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_format_utc_equals_the_field_by_field_form(moment: datetime) -> None:
    assert format_utc(moment) == _format_utc_reference(moment)


def test_long_digit_strings_take_the_general_path() -> None:
    assert from_epoch_millis(Decimal("1768471200123.5")).microsecond == 123500
    with pytest.raises(InvalidTimestamp, match="between the years"):
        from_epoch_millis("9" * 5000)
