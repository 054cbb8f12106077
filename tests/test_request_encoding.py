"""Request bodies: a request the gate checked is written by orjson (no NaN gets past the
checks), with the same meaning the refusing standard-library encoder gives it; anything
not checked (a hand-made `ChatRequest`, an `output=` schema, a deployment's `body`) is
still written, or refused, by the standard library."""

from __future__ import annotations

import dataclasses
import json
import math
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _strategies import json_like, text
from gate_mw import Gateway, ModelEntry, RequestRejected
from gate_mw._json import dumps_plain, is_plain
from gate_mw.chat import ChatOptions
from gate_mw.chat._output import Output
from gate_mw.errors import ErrorKind, UpstreamError
from gate_mw.providers import ChatRequest
from gate_mw.providers._http import _encoded
from gate_mw.providers.openai import OpenAIProvider, openai_payload
from gate_mw.providers.transport._aiohttp import _MAX_HEADERS, AiohttpTransport

HELLO = [{"role": "user", "content": "hi"}]

message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": text},
    optional={"name": text, "x": json_like},
)
param_names = st.sampled_from(sorted(set(ChatOptions.__annotations__) - {"output"}))
params = st.dictionaries(param_names, json_like, max_size=3)


def _gate() -> Any:
    entry = ModelEntry(
        name="m", provider="openai", model="gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key_env="K"
    )
    return Gateway([entry], env={"K": "k"}).client()


@settings(max_examples=300, deadline=None)
@given(st.lists(message, min_size=1, max_size=3), params)
def test_a_checked_request_is_written_by_orjson_with_the_meaning_the_standard_library_gives(
    messages: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    try:
        request = _gate()._request("chat", messages, options)
    except (RequestRejected, TypeError):
        return  # refused at the gate: nothing is encoded
    assert request.checked
    assert request.plain
    payload = openai_payload("gpt-4o-mini", request)
    fast, slow = _encoded(payload, plain=True), _encoded(payload)
    assert json.loads(fast) == json.loads(slow)
    if is_plain(payload):  # else (an integer past 64 bits) orjson refused, and json wrote it
        assert fast == dumps_plain(payload)


@pytest.mark.parametrize(
    "request_",
    [
        ChatRequest(messages=HELLO, temperature=math.nan),  # made without the gate's checks
        ChatRequest(messages=HELLO, extra={"x": [math.inf]}, checked=False),
    ],
)
def test_a_request_not_checked_is_still_refused_for_nan(request_: ChatRequest) -> None:
    assert not request_.plain
    with pytest.raises(UpstreamError) as caught:
        _encoded(openai_payload("gpt-4o-mini", request_), request_.plain)
    assert caught.value.kind is ErrorKind.BAD_REQUEST


def test_an_output_schema_with_infinity_is_written_by_the_refusing_encoder() -> None:
    output = Output.of({"type": "object", "properties": {"x": {"type": "number", "maximum": math.inf}}})
    assert not output.plain
    request = ChatRequest(messages=HELLO, output=output, checked=True)
    assert not request.plain
    with pytest.raises(UpstreamError, match="cannot be encoded"):
        _encoded(openai_payload("gpt-4o-mini", request), request.plain)
    # The caller's own response format is what is sent then: checked, so plain.
    assert dataclasses.replace(request, response_format={"type": "json_object"}).plain
    assert Output.of({"type": "object"}).plain


def test_a_deployment_body_with_nan_is_written_by_the_refusing_encoder() -> None:
    provider = OpenAIProvider(
        system="openai", base_url="http://127.0.0.1:9/v1", headers={}, secrets=(),
        client=lambda: None,  # type: ignore[arg-type,return-value]
        body={"x": math.nan},
    )
    with pytest.raises(UpstreamError, match="cannot be encoded"):
        provider._request("/chat/completions", {"model": "m"}, plain=True)
    plain = OpenAIProvider(
        system="openai", base_url="http://127.0.0.1:9/v1", headers={}, secrets=(),
        client=lambda: None,  # type: ignore[arg-type,return-value]
        body={"usage": {"include": True}},
    )
    _, body = plain._request("/chat/completions", {"model": "m"}, plain=True)
    assert json.loads(body) == {"usage": {"include": True}, "model": "m"}


class _Str(str):
    pass


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"a": [1, 2.5, "x", None, True, {"b": -(2**63)}]}, True),
        ({"a": 2**64 - 1}, True),
        ({"a": 2**64}, False),
        ({"a": -(2**63) - 1}, False),
        ({"a": math.nan}, False),
        ([math.inf], False),
        ({"a": (1, 2)}, False),
        ({1: "a"}, False),
        ({"a": _Str("x")}, False),
        ({"a": object()}, False),
        (json.loads("[" * 70 + "]" * 70), False),
    ],
    ids=["plain", "uint64", "past-uint64", "below-int64", "nan", "inf", "tuple", "int-key", "str-subclass",
         "object", "deep"],
)
def test_is_plain(value: Any, plain: bool) -> None:
    assert is_plain(value) is plain


def test_chat_request_fields_keep_the_order_the_gate_passes_them_in() -> None:
    # `Gate._request` passes the first three by position.
    assert [field.name for field in dataclasses.fields(ChatRequest)] == [
        "messages", "max_tokens", "temperature", "top_p", "stop", "extra", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "output", "n", "seed", "user", "metadata",
        "extra_body", "raw", "checked",
    ]


def test_gate_request_fills_each_field_from_its_option() -> None:
    options: dict[str, Any] = {
        "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "stop": "x", "tools": None,
        "tool_choice": None, "parallel_tool_calls": True, "response_format": {"type": "json_object"},
        "n": 2, "seed": 7, "user": "u", "metadata": {"k": "v"}, "extra_body": {"top_k": 3}, "raw": True,
        "frequency_penalty": 0.1,
    }
    request = _gate()._request("chat", HELLO, options)
    assert request == ChatRequest(
        messages=(HELLO[0],), max_tokens=5, temperature=0.5, top_p=0.9, stop=["x"],
        extra={"frequency_penalty": 0.1}, parallel_tool_calls=True,
        response_format={"type": "json_object"}, n=2, seed=7, user="u", metadata={"k": "v"},
        extra_body={"top_k": 3}, raw=True,
    )
    few = _gate()._request("chat", HELLO, {"max_tokens": 5})
    assert few == ChatRequest(messages=(HELLO[0],), max_tokens=5)
    assert few.checked
    assert not few.extra
    assert not few.extra_body


def test_the_aiohttp_transport_converts_a_providers_headers_once() -> None:
    transport = AiohttpTransport(4)
    headers = MappingProxyType({"authorization": "Bearer k", "content-type": "application/json"})
    prepared = transport._headers(headers)
    assert dict(prepared) == headers
    assert transport._headers(headers) is prepared  # found by identity
    per_call = dict(headers, traceparent="00-1-2-01")  # as a propagated trace context makes
    assert transport._headers(per_call) is per_call  # as it is: aiohttp converts it
    for _ in range(3 * _MAX_HEADERS):  # bounded, whatever mappings come
        transport._headers(MappingProxyType(dict(headers)))
    assert len(transport._prepared) <= _MAX_HEADERS
