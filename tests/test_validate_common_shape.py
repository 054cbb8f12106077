"""The request boundary's shortcut for the common message ({"role", "content": ASCII text})
and int options gives what the general checks give: the same copies, the same refusals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate_mw.chat._validate import InvalidRequest, _check_message, _check_option, validate_request


class _Str(str):
    pass


roles = st.sampled_from(["system", "user", "assistant", "tool", "bogus", "User"])
contents = st.one_of(st.text(max_size=8), st.builds(_Str, st.text(max_size=4)), st.none(), st.integers())
messages = st.one_of(
    st.fixed_dictionaries({"role": roles, "content": contents}),
    st.fixed_dictionaries({"content": contents, "role": roles}),  # the other key order
    st.fixed_dictionaries({"role": roles, "content": contents, "name": st.text(max_size=3)}),
    st.fixed_dictionaries({"role": roles}),
)
options = st.dictionaries(
    st.sampled_from(["max_tokens", "temperature", "top_p", "n", "seed", "top_logprobs", "raw"]),
    st.one_of(st.integers(-3, 3), st.booleans(), st.floats(-1, 2)),
    max_size=3,
)


def _general(message: Any, index: int) -> Any:
    try:
        return _check_message(message, index)
    except InvalidRequest as invalid:
        return str(invalid)


def _option(name: str, value: Any) -> Any:
    try:
        return _check_option(name, value)
    except InvalidRequest as invalid:
        return str(invalid)


@given(st.lists(messages, min_size=1, max_size=3), options)
def test_the_shortcut_agrees_with_the_general_checks(
    batch: list[dict[str, Any]], given_options: dict[str, Any]
) -> None:
    expected = [_general(message, index) for index, message in enumerate(batch)]
    expected_options = {name: _option(name, value) for name, value in given_options.items()}
    refusals = [e for e in [*expected, *expected_options.values()] if isinstance(e, str)]
    if refusals:
        with pytest.raises(InvalidRequest) as raised:
            validate_request(batch, given_options)
        assert str(raised.value) == refusals[0]
        return
    checked, valid = validate_request(batch, given_options)
    assert list(checked) == expected
    assert [list(m) for m in checked] == [list(m) for m in expected]  # key order kept
    assert all(copy is not message for copy, message in zip(checked, batch, strict=True))
    assert valid == expected_options
    assert [type(v) for v in valid.values()] == [type(v) for v in expected_options.values()]
