"""`output=`: structured answers validated on every provider; an answer that does not
validate fails that attempt (`invalid_output`) and the chain goes on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from _apps import ENV, anthropic_entry, openai_entry
from gate_mw import AllAttemptsFailed, Gateway, RoutePolicy, StreamInterrupted
from gate_mw.chat import Output
from gate_mw.testing import FakeUpstream, Reply

pytestmark = pytest.mark.anyio

ASK = [{"role": "user", "content": "Invoice 7 for 12.50, please."}]


class Invoice(BaseModel):
    number: int
    total: float


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_valid_output_is_parsed(fake_upstream: FakeUpstream, provider: str, streamed: bool) -> None:
    up = fake_upstream
    entry = openai_entry(up, "m") if provider == "openai" else anthropic_entry(up, "m")
    up.script("m", Reply(json={"number": 7, "total": 12.5}))
    async with Gateway([entry], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("m",)))
        if streamed:
            async with gate.stream(ASK, output=Invoice) as stream:
                text = "".join([piece async for piece in stream])
            result = stream.result
            assert result is not None
            assert text == result.text
        else:
            result = await gate.chat(ASK, output=Invoice)
    assert result.parsed == Invoice(number=7, total=12.5)
    assert result.finish_reason == "stop"
    assert result.tool_calls == ()
    body = up.requests[0].json
    if provider == "openai":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["name"] == "Invoice"
        assert body["response_format"]["json_schema"]["schema"] == Invoice.model_json_schema()
    else:  # a forced tool whose input is the answer
        assert body["tool_choice"] == {"type": "tool", "name": "Invoice"}
        assert body["tools"][-1]["input_schema"] == Invoice.model_json_schema()


@pytest.mark.parametrize(
    ("answer", "why"),
    [("not json at all", "Invalid JSON"), ('{"number": "seven", "total": 1}', "number")],
    ids=["invalid-json", "schema-violation"],
)
async def test_invalid_output_falls_back_and_says_why(
    fake_upstream: FakeUpstream, answer: str, why: str
) -> None:
    up = fake_upstream
    up.script("first", Reply(answer))
    up.script("second", Reply(json={"number": 7, "total": 12.5}))
    entries = [openai_entry(up, "first"), anthropic_entry(up, "second")]
    async with Gateway(entries, env=ENV) as gateway:
        result = await gateway.client(RoutePolicy(models=("first", "second"), retries=0)).chat(
            ASK, output=Invoice
        )
    assert result.parsed == Invoice(number=7, total=12.5)
    assert result.model == "second"
    failed, ok = result.attempts
    assert failed.outcome == "invalid_output"
    assert failed.error is not None
    assert why in failed.error
    assert ok.ok


async def test_invalid_output_everywhere_raises_with_attempts(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("m", Reply("{}"))
    async with Gateway([openai_entry(up, "m")], env=ENV) as gateway:
        with pytest.raises(AllAttemptsFailed) as caught:
            await gateway.client(RoutePolicy(models=("m",), retries=1)).chat(ASK, output=Invoice)
    # Retried per policy: the same model may answer validly the next time.
    assert [a.outcome for a in caught.value.attempts] == ["invalid_output", "invalid_output"]
    assert caught.value.to_dict()["attempts"][0]["outcome"] == "invalid_output"


async def test_streamed_output_is_validated_at_the_end(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("m", Reply('{"number": 7}'))
    async with Gateway([openai_entry(up, "m")], env=ENV) as gateway:
        stream = gateway.client(RoutePolicy(models=("m",))).stream(ASK, output=Invoice)
        with pytest.raises(StreamInterrupted) as caught:
            async for _ in stream:
                pass
    assert caught.value.kind.value == "invalid_output"
    assert caught.value.partial is not None
    assert caught.value.partial.text == '{"number": 7}'
    assert stream.result is None


async def test_json_schema_output_and_fenced_answers(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    schema: dict[str, Any] = {
        "title": "Point", "type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}},
    }
    up.script("m", Reply('```json\n{"x": 3}\n```'), Reply('{"x": "3"}'))
    async with Gateway([openai_entry(up, "m")], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("m",), retries=0))
        assert (await gate.chat(ASK, output=schema)).parsed == {"x": 3}
        with pytest.raises(AllAttemptsFailed) as caught:
            await gate.chat(ASK, output=schema)
    assert "is not of type 'integer'" in (caught.value.attempts[0].error or "")
    assert up.requests[0].json["response_format"]["json_schema"]["name"] == "Point"


def test_output_spec_errors_are_type_errors() -> None:
    with pytest.raises(TypeError, match="not a valid JSON schema"):
        Output.of({"type": "no-such-type"})
    with pytest.raises(TypeError, match="output="):
        Output.of(object())
    assert Output.of(Invoice) is Output.of(Invoice)  # built once per type
