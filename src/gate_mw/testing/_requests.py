"""What the fake upstream reads of a request: which API its path speaks, its body, and the
record of it that tests look at."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._formats import Api, received_images
from ._http import HTTPRequest

__all__ = ["Arrival", "RecordedRequest", "arrival", "authorized", "route"]

# The chat path of every API and preset the fake speaks: OpenAI, Mistral, xAI, Together,
# LiteLLM (/v1); DeepSeek (no version); OpenRouter (/api/v1); Gemini's OpenAI-compatible
# endpoint; Groq; Fireworks; Anthropic. Azure's path is matched by _AZURE.
_ROUTES: dict[str, Api] = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/api/v1/chat/completions": "openai",
    "/v1beta/openai/chat/completions": "openai",
    "/openai/v1/chat/completions": "openai",
    "/inference/v1/chat/completions": "openai",
    "/v1/messages": "anthropic",
}
_AZURE = re.compile(r"/openai/deployments/([^/]+)/chat/completions")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request that reached an API route, as received.

    ``json`` is the parsed body (``None`` if it was not valid JSON); ``model`` and ``stream``
    are read from it. Header names are lower-case.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any
    api: Api
    model: str | None
    stream: bool
    received_at: float

    @property
    def images(self) -> list[str]:
        """The images the request carried, as URLs (``data:`` URLs for inline ones), in
        either API's shape."""
        return received_images(self.api, self.json) if isinstance(self.json, dict) else []


def route(path: str, query: str) -> tuple[Api | None, str | None]:
    """The API `path` speaks (None: no route), and the Azure deployment it names, if any."""
    api = _ROUTES.get(path)
    if api is not None:
        return api, None
    azure = _AZURE.fullmatch(path)
    if azure is None:
        return None, None
    # Without an api-version Azure answers 404 Resource not found.
    return ("openai", azure[1]) if "api-version=" in query else (None, None)


@dataclass(frozen=True, slots=True)
class Arrival:
    """A request to an API route, read: its record, and its body when a JSON object."""

    record: RecordedRequest
    data: dict[str, Any] | None
    parsed: bool  # the body was JSON (of whatever kind)


def arrival(request: HTTPRequest, path: str, query: str, api: Api, deployment: str | None) -> Arrival:
    """`request` to `api`'s route at `path` read; Azure's `deployment` names the model,
    whatever the body says."""
    parsed = True
    try:
        payload = json.loads(request.body)
    except ValueError:
        payload, parsed = None, False
    data: dict[str, Any] | None = payload if isinstance(payload, dict) else None
    model = deployment if deployment is not None else data.get("model") if data is not None else None
    record = RecordedRequest(
        method=request.method,
        path=path,
        query=query,
        headers=request.headers,
        body=request.body,
        json=payload,
        api=api,
        model=model if isinstance(model, str) else None,
        stream=data is not None and data.get("stream") is True,
        received_at=time.monotonic(),
    )
    return Arrival(record, data, parsed)


def authorized(api: Api, headers: Mapping[str, str], key: str, azure: bool) -> bool:
    """Whether `headers` carry `key` where `api` (or Azure) puts it."""
    if azure:
        return headers.get("api-key") == key
    if api == "openai":
        return headers.get("authorization") == f"Bearer {key}"
    return headers.get("x-api-key") == key
