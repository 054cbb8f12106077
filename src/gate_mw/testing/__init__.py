"""A fake OpenAI- and Anthropic-compatible LLM provider for tests, on real loopback HTTP.

::

    with FakeUpstream() as up:
        up.script("gpt-4o", Fault(500), Reply(text="hi"))
        up.script("claude", Reply(tool_calls=[ToolUse("get_weather", {"city": "Paris"})]))
        client = openai.OpenAI(base_url=up.openai_base, api_key="x")

Standard library only. Opt in to the ``fake_upstream`` fixture with
``pytest_plugins = ["gate_mw.testing.pytest_plugin"]``.
"""

from ._behaviours import Behaviour, Drop, Fault, Raw, Reply, Stream, ToolUse
from ._formats import estimate_tokens
from ._upstream import FakeUpstream, RecordedRequest

__all__ = [
    "Behaviour",
    "Drop",
    "FakeUpstream",
    "Fault",
    "Raw",
    "RecordedRequest",
    "Reply",
    "Stream",
    "ToolUse",
    "estimate_tokens",
]
