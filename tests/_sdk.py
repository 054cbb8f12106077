"""Checks a request body against the official SDKs' request types: pydantic validates the
values, and `unknown_keys` finds keys the TypedDicts do not declare (pydantic ignores
those), so a misspelt or misplaced field fails too."""

from __future__ import annotations

import collections.abc
import functools
import types
from typing import Any, Literal, Union, get_args, get_origin

from anthropic.types import message_create_params
from openai.types.chat import completion_create_params
from pydantic import TypeAdapter
from typing_extensions import get_type_hints, is_typeddict

__all__ = ["check_anthropic_body", "check_openai_body", "unknown_keys"]

_SEQUENCES = {list, collections.abc.Iterable, collections.abc.Sequence}


@functools.cache
def _hints(tp: Any) -> dict[str, Any]:
    return get_type_hints(tp)


def unknown_keys(value: Any, tp: Any, path: str = "") -> list[str]:
    """Paths of keys in `value` that the type `tp` does not declare (best union member)."""
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}<not an object>"]
        hints = _hints(tp)
        found = [f"{path}{key}" for key in value if key not in hints]
        for key, item in value.items():
            if key in hints:
                found += unknown_keys(item, hints[key], f"{path}{key}.")
        return found
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return min((unknown_keys(value, arg, path) for arg in get_args(tp)), key=len)
    if origin in _SEQUENCES:
        if not isinstance(value, list):
            return [f"{path}<not a list>"]
        item_type = get_args(tp)[0] if get_args(tp) else Any
        return [
            key for index, item in enumerate(value)
            for key in unknown_keys(item, item_type, f"{path}{index}.")
        ]
    if origin is Literal and value not in get_args(tp):
        return [f"{path}<{value!r} not in {get_args(tp)}>"]
    if isinstance(tp, type) and origin is None:  # a plain class: str, int, float, bool
        wanted = (int, float) if tp is float else tp
        return [] if isinstance(value, wanted) else [f"{path}<not {tp.__name__}>"]
    return []


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)  # slow to build: once per type


def _check(body: dict[str, Any], tp: Any) -> None:
    _adapter(tp).validate_python(body)
    unknown = unknown_keys(body, tp)
    assert not unknown, f"keys {tp.__name__} does not declare: {unknown}"


def check_openai_body(body: dict[str, Any]) -> None:
    streaming = body.get("stream") is True
    _check(body, completion_create_params.CompletionCreateParamsStreaming if streaming
           else completion_create_params.CompletionCreateParamsNonStreaming)


def check_anthropic_body(body: dict[str, Any]) -> None:
    streaming = body.get("stream") is True
    _check(body, message_create_params.MessageCreateParamsStreaming if streaming
           else message_create_params.MessageCreateParamsNonStreaming)
