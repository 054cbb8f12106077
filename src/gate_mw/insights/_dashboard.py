"""The dashboard page: one self-contained HTML document with hand-drawn SVG charts (no
script, no build step, nothing fetched from elsewhere), rendered from the JSON figures."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["render_dashboard"]

_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f")
_WIDTH, _HEIGHT, _LEFT, _BOTTOM = 720, 220, 60, 28
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;background:#fff;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f0f0f0}
td.l,th.l{text-align:left}.chart{background:#fff;border:1px solid #ddd}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px}.muted{color:#777}.open{color:#c00}.half_open{color:#c60}
"""


def _when(epoch: float | None) -> str:
    return "—" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.4f}" if abs(value) >= 0.01 or value == 0 else f"${value:.6f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:,.0f} ms"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 0, cls: str = "") -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"l" if i < left else ""}">{escape(str(cell))}</td>' for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _stacked_bars(title: str, starts: Sequence[float], series: Mapping[str, Sequence[float]]) -> str:
    """Spend per time bucket, one stacked colour per series."""
    if not series:
        return f'<p class="muted" data-chart="{escape(title)}">No spend recorded in this window yet.</p>'
    totals = [sum(values[i] for values in series.values()) for i in range(len(starts))]
    top = max(totals) or 1.0
    plot_w, plot_h = _WIDTH - _LEFT - 10, _HEIGHT - _BOTTOM - 10
    bar = plot_w / max(1, len(starts))
    shapes = []
    for tick in range(5):  # horizontal grid with USD labels
        y = 10 + plot_h - plot_h * tick / 4
        shapes.append(f'<line x1="{_LEFT}" x2="{_WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        shapes.append(
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"${top * tick / 4:.4f}</text>"
        )
    base = [0.0] * len(starts)
    legend = []
    for index, (name, values) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        legend.append(f'<span><i style="background:{colour}"></i>{escape(name)}</span>')
        for i, value in enumerate(values):
            if not value:
                continue
            h = plot_h * value / top
            y = 10 + plot_h - plot_h * base[i] / top - h
            shapes.append(
                f'<rect class="bar" x="{_LEFT + i * bar + 1:.1f}" y="{y:.1f}" width="{max(1.0, bar - 2):.1f}"'
                f' height="{h:.1f}" fill="{colour}"><title>{escape(name)} {_when(starts[i])}: '
                f"${value:.6f}</title></rect>"
            )
            base[i] += value
    step = max(1, len(starts) // 6)
    for i in range(0, len(starts), step):
        label = time.strftime("%H:%M", time.gmtime(starts[i]))
        shapes.append(
            f'<text x="{_LEFT + i * bar + bar / 2:.1f}" y="{_HEIGHT - 10}" font-size="10" '
            f'text-anchor="middle">{label}</text>'
        )
    return (
        f'<svg class="chart" data-chart="{escape(title)}" role="img" aria-label="{escape(title)}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(shapes)}</svg>'
        f'<div class="legend">{"".join(legend)}</div>'
    )


def _series(report: Mapping[str, Any], dimension: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for row in report["rows"]:
        name = row["group"][dimension]
        values = found.setdefault(name, [0.0] * len(report["bucket_starts"]))
        for i, usd in enumerate(row["spend"]):
            values[i] += usd
    return found


def _estimate(value: Mapping[str, Any] | None, fmt: str = "money") -> str:
    if not value:
        return "—"
    show = _money if fmt == "money" else (_seconds if fmt == "s" else (lambda v: f"{v * 100:.1f} %"))
    return f"{show(value['value'])} [{show(value['low'])} to {show(value['high'])}]"


def _experiment(stats: Mapping[str, Any]) -> str:
    arms = list(stats["arms"].values())
    header = ["", *[a["arm"] + (" (control)" if a["arm"] == stats["control"] else "") for a in arms]]
    rows = [
        ["calls", *[a["calls"] for a in arms]],
        ["error rate", *[_estimate(a["error_rate"], "%") for a in arms]],
        ["mean cost", *[_estimate(a["mean_cost_usd"]) for a in arms]],
        ["latency p50", *[_seconds(a["latency_p50_s"]) for a in arms]],
        ["latency p95", *[_seconds(a["latency_p95_s"]) for a in arms]],
        ["verdict", *[(a["versus_control"] or {}).get("verdict", "control") for a in arms]],
    ]
    return f"<h3>{escape(stats['name'])}</h3>" + _table(header, rows, left=1, cls="experiment")


def render_dashboard(
    report: Mapping[str, Any], experiments: Sequence[Mapping[str, Any]],
    cooldowns: Sequence[Mapping[str, Any]], budgets: Sequence[Mapping[str, Any]],
) -> str:
    """The page, from the same dictionaries the JSON endpoints serve."""
    starts = report["bucket_starts"]
    rows = [
        [
            r["group"].get("caller", ""), r["group"].get("route", ""), r["group"].get("model", ""),
            r["calls"], r["errors"], _money(r["cost_usd"]), r["input_tokens"], r["output_tokens"],
            _seconds(r["latency_p50_s"]), _seconds(r["latency_p95_s"]),
        ]
        for r in report["rows"]
    ]
    calls_table = _table(
        ["caller", "route", "model", "calls", "errors", "spend", "input tokens", "output tokens",
         "p50", "p95"], rows, left=3, cls="report",
    ) if rows else '<p class="muted">No calls in this window yet.</p>'
    cooldown_rows = [
        [c["deployment"], c["state"], c.get("reason") or "—", _when(c.get("since")), _when(c.get("until")),
         c.get("consecutive_failures", 0)]
        for c in cooldowns
    ]
    budget_rows = [
        [b["route"], b.get("caller") or "—", b["window"], _money(b["limit_usd"]),
         _money(b["downgrade_at_usd"]), _money(b.get("spent_usd"))]
        for b in budgets
    ]
    body = [
        f"<h1>gate_mw — last {escape(report['window'])}</h1>",
        f"<p>Spend {_money(report['cost_usd'])} · {sum(r['calls'] for r in report['rows'])} calls · "
        f"from {_when(report['since'])} to {_when(report['until'])}</p>",
        "<h2>Spend over time per model</h2>",
        _stacked_bars("spend per model", starts, _series(report, "model")),
        "<h2>Spend over time per route</h2>",
        _stacked_bars("spend per route", starts, _series(report, "route")),
        "<h2>Calls</h2>", calls_table,
        "<h2>Experiments</h2>",
        "".join(_experiment(e) for e in experiments) or '<p class="muted">No experiments declared.</p>',
        "<h2>Cooldowns</h2>",
        _table(["deployment", "state", "reason", "since", "until", "consecutive failures"],
               cooldown_rows, left=3, cls="cooldowns"),
        "<h2>Budgets</h2>",
        _table(
            ["route", "caller", "window", "limit", "cheaper models from", "spent"], budget_rows,
            left=2, cls="budgets",
        ) if budget_rows else '<p class="muted">No route declares a budget.</p>',
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="30"><link rel="icon" href="data:,">'
        '<title>gate_mw dashboard</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
