"""Structured output: `output=` as a pydantic model (or any type pydantic validates) or a
JSON schema, sent to providers as a response format and checked on the answer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .._json import is_plain
from .._optional import require
from ..errors import ErrorKind, UpstreamError

__all__ = ["Output"]

_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*)\n\s*```\s*$", re.DOTALL)
_MAX_DETAIL = 200


def _invalid(detail: str) -> UpstreamError:
    return UpstreamError(ErrorKind.INVALID_OUTPUT, f"the answer is not valid output: {detail[:_MAX_DETAIL]}")


class Output:
    """What `output=` asked for: a schema to send and a validator for the answer.

    Built once per type (cached), so a call with `output=Invoice` pays only for the
    validation of its answer.
    """

    __slots__ = ("_validate", "name", "plain", "response_format", "schema")

    def __init__(self, name: str, schema: dict[str, Any], validate: Callable[[str], Any]) -> None:
        self.name = _NAME.sub("_", name)[:64] or "output"
        self.schema = schema
        self._validate = validate
        # strict=False: OpenAI's strict mode refuses many valid schemas (defaults, optional
        # fields); the answer is validated here either way.
        self.response_format: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": schema, "strict": False},
        }
        #: Whether the response format is plain JSON data (no NaN...): see `_json.is_plain`.
        self.plain = is_plain(self.response_format)

    @classmethod
    def of(cls, spec: Any) -> Output:
        """The output for a type (pydantic model, dataclass, TypedDict...) or a JSON schema."""
        if isinstance(spec, Output):
            return spec
        if isinstance(spec, Mapping):
            return _from_schema(json.dumps(spec, sort_keys=True))
        try:
            return _from_type(spec)
        except TypeError:  # unhashable: not a type
            raise TypeError(f"output= takes a type or a JSON schema, not {type(spec).__name__}") from None

    def parse(self, text: str) -> Any:
        """The validated answer; an `UpstreamError` of kind `invalid_output` otherwise."""
        if fenced := _FENCE.match(text):  # some models wrap JSON in a Markdown fence
            text = fenced.group(1)
        return self._validate(text)


@lru_cache(maxsize=256)
def _from_type(spec: Any) -> Output:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(spec)
        schema = adapter.json_schema()
    except Exception as exc:  # pydantic says what it cannot handle
        raise TypeError(f"output= cannot describe {spec!r}: {exc}") from None

    def validate(text: str) -> Any:
        try:
            return adapter.validate_json(text)
        except ValidationError as exc:
            raise _invalid(str(exc.errors(include_url=False, include_input=False)[0])) from None

    return Output(getattr(spec, "__name__", "output"), schema, validate)


@lru_cache(maxsize=256)
def _from_schema(text: str) -> Output:
    require("jsonschema", "jsonschema")
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    schema = json.loads(text)
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise TypeError(f"output= is not a valid JSON schema: {exc.message}") from None

    def validate(answer: str) -> Any:
        try:
            value = json.loads(answer)
        except ValueError as exc:
            raise _invalid(f"not JSON ({exc})") from None
        if (error := jsonschema.exceptions.best_match(validator.iter_errors(value))) is not None:
            raise _invalid(error.message)
        return value

    return Output(str(schema.get("title") or "output"), schema, validate)
