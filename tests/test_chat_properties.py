"""Property-based tests of what gate_mw parses and translates: any OpenAI-format history
becomes a valid Anthropic request, and streamed tool-call pieces reassemble exactly."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from _sdk import check_anthropic_body, check_openai_body
from gate_mw import ErrorKind, UpstreamError
from gate_mw.chat import Output
from gate_mw.chat._shapes import shape_problem
from gate_mw.providers import ChatRequest
from gate_mw.providers._anthropic_wire import anthropic_payload
from gate_mw.providers.openai import _ToolCalls, openai_payload

text = st.text(min_size=1, max_size=20)
ids = st.from_regex(r"[a-zA-Z0-9_]{1,12}", fullmatch=True)
image = st.sampled_from(["https://example.com/a.png", "data:image/jpeg;base64,/9j/4AAQ"]).map(
    lambda url: {"type": "image_url", "image_url": {"url": url}}
)
user = st.one_of(
    text.map(lambda t: {"role": "user", "content": t}),
    st.lists(st.one_of(text.map(lambda t: {"type": "text", "text": t}), image), min_size=1, max_size=3).map(
        lambda parts: {"role": "user", "content": parts}
    ),
)
arguments = st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3)


@st.composite
def tool_round(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An assistant turn calling tools, then one tool message per call."""
    calls = draw(st.lists(st.tuples(ids, text, arguments), min_size=1, max_size=3, unique_by=lambda c: c[0]))
    assistant = {
        "role": "assistant", "content": draw(st.one_of(st.none(), text)),
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls
        ],
    }
    return [assistant, *({"role": "tool", "tool_call_id": i, "content": draw(text)} for i, _, _ in calls)]


@st.composite
def history(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 4))):
        messages.append(draw(user))
        if draw(st.booleans()):
            messages += draw(tool_round())
        if draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(text | st.just(""))})
    return messages


@settings(max_examples=40, deadline=None)
@given(history())
def test_any_history_becomes_a_valid_anthropic_request(messages: list[dict[str, Any]]) -> None:
    request = ChatRequest(messages=messages, max_tokens=10, stop=["x"], user="u")
    body = anthropic_payload("claude", request)
    check_anthropic_body(body)
    check_openai_body(openai_payload("gpt", request))
    roles = [turn["role"] for turn in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
    used: set[str] = set()
    for turn in body["messages"]:
        blocks = turn["content"] if isinstance(turn["content"], list) else []
        for block in blocks:
            if block["type"] == "tool_use":
                used.add(block["id"])
            elif block["type"] == "tool_result":
                assert block["tool_use_id"] in used  # answers a call made before it
    calls = [c for m in messages for c in m.get("tool_calls", ())]
    assert len(used) == len({c["id"] for c in calls})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(arguments, st.integers(1, 8)), min_size=1, max_size=4))
def test_streamed_tool_call_pieces_reassemble(calls: list[tuple[dict[str, Any], int]]) -> None:
    assembler = _ToolCalls()
    pieces: list[dict[str, Any]] = []
    for index, (args, size) in enumerate(calls):
        encoded = json.dumps(args)
        chunks = [encoded[i:i + size] for i in range(0, len(encoded), size)] or [""]
        pieces.append({"index": index, "id": f"c{index}", "type": "function",
                       "function": {"name": f"f{index}", "arguments": chunks[0]}})
        pieces += [{"index": index, "function": {"arguments": chunk}} for chunk in chunks[1:]]
    for piece in pieces:
        assembler.add([piece])
    done = assembler.done()
    assert [(c.id, c.name, c.args) for c in done] == [
        (f"c{i}", f"f{i}", args) for i, (args, _) in enumerate(calls)
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
tool_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "web_search", 3])},
    optional={"function": st.one_of(json_values, st.fixed_dictionaries(
        {"name": st.one_of(st.text(max_size=70), st.integers())},
        optional={"parameters": json_values, "description": json_values},
    ))},
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.none(), json_values, st.lists(st.one_of(tool_like, json_values), max_size=3)),
    st.one_of(st.none(), json_values, st.sampled_from(["auto", "none", "required"])),
    st.one_of(st.none(), json_values, st.fixed_dictionaries(
        {"type": st.sampled_from(["json_object", "json_schema"])}, optional={"json_schema": json_values},
    )),
)
def test_well_formed_tools_always_translate(tools: Any, tool_choice: Any, response_format: Any) -> None:
    """Whatever the caller passes, the boundary check either names a problem or lets
    through only what every provider's translation takes."""
    problem = shape_problem(tools, tool_choice, response_format)
    if problem is not None:
        assert isinstance(problem, str)
        return
    request = ChatRequest(
        messages=[{"role": "user", "content": "hi"}], tools=tools, tool_choice=tool_choice,
        response_format=response_format,
    )
    openai_payload("gpt", request)
    kind = None
    try:
        anthropic_payload("claude", request)
    except UpstreamError as error:  # a tool_choice object Anthropic has no word for
        kind = error.kind
    assert kind in (None, ErrorKind.UNSUPPORTED, ErrorKind.BAD_REQUEST)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | json_values.map(json.dumps))
def test_output_parse_fails_only_as_invalid_output(answer: str) -> None:
    output = Output.of({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}})
    try:
        value = output.parse(answer)
    except UpstreamError as error:
        value, kind = None, error.kind
    else:
        kind = None
    assert kind is ErrorKind.INVALID_OUTPUT if value is None else isinstance(value["a"], int)
