"""The shapes of `tools`, `tool_choice` and `response_format`, checked at the `gate.chat`
boundary so a malformed one is the caller's 4xx before any request, never a provider's
error counted against a model. (Messages are checked in `_validate`.)"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["shape_problem"]

# OpenAI's and Anthropic's rule for function names.
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CHOICES = frozenset({"auto", "none", "required"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})


def _tool_problem(index: int, tool: Any) -> str | None:
    if not isinstance(tool, Mapping):
        return f"tools[{index}] is not an object"
    if tool.get("type", "function") != "function":
        return None  # a provider's own tool (web search...), sent as given
    function = tool.get("function")
    if not isinstance(function, Mapping):
        return f"tools[{index}].function is not an object"
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"tools[{index}].function.name must be 1-64 letters, digits, '_' or '-'"
    if not isinstance(function.get("parameters", {}), Mapping):
        return f"tools[{index}].function.parameters is not a JSON schema object"
    return None


def shape_problem(
    tools: Sequence[Any] | None, tool_choice: Any, response_format: Any
) -> str | None:
    """What is wrong with these parameters, or None when they are well formed."""
    if tools is not None:
        if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
            return "tools must be a list of tool objects"
        for index, tool in enumerate(tools):
            if problem := _tool_problem(index, tool):
                return problem
    if tool_choice is not None:
        if isinstance(tool_choice, str):
            if tool_choice not in _CHOICES:
                return f"tool_choice must be one of {sorted(_CHOICES)} or a function choice"
        elif not isinstance(tool_choice, Mapping) or not isinstance(tool_choice.get("type"), str):
            return "tool_choice must be a string or an object with a type"
    if response_format is not None:
        if not isinstance(response_format, Mapping) or response_format.get("type") not in _FORMATS:
            return f"response_format.type must be one of {sorted(_FORMATS)}"
        spec = response_format.get("json_schema")
        if response_format["type"] == "json_schema" and (
            not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str)
            or not isinstance(spec.get("schema", {}), Mapping)
        ):
            return "response_format.json_schema needs a name and a schema object"
    return None
