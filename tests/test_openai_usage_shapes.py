"""`openai_usage` reads the common shape on a short path: every shape reads as the general
reader (`_read_usage`) reads it, the same counts or the same error."""

from __future__ import annotations

from typing import Any

import pytest

from gate_mw.errors import UpstreamError
from gate_mw.pricing import Price
from gate_mw.providers import ChatRequest
from gate_mw.providers.openai import _read_usage, openai_usage
from gate_mw.results import Usage

_BASE = {"prompt_tokens": 10, "completion_tokens": 3}
_DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2},
}

SHAPES: list[dict[str, Any]] = [
    _BASE,
    {**_BASE, **_DETAILS},
    {**_BASE, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
    {**_BASE, "completion_tokens_details": {}},
    {**_BASE, "prompt_tokens_details": None, "completion_tokens_details": {"reasoning_tokens": None}},
    {**_BASE, "prompt_tokens_details": {"cache_write_tokens": 6}},
    {**_BASE, "prompt_tokens_details": {"cache_write_tokens": 0}, "cache_creation_input_tokens": 5},
    {**_BASE, "cache_creation_input_tokens": None},
    {"prompt_tokens": 10.0, "completion_tokens": None},
    {**_BASE, "prompt_tokens": True},
    {**_BASE, "completion_tokens": -1},
    {**_BASE, "completion_tokens": 10**9},
    {**_BASE, "prompt_tokens_details": {"cached_tokens": "4"}},
    {**_BASE, "prompt_tokens_details": {"cached_tokens": False}},
    {**_BASE, "completion_tokens_details": [1]},
    {**_BASE, "prompt_tokens_details": ""},
]


def _read(read: Any, usage: dict[str, Any]) -> Usage | str:
    try:
        return read(usage)  # type: ignore[no-any-return]
    except (UpstreamError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("usage", SHAPES)
def test_every_shape_reads_as_the_general_reader_reads_it(usage: dict[str, Any]) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}])
    assert _read(lambda u: openai_usage(u, request, ""), usage) == _read(_read_usage, usage)


@pytest.mark.parametrize("price", [Price(1.5, 6.0), Price(1.5, 6.0, 0.5, 2.0), Price(3, 7, 1, 4)])
def test_a_call_without_cache_tokens_costs_what_the_full_sum_says(price: Price) -> None:
    usage = Usage(1234, 567)
    full = (
        (usage.input_tokens - 0 - 0) * price.input + 0 * (price.cached_input or price.input)
        + 0 * (price.cache_write or price.input) + usage.output_tokens * price.output
    ) / 1_000_000
    assert price.cost(usage) == full
