"""Windows that limits count over: calendar days, weeks and months in a time zone (fixed
counters that reset at the window's start), or rolling seconds (a GCRA that refills
continuously)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..state import CALLER_TAG

__all__ = ["CALENDAR", "Window", "calendar_window", "subject", "window_problem"]

Window = str | float
CALENDAR = ("day", "week", "month")
_MAX_NAME = 64  # longer caller keys and route names are hashed into the key


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def window_problem(window: object, timezone: str) -> str | None:
    """What is wrong with a window and time zone, if anything."""
    if isinstance(window, str):
        if window not in CALENDAR:
            return f"window must be day, week, month or seconds, got {window!r}"
    elif isinstance(window, bool) or not isinstance(window, int | float) or not window >= 1:
        return f"window must be day, week, month or at least 1 second, got {window!r}"
    try:
        _zone(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {timezone!r}"
    return None


def calendar_window(window: str, timezone: str, now: float) -> tuple[str, float]:
    """The id of the calendar window holding `now`, and the epoch time it ends."""
    local = datetime.fromtimestamp(now, _zone(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if window == "day":
        start, end = day, day + timedelta(days=1)
    elif window == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # Wall-clock midnight to epoch in the zone (DST-safe: fold 0 picks the first).
    return start.strftime("%Y-%m-%d"), end.replace(tzinfo=_zone(timezone)).timestamp()


def subject(per: str, name: str | None) -> str:
    """The hash-tagged subject of a key: `{c:alice}`, `{r:/chat}`, `{d:gpt-4o}`, `{g}`.

    Long names (and names with braces) are hashed, so a hostile caller key cannot make
    keys grow or move between Cluster slots."""
    if per == "global":
        return "{g}"
    assert name is not None
    if len(name) > _MAX_NAME or "{" in name or "}" in name:
        name = "h:" + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    tag = {"caller": CALLER_TAG, "route": "{r:", "deployment": "{d:"}[per]
    return f"{tag}{name}}}"
