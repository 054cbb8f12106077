"""A/B experiments: sticky weighted assignment of callers to arms, and per-arm figures."""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._headers import header_name_problem, header_text_problem

if TYPE_CHECKING:
    from ._state import RoutingState

__all__ = ["ArmSummary", "Experiment", "Experiments"]

ArmSpec = str | Sequence[str] | Mapping[str, Any]
_SCALE = float(2**64)


def _weight(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


@dataclass(frozen=True)
class Experiment:
    """Splits a route's calls between arms.

    Each arm is a model alias, a chain of aliases, or a mapping of policy fields that
    replace the route's (`{"models": [...], "strategy": "cost"}`). `weights` (default
    equal) must be positive. A caller always gets the same arm: the arm follows from a
    hash of `name`, `salt` and the caller key, so changing `salt` reshuffles everyone.
    A request without a caller key gets a random arm per request. For testing, the
    `override_header` (None to disable) picks an arm by name.

    The policy checks it when the route is declared, naming the route and field.
    """

    name: str
    arms: Mapping[str, ArmSpec]
    weights: Mapping[str, float] | None = None
    salt: str = ""
    override_header: str | None = "x-gate-arm"
    _cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False, default=())
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        # Malformed fields are left for problem() to name: building must not raise.
        names = tuple(self.arms) if isinstance(self.arms, Mapping) else ()
        given = self.weights if isinstance(self.weights, Mapping) else {}
        weights = [_weight(given.get(arm, 1.0)) for arm in names]
        total = sum(w for w in weights if w > 0) or 1.0
        cumulative, running = [], 0.0
        for weight in weights:
            running += max(weight, 0.0) / total
            cumulative.append(running)
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    def problem(self) -> str | None:
        """What is wrong with this experiment, if anything (checked by the policy)."""
        if not isinstance(self.name, str) or not self.name:
            return "name must be a non-empty string"
        if not isinstance(self.arms, Mapping) or not self.arms:
            return "arms must map at least one arm name to its models"
        weights: object = self.weights  # annotations are not checked at run time
        if weights is not None and not isinstance(weights, Mapping):
            return "weights must map arm names to weights"
        if self.override_header is not None and (problem := header_name_problem(self.override_header)):
            return f"override_header: {problem}"
        for arm, spec in self.arms.items():
            if not isinstance(arm, str) or not arm:
                return "arm names must be non-empty strings"
            # The arm answers in the x-gate-arm response header.
            if problem := header_text_problem(arm, "the arm name"):
                return f"arms: {problem}"
            if not isinstance(spec, str | Sequence | Mapping) or (not isinstance(spec, Mapping) and not spec):
                return f"arms.{arm}: give a model alias, a list of aliases or policy fields"
        if self.weights is not None:
            if extra := set(self.weights) - set(self.arms):
                return f"weights: {sorted(extra)[0]!r} is not an arm"
            for arm, weight in self.weights.items():
                if not isinstance(weight, int | float) or not 0 < weight < math.inf:
                    return f"weights.{arm}: weights must be positive, got {weight!r}"
        return None

    def position(self, caller: str) -> float:
        """Where `caller` falls in [0, 1): stable for a given name, salt and caller."""
        digest = hashlib.blake2b(
            f"{self.name}\0{self.salt}\0{caller}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") / _SCALE

    def arm_at(self, position: float) -> str:
        index = bisect.bisect_right(self._cumulative, position)
        return self._names[min(index, len(self._names) - 1)]

    def assign(self, caller: str | None, rng: random.Random) -> str:
        """The arm of `caller`; a random one (by weight) when there is no caller key."""
        return self.arm_at(rng.random() if caller is None else self.position(caller))


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One arm's calls through this gateway: `mean_latency_s` is over successful calls."""

    arm: str
    calls: int
    errors: int
    error_rate: float
    mean_latency_s: float | None
    cost_usd: float
    input_tokens: int
    output_tokens: int


class Experiments:
    """The experiments a gateway's policies declared, and their per-arm figures."""

    def __init__(self, state: RoutingState) -> None:
        self._state = state
        self._known: dict[str, Experiment] = {}

    def add(self, experiment: Experiment) -> str | None:
        """Register `experiment`; a problem if another one already uses its name."""
        known = self._known.setdefault(experiment.name, experiment)
        if known is not experiment and (known.arms, known.weights, known.salt) != (
            experiment.arms, experiment.weights, experiment.salt
        ):
            return f"another route declares experiment {experiment.name!r} differently"
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def __iter__(self) -> Any:
        return iter(self._known.values())

    async def summary(self, name: str) -> dict[str, ArmSummary]:
        """Per-arm calls, errors, error rate, mean latency, cost and tokens so far."""
        experiment = self._known.get(name)
        if experiment is None:
            raise KeyError(f"no route declares experiment {name!r}")
        found: dict[str, ArmSummary] = {}
        for arm in experiment.arms:
            counts = await self._state.arm_counts(name, arm)
            calls, errors = int(counts["calls"]), int(counts["errors"])
            ok = calls - errors
            found[arm] = ArmSummary(
                arm=arm,
                calls=calls,
                errors=errors,
                error_rate=errors / calls if calls else 0.0,
                mean_latency_s=counts["latency_s"] / ok if ok else None,
                cost_usd=counts["cost_usd"],
                input_tokens=int(counts["input_tokens"]),
                output_tokens=int(counts["output_tokens"]),
            )
        return found
