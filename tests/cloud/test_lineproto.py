"""Line protocol escaping: what InfluxDB would misparse if we got it wrong."""

from __future__ import annotations

import pytest

from cloud.storage.lineproto import LineError, format_field, line


def test_escapes_measurement_tags_and_fields() -> None:
    got = line(
        "ap radio,x",
        {"site name": "Nhà văn hóa, thôn=1", "empty": ""},
        {"note key": 'say "hi" \\ there', "clients": 3, "up": True, "skipped": None},
        1_700_000_000_123,
    )
    assert got == (
        r"ap\ radio\,x,site\ name=Nhà\ văn\ hóa\,\ thôn\=1 "
        r'note\ key="say \"hi\" \\ there",clients=3.0,up=true 1700000000123'
    )


def test_tags_sorted_so_equal_series_have_equal_keys() -> None:
    assert line("m", {"b": "2", "a": "1"}, {"f": 1.5}, 1) == "m,a=1,b=2 f=1.5 1"


def test_every_number_is_a_float_and_bools_stay_bools() -> None:
    assert format_field(7) == "7.0"
    assert format_field(2**53) == "9007199254740992.0"
    assert format_field(False) == "false"
    assert format_field(0.1) == "0.1"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_refused(value: float) -> None:
    with pytest.raises(LineError):
        line("m", {}, {"f": value}, 1)


def test_point_without_fields_refused() -> None:
    with pytest.raises(LineError, match="no fields"):
        line("m", {"a": "b"}, {"f": None}, 1)
