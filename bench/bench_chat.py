"""Benchmark of what tools cost a call: ten tool definitions against a plain call.

(a) Translation, in process: building each provider's request body from the call (OpenAI:
    the body as given; Anthropic: messages, tools and tool choice translated) and reading
    its reply (a tool call, against plain text), plain and with ten tools, in alternating
    rounds. Target: tools add at most 30 us per call.
(b) End to end: client CPU per `gate.chat` against the fake upstream on loopback (in its
    own process), plain and with ten tools, on an OpenAI and an Anthropic deployment.
    The difference is mostly encoding the larger body; shown for information.

Run: ``python bench/bench_chat.py [--quick]``. Prints figures and PASS/FAIL; exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from time import process_time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fake_upstream, print_table

from gate_mw import Gateway, ModelEntry, RoutePolicy
from gate_mw.providers import ChatRequest
from gate_mw.providers._anthropic_wire import anthropic_payload, reply_content
from gate_mw.providers.openai import _choice, openai_payload

MAX_TRANSLATION_US = 30.0
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant with tools."},
    {"role": "user", "content": "What is the weather in Paris, and what time is it there?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{index}",
            "description": f"Tool number {index}: looks something up for the user.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city."},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 14},
                },
                "required": ["city"],
            },
        },
    }
    for index in range(10)
]
OPENAI_TEXT = {
    "index": 0, "message": {"role": "assistant", "content": "It is sunny."}, "finish_reason": "stop",
}
OPENAI_TOOL = {
    "index": 0,
    "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "tool_3", "arguments": '{"city":"Paris"}'}},
    ]},
    "finish_reason": "tool_calls",
}
ANTHROPIC_TEXT = [{"type": "text", "text": "It is sunny."}]
ANTHROPIC_TOOL = [{"type": "tool_use", "id": "toolu_1", "name": "tool_3", "input": {"city": "Paris"}}]


def _translation(tools: bool) -> dict[str, Callable[[], object]]:
    request = ChatRequest(
        messages=MESSAGES, max_tokens=64, tools=TOOLS if tools else None,
        tool_choice="auto" if tools else None,
    )
    openai_reply, anthropic_reply = (OPENAI_TOOL, ANTHROPIC_TOOL) if tools else (OPENAI_TEXT, ANTHROPIC_TEXT)

    def openai() -> object:
        return openai_payload("gpt-4o", request), _choice(openai_reply)

    def anthropic() -> object:
        return anthropic_payload("claude-sonnet-4-5", request), reply_content(anthropic_reply, None)

    return {"openai": openai, "anthropic": anthropic}


def _cpu_us(fn: Callable[[], object], calls: int) -> float:
    gc.collect()
    started = process_time()
    for _ in range(calls):
        fn()
    return (process_time() - started) / calls * 1e6


def bench_translation(calls: int, rounds: int) -> list[str]:
    plain, tools = _translation(False), _translation(True)
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for api in ("openai", "anthropic"):
            for label, modes in (("plain", plain), ("10 tools", tools)):
                runs.setdefault((api, label), []).append(_cpu_us(modes[api], calls))
    rows, verdicts = [], []
    for api in ("openai", "anthropic"):
        base = statistics.median(runs[(api, "plain")])
        with_tools = statistics.median(runs[(api, "10 tools")])
        rows.append([api, f"{base:.1f}", f"{with_tools:.1f}", f"{with_tools - base:+.1f}"])
        ok = with_tools - base <= MAX_TRANSLATION_US
        verdicts.append(
            f"{'PASS' if ok else 'FAIL'}  {api} translation: ten tools add {with_tools - base:+.1f} us "
            f"per call (target <= {MAX_TRANSLATION_US:.0f} us)"
        )
    print(f"(a) translation, CPU us per call (median of {rounds} rounds of {calls:,})")
    print_table(["provider", "plain", "10 tools", "added"], rows)
    return verdicts


async def bench_calls(calls: int, rounds: int) -> list[str]:
    with fake_upstream(0.0) as upstream:
        env = {"BENCH_KEY": "sk-bench"}
        entries = [
            ModelEntry(name="openai", provider="openai", model="gpt-4o", api_base=upstream.url + "/v1",
                       api_key_env="BENCH_KEY"),
            ModelEntry(name="anthropic", provider="anthropic", model="claude-sonnet-4-5",
                       api_base=upstream.url, api_key_env="BENCH_KEY"),
        ]
        async with Gateway(entries, env=env) as gateway:
            modes: dict[tuple[str, str], Callable[[], Awaitable[object]]] = {}
            for name in ("openai", "anthropic"):
                gate = gateway.client(RoutePolicy(models=(name,), max_tokens=16))
                modes[(name, "plain")] = partial(gate.chat, MESSAGES)
                modes[(name, "10 tools")] = partial(gate.chat, MESSAGES, tools=TOOLS, tool_choice="auto")
            for call in modes.values():  # warm up, connections included
                for _ in range(100):
                    await call()
            runs: dict[tuple[str, str], list[float]] = {key: [] for key in modes}
            for _ in range(rounds):
                for key, call in modes.items():
                    gc.collect()
                    started = process_time()
                    for _ in range(calls):
                        await call()
                    runs[key].append((process_time() - started) / calls * 1e6)
    rows = []
    for name in ("openai", "anthropic"):
        base = statistics.median(runs[(name, "plain")])
        with_tools = statistics.median(runs[(name, "10 tools")])
        rows.append([name, f"{base:,.0f}", f"{with_tools:,.0f}", f"{with_tools - base:+,.0f}"])
    print(f"\n(b) gate.chat end to end, client CPU us per call (median of {rounds} rounds of {calls:,})")
    print_table(["provider", "plain", "10 tools", "added"], rows)
    return [f"info  end to end, ten tools add {row[3]} us per {row[0]} call (encoding and sending a larger "
            "body; noisy on a shared machine)"
            for row in rows]


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    verdicts = bench_translation(2_000 if args.quick else 10_000, rounds)
    verdicts += await bench_calls(300 if args.quick else 1_000, rounds)
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
