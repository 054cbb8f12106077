"""What pricing a call costs: gate_mw's per-call arithmetic on a price resolved once, side by
side with `genai_prices.calc_price` on the same usage, and what resolving costs at startup.

Run: ``python bench/bench_pricing.py [--quick]``. Prints figures and PASS/FAIL, exits 0.
Targets are ratios measured in one run, since machine speed varies: pricing a call through a
deployment must cost at most 5% of a `calc_price` call (which is what a call would cost if
prices were looked up per call), and the answer must be the same.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import timeit

import genai_prices

from gate_mw import ModelEntry, PriceTable, Usage
from gate_mw._registry import ModelRegistry
from gate_mw.providers import ProviderReply

TARGET_RATIO = 0.05
MODELS = [("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-5", None)]
USAGE = Usage(input_tokens=1200, output_tokens=300, cached_tokens=400, cache_write_tokens=100)


def _startup() -> tuple[float, float]:
    """Seconds to import genai-prices and to make the first lookup, in a fresh process."""
    code = (
        "import time; t=time.perf_counter(); import genai_prices; a=time.perf_counter()-t; "
        "from gate_mw import PriceTable; t=time.perf_counter(); PriceTable().price('gpt-4o', 'openai'); "
        "print(a, time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, second = out.split()
    return float(first), float(second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    number, rounds = (2_000, 3) if args.quick else (20_000, 7)
    imported, first_lookup = _startup()
    print(f"startup: import genai_prices {imported * 1000:.0f} ms, first lookup {first_lookup * 1000:.0f} ms")
    print(f"{'provider':<10} {'model':<20} {'gate us/call':>13} {'calc_price us/call':>19} {'ratio':>7}")
    worst = 0.0
    for provider, model, answered in MODELS:
        entry = ModelEntry(name="m", provider=provider, model=model, api_key_env="X")
        (deployment,) = ModelRegistry([entry], PriceTable.bundled(), source=None).deployments
        reply = ProviderReply("hi", "stop", answered or model, None, USAGE)
        reported = genai_prices.Usage(
            input_tokens=USAGE.input_tokens, cache_read_tokens=USAGE.cached_tokens,
            cache_write_tokens=USAGE.cache_write_tokens, output_tokens=USAGE.output_tokens,
        )
        ours, _ = deployment.cost(reply)
        theirs = float(genai_prices.calc_price(reported, answered or model, provider_id=provider).total_price)
        assert ours is not None
        assert abs(ours - theirs) <= 1e-12, (model, ours, theirs)
        gate_us, calc_us = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine load
            start = time.perf_counter()
            timeit.timeit(lambda: deployment.cost(reply), number=number)  # noqa: B023
            gate_us.append((time.perf_counter() - start) / number * 1e6)
            start = time.perf_counter()
            timeit.timeit(
                lambda: genai_prices.calc_price(reported, answered or model, provider_id=provider),  # noqa: B023
                number=max(1, number // 20),
            )
            calc_us.append((time.perf_counter() - start) / max(1, number // 20) * 1e6)
        gate, calc = min(gate_us), min(calc_us)
        worst = max(worst, gate / calc)
        print(f"{provider:<10} {model:<20} {gate:>13.2f} {calc:>19.1f} {gate / calc:>7.3f}")
    verdict = "PASS" if worst <= TARGET_RATIO else "FAIL"
    print(f"  {verdict}  pricing a call: {worst:.1%} of a calc_price call (target <= {TARGET_RATIO:.0%})")


if __name__ == "__main__":
    main()
