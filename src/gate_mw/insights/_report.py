"""Reports: spend, calls, tokens, errors and latency percentiles per group over a window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._stats import percentile
from ._store import FIELDS, Counters, latency_counts

__all__ = ["WINDOWS", "GroupBy", "Report", "ReportRow", "build_report"]

GroupBy = Literal["caller", "route", "model"]
_DIMENSIONS: tuple[GroupBy, ...] = ("caller", "route", "model")
#: Window name -> (bucket width, number of buckets), in seconds.
WINDOWS: dict[str, tuple[float, int]] = {
    "hour": (300.0, 12), "day": (3600.0, 24), "week": (3600.0, 168),
}


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group's figures. Latency percentiles are in seconds (None without calls);
    `spend` is USD per time bucket of the report, oldest first."""

    group: dict[str, str]
    calls: int
    errors: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    spend: tuple[float, ...]

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "calls": self.calls, "errors": self.errors,
            "error_rate": self.error_rate, "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "latency_p50_s": self.latency_p50_s, "latency_p95_s": self.latency_p95_s,
            "latency_p99_s": self.latency_p99_s, "spend": list(self.spend),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """What `Gateway.report()` returns: rows by descending spend, then calls.
    `bucket_starts` are the epoch seconds each `ReportRow.spend` entry starts at."""

    window: str
    by: tuple[GroupBy, ...]
    since: float
    until: float
    bucket_starts: tuple[float, ...]
    rows: tuple[ReportRow, ...]

    @property
    def cost_usd(self) -> float:
        return sum(row.cost_usd for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window, "by": list(self.by), "since": self.since, "until": self.until,
            "bucket_starts": list(self.bucket_starts), "cost_usd": self.cost_usd,
            "rows": [row.to_dict() for row in self.rows],
        }


def _check(window: str, by: Sequence[str]) -> tuple[GroupBy, ...]:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    if isinstance(by, str):
        by = (by,)
    for name in by:
        if name not in _DIMENSIONS:
            raise ValueError(f"by: {name!r} is not one of caller, route, model")
    return tuple(by)  # type: ignore[arg-type]


async def build_report(counters: Counters, window: str, by: Sequence[str]) -> Report:
    dimensions = _check(window, by)
    width, count = WINDOWS[window]
    now = counters.store.clock()
    last = int(now // width)
    buckets = list(range(last - count + 1, last + 1))
    groups = await counters.groups()
    found = await counters.read(range(len(groups)), width, buckets)
    totals: dict[tuple[str, ...], dict[str, float]] = {}
    spend: dict[tuple[str, ...], list[float]] = {}
    for (gid, bucket), values in found.items():
        full = dict(zip(_DIMENSIONS, groups[gid], strict=True))
        key = tuple(full[d] for d in dimensions)
        total = totals.setdefault(key, dict.fromkeys(FIELDS, 0.0))
        for name, value in values.items():
            total[name] += value
        spend.setdefault(key, [0.0] * count)[bucket - buckets[0]] += values["cost"]
    rows = []
    for key, total in totals.items():
        latency = latency_counts(total)
        rows.append(ReportRow(
            group=dict(zip(dimensions, key, strict=True)),
            calls=int(total["calls"]), errors=int(total["errors"]), cost_usd=total["cost"],
            input_tokens=int(total["in"]), output_tokens=int(total["out"]),
            latency_p50_s=percentile(latency, 0.5), latency_p95_s=percentile(latency, 0.95),
            latency_p99_s=percentile(latency, 0.99), spend=tuple(spend[key]),
        ))
    rows.sort(key=lambda row: (-row.cost_usd, -row.calls, tuple(row.group.values())))
    return Report(
        window=window, by=dimensions, since=buckets[0] * width, until=now,
        bucket_starts=tuple(b * width for b in buckets), rows=tuple(rows),
    )
