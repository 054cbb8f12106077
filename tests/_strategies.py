"""Hypothesis strategies shared by the tests of the request boundary: JSON-like values with
the awkward cases (lone surrogates, NUL, non-ASCII, huge integers, NaN and infinities)."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["json_like", "numbers", "text"]

text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "line\nbreak", "模型", "é", ""]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
