"""gate_mw._json: orjson when installed, the standard library otherwise, with the same
bodies accepted and the same values written either way."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate_mw import _json

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 1000, max_value=2**65)  # where orjson's integers end
    | st.integers(min_value=-(2**64), max_value=-(2**63) + 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
)


@pytest.fixture
def stdlib_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "orjson", None)


def test_orjson_is_used_when_installed() -> None:
    assert _json.orjson is not None  # the `proxy` extra installs it


@given(_values)
def test_both_write_and_read_every_json_value_alike(value: Any) -> None:
    try:
        written = _json.dumps(value)
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8 either way
        return
    assert json.loads(written) == value
    assert _json.loads(written) == value
    assert _json.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ('{"n": 1}'.encode("utf-16"), lambda v: v == {"n": 1}),
        (b'{"t": NaN}', lambda v: math.isnan(v["t"])),
        (b'{"big": 123456789012345678901234567890}', lambda v: v["big"] == 123456789012345678901234567890),
        (b'{"low": -9223372036854775809}', lambda v: v["low"] == -9223372036854775809),
        (b'{"high": 18446744073709551616}', lambda v: v["high"] == 18446744073709551616),
        (b'{"x": 1e400}', lambda v: v["x"] == math.inf),
        (b'{"s": "\\ud800"}', lambda v: v["s"] == "\ud800"),
    ],
    ids=["utf-16", "nan", "big-int", "below-int64", "above-uint64", "overflow", "lone-surrogate"],
)
def test_bodies_orjson_refuses_are_read_as_the_standard_library_reads_them(body: bytes, check: Any) -> None:
    assert check(_json.loads(body))


@pytest.mark.parametrize("body", [b"", b"{", b"\xff", b'{"a": 1} x'])
def test_a_body_that_is_not_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        _json.loads(body)


def test_values_orjson_refuses_are_written_by_the_standard_library() -> None:
    assert json.loads(_json.dumps({1: 2**70})) == {"1": 2**70}


@pytest.mark.usefixtures("stdlib_only")
@given(_values)
def test_without_orjson_the_standard_library_does_both(value: Any) -> None:
    try:
        written = _json.dumps(value)
    except UnicodeEncodeError:
        return
    assert _json.loads(written) == value
