"""The result types are frozen dataclasses however their instances are built."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from gate_mw.results import Attempt, ChatResult, Usage


def _result(**changes: object) -> ChatResult:
    fields: dict[str, object] = {
        "text": "hi", "model": "m", "deployment": "m-0", "provider": "openai", "provider_model": "gpt",
        "finish_reason": "stop", "usage": Usage(3, 2, cached_tokens=1), "cost_usd": 0.5,
        "latency_s": 0.25, "attempts": (Attempt("m", "m-0", "openai", "ok", 0.2, status=200),),
        "request_id": "r1",
    }
    return ChatResult(**{**fields, **changes})  # type: ignore[arg-type]


def test_results_compare_hash_print_copy_and_pickle_as_dataclasses() -> None:
    one, two = _result(), _result()
    assert one == two
    assert hash(one) == hash(two)
    assert one is not two
    assert one != _result(text="other")
    assert type(one) is ChatResult
    assert type(one.usage) is Usage
    assert repr(one).startswith("ChatResult(text='hi', model='m'")
    assert "raw=" not in repr(one)
    assert repr(Usage(1)) == (
        "Usage(input_tokens=1, output_tokens=0, cached_tokens=0, reasoning_tokens=0, "
        "cache_write_tokens=0, estimated=False)"
    )
    assert pickle.loads(pickle.dumps(one)) == one
    assert copy.copy(one) == one
    assert copy.deepcopy(one) == one
    assert dataclasses.asdict(one)["usage"]["cached_tokens"] == 1
    replaced = dataclasses.replace(one, cached=True, attempts=())
    assert (replaced.cached, replaced.attempts, replaced.text) == (True, (), "hi")
    assert type(replaced) is ChatResult


def test_results_stay_immutable_and_their_signatures_name_the_fields() -> None:
    result = _result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del result.usage.input_tokens  # type: ignore[misc]
    for cls in (Usage, Attempt, ChatResult):
        names = [f.name for f in dataclasses.fields(cls)]
        assert list(inspect.signature(cls).parameters) == names
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'latency_s'"):
        Attempt("m", "m-0", "openai", "ok")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Usage(colour=1)  # type: ignore[call-arg]


def test_subclasses_of_results_are_built_as_themselves() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Tagged(Usage):
        tag: str = ""

    class Plain(Attempt):
        pass

    tagged = Tagged(1, 2, tag="x")
    assert type(tagged) is Tagged
    assert (tagged.input_tokens, tagged.tag) == (1, "x")
    plain = Plain("m", "d", "p", "ok", 0.1)
    assert type(plain) is Plain
    assert plain.ok
    assert plain != Attempt("m", "d", "p", "ok", 0.1)
