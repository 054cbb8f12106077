"""The simulated provider: deterministic answers with realistic latency, token counts and
injected failures, with no network and no keys. The embedded default."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncGenerator

from ..chat._tokens import content_text, estimate_messages
from ..config import Simulation
from ..results import Usage
from ._base import ChatRequest, Provider, ProviderReply, StreamEnd, StreamEvent
from ._errors import error_from_status

__all__ = ["SimulatedProvider"]

_VOCABULARY = (
    "the gateway routes each request to a model chosen by the policy of its route and falls back "
    "along the chain when a provider fails so that an answer arrives within the deadline while "
    "cost latency and tokens are recorded on every span"
)
_WORDS = tuple(_VOCABULARY.split())
# A call that "hangs" waits this long; the attempt timeout or deadline ends it first.
_HANG_SECONDS = 3600.0


class SimulatedProvider(Provider):
    """Answers from a seeded generator; the same prompt gets the same answer."""

    system = "gate_mw.simulated"

    def __init__(self, simulation: Simulation, *, deployment_id: str) -> None:
        self._sim = simulation
        self._rng = random.Random(f"{simulation.seed}:{deployment_id}")
        self._calls = 0

    def _answer(self, model: str, request: ChatRequest) -> tuple[str, int, str]:
        last = content_text(request.messages[-1].get("content")) if request.messages else ""
        digest = hashlib.blake2b(f"{model}\0{last}".encode(), digest_size=8).digest()
        wanted = max(1, self._sim.output_tokens * (75 + digest[0] % 50) // 100)
        limit = request.max_tokens or wanted
        count = min(wanted, limit)
        a, b = digest[1] | 1, digest[2]
        words = [_WORDS[(a * i * i + b * i + digest[3]) % len(_WORDS)] for i in range(count)]
        text = f"[{model}] " + " ".join(words) + "."
        return text, count, "length" if wanted > limit else "stop"

    def _maybe_fail(self) -> None:
        self._calls += 1
        sim = self._sim
        if self._calls <= sim.fail_first or (sim.error_rate and self._rng.random() < sim.error_rate):
            raise error_from_status(
                sim.error_status, f"simulated {sim.error_status}", retry_after=sim.retry_after
            )

    def _hangs(self) -> bool:
        return bool(self._sim.timeout_rate) and self._rng.random() < self._sim.timeout_rate

    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        sim = self._sim
        await asyncio.sleep(_HANG_SECONDS if self._hangs() else sim.latency)
        self._maybe_fail()
        text, output_tokens, finish = self._answer(model, request)
        return ProviderReply(
            text=text,
            finish_reason=finish,
            model=model,
            response_id=f"sim-{self._calls}",
            usage=Usage(estimate_messages(request.messages), output_tokens),
        )

    async def stream(self, model: str, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The same answer as `chat`, word by word: the first after `ttft`, the rest spread
        over what remains of `latency`. Failures and hangs come before the first word."""
        sim = self._sim
        await asyncio.sleep(_HANG_SECONDS if self._hangs() else sim.ttft)
        self._maybe_fail()
        response_id = f"sim-{self._calls}"
        text, output_tokens, finish = self._answer(model, request)
        words = text.split(" ")
        gap = max(0.0, sim.latency - sim.ttft) / len(words)
        for index, word in enumerate(words):
            if index and gap:
                await asyncio.sleep(gap)
            yield word if index == 0 else " " + word
        yield StreamEnd(
            finish, model, response_id, Usage(estimate_messages(request.messages), output_tokens)
        )
